//! The per-rollup tree of one block, and the proof that a rollup's slice of the block is
//! complete.
//!
//! For every rollup with at least one leg in a block, the block commits to
//! `commitment = SHA-256(b"lockstep:rollup:v1" ++ u64 rollup_id ++ borsh(entries))`, where
//! `entries` is the rollup's ordered list of [`RollupEntry`]. The pairs `(rollup_id,
//! commitment)` are the leaves, sorted by rollup id, of a Merkle tree whose root (with the
//! leaf count) is the header's `rollups_root`.
//!
//! A rollup with entries proves them with the Merkle path of its leaf: leaving out, changing,
//! reordering or adding an entry changes the commitment. A rollup with no entries proves its
//! absence with the neighbouring leaves (adjacent indices whose rollup ids bracket its id, or
//! the first/last leaf, or an empty tree), so a node cannot hide a rollup's entries by
//! claiming it had none.
//!
//! This module works on bundles and hashes, not on blocks: [`crate::block`] builds its
//! `rollups_root` from here, and [`crate::rollup`] (a rollup's batch cut from a decided
//! block, and [`RollupTree::from_block`]) builds on both.

use crate::bundle::SignedBundle;
use crate::certificate::CertificateError;
use crate::hash::Hash;
use crate::merkle;
use borsh::{BorshDeserialize, BorshSerialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// Domain tag of a rollup's entry commitment.
pub const ROLLUP_TAG: &[u8] = b"lockstep:rollup:v1";
/// Domain tag of the rollups root.
pub const ROLLUPS_ROOT_TAG: &[u8] = b"lockstep:rollups:v1";

/// One leg as a rollup receives it.
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct RollupEntry {
    pub bundle_hash: Hash,
    pub leg_index: u32,
    /// Rollup id of every leg of the bundle, in leg order.
    pub rollups: Vec<u64>,
    pub data: Vec<u8>,
}

/// Where one rollup's legs are in a block: `(bundle index, leg index)` in block order.
type Positions = BTreeMap<u64, Vec<(usize, usize)>>;

fn positions(bundles: &[SignedBundle]) -> Positions {
    let mut map: Positions = BTreeMap::new();
    for (b, bundle) in bundles.iter().enumerate() {
        for (l, leg) in bundle.body.legs.iter().enumerate() {
            map.entry(leg.rollup_id).or_default().push((b, l));
        }
    }
    map
}

/// The commitment to a rollup's entries, computed from owned entries.
pub fn commitment(rollup_id: u64, entries: &[RollupEntry]) -> Hash {
    Hash::tagged(
        ROLLUP_TAG,
        &[
            &rollup_id.to_le_bytes(),
            &borsh::to_vec(entries).unwrap_or_default(),
        ],
    )
}

/// The same commitment, streamed from the block without copying leg data.
fn commitment_in_place(
    rollup_id: u64,
    at: &[(usize, usize)],
    bundles: &[SignedBundle],
    hashes: &[Hash],
) -> Hash {
    let mut h = Sha256::new();
    h.update(ROLLUP_TAG);
    h.update(rollup_id.to_le_bytes());
    h.update((at.len() as u32).to_le_bytes());
    for &(b, l) in at {
        let body = &bundles[b].body;
        h.update(hashes[b].0);
        h.update((l as u32).to_le_bytes());
        h.update((body.legs.len() as u32).to_le_bytes());
        for leg in &body.legs {
            h.update(leg.rollup_id.to_le_bytes());
        }
        let data = &body.legs[l].data;
        h.update((data.len() as u32).to_le_bytes());
        h.update(data);
    }
    Hash(h.finalize().into())
}

/// `(rollup_id, commitment)` for every rollup in the block, sorted by rollup id.
pub fn rollup_leaves(bundles: &[SignedBundle], hashes: &[Hash]) -> Vec<(u64, Hash)> {
    positions(bundles)
        .iter()
        .map(|(id, at)| (*id, commitment_in_place(*id, at, bundles, hashes)))
        .collect()
}

fn leaf(rollup_id: u64, commitment: &Hash) -> Hash {
    merkle::leaf_hash(&[&rollup_id.to_le_bytes(), commitment.as_bytes()])
}

fn root_of(count: u64, merkle_root: &Hash) -> Hash {
    Hash::tagged(
        ROLLUPS_ROOT_TAG,
        &[&count.to_le_bytes(), merkle_root.as_bytes()],
    )
}

/// The sorted per-rollup tree of one block.
#[derive(Debug, Clone)]
pub struct RollupTree {
    leaves: Vec<(u64, Hash)>,
    hashes: Vec<Hash>,
}

/// A leaf of the tree with its audit path.
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Neighbor {
    pub index: u64,
    pub rollup_id: u64,
    pub commitment: Hash,
    pub path: Vec<Hash>,
}

/// How a proof shows the rollup's place in the tree.
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum Witness {
    /// The rollup has entries: its leaf is at `index`.
    Present { index: u64, path: Vec<Hash> },
    /// No rollup has entries in this block.
    Empty,
    /// The first leaf's rollup id is above the rollup's.
    Before(Neighbor),
    /// The last leaf's rollup id is below the rollup's.
    After(Neighbor),
    /// Two adjacent leaves bracket the rollup's id.
    Between(Neighbor, Neighbor),
}

/// Proof that a rollup's entries for one block are complete.
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct RollupProof {
    pub leaf_count: u64,
    pub witness: Witness,
}

impl RollupTree {
    pub fn new(leaves: &[(u64, Hash)]) -> RollupTree {
        let hashes = leaves.iter().map(|(id, c)| leaf(*id, c)).collect();
        RollupTree {
            leaves: leaves.to_vec(),
            hashes,
        }
    }

    pub fn root(&self) -> Hash {
        root_of(self.leaves.len() as u64, &merkle::root(&self.hashes))
    }

    fn neighbor(&self, i: usize) -> Neighbor {
        Neighbor {
            index: i as u64,
            rollup_id: self.leaves[i].0,
            commitment: self.leaves[i].1,
            path: merkle::path(&self.hashes, i),
        }
    }

    /// The proof for `rollup_id`, whether or not it has entries.
    pub fn prove(&self, rollup_id: u64) -> RollupProof {
        let leaf_count = self.leaves.len() as u64;
        let witness = match self.leaves.binary_search_by_key(&rollup_id, |(id, _)| *id) {
            Ok(i) => Witness::Present {
                index: i as u64,
                path: merkle::path(&self.hashes, i),
            },
            Err(_) if self.leaves.is_empty() => Witness::Empty,
            Err(0) => Witness::Before(self.neighbor(0)),
            Err(i) if i == self.leaves.len() => Witness::After(self.neighbor(i - 1)),
            Err(i) => Witness::Between(self.neighbor(i - 1), self.neighbor(i)),
        };
        RollupProof {
            leaf_count,
            witness,
        }
    }
}

/// Why a batch does not verify: here because a completeness proof reports
/// [`BatchError::Proof`]; the batch's other checks are in [`crate::rollup`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    #[error("batch says height {batch}, its header says {header}")]
    HeightMismatch { batch: u64, header: u64 },
    #[error("header is for chain {got}, expected {expected}")]
    WrongChain { expected: u64, got: u64 },
    #[error("block hash {claimed} does not match the header ({actual})")]
    BlockHashMismatch { claimed: Hash, actual: Hash },
    #[error(
        "the header is decided by validator set {header}, not the set held ({held}): the set \
         changed, follow its updates (seq_getValidatorSets)"
    )]
    OtherValidatorSet { header: Hash, held: Hash },
    #[error("certificate: {0}")]
    Certificate(#[from] CertificateError),
    #[error("entry {0} does not belong to this rollup at its leg index")]
    ForeignEntry(usize),
    #[error("completeness proof does not match the header: {0}")]
    Proof(&'static str),
}

impl RollupProof {
    /// Checks that `entries` are all of `rollup_id`'s entries in the block with `rollups_root`.
    pub fn verify(
        &self,
        rollups_root: &Hash,
        rollup_id: u64,
        entries: &[RollupEntry],
    ) -> Result<(), BatchError> {
        let n = self.leaf_count;
        let leads_to_root = |nb: &Neighbor| {
            merkle::root_from_path(leaf(nb.rollup_id, &nb.commitment), nb.index, n, &nb.path)
                .map(|r| root_of(n, &r))
                .as_ref()
                == Some(rollups_root)
        };
        match (&self.witness, entries.is_empty()) {
            (Witness::Present { index, path }, false) => {
                let l = leaf(rollup_id, &commitment(rollup_id, entries));
                let r = merkle::root_from_path(l, *index, n, path)
                    .ok_or(BatchError::Proof("path does not fit the tree"))?;
                if root_of(n, &r) != *rollups_root {
                    return Err(BatchError::Proof("entries are not the committed ones"));
                }
                Ok(())
            }
            (Witness::Present { .. }, true) => Err(BatchError::Proof(
                "rollup has entries in this block but none were given",
            )),
            (_, false) => Err(BatchError::Proof("entries given with a proof of absence")),
            (Witness::Empty, true) => {
                if n == 0 && root_of(0, &Hash::ZERO) == *rollups_root {
                    Ok(())
                } else {
                    Err(BatchError::Proof("block is not empty"))
                }
            }
            (Witness::Before(nb), true) => {
                if nb.index == 0 && nb.rollup_id > rollup_id && leads_to_root(nb) {
                    Ok(())
                } else {
                    Err(BatchError::Proof("first-leaf absence proof is invalid"))
                }
            }
            (Witness::After(nb), true) => {
                if n > 0 && nb.index == n - 1 && nb.rollup_id < rollup_id && leads_to_root(nb) {
                    Ok(())
                } else {
                    Err(BatchError::Proof("last-leaf absence proof is invalid"))
                }
            }
            (Witness::Between(a, b), true) => {
                let adjacent = b.index == a.index.wrapping_add(1);
                let brackets = a.rollup_id < rollup_id && rollup_id < b.rollup_id;
                if adjacent && brackets && leads_to_root(a) && leads_to_root(b) {
                    Ok(())
                } else {
                    Err(BatchError::Proof("neighbour absence proof is invalid"))
                }
            }
        }
    }
}
