//! The host's writer: one thread that makes the host's writes to the store, in the order the
//! host asks for them, so that the host loop never waits for a proposal to be recorded.
//!
//! A validator records every proposal it holds (crash recovery: after a restart it can still
//! vote for, re-propose or commit it). That record holds the whole block, up to
//! `max_block_bytes`, and writing 4 MiB into RocksDB's log took 60–130 ms of a loaded height,
//! between a proposal's arrival and this node's prevote. Queued here, the record is written
//! while the votes travel, and the vote does not wait for it. What a crash in those
//! milliseconds can lose is only the record, never a vote (Malachite's own WAL has those): a
//! node that restarts without the block of a height it voted on gets it from its peers, as a
//! node that missed the proposal altogether does (by value sync, or, once consensus decides
//! it, fetched by its block hash).
//!
//! Commits go through the same queue, so a commit is written after every record queued before
//! it (it deletes the records of its height, and a record queued after it is for a height
//! already decided, which the store ignores).

use crate::store::{ChainStore, Committed, Result, StoreError, UndecidedRecord};
use crate::validators::SetRecord;
use bytes::Bytes;
use lockstep_bundles::{BlockHeader, CommitCertificate, Hash};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// Writes queued before the host waits for the writer (a few per height are normal).
pub const QUEUE: usize = 64;

// One commit per height goes through the queue: its size is no concern.
#[allow(clippy::large_enum_variant)]
enum Write {
    Record(UndecidedRecord),
    /// Answered once every write queued before it is done.
    Flush(oneshot::Sender<()>),
    Commit {
        header: BlockHeader,
        block: Bytes,
        hashes: Vec<Hash>,
        certificate: CommitCertificate,
        /// Boxed: with its update's proof it is larger than every other write.
        new_set: Option<Box<SetRecord>>,
        reply: oneshot::Sender<Result<Committed>>,
    },
}

/// A handle to the writer thread; the thread ends when the handle is dropped.
pub struct Recorder {
    tx: mpsc::Sender<Write>,
}

impl Recorder {
    /// Starts the writer thread for `store`.
    pub fn start(store: Arc<dyn ChainStore>) -> std::io::Result<Recorder> {
        let (tx, mut rx) = mpsc::channel::<Write>(QUEUE);
        std::thread::Builder::new()
            .name("lockstep-store".into())
            .spawn(move || {
                while let Some(w) = rx.blocking_recv() {
                    match w {
                        Write::Record(r) => {
                            let started = std::time::Instant::now();
                            match store.put_undecided(&r) {
                                Ok(()) => metrics::histogram!(crate::metrics::STORE_RECORD_SECONDS)
                                    .record(started.elapsed().as_secs_f64()),
                                Err(e) => tracing::error!(
                                    height = r.height,
                                    round = r.round,
                                    "cannot record proposal: {e}"
                                ),
                            }
                        }
                        Write::Flush(done) => {
                            let _ = done.send(());
                        }
                        Write::Commit {
                            header,
                            block,
                            hashes,
                            certificate,
                            new_set,
                            reply,
                        } => {
                            let _ = reply.send(store.commit(
                                &header,
                                &block,
                                &hashes,
                                &certificate,
                                new_set.as_deref(),
                            ));
                        }
                    }
                }
            })?;
        Ok(Recorder { tx })
    }

    /// Queues a proposal's record; waits only when [`QUEUE`] writes are already queued.
    pub async fn record(&self, r: UndecidedRecord) {
        if self.tx.send(Write::Record(r)).await.is_err() {
            tracing::error!("cannot record proposal: the store writer has stopped");
        }
    }

