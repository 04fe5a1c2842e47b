//! Admission: decode, stateless checks, signature verification in batches on dedicated
//! verifier threads, then the mempool; shared by the RPC server and the gossip inbound path.

use crate::disk::DiskSpace;
use bytes::Bytes;
use lockstep_bundles::bundle::Window;
use lockstep_bundles::sig::{self, Item};
use lockstep_bundles::{BundleError, Hash, Limits, SignedBundle};
use lockstep_consensus::Tip;
use lockstep_mempool::pool::PoolError;
use lockstep_mempool::{Admitted, Inserted, Known, Mempool, Origin};
use lockstep_p2p::{BundleGossip, Inbound, Verdict};
use std::collections::VecDeque;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot, watch, Semaphore};
use tracing::debug;

/// Signatures queued for verification before new submissions get "busy" (4006).
pub const VERIFY_QUEUE: usize = 16_384;
/// Most signatures verified in one batch.
pub const MAX_BATCH: usize = 512;
/// Gossip messages being admitted at once.
pub const GOSSIP_IN_FLIGHT: usize = 2_048;

/// Why a bundle was not admitted.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AdmitError {
    #[error(transparent)]
    Bundle(#[from] BundleError),
    #[error("{0}")]
    Busy(String),
    /// The node's disk is nearly full (see [`crate::disk`]).
    #[error("{0}")]
    DiskLow(String),
}

impl AdmitError {
    pub fn code(&self) -> i32 {
        match self {
            AdmitError::Bundle(b) => b.code(),
            AdmitError::Busy(_) | AdmitError::DiskLow(_) => 4006,
        }
    }
}

impl From<PoolError> for AdmitError {
    fn from(e: PoolError) -> Self {
        AdmitError::Busy(e.to_string())
    }
}

/// A group of signatures to verify, answered together.
struct Job {
    items: Vec<Item>,
    reply: oneshot::Sender<Vec<bool>>,
}

