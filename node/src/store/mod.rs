//! The RocksDB store: decided blocks, certificates, bundle index, undecided proposals.
//!
//! Column families (integer keys big-endian, so byte order is numeric order):
//! - `headers`, `blocks`, `certs`, `hashes`: height → header / block hash / certificate /
//!   bundle hashes
//! - `bodies`: block hash → encoded block, for decided blocks and undecided proposals alike
//! - `bundles`: bundle hash → height ++ index
//! - `undecided`: height ++ round ++ block hash → proposal record (its body in `bodies`)
//! - `meta`: `latest`, `earliest` → height; `schema` → the layout version (`SCHEMA`)
//! - `validator_sets`: first height → the validator set a committed update made (ADR-027),
//!   written in the commit of the block that included the update; never pruned
//! - `pending`: bundle hash → the bundles acknowledged to this node's users and not yet
//!   included; `dropped`: height ++ bundle hash → why an acknowledged bundle was dropped
//!   (see `pending`)
//!
//! A block's body is written once: when it is proposed (a validator records every proposal it
//! holds, for crash recovery), or at commit if it arrived some other way (sync).
//! Committing it writes only its height → hash entry and what indexes it, so a block is not
//! copied through RocksDB twice. A decided block is written in one synced write batch, before
//! anyone is told about it; that sync also makes the body durable, since it went to the same
//! write-ahead log earlier. Bodies of proposals that lost are deleted at commit, never a body that
//! is some height's decided block; no proposal is recorded for a height already decided.
//!
//! The parts: `layout` (keys, values and their encodings), `open` (RocksDB options and tuning,
//! column families, opening), `read`, `write` (commit, undecided proposals, pruning) and
//! `memory` (what the store holds in memory).

mod evidence;
mod layout;
mod memory;
mod open;
mod pending;
mod read;
mod write;

#[cfg(test)]
mod test_support;

pub use pending::{PendingRecord, DROPPED_KEEP_HEIGHTS};
pub(crate) use read::Decided;

use crate::cache::FifoCache;
use layout::{read_u64, UNDECIDED_KEY};
use lockstep_bundles::{BlockHeader, CommitCertificate, Hash};
use lockstep_consensus::store::{ChainStore, Committed, Result, StoreError, UndecidedRecord};
use lockstep_consensus::validators::SetRecord;
use parking_lot::Mutex;
use rocksdb::DB;
use std::sync::Arc;

pub struct Store {
    db: DB,
    read_cache: rocksdb::Cache,
    cache: Mutex<FifoCache<u64, Arc<Decided>>>,
    /// See [`WRITTEN_BODIES`](open::WRITTEN_BODIES).
    written: Mutex<FifoCache<Hash, ()>>,
    /// The keys of the `undecided` family, so a commit deletes exactly those records (point
    /// deletes: range deletions there made every later iterator over the family slower, and
    /// a commit would have needed one).
    undecided_keys: Mutex<std::collections::BTreeSet<[u8; UNDECIDED_KEY]>>,
    /// Decided heights kept; older ones are pruned (0 keeps everything).
    keep_heights: u64,
    /// The `pending` and `dropped` families' index; its lock orders pending writes against
    /// commits (see `pending`).
    pending: Mutex<pending::PendingIndex>,
}

fn err(e: impl std::fmt::Display) -> StoreError {
    StoreError(e.to_string())
}

impl Store {
    fn cf(&self, name: &str) -> Result<&rocksdb::ColumnFamily> {
        self.db
            .cf_handle(name)
            .ok_or_else(|| StoreError(format!("missing column family {name}")))
    }

    fn meta(&self, key: &[u8]) -> Result<Option<u64>> {
        match self.db.get_cf(self.cf("meta")?, key).map_err(err)? {
            Some(v) => Ok(Some(read_u64(&v)?)),
            None => Ok(None),
        }
    }
}

/// Consensus's view of the store: the reads are in `read`, the writes in `write`.
impl ChainStore for Store {
    fn latest(&self) -> Result<Option<BlockHeader>> {
        self.read_latest()
    }

    fn earliest(&self) -> Result<u64> {
        self.read_earliest()
    }

    fn block_bytes(&self, height: u64) -> Result<Option<Vec<u8>>> {
        self.read_block_bytes(height)
    }

    fn certificate(&self, height: u64) -> Result<Option<CommitCertificate>> {
        self.read_certificate(height)
    }

    fn block_by_hash(&self, hash: &Hash) -> Result<Option<bytes::Bytes>> {
        // Decided blocks and recorded proposals share the `bodies` family, by block hash.
        Ok(self.body(&hash.0)?.map(bytes::Bytes::from))
    }

    fn commit(
        &self,
        header: &BlockHeader,
        block: &[u8],
        hashes: &[Hash],
        certificate: &CommitCertificate,
        new_set: Option<&SetRecord>,
    ) -> Result<Committed> {
        self.write_commit(header, block, hashes, certificate, new_set)
    }

    fn validator_sets(&self) -> Result<Vec<SetRecord>> {
        self.read_validator_sets()
    }

    fn put_undecided(&self, r: &UndecidedRecord) -> Result<()> {
        self.write_undecided(r)
    }

    fn undecided(&self, height: u64) -> Result<Vec<UndecidedRecord>> {
        self.read_undecided(height)
    }

    fn included_since(&self, from: u64) -> Result<Vec<(u64, Vec<Hash>)>> {
        self.read_included_since(from)
    }
}