    /// Waits until every write queued before it is done (so the store can be read for it);
    /// returns at once if the writer has stopped.
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Write::Flush(done)).await.is_ok() {
            let _ = wait.await;
        }
    }

    /// Commits a decided block after every write queued before it, and waits until it is
    /// durable.
    pub async fn commit(
        &self,
        header: BlockHeader,
        block: Bytes,
        hashes: Vec<Hash>,
        certificate: CommitCertificate,
        new_set: Option<SetRecord>,
    ) -> Result<Committed> {
        let (reply, done) = oneshot::channel();
        let stopped = || StoreError("the store writer has stopped".into());
        self.tx
            .send(Write::Commit {
                header,
                block,
                hashes,
                certificate,
                new_set: new_set.map(Box::new),
                reply,
            })
            .await
            .map_err(|_| stopped())?;
        done.await.map_err(|_| stopped())?
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lockstep_bundles::Address;
    use parking_lot::Mutex;

    /// A store that logs the writes it is asked for; each write waits for `gate`.
    #[derive(Default)]
    struct Log(Mutex<Vec<String>>, Mutex<()>);

    impl ChainStore for Log {
        fn latest(&self) -> Result<Option<BlockHeader>> {
            Ok(None)
        }
        fn earliest(&self) -> Result<u64> {
            Ok(0)
        }
        fn block_bytes(&self, _: u64) -> Result<Option<Vec<u8>>> {
            Ok(None)
        }
        fn certificate(&self, _: u64) -> Result<Option<CommitCertificate>> {
            Ok(None)
        }
        fn block_by_hash(&self, _: &Hash) -> Result<Option<Bytes>> {
            Ok(None)
        }
        fn commit(
            &self,
            header: &BlockHeader,
            block: &[u8],
            _: &[Hash],
            _: &CommitCertificate,
            _: Option<&SetRecord>,
        ) -> Result<Committed> {
            let _open = self.1.lock();
            self.0
                .lock()
                .push(format!("commit {} ({} bytes)", header.height, block.len()));
            Ok(Committed::Written)
        }
        fn put_undecided(&self, r: &UndecidedRecord) -> Result<()> {
            let _open = self.1.lock();
            self.0.lock().push(format!(
                "record {}/{} ({} bytes)",
                r.height,
                r.round,
                r.block.len()
            ));
            Ok(())
        }
        fn undecided(&self, _: u64) -> Result<Vec<UndecidedRecord>> {
            Ok(vec![])
        }
        fn validator_sets(&self) -> Result<Vec<SetRecord>> {
            Ok(Vec::new())
        }
        fn included_since(&self, _: u64) -> Result<Vec<(u64, Vec<Hash>)>> {
            Ok(vec![])
        }
    }

    fn record(height: u64, round: u32) -> UndecidedRecord {
        UndecidedRecord {
            height,
            round,
            valid_round: -1,
            proposer: Address::default(),
            block_hash: Hash::ZERO,
            valid: true,
            block: Bytes::from_static(b"body"),
        }
    }

    fn header(height: u64) -> BlockHeader {
        lockstep_bundles::Block::build(
            1,
            height,
            0,
            Address::default(),
            Hash::ZERO,
            Hash::ZERO,
            vec![],
            &[],
        )
        .header
    }

    fn certificate(height: u64) -> CommitCertificate {
        CommitCertificate {
            height,
            round: 0,
            block_hash: Hash::ZERO,
            signatures: vec![],
        }
    }

    #[tokio::test]
    async fn a_flush_returns_once_every_write_queued_before_it_is_done() {
        let log = Arc::new(Log::default());
        let recorder = Recorder::start(log.clone()).unwrap();
        for round in 0..3 {
            recorder.record(record(1, round)).await;
        }
        recorder.flush().await;
        assert_eq!(log.0.lock().len(), 3);
    }

    #[tokio::test]
    #[allow(
        clippy::await_holding_lock,
        reason = "the held lock is the store's gate: it blocks the writer thread, not this task"
    )]
    async fn records_return_at_once_and_a_commit_is_written_after_every_record_before_it() {
        let log = Arc::new(Log::default());
        let recorder = Recorder::start(log.clone()).unwrap();
        // While the store cannot write, recording still returns: the host does not wait.
        let closed = log.1.lock();
        for round in 0..3 {
            recorder.record(record(1, round)).await;
        }
        assert!(log.0.lock().is_empty());
        drop(closed);
        let done = recorder
            .commit(
                header(1),
                Bytes::from_static(b"block"),
                vec![],
                certificate(1),
                None,
            )
            .await
            .unwrap();
        assert_eq!(done, Committed::Written);
        recorder.record(record(2, 0)).await;
        let c2 = recorder
            .commit(header(2), Bytes::new(), vec![], certificate(2), None)
            .await
            .unwrap();
        assert_eq!(c2, Committed::Written);
        assert_eq!(
            *log.0.lock(),
            vec![
                "record 1/0 (4 bytes)",
                "record 1/1 (4 bytes)",
                "record 1/2 (4 bytes)",
                "commit 1 (5 bytes)",
                "record 2/0 (4 bytes)",
                "commit 2 (0 bytes)",
            ]
        );
    }
}