/// The signature-verification pool: dedicated OS threads (off the async executor), each
/// taking every queued job up to [`MAX_BATCH`] signatures and verifying them as one batch.
/// Under load the queue fills while a batch is verified, so batches grow with the load;
/// when idle a lone signature is verified at once. Idle workers sleep on a condition variable
/// (no spinning: a validator shares its cores with consensus, gossip and RPC).
struct Verifier {
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

impl Verifier {
    fn start(workers: usize) -> Verifier {
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
    async fn verify(&self, items: Vec<Item>) -> Result<Vec<bool>, AdmitError> {
        let n = items.len();
        if n == 0 {
            return Ok(Vec::new());
        }
        let (reply, verdicts) = oneshot::channel();
        {
            let mut q = self.shared.state.lock();
            if q.closed {
                return Err(AdmitError::Busy(
                    "signature verification has stopped".into(),
                ));
            }
            if q.signatures + n > VERIFY_QUEUE {
                return Err(AdmitError::Busy(
                    "node busy: signature verification queue is full; retry later".into(),
                ));
            }
            q.signatures += n;
            q.jobs.push_back(Job { items, reply });
        }
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
        let mut jobs = Vec::new();
        let mut n = 0;
        {
            let mut q = shared.state.lock();
            while q.jobs.is_empty() {
                if q.closed {
                    return;
                }
                shared.ready.wait(&mut q);
            }
            while n < MAX_BATCH {
                let Some(j) = q.jobs.pop_front() else { break };
                n += j.items.len();
                jobs.push(j);
            }
            q.signatures -= n;
        }
        let started = std::time::Instant::now();
        let verdicts = if jobs.len() == 1 {
            sig::verify_batch(&jobs[0].items)
        } else {
            let items: Vec<Item> = jobs.iter().flat_map(|j| j.items.iter().copied()).collect();
            sig::verify_batch(&items)
        };
        metrics::histogram!("lockstep_mempool_verify_batch_size").record(n as f64);
        metrics::histogram!("lockstep_mempool_verify_batch_seconds")
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

fn cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
}

/// Where a bundle came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Rpc,
    Gossip,
}

impl Source {
    fn label(self) -> &'static str {
        match self {
            Source::Rpc => "rpc",
            Source::Gossip => "gossip",
        }
    }
}

/// Admission of bundles into the mempool, shared by the RPC server and the gossip inbound
/// path.
///
/// Single submissions (RPC) are coalesced: they queue, and whatever is queued is admitted as
/// one group, so under load the per-bundle cost of locking, verification hand-off and task
/// wake-ups is shared by up to [`CHUNK`] bundles. Gossip arrives in groups already
/// ([`run_gossip_inbound`]).
pub struct Admission {
    core: Arc<Core>,
    queue: mpsc::Sender<Request>,
}

/// Single submissions waiting to be admitted before new ones get "busy" (4006).
pub const SUBMIT_QUEUE: usize = 16_384;
/// Most bundles admitted as one group.
pub const CHUNK: usize = 256;

/// A bundle to admit, as decoded (with its canonical encoding) or why it could not be.
type Parsed = Result<(SignedBundle, Bytes), AdmitError>;

struct Request {
    bundle: Parsed,
    source: Source,
    reply: oneshot::Sender<Result<Hash, AdmitError>>,
}

struct Core {
    chain_id: u64,
    limits: Limits,
    mempool: Arc<Mempool>,
    tip: watch::Receiver<Tip>,
    verifier: Verifier,
    gossip: Arc<dyn BundleGossip>,
    disk: Arc<DiskSpace>,
}

fn reject(e: AdmitError) -> AdmitError {
    let label = match &e {
        AdmitError::Bundle(b) => b.label(),
        AdmitError::Busy(_) => "busy",
        AdmitError::DiskLow(_) => "disk_low",
    };
    metrics::counter!("lockstep_mempool_rejected_total", "reason" => label).increment(1);
    e
}

/// A decoded bundle on its way through admission.
struct Candidate {
    slot: usize,
    source: Source,
    hash: Hash,
    bundle: SignedBundle,
    encoded: Bytes,
}

impl Admission {
    /// Starts the verifier threads and the submission queue (needs a tokio runtime).
    pub fn new(
        chain_id: u64,
        limits: Limits,
        mempool: Arc<Mempool>,
        tip: watch::Receiver<Tip>,
        gossip: Arc<dyn BundleGossip>,
        disk: Arc<DiskSpace>,
    ) -> Arc<Admission> {
        let core = Arc::new(Core {
            chain_id,
            limits,
            mempool,
            tip,
            verifier: Verifier::start(cores()),
            gossip,
            disk,
        });
        let (queue, rx) = mpsc::channel(SUBMIT_QUEUE);
        tokio::spawn(run_queue(rx, core.clone()));
        Arc::new(Admission { core, queue })
    }

    /// Admits an encoded `SignedBundle`. Idempotent: a bundle already pending or included
    /// returns its hash without being checked again.
    pub async fn submit_bytes(&self, encoded: Bytes, source: Source) -> Result<Hash, AdmitError> {
        let bundle = SignedBundle::decode_shared(&encoded, &self.core.limits)
            .map(|b| (b, encoded))
            .map_err(|e| reject(e.into()));
        self.enqueue(bundle, source).await
    }

    /// Admits a decoded bundle whose canonical encoding is `encoded`.
    pub async fn submit(
        &self,
        bundle: SignedBundle,
        encoded: Bytes,
        source: Source,
    ) -> Result<Hash, AdmitError> {
        self.enqueue(Ok((bundle, encoded)), source).await
    }

