//! Verifying rollup batches received as JSON, against the genesis validator set.

use crate::api::{EntryJson, RollupBatchJson};
use lockstep_bundles::hash::{decode_hex, encode_hex};
use lockstep_bundles::rollup::BatchProof;
use lockstep_bundles::{BatchError, CommitCertificate, RollupBatch, RollupEntry, ValidatorSet};

/// Why a batch was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("malformed batch: {0}")]
    Malformed(String),
    #[error("batch does not verify: {0}")]
    Invalid(#[from] BatchError),
    #[error("batch claims {field} {claimed}, the signed header says {actual}")]
    Mismatch {
        field: &'static str,
        claimed: String,
        actual: String,
    },
}

/// Converts a decided batch to its JSON form.
pub fn to_json(b: &RollupBatch) -> RollupBatchJson {
    RollupBatchJson {
        rollup_id: b.rollup_id,
        height: b.height,
        block_hash: b.header.hash(),
        timestamp: b.header.timestamp,
        entries: b
            .entries
            .iter()
            .map(|e| EntryJson {
                bundle_hash: e.bundle_hash,
                leg_index: e.leg_index,
                rollups: e.rollups.clone(),
                data: encode_hex(&e.data),
            })
            .collect(),
        proof: encode_hex(
            &borsh::to_vec(&BatchProof {
                header: b.header.clone(),
                rollup: b.proof.clone(),
            })
            .unwrap_or_default(),
        ),
        certificate: encode_hex(&borsh::to_vec(&b.certificate).unwrap_or_default()),
    }
}

/// Parses the JSON form back into protocol types (no verification yet).
pub fn from_json(j: &RollupBatchJson) -> Result<RollupBatch, VerifyError> {
    let m = |what: &str, e: String| VerifyError::Malformed(format!("{what}: {e}"));
    let proof_bytes = decode_hex(&j.proof).map_err(|e| m("proof", e.to_string()))?;
    let proof: BatchProof =
        borsh::from_slice(&proof_bytes).map_err(|e| m("proof", e.to_string()))?;
    let cert_bytes = decode_hex(&j.certificate).map_err(|e| m("certificate", e.to_string()))?;
    let certificate: CommitCertificate =
        borsh::from_slice(&cert_bytes).map_err(|e| m("certificate", e.to_string()))?;
    let entries = j
        .entries
        .iter()
        .enumerate()
        .map(|(i, e)| {
            Ok(RollupEntry {
                bundle_hash: e.bundle_hash,
                leg_index: e.leg_index,
                rollups: e.rollups.clone(),
                data: decode_hex(&e.data)
                    .map_err(|err| m(&format!("entries[{i}].data"), err.to_string()))?,
            })
        })
        .collect::<Result<Vec<_>, VerifyError>>()?;
    Ok(RollupBatch {
        rollup_id: j.rollup_id,
        height: j.height,
        header: proof.header,
        entries,
        proof: proof.rollup,
        certificate,
    })
}

/// Verifies batches for one chain.
#[derive(Debug, Clone)]
pub struct BatchVerifier {
    pub chain_id: u64,
    pub validators: ValidatorSet,
}

impl BatchVerifier {
    pub fn new(chain_id: u64, validators: ValidatorSet) -> Self {
        BatchVerifier {
            chain_id,
            validators,
        }
    }

