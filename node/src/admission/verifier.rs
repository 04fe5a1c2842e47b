//! Signature verification on dedicated OS threads (off the async executor), in batches.
//!
//! Jobs (each the signatures of one admission group) wait in one bounded queue of at most
//! [`VERIFY_QUEUE`] signatures; past it a group is refused as busy (4006). Each worker takes
//! every queued job up to [`MAX_BATCH`] signatures and verifies them as one batch. Under load
//! the queue fills while a batch is verified, so batches grow with the load; when idle a
//! lone signature is verified at once. Idle workers sleep on a condition variable (no
//! spinning: a validator shares its cores with consensus, gossip and RPC).

use lockstep_bundles::sig::{self, Item};
use lockstep_mempool::AdmitError;
use std::collections::VecDeque;
use std::sync::Arc;
use tokio::sync::oneshot;

/// Signatures queued for verification before new submissions get "busy" (4006).
pub(crate) const VERIFY_QUEUE: usize = 16_384;
/// Most signatures verified in one batch (a job is never split, so a batch that takes a
/// large job may hold more).
pub const MAX_BATCH: usize = 512;

/// A group of signatures to verify, answered together.
struct Job {
    items: Vec<Item>,
    reply: oneshot::Sender<Vec<bool>>,
}

/// The handle on the verifier threads; dropping it stops them once the queue is empty.
pub(super) struct Verifier {
    shared: Arc<VerifyQueue>,
}

struct VerifyQueue {
    state: parking_lot::Mutex<QueueState>,
    ready: parking_lot::Condvar,
}

#[derive(Default)]
struct QueueState {
    jobs: VecDeque<Job>,
    /// Signatures queued and not yet taken by a worker.
    signatures: usize,
    closed: bool,
}

impl QueueState {
    /// Queues `job` unless the queue has stopped or would then hold more than `limit`
    /// signatures.
    fn push(&mut self, job: Job, limit: usize) -> Result<(), AdmitError> {
        if self.closed {
            return Err(AdmitError::Busy(
                "signature verification has stopped".into(),
            ));
        }
        if self.signatures + job.items.len() > limit {
            return Err(AdmitError::Busy(
                "node busy: signature verification queue is full; retry later".into(),
            ));
        }
        self.signatures += job.items.len();
        self.jobs.push_back(job);
        Ok(())
    }

    /// Takes queued jobs, oldest first, until they hold `max` signatures or more (whole
    /// jobs only); returns them and how many signatures they hold.
    fn take(&mut self, max: usize) -> (Vec<Job>, usize) {
        let mut jobs = Vec::new();
        let mut n = 0;
        while n < max {
            let Some(j) = self.jobs.pop_front() else {
                break;
            };
            n += j.items.len();
            jobs.push(j);
        }
        self.signatures -= n;
        (jobs, n)
    }
}

impl Verifier {
    /// Starts `workers` threads (at least one).
    pub(super) fn start(workers: usize) -> Verifier {
        let shared = Arc::new(VerifyQueue {
            state: parking_lot::Mutex::new(QueueState::default()),
            ready: parking_lot::Condvar::new(),
        });
        for i in 0..workers.max(1) {
            let shared = shared.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("lockstep-verify-{i}"))
                .spawn(move || verify_loop(&shared));
            if let Err(e) = spawned {
                tracing::error!("cannot start signature verifier thread {i}: {e}");
            }
        }
        Verifier { shared }
    }

    /// Verifies `items`; one verdict per item, in order. Busy when the queue is full.
    pub(super) async fn verify(&self, items: Vec<Item>) -> Result<Vec<bool>, AdmitError> {
        if items.is_empty() {
            return Ok(Vec::new());
        }
        let (reply, verdicts) = oneshot::channel();
        self.shared
            .state
            .lock()
            .push(Job { items, reply }, VERIFY_QUEUE)?;
        self.shared.ready.notify_one();
        verdicts
            .await
            .map_err(|_| AdmitError::Busy("signature verification failed internally".into()))
    }
}

impl Drop for Verifier {
    fn drop(&mut self) {
        self.shared.state.lock().closed = true;
        self.shared.ready.notify_all();
    }
}