    async fn enqueue(&self, bundle: Parsed, source: Source) -> Result<Hash, AdmitError> {
        // Undecodable input needs no queue.
        let bundle = bundle?;
        let (reply, outcome) = oneshot::channel();
        let request = Request {
            bundle: Ok(bundle),
            source,
            reply,
        };
        self.queue.try_send(request).map_err(|e| {
            reject(AdmitError::Busy(match e {
                mpsc::error::TrySendError::Full(_) => {
                    "node busy: the admission queue is full; retry later".into()
                }
                mpsc::error::TrySendError::Closed(_) => "admission has stopped".into(),
            }))
        })?;
        outcome
            .await
            .unwrap_or_else(|_| Err(AdmitError::Busy("admission stopped".into())))
    }

    /// Admits many encoded bundles at once (a burst of gossip, say): the same checks and
    /// outcomes as one [`Admission::submit_bytes`] per bundle, in order.
    pub async fn submit_many(
        &self,
        encoded: Vec<Bytes>,
        source: Source,
    ) -> Vec<Result<Hash, AdmitError>> {
        self.core.submit_many(encoded, source).await
    }
}

/// Takes whatever single submissions are queued (up to [`CHUNK`]) and admits them as one
/// group, each group in its own task so groups overlap while one waits on verification.
async fn run_queue(mut rx: mpsc::Receiver<Request>, core: Arc<Core>) {
    while let Some(first) = rx.recv().await {
        let mut chunk = vec![first];
        while chunk.len() < CHUNK {
            match rx.try_recv() {
                Ok(r) => chunk.push(r),
                Err(_) => break,
            }
        }
        let core = core.clone();
        tokio::spawn(async move {
            let mut replies = Vec::with_capacity(chunk.len());
            let mut bundles = Vec::with_capacity(chunk.len());
            for r in chunk {
                replies.push(r.reply);
                bundles.push((r.bundle, r.source));
            }
            let outcomes = core.admit(bundles).await;
            for (reply, outcome) in replies.into_iter().zip(outcomes) {
                let _ = reply.send(outcome);
            }
        });
    }
}

impl Core {
    async fn submit_many(
        &self,
        encoded: Vec<Bytes>,
        source: Source,
    ) -> Vec<Result<Hash, AdmitError>> {
        let parsed = encoded
            .into_iter()
            .map(|e| match SignedBundle::decode_shared(&e, &self.limits) {
                Ok(b) => (Ok((b, e)), source),
                Err(err) => (Err(reject(err.into())), source),
            })
            .collect();
        self.admit(parsed).await
    }