    /// Parses and verifies: certificate against the validator set, entries against the
    /// header's rollup commitment, and the JSON's block hash and timestamp against the header.
    pub fn verify(&self, j: &RollupBatchJson) -> Result<RollupBatch, VerifyError> {
        let b = from_json(j)?;
        let actual = b.header.hash();
        if actual != j.block_hash {
            return Err(VerifyError::Mismatch {
                field: "blockHash",
                claimed: j.block_hash.to_string(),
                actual: actual.to_string(),
            });
        }
        if b.header.timestamp != j.timestamp {
            return Err(VerifyError::Mismatch {
                field: "timestamp",
                claimed: j.timestamp.to_string(),
                actual: b.header.timestamp.to_string(),
            });
        }
        b.verify(self.chain_id, &self.validators)?;
        Ok(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signer, SigningKey};
    use lockstep_bundles::certificate::{vote_sign_bytes, VoteKind};
    use lockstep_bundles::rollup::RollupTree;
    use lockstep_bundles::{Address, Block, CommitSig, Hash, Validator};

    fn setup() -> (BatchVerifier, Block, Vec<Hash>, CommitCertificate) {
        let keys: Vec<SigningKey> = (1..=4u8)
            .map(|i| SigningKey::from_bytes(&[i; 32]))
            .collect();
        let set = ValidatorSet::new(
            keys.iter()
                .map(|k| Validator::new(k.verifying_key().to_bytes(), 1))
                .collect(),
        )
        .unwrap();
        let user = SigningKey::from_bytes(&[9; 32]);
        let bundles = vec![
            crate::bundle::sign(&user, 5, 1, 10, vec![(1, vec![1, 1]), (2, vec![2, 2])]),
            crate::bundle::sign(&user, 5, 2, 10, vec![(1, vec![3])]),
        ];
        let hashes: Vec<Hash> = bundles.iter().map(|b| b.hash()).collect();
        let block = Block::build(
            5,
            3,
            1000,
            Address::default(),
            Hash::ZERO,
            set.hash(),
            bundles,
            &hashes,
        );
        let signatures = keys[..3]
            .iter()
            .map(|k| {
                let address = Address::from_public_key(&k.verifying_key().to_bytes());
                let msg =
                    vote_sign_bytes(5, VoteKind::Precommit, 3, 0, Some(&block.hash()), &address);
                CommitSig {
                    address,
                    signature: k.sign(&msg).to_bytes(),
                }
            })
            .collect();
        let cert = CommitCertificate {
            height: 3,
            round: 0,
            block_hash: block.hash(),
            signatures,
        };
        (BatchVerifier::new(5, set), block, hashes, cert)
    }

    fn json_for(
        block: &Block,
        hashes: &[Hash],
        cert: &CommitCertificate,
        rollup: u64,
    ) -> RollupBatchJson {
        let tree = RollupTree::from_block(block, hashes);
        to_json(&RollupBatch::from_block(
            block,
            hashes,
            &tree,
            cert.clone(),
            rollup,
        ))
    }

    #[test]
    fn honest_batches_verify_including_empty_ones() {
        let (v, block, hashes, cert) = setup();
        for rollup in [1, 2, 3] {
            let j = json_for(&block, &hashes, &cert, rollup);
            let b = v.verify(&j).unwrap();
            assert_eq!(b.entries.len(), [2, 1, 0][(rollup - 1) as usize]);
        }
    }

    #[test]
    fn a_batch_is_checked_against_its_height_and_the_followers_chain() {
        let (v, block, hashes, cert) = setup();
        let good = json_for(&block, &hashes, &cert, 1);
        assert!(v.verify(&good).is_ok());

        // The batch claims another height than its header's.
        let mut moved = good.clone();
        moved.height = 4;
        assert!(matches!(
            v.verify(&moved),
            Err(VerifyError::Invalid(BatchError::HeightMismatch {
                batch: 4,
                header: 3
            }))
        ));

        // A follower of another chain refuses it (same validators, chain 6).
        let other = BatchVerifier::new(6, v.validators.clone());
        assert!(matches!(
            other.verify(&good),
            Err(VerifyError::Invalid(BatchError::WrongChain {
                expected: 6,
                got: 5
            }))
        ));

        // A certificate for another height, even with the right block hash, does not
        // certify this one.
        let mut other_height = cert.clone();
        other_height.height = 4;
        let mut relabelled = good;
        relabelled.certificate =
            lockstep_bundles::hash::encode_hex(&borsh::to_vec(&other_height).unwrap());
        assert!(matches!(
            v.verify(&relabelled),
            Err(VerifyError::Invalid(BatchError::Certificate(_)))
        ));
    }

    #[test]
    fn tampered_json_batches_are_rejected() {
        let (v, block, hashes, cert) = setup();
        let good = json_for(&block, &hashes, &cert, 1);

        let mut flipped = good.clone();
        flipped.entries[0].data = "0x0101ff".into();
        assert!(matches!(v.verify(&flipped), Err(VerifyError::Invalid(_))));

        let mut removed = good.clone();
        removed.entries.pop();
        assert!(matches!(v.verify(&removed), Err(VerifyError::Invalid(_))));

        let mut foreign = good.clone();
        foreign
            .entries
            .push(json_for(&block, &hashes, &cert, 2).entries[0].clone());
        assert!(v.verify(&foreign).is_err());

        let mut forged = good.clone();
        let mut cert2 = cert.clone();
        cert2.signatures[2].signature[7] ^= 1;
        forged.certificate = lockstep_bundles::hash::encode_hex(&borsh::to_vec(&cert2).unwrap());
        assert!(matches!(
            v.verify(&forged),
            Err(VerifyError::Invalid(BatchError::Certificate(_)))
        ));

        let mut short = good.clone();
        let mut cert3 = cert.clone();
        cert3.signatures.truncate(2);
        short.certificate = lockstep_bundles::hash::encode_hex(&borsh::to_vec(&cert3).unwrap());
        assert!(
            v.verify(&short).is_err(),
            "two of four signatures are not a quorum"
        );

        let mut relabelled = good.clone();
        relabelled.block_hash = Hash::ZERO;
        assert!(matches!(
            v.verify(&relabelled),
            Err(VerifyError::Mismatch { .. })
        ));

        let mut garbage = good;
        garbage.proof = "0x00".into();
        assert!(matches!(v.verify(&garbage), Err(VerifyError::Malformed(_))));
    }
}
