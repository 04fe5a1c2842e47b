//! The storage seam of the host: implemented on RocksDB by `node`, in memory by tests.

use crate::validators::SetRecord;
use lockstep_bundles::{BlockHeader, CommitCertificate, Hash};

/// A storage failure (disk, corruption). Never caused by a peer.
#[derive(Debug, Clone, thiserror::Error)]
#[error("store: {0}")]
pub struct StoreError(pub String);

pub type Result<T> = std::result::Result<T, StoreError>;

/// A proposal this node holds for an undecided height, kept across restarts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UndecidedRecord {
    pub height: u64,
    pub round: u32,
    /// -1 when nil.
    pub valid_round: i64,
    pub proposer: lockstep_bundles::Address,
    pub block_hash: Hash,
    pub valid: bool,
    /// The encoded block (empty when the proposal was invalid); shared with the host's
    /// copy, not copied.
    pub block: bytes::Bytes,
}

/// What a commit did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Committed {
    /// The block is now durable.
    Written,
    /// This exact block was already committed at this height (e.g. after WAL replay).
    AlreadyPresent,
}

/// Decided blocks, certificates, indexes and undecided proposals.
pub trait ChainStore: Send + Sync + 'static {
    /// Latest decided height and its header; `None` before the first block.
    fn latest(&self) -> Result<Option<BlockHeader>>;

    /// Lowest height whose block is still kept (0 when empty).
    fn earliest(&self) -> Result<u64>;

    /// The encoded block at `height`.
    fn block_bytes(&self, height: u64) -> Result<Option<Vec<u8>>>;

    fn certificate(&self, height: u64) -> Result<Option<CommitCertificate>>;

    /// An encoded block by its block hash: a decided block still kept, or the body of a
    /// proposal recorded for an undecided height (`None` if this store holds neither).
    fn block_by_hash(&self, hash: &Hash) -> Result<Option<bytes::Bytes>>;

    /// Writes block, certificate and indexes in one synced batch — with `new_set`, the
    /// validator set the block's update makes (ADR-027) — and deletes the height's undecided
    /// proposals. Committing the same block twice is a no-op; a different block at a committed
    /// height is an error.
    fn commit(
        &self,
        header: &BlockHeader,
        block: &[u8],
        hashes: &[Hash],
        certificate: &CommitCertificate,
        new_set: Option<&SetRecord>,
    ) -> Result<Committed>;

    /// Every validator set that committed blocks' updates made (genesis is not stored).
    fn validator_sets(&self) -> Result<Vec<SetRecord>>;

    /// Records a proposal for an undecided height.
    fn put_undecided(&self, record: &UndecidedRecord) -> Result<()>;

    /// Every proposal recorded for `height`.
    fn undecided(&self, height: u64) -> Result<Vec<UndecidedRecord>>;

    /// Hashes of the bundles included at heights `from..` (to rebuild the replay window).
    fn included_since(&self, from: u64) -> Result<Vec<(u64, Vec<Hash>)>>;
}