    /// The admission rules for a group of bundles: one outcome per bundle, in order, with one
    /// lock for the dedupe, one verification request and one lock for the inserts.
    async fn admit(&self, parsed: Vec<(Parsed, Source)>) -> Vec<Result<Hash, AdmitError>> {
        let mut out: Vec<Result<Hash, AdmitError>> = Vec::with_capacity(parsed.len());
        let mut candidates = Vec::with_capacity(parsed.len());
        for (slot, (p, source)) in parsed.into_iter().enumerate() {
            match p {
                Ok((bundle, encoded)) => {
                    // `encoded` is canonical (it decoded, or was just encoded): hash it as is.
                    let hash = SignedBundle::hash_of_encoding(&encoded);
                    out.push(Ok(hash));
                    candidates.push(Candidate {
                        slot,
                        source,
                        hash,
                        bundle,
                        encoded,
                    });
                }
                Err(e) => out.push(Err(e)),
            }
        }
        if candidates.is_empty() {
            return out;
        }

        // Already pending or included: idempotent, nothing to check. Verified in a proposal:
        // checked statically but not verified again.
        let hashes: Vec<Hash> = candidates.iter().map(|c| c.hash).collect();
        let known = self.mempool.known_many(&hashes);
        let latest = self.tip.borrow().height;
        let window = Window::after(latest, &self.limits);
        let mut checked = Vec::with_capacity(candidates.len());
        let mut items = Vec::new();
        // A node low on disk takes no new bundles from users; bundles from peers still come
        // in, since the others include them whatever this node does.
        let disk_low = self.disk.refusal();
        for (c, k) in candidates.into_iter().zip(known) {
            if matches!(k, Known::Pending | Known::Included { .. }) {
                continue;
            }
            if let (Some(why), Source::Rpc) = (&disk_low, c.source) {
                out[c.slot] = Err(reject(AdmitError::DiskLow(why.clone())));
                continue;
            }
            if let Err(e) =
                c.bundle
                    .check_static(c.encoded.len(), self.chain_id, &window, &self.limits)
            {
                out[c.slot] = Err(reject(e.into()));
                continue;
            }
            let needs_verify = k == Known::New;
            if needs_verify {
                items.push(Item {
                    pk: c.bundle.body.signer,
                    msg: c.hash.0,
                    sig: c.bundle.signature,
                });
            }
            checked.push((c, needs_verify));
        }
        if checked.is_empty() {
            return out;
        }

        let verdicts = match self.verifier.verify(items).await {
            Ok(v) => v,
            Err(e) => {
                for (c, _) in &checked {
                    out[c.slot] = Err(reject(e.clone()));
                }
                return out;
            }
        };
        let mut verdicts = verdicts.into_iter();
        let mut admitted = Vec::with_capacity(checked.len());
        let mut slots = Vec::with_capacity(checked.len());
        for (c, needs_verify) in checked {
            if needs_verify && !verdicts.next().unwrap_or(false) {
                out[c.slot] = Err(reject(
                    BundleError::BadSignature {
                        signer: lockstep_bundles::hash::encode_hex(&c.bundle.body.signer),
                    }
                    .into(),
                ));
                continue;
            }
            slots.push((c.slot, c.source, c.encoded.clone()));
            let origin = match c.source {
                Source::Rpc => Origin::Local,
                Source::Gossip => Origin::Peer,
            };
            admitted.push((
                Admitted {
                    hash: c.hash,
                    bundle: Arc::new(c.bundle),
                    encoded: c.encoded,
                },
                origin,
            ));
        }
        if admitted.is_empty() {
            return out;
        }

        let inserted = self.mempool.insert_many(admitted, latest + 1);
        let (mut from_rpc, mut from_gossip) = (0u64, 0u64);
        let mut publish = Vec::new();
        for ((slot, source, encoded), r) in slots.into_iter().zip(inserted) {
            match r {
                Ok(Inserted::New) => match source {
                    Source::Rpc => {
                        from_rpc += 1;
                        publish.push(encoded);
                    }
                    Source::Gossip => from_gossip += 1,
                },
                Ok(Inserted::AlreadyPending | Inserted::AlreadyIncluded { .. }) => {}
                Err(e) => out[slot] = Err(reject(e.into())),
            }
        }
        for (source, n) in [(Source::Rpc, from_rpc), (Source::Gossip, from_gossip)] {
            if n > 0 {
                metrics::counter!("lockstep_mempool_admitted_total", "source" => source.label())
                    .increment(n);
            }
        }
        // The group's new bundles travel together (as few gossip messages as fit).
        self.gossip.publish(publish).await;
        out
    }
}

/// Admits gossiped bundles and reports a verdict on each message, so gossipsub forwards the
/// valid ones and scores down peers that send invalid ones. Whatever is queued (up to about
/// [`CHUNK`] bundles) is admitted as one group.
pub async fn run_gossip_inbound(
    mut inbound: mpsc::Receiver<Inbound>,
    admission: Arc<Admission>,
    gossip: Arc<dyn BundleGossip>,
) {
    let permits = Arc::new(Semaphore::new(GOSSIP_IN_FLIGHT));
    while let Some(first) = inbound.recv().await {
        let mut bundles = first.items.len();
        let mut chunk = vec![first];
        while bundles < CHUNK {
            match inbound.try_recv() {
                Ok(m) => {
                    bundles += m.items.len();
                    chunk.push(m);
                }
                Err(_) => break,
            }
        }
        let permits_needed = bundles.min(GOSSIP_IN_FLIGHT) as u32;
        let Ok(permit) = permits.clone().acquire_many_owned(permits_needed).await else {
            return;
        };
        let admission = admission.clone();
        let gossip = gossip.clone();
        tokio::spawn(async move {
            let data = chunk.iter().flat_map(|m| m.items.iter().cloned()).collect();
            let mut results = admission
                .submit_many(data, Source::Gossip)
                .await
                .into_iter();
            for msg in chunk {
                let outcomes = results.by_ref().take(msg.items.len());
                let v = message_verdict(&msg.from, outcomes);
                gossip.report(msg.id, msg.from, v).await;
            }
            drop(permit);
        });
    }
}

/// The gossipsub verdict on one admission outcome.
fn verdict(from: &lockstep_p2p::PeerId, r: Result<Hash, AdmitError>) -> Verdict {
    match r {
        Ok(_) => Verdict::Accept,
        // A peer may relay a bundle that expired in flight, or hit our limits: no fault.
        Err(AdmitError::Busy(_) | AdmitError::DiskLow(_)) => Verdict::Ignore,
        Err(AdmitError::Bundle(BundleError::Expired { .. } | BundleError::TooFarAhead { .. })) => {
            Verdict::Ignore
        }
        Err(AdmitError::Bundle(e)) => {
            debug!(peer = %from, "invalid gossiped bundle: {e}");
            Verdict::Reject
        }
    }
}

/// The verdict on a message from the outcomes of its bundles: one invalid bundle rejects it
/// (an honest peer only relays what it verified); otherwise it is forwarded if any bundle was
/// acceptable, and ignored (no penalty) if none was.
fn message_verdict(
    from: &lockstep_p2p::PeerId,
    outcomes: impl Iterator<Item = Result<Hash, AdmitError>>,
) -> Verdict {
    let mut v = Verdict::Ignore;
    for r in outcomes {
        match verdict(from, r) {
            Verdict::Reject => return Verdict::Reject,
            Verdict::Accept => v = Verdict::Accept,
            Verdict::Ignore => {}
        }
    }
    v
}

/// Gossip message id of a message's encoded bundles: for one bundle its bundle hash (computed
/// without decoding: `borsh(SignedBundle) = borsh(body) ++ signature`), for several a tagged
/// hash of their bundle hashes in order.
pub fn gossip_message_id(items: &[&[u8]]) -> Vec<u8> {
    let hash = |data: &[u8]| {
        if data.len() < 64 {
            Hash::tagged(b"lockstep:gossip:malformed", &[data])
        } else {
            SignedBundle::hash_of_encoding(data)
        }
    };
    match items {
        [one] => hash(one).0.to_vec(),
        many => {
            let hashes: Vec<Hash> = many.iter().map(|d| hash(d)).collect();
            let parts: Vec<&[u8]> = hashes.iter().map(|h| &h.0[..]).collect();
            Hash::tagged(b"lockstep:gossip:batch", &parts).0.to_vec()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lockstep_client::bundle::sign;
    use lockstep_mempool::included::IncludedSet;
    use lockstep_mempool::pool::PoolConfig;
    use lockstep_p2p::{MessageId, PeerId};
    use parking_lot::Mutex as PlMutex;

    /// Records what admission publishes.
    #[derive(Default)]
    struct Recorder {
        published: PlMutex<Vec<Bytes>>,
    }

    #[async_trait::async_trait]
    impl BundleGossip for Recorder {
        async fn publish(&self, items: Vec<Bytes>) {
            self.published.lock().extend(items);
        }
        async fn report(&self, _id: MessageId, _from: PeerId, _v: Verdict) {}
        fn peers(&self) -> usize {
            0
        }
    }

    fn admission(pool: PoolConfig) -> (Arc<Admission>, Arc<Mempool>, Arc<Recorder>) {
        admission_with_disk(pool, crate::disk::DiskSpace::unlimited())
    }

    fn admission_with_disk(
        pool: PoolConfig,
        disk: Arc<crate::disk::DiskSpace>,
    ) -> (Arc<Admission>, Arc<Mempool>, Arc<Recorder>) {
        let mempool = Arc::new(Mempool::new(pool, IncludedSet::new(100)));
        let (tip_tx, tip_rx) = watch::channel(Tip::default());
        std::mem::forget(tip_tx);
        let gossip = Arc::new(Recorder::default());
        let limits = Limits::default();
        let a = Admission::new(1, limits, mempool.clone(), tip_rx, gossip.clone(), disk);
        (a, mempool, gossip)
    }

    fn key(seed: u8) -> ed25519_dalek::SigningKey {
        ed25519_dalek::SigningKey::from_bytes(&[seed; 32])
    }

    /// A mix of every outcome: valid, bad signature, wrong chain, expired, undecodable,
    /// a duplicate inside the group, and one already pending.
    fn mixed() -> (Vec<Bytes>, Vec<Option<i32>>) {
        let good = |n: u64| Bytes::from(sign(&key(1), 1, n, 10, vec![(1, vec![n as u8])]).encode());
        let mut forged = sign(&key(2), 1, 7, 10, vec![(1, vec![7])]);
        forged.signature[5] ^= 1;
        let wrong_chain = sign(&key(3), 2, 8, 10, vec![(1, vec![8])]);
        let expired = sign(&key(4), 1, 9, 0, vec![(1, vec![9])]);
        let input = vec![
            good(1),
            Bytes::from(forged.encode()),
            good(2),
            Bytes::from(wrong_chain.encode()),
            Bytes::from_static(b"not a bundle"),
            Bytes::from(expired.encode()),
            good(1),
            good(3),
        ];
        let codes = vec![
            None,
            Some(4001),
            None,
            Some(4002),
            Some(4005),
            Some(4003),
            None,
            None,
        ];
        (input, codes)
    }

    fn codes(out: &[Result<Hash, AdmitError>]) -> Vec<Option<i32>> {
        out.iter()
            .map(|r| r.as_ref().err().map(|e| e.code()))
            .collect()
    }

    #[tokio::test]
    async fn a_group_gets_the_same_outcomes_as_one_by_one_submission() {
        let (input, expected) = mixed();
        let (one, pool_one, published_one) = admission(PoolConfig::default());
        let mut singly = Vec::new();
        for b in &input {
            singly.push(one.submit_bytes(b.clone(), Source::Rpc).await);
        }
        let (many, pool_many, published_many) = admission(PoolConfig::default());
        let grouped = many.submit_many(input.clone(), Source::Rpc).await;

        assert_eq!(codes(&singly), expected);
        assert_eq!(codes(&grouped), expected);
        for (a, b) in singly.iter().zip(&grouped) {
            if let (Ok(x), Ok(y)) = (a, b) {
                assert_eq!(x, y);
            }
        }
        // Three distinct valid bundles, each published once (the duplicate is idempotent).
        assert_eq!(pool_one.size().0, 3);
        assert_eq!(pool_many.size().0, 3);
        assert_eq!(published_one.published.lock().len(), 3);
        assert_eq!(published_many.published.lock().len(), 3);
    }

    #[tokio::test]
    async fn concurrent_single_submissions_are_coalesced_and_each_answered() {
        let (a, pool, _) = admission(PoolConfig::default());
        let bundles: Vec<Bytes> = (0..600u64)
            .map(|n| {
                Bytes::from(sign(&key((n % 50) as u8 + 1), 1, n, 10, vec![(1, vec![1])]).encode())
            })
            .collect();
        let tasks: Vec<_> = bundles
            .iter()
            .cloned()
            .map(|b| {
                let a = a.clone();
                tokio::spawn(async move { a.submit_bytes(b, Source::Gossip).await })
            })
            .collect();
        for (t, b) in tasks.into_iter().zip(&bundles) {
            let hash = t.await.expect("task").expect("admitted");
            assert_eq!(hash, SignedBundle::hash_of_encoding(b));
        }
        assert_eq!(pool.size().0, 600);
    }

    #[tokio::test]
    async fn a_full_pool_refuses_with_4006_and_keeps_what_it_has() {
        let pool = PoolConfig {
            max_count: 2,
            ..PoolConfig::default()
        };
        let (a, mempool, _) = admission(pool);
        let input: Vec<Bytes> = (0..4u64)
            .map(|n| Bytes::from(sign(&key(9), 1, n, 10, vec![(1, vec![1])]).encode()))
            .collect();
        let out = a.submit_many(input, Source::Rpc).await;
        assert_eq!(codes(&out), vec![None, None, Some(4006), Some(4006)]);
        assert_eq!(mempool.size().0, 2);
    }

    #[tokio::test]
    async fn a_node_low_on_disk_refuses_submissions_but_takes_gossip_and_stays_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        // More free space required than any disk has.
        let low = crate::disk::DiskSpace::new(dir.path(), u64::MAX).unwrap();
        let (a, mempool, published) = admission_with_disk(PoolConfig::default(), low);
        let b = |n: u64| Bytes::from(sign(&key(5), 1, n, 10, vec![(1, vec![n as u8])]).encode());

        let refused = a.submit_bytes(b(1), Source::Rpc).await;
        let err = refused.unwrap_err();
        assert_eq!(err.code(), 4006);
        assert!(err.to_string().contains("disk is nearly full"), "{err}");
        // Batches of submissions too, and nothing was taken or published.
        assert_eq!(
            codes(&a.submit_many(vec![b(2), b(3)], Source::Rpc).await),
            vec![Some(4006), Some(4006)]
        );
        assert_eq!(mempool.size().0, 0);

        // Peers' bundles still come in (the network includes them anyway)...
        let gossiped = a.submit_bytes(b(4), Source::Gossip).await.unwrap();
        assert_eq!(mempool.size().0, 1);
        assert!(published.published.lock().is_empty());
        // ...and resubmitting a pending bundle still answers its hash.
        assert_eq!(a.submit_bytes(b(4), Source::Rpc).await.unwrap(), gossiped);
    }

    #[test]
    fn one_invalid_bundle_rejects_its_message_and_none_acceptable_ignores_it() {
        let from = PeerId::random();
        let ok = || Ok(Hash::ZERO);
        let bad = || {
            Err(AdmitError::Bundle(BundleError::BadSignature {
                signer: String::new(),
            }))
        };
        let busy = || Err(AdmitError::Busy("full".into()));
        let v = |o: Vec<Result<Hash, AdmitError>>| message_verdict(&from, o.into_iter());
        assert_eq!(v(vec![ok(), ok()]), Verdict::Accept);
        assert_eq!(v(vec![busy(), ok()]), Verdict::Accept);
        assert_eq!(v(vec![ok(), bad(), ok()]), Verdict::Reject);
        assert_eq!(v(vec![busy(), busy()]), Verdict::Ignore);
    }

    #[test]
    fn gossip_message_id_is_the_bundle_hash() {
        let k = ed25519_dalek::SigningKey::from_bytes(&[1; 32]);
        let b = lockstep_client::bundle::sign(&k, 1, 1, 10, vec![(1, vec![1])]);
        let c = lockstep_client::bundle::sign(&k, 1, 2, 10, vec![(1, vec![2; 8])]);
        assert_eq!(gossip_message_id(&[&b.encode()]), b.hash().0.to_vec());
        assert_eq!(gossip_message_id(&[&[1, 2, 3]]).len(), 32);
        // A batch: neither bundle's id, and its order matters.
        let (eb, ec) = (b.encode(), c.encode());
        let bc = gossip_message_id(&[&eb, &ec]);
        assert_ne!(bc, b.hash().0.to_vec());
        assert_ne!(bc, gossip_message_id(&[&ec, &eb]));
    }
}
