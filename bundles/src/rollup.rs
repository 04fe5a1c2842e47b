//! A rollup's batch for one height: its entries, cut out of a decided block, with the
//! completeness proof from the block's [`RollupTree`] and the commit certificate, and the
//! check a client runs on it without trusting the sender.
//!
//! The tree, the commitments and the proofs themselves are in [`crate::rollup_tree`]; they
//! are re-exported here under their former paths.

use crate::block::{Block, BlockHeader};
use crate::certificate::CommitCertificate;
use crate::hash::Hash;
use crate::validator::ValidatorSet;
use borsh::{BorshDeserialize, BorshSerialize};

pub use crate::rollup_tree::{
    commitment, rollup_leaves, BatchError, Neighbor, RollupEntry, RollupProof, RollupTree, Witness,
    ROLLUPS_ROOT_TAG, ROLLUP_TAG,
};

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

/// Here rather than with the rest of the tree: `rollup_tree` does not know blocks.
impl RollupTree {
    /// The tree of a block whose bundles have these hashes, in block order.
    pub fn from_block(block: &Block, hashes: &[Hash]) -> RollupTree {
        RollupTree::new(&rollup_leaves(&block.bundles, hashes))
    }
}

/// Everything one rollup needs for one height, verifiable without trusting the sender.
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
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
        // The header names the set that decided it; a verifier holding another set (one that
        // missed an update) must learn the updates, not try its set on the certificate.
        let held = validators.hash();
        if self.header.validators_hash != held {
            return Err(BatchError::OtherValidatorSet {
                header: self.header.validators_hash,
                held,
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
    use crate::bundle::{BundleBody, Leg, SignedBundle};
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
        let b = Block::build(
            1,
            5,
            0,
            Address::default(),
            Hash::ZERO,
            set_of(&keys(4)).hash(),
            bundles,
            &hashes,
        );
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
