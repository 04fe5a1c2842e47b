//! Per-rollup slices of a block and the proof that a slice is complete.
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

use crate::block::{Block, BlockHeader};
use crate::bundle::SignedBundle;
use crate::certificate::{CertificateError, CommitCertificate};
use crate::hash::Hash;
use crate::merkle;
use crate::validator::ValidatorSet;
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

/// A rollup's entries in a block, in block order.
pub fn entries_for(block: &Block, hashes: &[Hash], rollup_id: u64) -> Vec<RollupEntry> {
    let mut out = Vec::new();
    for (b, bundle) in block.bundles.iter().enumerate() {
        for (l, leg) in bundle.body.legs.iter().enumerate() {
            if leg.rollup_id == rollup_id {
                out.push(RollupEntry {
                    bundle_hash: hashes[b],
                    leg_index: l as u32,
                    rollups: bundle.body.rollup_ids(),
                    data: leg.data.to_vec(),
                });
            }
        }
    }
    out
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

    pub fn from_block(block: &Block, hashes: &[Hash]) -> RollupTree {
        RollupTree::new(&rollup_leaves(&block.bundles, hashes))
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

/// Why a batch does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    #[error("batch says height {batch}, its header says {header}")]
    HeightMismatch { batch: u64, header: u64 },
    #[error("header is for chain {got}, expected {expected}")]
    WrongChain { expected: u64, got: u64 },
    #[error("block hash {claimed} does not match the header ({actual})")]
    BlockHashMismatch { claimed: Hash, actual: Hash },
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

/// Everything one rollup needs for one height, verifiable without trusting the sender.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RollupBatch {
    pub rollup_id: u64,
    pub height: u64,
    pub header: BlockHeader,
    pub entries: Vec<RollupEntry>,
    pub proof: RollupProof,
    pub certificate: CommitCertificate,
}

/// The `proof` field of a batch on the wire: the header and the completeness proof.
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct BatchProof {
    pub header: BlockHeader,
    pub rollup: RollupProof,
}

impl RollupBatch {
    /// Cuts `rollup_id`'s batch out of a decided block.
    pub fn from_block(
        block: &Block,
        hashes: &[Hash],
        tree: &RollupTree,
        certificate: CommitCertificate,
        rollup_id: u64,
    ) -> RollupBatch {
        RollupBatch {
            rollup_id,
            height: block.header.height,
            header: block.header.clone(),
            entries: entries_for(block, hashes, rollup_id),
            proof: tree.prove(rollup_id),
            certificate,
        }
    }

    /// Verifies the certificate against `validators` and the entries against the header.
    pub fn verify(&self, chain_id: u64, validators: &ValidatorSet) -> Result<(), BatchError> {
        if self.header.height != self.height {
            return Err(BatchError::HeightMismatch {
                batch: self.height,
                header: self.header.height,
            });
        }
        if self.header.chain_id != chain_id {
            return Err(BatchError::WrongChain {
                expected: chain_id,
                got: self.header.chain_id,
            });
        }
        let block_hash = self.header.hash();
        self.certificate
            .verify_for(chain_id, validators, self.height, &block_hash)?;
        for (i, e) in self.entries.iter().enumerate() {
            if e.rollups.get(e.leg_index as usize) != Some(&self.rollup_id) {
                return Err(BatchError::ForeignEntry(i));
            }
        }
        self.proof
            .verify(&self.header.rollups_root, self.rollup_id, &self.entries)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bundle::{BundleBody, Leg};
    use crate::certificate::tests::{certify, keys, set_of};
    use crate::validator::Address;
    use ed25519_dalek::SigningKey;
    use proptest::prelude::*;

    fn bundle(k: &SigningKey, nonce: u64, rollups: &[u64]) -> SignedBundle {
        BundleBody {
            chain_id: 1,
            signer: k.verifying_key().to_bytes(),
            nonce,
            valid_until: 100,
            legs: rollups
                .iter()
                .map(|r| Leg {
                    rollup_id: *r,
                    data: vec![*r as u8; 3].into(),
                })
                .collect(),
        }
        .sign(k)
    }

    fn block_of(bundles: Vec<SignedBundle>) -> (Block, Vec<Hash>) {
        let hashes: Vec<Hash> = bundles.iter().map(|b| b.hash()).collect();
        let b = Block::build(1, 5, 0, Address::default(), Hash::ZERO, bundles, &hashes);
        (b, hashes)
    }

    fn batch(block: &Block, hashes: &[Hash], ks: &[SigningKey], rollup: u64) -> RollupBatch {
        let tree = RollupTree::from_block(block, hashes);
        let cert = certify(&ks[..3], 1, 5, block.hash());
        RollupBatch::from_block(block, hashes, &tree, cert, rollup)
    }

    #[test]
    fn streamed_commitment_equals_borsh_commitment() {
        let k = SigningKey::from_bytes(&[1; 32]);
        let (b, hashes) = block_of(vec![bundle(&k, 1, &[3, 7, 3]), bundle(&k, 2, &[7])]);
        for (id, c) in rollup_leaves(&b.bundles, &hashes) {
            assert_eq!(c, commitment(id, &entries_for(&b, &hashes, id)));
        }
    }

    #[test]
    fn batches_verify_for_present_and_absent_rollups() {
        let ks = keys(4);
        let set = set_of(&ks);
        let k = SigningKey::from_bytes(&[9; 32]);
        let (b, hashes) = block_of(vec![bundle(&k, 1, &[3, 7]), bundle(&k, 2, &[7, 9])]);
        for rollup in [1, 3, 5, 7, 8, 9, 10] {
            let bt = batch(&b, &hashes, &ks, rollup);
            assert_eq!(bt.verify(1, &set), Ok(()), "rollup {rollup}");
        }
        let bt7 = batch(&b, &hashes, &ks, 7);
        assert_eq!(bt7.entries.len(), 2);
        assert_eq!(bt7.entries[0].rollups, vec![3, 7]);
        let (empty, eh) = block_of(vec![]);
        assert_eq!(batch(&empty, &eh, &ks, 1).verify(1, &set), Ok(()));
    }

    #[test]
    fn tampered_batches_are_rejected() {
        let ks = keys(4);
        let set = set_of(&ks);
        let k = SigningKey::from_bytes(&[9; 32]);
        let (b, hashes) = block_of(vec![bundle(&k, 1, &[3, 7]), bundle(&k, 2, &[7, 9])]);
        let good = batch(&b, &hashes, &ks, 7);

        let mut flipped = good.clone();
        flipped.entries[0].data[0] ^= 1;
        assert!(flipped.verify(1, &set).is_err());

        let mut removed = good.clone();
        removed.entries.pop();
        assert!(removed.verify(1, &set).is_err());

        let mut added = good.clone();
        added
            .entries
            .push(batch(&b, &hashes, &ks, 9).entries[0].clone());
        assert!(added.verify(1, &set).is_err());

        // Claiming rollup 7 had nothing: reuse the absence proof of rollup 8.
        let mut hidden = good.clone();
        hidden.entries.clear();
        hidden.proof = batch(&b, &hashes, &ks, 8).proof;
        assert!(hidden.verify(1, &set).is_err());

        let mut forged = good.clone();
        forged.certificate.signatures[0].signature[0] ^= 1;
        assert!(matches!(
            forged.verify(1, &set),
            Err(BatchError::Certificate(_))
        ));

        let mut reheaded = good.clone();
        reheaded.header.timestamp += 1;
        assert!(matches!(
            reheaded.verify(1, &set),
            Err(BatchError::Certificate(_))
        ));
    }

    proptest! {
        #[test]
        fn every_rollup_gets_a_verifying_proof_and_others_cannot_be_hidden(
            legs in proptest::collection::vec(proptest::collection::vec(0u64..12, 1..4), 0..8),
            probe in 0u64..14,
        ) {
            let k = SigningKey::from_bytes(&[5; 32]);
            let bundles: Vec<_> = legs.iter().enumerate().map(|(i, r)| bundle(&k, i as u64, r)).collect();
            let (b, hashes) = block_of(bundles);
            let tree = RollupTree::from_block(&b, &hashes);
            let entries = entries_for(&b, &hashes, probe);
            let proof = tree.prove(probe);
            prop_assert_eq!(proof.verify(&b.header.rollups_root, probe, &entries), Ok(()));
            if !entries.is_empty() {
                // No absence proof of any other rollup can stand in for this one.
                for other in 0u64..14 {
                    let p = tree.prove(other);
                    if !matches!(p.witness, Witness::Present { .. }) {
                        prop_assert!(p.verify(&b.header.rollups_root, probe, &[]).is_err());
                    }
                }
            }
        }
    }
}
