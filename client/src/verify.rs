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
