//! Acknowledgements are durable: a bundle submitted to this node (JSON-RPC) is written to
//! the store before its hash is returned, and reloaded into the pool when the node starts.
//!
//! - [`PendingLog`]: where acknowledged bundles are written (the RocksDB store, see
//!   `store::pending`).
//! - `AckWriter`: one thread that makes them durable, group commit: it takes every queued
//!   group (up to [`MAX_WRITE`] bundles) and writes them in one synced batch, so under load
//!   one sync serves many admission groups.
//! - [`reload`]: at start, the recorded bundles go back into the pool (they were verified
//!   when admitted); those included meanwhile are forgotten, those expired are recorded as
//!   dropped, with the reason. [`republish`] gossips the reloaded ones once peers are
//!   connected.

use crate::store::{PendingRecord, Store};
use bytes::Bytes;
use lockstep_bundles::{Hash, Limits, SignedBundle};
use lockstep_mempool::{expired_reason, Admitted, Inserted, Mempool, Origin, DROPPED_MEMORY};
use lockstep_p2p::BundleGossip;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tracing::{info, warn};

/// Groups of acknowledged bundles waiting to be written; past it admission groups wait.
pub(crate) const ACK_QUEUE: usize = 1_024;
/// Most bundles written in one synced batch (a group is never split).
pub(crate) const MAX_WRITE: usize = 4_096;
/// How long reloaded bundles wait for the configured gossip peers before they are
/// re-published to whichever are connected.
const REPUBLISH_WAIT: Duration = Duration::from_secs(30);

/// Where acknowledged bundles are made durable.
pub trait PendingLog: Send + Sync + 'static {
    /// Makes `records` durable (synced) before returning.
    fn record(&self, records: &[PendingRecord]) -> Result<(), String>;
}

impl PendingLog for Store {
    fn record(&self, records: &[PendingRecord]) -> Result<(), String> {
        self.put_pending(records).map_err(|e| e.to_string())
    }
}

/// Keeps nothing: for measuring admission alone (`lockstep-admission-bench`) and tests.
pub struct NoPendingLog;

impl PendingLog for NoPendingLog {
    fn record(&self, _: &[PendingRecord]) -> Result<(), String> {
        Ok(())
    }
}

struct Job {
    records: Vec<PendingRecord>,
    reply: oneshot::Sender<Result<(), String>>,
}

/// The handle on the writer thread; the thread ends when the handle is dropped.
pub(super) struct AckWriter {
    tx: mpsc::Sender<Job>,
}

impl AckWriter {
    /// Starts the writer thread over `log`.
    pub(super) fn start(log: Arc<dyn PendingLog>) -> AckWriter {
        let (tx, mut rx) = mpsc::channel::<Job>(ACK_QUEUE);
        let spawned = std::thread::Builder::new()
            .name("lockstep-ack".into())
            .spawn(move || {
                while let Some(first) = rx.blocking_recv() {
                    let mut jobs = vec![first];
                    let mut n = jobs[0].records.len();
                    while n < MAX_WRITE {
                        match rx.try_recv() {
                            Ok(j) => {
                                n += j.records.len();
                                jobs.push(j);
                            }
                            Err(_) => break,
                        }
                    }
                    let started = std::time::Instant::now();
                    let outcome = if jobs.len() == 1 {
                        log.record(&jobs[0].records)
                    } else {
                        let all: Vec<PendingRecord> = jobs
                            .iter()
                            .flat_map(|j| j.records.iter().cloned())
                            .collect();
                        log.record(&all)
                    };
                    metrics::histogram!(crate::metrics::ACK_WRITE_SECONDS)
                        .record(started.elapsed().as_secs_f64());
                    metrics::histogram!(crate::metrics::ACK_WRITE_BUNDLES).record(n as f64);
                    if let Err(e) = &outcome {
                        tracing::error!("cannot make acknowledged bundles durable: {e}");
                    }
                    for j in jobs {
                        let _ = j.reply.send(outcome.clone());
                    }
                }
            });
        // Without the thread the queue's receiver is gone, and every write says so.
        if let Err(e) = spawned {
            tracing::error!("cannot start the acknowledgement writer thread: {e}");
        }
        AckWriter { tx }
    }

