//! The store's on-disk layout: the column families, the `meta` keys, the layout version, and
//! how keys and values are encoded (integers big-endian, so byte order is numeric order).

use lockstep_bundles::Hash;
use lockstep_consensus::store::{Result, StoreError};

pub(super) const CFS: [&str; 12] = [
    "headers",
    "blocks",
    "bodies",
    "certs",
    "hashes",
    "bundles",
    "undecided",
    "meta",
    "pending",
    "dropped",
    "evidence",
    "validator_sets",
];
pub(super) const LATEST: &[u8] = b"latest";
pub(super) const EARLIEST: &[u8] = b"earliest";
pub(super) const SCHEMA_KEY: &[u8] = b"schema";
/// The store's layout version. 2: block bodies by hash, written once (1 kept them by height,
/// and kept undecided proposals' bodies in their records). The `pending` and `dropped`
/// families came later without a new version: a layout-2 store without them opens with them
/// created empty, which is what it held (a node that old kept acknowledged bundles in memory
/// only), and no other family changed; `evidence` likewise (evidence was kept in memory).
/// 3: headers carry `validators_hash`, so a layout-2 header does not decode; the
/// `validator_sets` family is new.
pub(super) const SCHEMA: u64 = 3;

/// A value of the `undecided` family: the proposal's record without its body (which is in
/// `bodies`, by block hash); `body` is always empty (layout 2 kept the field).
#[derive(borsh::BorshSerialize, borsh::BorshDeserialize)]
pub(super) struct StoredProposal {
    pub(super) height: u64,
    pub(super) round: u32,
    pub(super) valid_round: i64,
    pub(super) proposer: lockstep_bundles::Address,
    pub(super) block_hash: Hash,
    pub(super) valid: bool,
    pub(super) body: Vec<u8>,
}

/// Keys of the `undecided` family: height (8) ++ round (4) ++ block hash (32).
pub(super) const UNDECIDED_KEY: usize = 44;

pub(super) fn undecided_key(height: u64, round: u32, block_hash: &Hash) -> [u8; UNDECIDED_KEY] {
    let mut key = [0u8; UNDECIDED_KEY];
    key[..8].copy_from_slice(&be(height));
    key[8..12].copy_from_slice(&round.to_be_bytes());
    key[12..].copy_from_slice(&block_hash.0);
    key
}

/// The block hash in an `undecided` key.
pub(super) fn undecided_key_hash(key: &[u8; UNDECIDED_KEY]) -> Hash {
    let mut h = [0u8; 32];
    h.copy_from_slice(&key[12..]);
    Hash(h)
}

pub(super) fn be(h: u64) -> [u8; 8] {
    h.to_be_bytes()
}

pub(super) fn read_u64(v: &[u8]) -> Result<u64> {
    let a: [u8; 8] = v
        .try_into()
        .map_err(|_| StoreError("corrupt height value".into()))?;
    Ok(u64::from_be_bytes(a))
}