fn verify_loop(shared: &VerifyQueue) {
    loop {
        let (jobs, n) = {
            let mut q = shared.state.lock();
            while q.jobs.is_empty() {
                if q.closed {
                    return;
                }
                shared.ready.wait(&mut q);
            }
            q.take(MAX_BATCH)
        };
        let started = std::time::Instant::now();
        let verdicts = if jobs.len() == 1 {
            sig::verify_batch(&jobs[0].items)
        } else {
            let items: Vec<Item> = jobs.iter().flat_map(|j| j.items.iter().copied()).collect();
            sig::verify_batch(&items)
        };
        metrics::histogram!(crate::metrics::VERIFY_BATCH_SIZE).record(n as f64);
        metrics::histogram!(crate::metrics::VERIFY_BATCH_SECONDS)
            .record(started.elapsed().as_secs_f64());
        let mut verdicts = verdicts.into_iter();
        for job in jobs {
            let mine: Vec<bool> = verdicts.by_ref().take(job.items.len()).collect();
            let _ = job.reply.send(mine);
        }
    }
}

/// The raw rate (signatures/s) at which this machine batch-verifies `items` on all cores, in
/// batches of [`MAX_BATCH`]: the ceiling admission is measured against.
pub fn raw_verify_rate(items: &[Item]) -> f64 {
    raw_verify_rate_in_batches(items, MAX_BATCH)
}

/// [`raw_verify_rate`] with batches of `batch` signatures.
pub fn raw_verify_rate_in_batches(items: &[Item], batch: usize) -> f64 {
    let started = std::time::Instant::now();
    std::thread::scope(|s| {
        for chunk in items.chunks(items.len().div_ceil(cores()).max(1)) {
            s.spawn(move || {
                for batch in chunk.chunks(batch.max(1)) {
                    let _ = sig::verify_batch(batch);
                }
            });
        }
    });
    items.len() as f64 / started.elapsed().as_secs_f64()
}

/// The cores this process may use (2 if that cannot be read).
pub(super) fn cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(signatures: usize) -> Job {
        let item = Item {
            pk: [0; 32],
            msg: [0; 32],
            sig: [0; 64],
        };
        Job {
            items: vec![item; signatures],
            reply: oneshot::channel().0,
        }
    }

    #[test]
    fn the_verify_queue_takes_signatures_up_to_its_limit_then_says_busy() {
        let mut q = QueueState::default();
        assert!(q.push(job(VERIFY_QUEUE - 1), VERIFY_QUEUE).is_ok());
        assert!(q.push(job(1), VERIFY_QUEUE).is_ok());
        assert_eq!(q.signatures, VERIFY_QUEUE);
        let busy = q.push(job(1), VERIFY_QUEUE).unwrap_err();
        assert_eq!(busy.code(), 4006);
        assert!(busy.to_string().contains("queue is full"), "{busy}");
        assert_eq!(q.jobs.len(), 2);
        // Room again once a worker takes what is queued (the first job, whole).
        let (_, taken) = q.take(MAX_BATCH);
        assert_eq!(taken, VERIFY_QUEUE - 1);
        assert!(q.push(job(1), VERIFY_QUEUE).is_ok());
    }

    #[test]
    fn a_stopped_verifier_refuses_work() {
        let mut q = QueueState {
            closed: true,
            ..QueueState::default()
        };
        let e = q.push(job(1), VERIFY_QUEUE).unwrap_err();
        assert_eq!(e.code(), 4006);
        assert!(e.to_string().contains("stopped"), "{e}");
    }

    #[test]
    fn a_batch_takes_whole_jobs_until_it_holds_max_batch_signatures() {
        let mut q = QueueState::default();
        for _ in 0..MAX_BATCH + 1 {
            q.push(job(1), VERIFY_QUEUE).unwrap();
        }
        let (jobs, n) = q.take(MAX_BATCH);
        assert_eq!((jobs.len(), n), (MAX_BATCH, MAX_BATCH));
        assert_eq!(q.signatures, 1);
        // A job is never split: one larger than a batch is taken whole.
        q.push(job(MAX_BATCH + 10), VERIFY_QUEUE).unwrap();
        let (jobs, n) = q.take(MAX_BATCH);
        assert_eq!((jobs.len(), n), (2, MAX_BATCH + 11));
        assert_eq!(q.signatures, 0);
    }

    #[tokio::test]
    async fn verdicts_come_back_in_order_one_per_signature() {
        let key = ed25519_dalek::SigningKey::from_bytes(&[4; 32]);
        let good = |n: u8| {
            let b = lockstep_client::bundle::sign(&key, 1, u64::from(n), 10, vec![(1, vec![n])]);
            Item {
                pk: b.body.signer,
                msg: b.hash().0,
                sig: b.signature,
            }
        };
        let mut forged = good(2);
        forged.sig[3] ^= 1;
        let v = Verifier::start(2);
        assert_eq!(v.verify(Vec::new()).await.unwrap(), Vec::<bool>::new());
        let verdicts = v.verify(vec![good(1), forged, good(3)]).await.unwrap();
        assert_eq!(verdicts, vec![true, false, true]);
    }
}