    /// Queues `records` and returns what resolves once they are durable (or why they are
    /// not). Waits while [`ACK_QUEUE`] groups are queued.
    pub(super) async fn queue(
        &self,
        records: Vec<PendingRecord>,
    ) -> impl std::future::Future<Output = Result<(), String>> {
        let (reply, done) = oneshot::channel();
        let sent = if records.is_empty() {
            let _ = reply.send(Ok(()));
            true
        } else {
            self.tx.send(Job { records, reply }).await.is_ok()
        };
        async move {
            if !sent {
                return Err("the acknowledgement writer has stopped".to_string());
            }
            done.await
                .unwrap_or_else(|_| Err("the acknowledgement writer has stopped".to_string()))
        }
    }
}

/// Puts the bundles recorded as acknowledged back into `mempool` at start (`latest` is the
/// latest decided height), settles the others in `store` (included: forgotten; expired, or
/// no room in the pool: dropped with the reason), and restores the record of dropped
/// bundles. Returns the encodings of the bundles now pending again, to re-publish.
pub fn reload(
    store: &Store,
    mempool: &Mempool,
    limits: &Limits,
    latest: u64,
) -> eyre::Result<Vec<Bytes>> {
    mempool.restore_dropped(store.dropped_records(DROPPED_MEMORY)?);
    let next = latest + 1;
    let mut forget = Vec::new();
    let mut dropped: Vec<(Hash, u64, String)> = Vec::new();
    let mut admitted = Vec::new();
    for r in store.pending_records()? {
        let bundle = match SignedBundle::decode_shared(&r.encoded, limits) {
            Ok(b) if SignedBundle::hash_of_encoding(&r.encoded) == r.hash => b,
            Ok(_) | Err(_) => {
                warn!(bundle = %r.hash, "an acknowledged bundle's stored copy does not read back");
                dropped.push((
                    r.hash,
                    latest,
                    "dropped: its stored copy did not read back after a restart".into(),
                ));
                continue;
            }
        };
        if store.bundle_location(&r.hash)?.is_some() {
            forget.push(r.hash);
        } else if bundle.body.valid_until < next {
            dropped.push((r.hash, latest, expired_reason(bundle.body.valid_until + 1)));
        } else {
            admitted.push(Admitted {
                hash: r.hash,
                bundle: Arc::new(bundle),
                encoded: r.encoded,
            });
        }
    }
    let encodings: Vec<(Hash, Bytes)> = admitted
        .iter()
        .map(|a| (a.hash, a.encoded.clone()))
        .collect();
    let outcomes = mempool.insert_many(
        admitted.into_iter().map(|a| (a, Origin::Local)).collect(),
        next,
    );
    let mut republish = Vec::new();
    for ((hash, encoded), outcome) in encodings.into_iter().zip(outcomes) {
        match outcome {
            Ok(Inserted::New) => republish.push(encoded),
            // (The record is keyed by hash: one copy per bundle.)
            Ok(Inserted::AlreadyPending | Inserted::PendingOtherSignature) => {}
            Ok(Inserted::AlreadyIncluded { .. }) => forget.push(hash),
            Err(e) => dropped.push((
                hash,
                latest,
                format!("dropped: no room in the mempool after a restart ({e})"),
            )),
        }
    }
    store.settle_pending(&forget, &dropped)?;
    mempool.restore_dropped(dropped.into_iter().map(|(h, _, reason)| (h, reason)));
    if !(republish.is_empty() && forget.is_empty()) {
        info!(
            pending = republish.len(),
            included = forget.len(),
            "reloaded the bundles acknowledged before the restart"
        );
    }
    Ok(republish)
}

