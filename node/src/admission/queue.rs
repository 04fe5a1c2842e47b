//! The coalescing submission queue: single submissions (RPC) wait in a bounded queue of
//! [`SUBMIT_QUEUE`], and whatever is queued (up to [`CHUNK`]) is admitted as one group, so
//! under load the per-bundle cost of locking, verification hand-off and task wake-ups is
//! shared by up to [`CHUNK`] bundles. Each group runs in its own task, so groups overlap
//! while one waits on verification.

use super::{reject, Core};
use bytes::Bytes;
use lockstep_bundles::{Hash, SignedBundle};
use lockstep_mempool::{AdmitError, AdmitResult, Source};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// Single submissions waiting to be admitted before new ones get "busy" (4006).
pub(crate) const SUBMIT_QUEUE: usize = 16_384;
/// Most bundles admitted as one group.
pub(crate) const CHUNK: usize = 256;

/// A decoded bundle (with its canonical encoding) waiting for its outcome.
struct Request {
    bundle: SignedBundle,
    encoded: Bytes,
    source: Source,
    reply: oneshot::Sender<AdmitResult<Hash>>,
}

/// The handle on the queue; the task that drains it ends when the handle is dropped.
pub(super) struct SubmitQueue {
    tx: mpsc::Sender<Request>,
}

impl SubmitQueue {
    /// Starts the task that admits queued submissions with `core` (needs a tokio runtime).
    pub(super) fn start(core: Arc<Core>) -> SubmitQueue {
        let (tx, rx) = mpsc::channel(SUBMIT_QUEUE);
        tokio::spawn(run(rx, core));
        SubmitQueue { tx }
    }

    /// Queues a decoded bundle and waits for its outcome. Busy when the queue is full.
    pub(super) async fn submit(
        &self,
        bundle: SignedBundle,
        encoded: Bytes,
        source: Source,
    ) -> AdmitResult<Hash> {
        let (reply, outcome) = oneshot::channel();
        let request = Request {
            bundle,
            encoded,
            source,
            reply,
        };
        self.tx.try_send(request).map_err(|e| {
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
}

/// Takes whatever single submissions are queued (up to [`CHUNK`]) and admits them as one
/// group, each group in its own task.
async fn run(mut rx: mpsc::Receiver<Request>, core: Arc<Core>) {
    while let Some(first) = rx.recv().await {
        let (chunk, _) = drain(first, &mut rx, CHUNK, |_| 1);
        let core = core.clone();
        tokio::spawn(async move {
            let mut replies = Vec::with_capacity(chunk.len());
            let mut bundles = Vec::with_capacity(chunk.len());
            for r in chunk {
                replies.push(r.reply);
                bundles.push((Ok((r.bundle, r.encoded)), r.source));
            }
            let outcomes = core.admit(bundles).await;
            for (reply, outcome) in replies.into_iter().zip(outcomes) {
                let _ = reply.send(outcome.map(|t| t.hash));
            }
        });
    }
}

/// `first`, and whatever else `rx` holds already until what is taken weighs `max` or more;
/// returns what was taken and its weight. Never waits.
pub(super) fn drain<T>(
    first: T,
    rx: &mut mpsc::Receiver<T>,
    max: usize,
    weight: impl Fn(&T) -> usize,
) -> (Vec<T>, usize) {
    let mut total = weight(&first);
    let mut taken = vec![first];
    while total < max {
        match rx.try_recv() {
            Ok(t) => {
                total += weight(&t);
                taken.push(t);
            }
            Err(_) => break,
        }
    }
    (taken, total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_group_takes_at_most_chunk_submissions_and_leaves_the_rest_queued() {
        let (tx, mut rx) = mpsc::channel(CHUNK + 8);
        for n in 0..CHUNK + 3 {
            tx.try_send(n).unwrap();
        }
        let first = rx.try_recv().unwrap();
        let (group, weight) = drain(first, &mut rx, CHUNK, |_| 1);
        assert_eq!((group.len(), weight), (CHUNK, CHUNK));
        assert_eq!(group, (0..CHUNK).collect::<Vec<_>>());
        let (rest, _) = drain(rx.try_recv().unwrap(), &mut rx, CHUNK, |_| 1);
        assert_eq!(rest, vec![CHUNK, CHUNK + 1, CHUNK + 2]);
    }

    #[test]
    fn a_group_of_messages_stops_once_it_holds_chunk_bundles() {
        // Messages of 100 bundles: the third brings the group past CHUNK, and it stops there.
        let (tx, mut rx) = mpsc::channel(8);
        for _ in 0..4 {
            tx.try_send(100usize).unwrap();
        }
        let (group, bundles) = drain(100, &mut rx, CHUNK, |m| *m);
        assert_eq!((group.len(), bundles), (3, 300));
        assert_eq!(rx.try_recv().ok(), Some(100));
        // Alone, a message is its own group.
        let (group, bundles) = drain(CHUNK + 1, &mut rx, CHUNK, |m| *m);
        assert_eq!((group.len(), bundles), (1, CHUNK + 1));
    }
}