/// Gossips the bundles [`reload`] put back in the pool, once `peers` gossip peers are
/// connected (or after [`REPUBLISH_WAIT`], to whichever are). A bundle a peer misses still
/// reaches it by fetch when it is proposed.
pub async fn republish(gossip: Arc<dyn BundleGossip>, bundles: Vec<Bytes>, peers: usize) {
    if bundles.is_empty() {
        return;
    }
    let deadline = tokio::time::Instant::now() + REPUBLISH_WAIT;
    while gossip.peers() < peers && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // A new connection's topic subscription arrives just after it.
    tokio::time::sleep(Duration::from_millis(500)).await;
    info!(
        bundles = bundles.len(),
        peers = gossip.peers(),
        "re-publishing reloaded bundles"
    );
    gossip.publish(bundles).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use lockstep_bundles::{Address, Block, CommitCertificate, CommitSig};
    use lockstep_consensus::store::ChainStore;
    use lockstep_mempool::included::IncludedSet;
    use lockstep_mempool::pool::PoolConfig;
    use lockstep_mempool::Status;

    fn bundle(nonce: u64, valid_until: u64) -> SignedBundle {
        let k = ed25519_dalek::SigningKey::from_bytes(&[5; 32]);
        lockstep_client::bundle::sign(&k, 1, nonce, valid_until, vec![(1, vec![nonce as u8])])
    }

    fn ack(b: &SignedBundle) -> PendingRecord {
        PendingRecord {
            hash: b.hash(),
            valid_until: b.body.valid_until,
            admitted_at: 0,
            encoded: b.encode().into(),
        }
    }

    #[test]
    fn a_restart_puts_acknowledged_bundles_back_and_settles_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let (kept, included, expiring) = (bundle(1, 100), bundle(2, 100), bundle(3, 2));
        {
            let s = Store::open(dir.path(), 0).unwrap();
            s.put_pending(&[ack(&kept), ack(&expiring)]).unwrap();
            let mut parent = Hash::ZERO;
            for (h, bundles) in [(1u64, vec![included.clone()]), (2, vec![])] {
                let hashes: Vec<Hash> = bundles.iter().map(|b| b.hash()).collect();
                let blk = Block::build(
                    1,
                    h,
                    h,
                    Address::default(),
                    parent,
                    Hash::ZERO,
                    bundles,
                    &hashes,
                );
                let cert = CommitCertificate {
                    height: h,
                    round: 0,
                    block_hash: blk.hash(),
                    signatures: vec![CommitSig {
                        address: Address::default(),
                        signature: [1; 64],
                    }],
                };
                s.commit(&blk.header, &blk.encode(), &hashes, &cert, None)
                    .unwrap();
                parent = blk.hash();
            }
            // Acknowledged just after the block that included it was committed.
            s.put_pending(&[ack(&included)]).unwrap();
        }
        let s = Store::open(dir.path(), 0).unwrap();
        let mempool = Mempool::new(PoolConfig::default(), IncludedSet::new(100));
        let again = reload(&s, &mempool, &Limits::default(), 2).unwrap();
        assert_eq!(again, vec![Bytes::from(kept.encode())], "to gossip again");
        assert_eq!(mempool.status(&kept.hash()), Status::Pending);
        assert_eq!(
            mempool.status(&expiring.hash()),
            Status::Dropped {
                reason: expired_reason(3)
            },
            "expired at height 2, before the restart"
        );
        assert_eq!(mempool.status(&included.hash()), Status::Unknown);
        let left: Vec<Hash> = s
            .pending_records()
            .unwrap()
            .iter()
            .map(|r| r.hash)
            .collect();
        assert_eq!(left, vec![kept.hash()], "the included one is forgotten");
        // A second start finds the same.
        let mempool = Mempool::new(PoolConfig::default(), IncludedSet::new(100));
        assert_eq!(
            reload(&s, &mempool, &Limits::default(), 2).unwrap().len(),
            1
        );
    }
}
