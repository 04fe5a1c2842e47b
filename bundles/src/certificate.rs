//! Vote signing bytes and commit certificates, verifiable against a validator set alone.

use crate::hash::Hash;
use crate::sig;
use crate::validator::{Address, ValidatorSet};
use borsh::{BorshDeserialize, BorshSerialize};

/// Domain tag of vote signing bytes.
pub const VOTE_TAG: &[u8; 16] = b"lockstep:vote:v1";
/// Domain tag of a proposal's signing bytes.
pub const PROPOSAL_TAG: &[u8; 20] = b"lockstep:proposal:v1";

/// Prevote or precommit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
#[borsh(use_discriminant = true)]
#[repr(u8)]
pub enum VoteKind {
    Prevote = 0,
    Precommit = 1,
}

#[derive(BorshSerialize)]
struct VoteDoc<'a> {
    tag: &'a [u8; 16],
    chain_id: u64,
    kind: VoteKind,
    height: u64,
    /// -1 stands for the nil round.
    round: i64,
    value: Option<[u8; 32]>,
    validator: [u8; 20],
}

/// The bytes a validator signs for a vote. `value` is `None` for a nil vote.
pub fn vote_sign_bytes(
    chain_id: u64,
    kind: VoteKind,
    height: u64,
    round: i64,
    value: Option<&Hash>,
    validator: &Address,
) -> Vec<u8> {
    let doc = VoteDoc {
        tag: VOTE_TAG,
        chain_id,
        kind,
        height,
        round,
        value: value.map(|h| h.0),
        validator: validator.0,
    };
    borsh::to_vec(&doc).unwrap_or_default()
}

#[derive(BorshSerialize)]
struct ProposalDoc<'a> {
    tag: &'a [u8; 20],
    chain_id: u64,
    height: u64,
    round: i64,
    pol_round: i64,
    value: [u8; 32],
    proposer: [u8; 20],
}

/// The bytes a proposer signs for a proposal (and for the final part of a streamed proposal).
pub fn proposal_sign_bytes(
    chain_id: u64,
    height: u64,
    round: i64,
    pol_round: i64,
    value: &Hash,
    proposer: &Address,
) -> Vec<u8> {
    let doc = ProposalDoc {
        tag: PROPOSAL_TAG,
        chain_id,
        height,
        round,
        pol_round,
        value: value.0,
        proposer: proposer.0,
    };
    borsh::to_vec(&doc).unwrap_or_default()
}

/// One validator's precommit signature in a certificate.
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct CommitSig {
    pub address: Address,
    pub signature: [u8; 64],
}

/// Precommits for `block_hash` at `(height, round)` from more than 2/3 of the voting power.
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct CommitCertificate {
    pub height: u64,
    pub round: u32,
    pub block_hash: Hash,
    pub signatures: Vec<CommitSig>,
}

/// Why a certificate does not prove a decision.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertificateError {
    #[error("signer {0} is not in the validator set")]
    UnknownValidator(Address),
    #[error("validator {0} signed twice")]
    DuplicateSigner(Address),
    #[error("invalid signature from validator {0}")]
    BadSignature(Address),
    #[error("signatures carry {got} of {total} voting power, more than 2/3 is needed")]
    NoQuorum { got: u64, total: u64 },
    #[error("certificate is for height {got}, expected {expected}")]
    WrongHeight { expected: u64, got: u64 },
    #[error("certificate is for block {got}, expected {expected}")]
    WrongBlock { expected: Hash, got: Hash },
}

impl CommitCertificate {
    /// Checks every signature (any invalid one fails the certificate) and the quorum.
    pub fn verify(&self, chain_id: u64, validators: &ValidatorSet) -> Result<(), CertificateError> {
        let mut seen: Vec<Address> = Vec::with_capacity(self.signatures.len());
        let mut power: u64 = 0;
        for s in &self.signatures {
            let v = validators
                .get(&s.address)
                .ok_or(CertificateError::UnknownValidator(s.address))?;
            if seen.contains(&s.address) {
                return Err(CertificateError::DuplicateSigner(s.address));
            }
            seen.push(s.address);
            let msg = vote_sign_bytes(
                chain_id,
                VoteKind::Precommit,
                self.height,
                i64::from(self.round),
                Some(&self.block_hash),
                &s.address,
            );
            if !sig::verify(&v.public_key, &msg, &s.signature) {
                return Err(CertificateError::BadSignature(s.address));
            }
            power = power.saturating_add(v.voting_power);
        }
        if !validators.is_quorum(power) {
            return Err(CertificateError::NoQuorum {
                got: power,
                total: validators.total_power(),
            });
        }
        Ok(())
    }

    /// Verifies the certificate and that it decides `block_hash` at `height`.
    pub fn verify_for(
        &self,
        chain_id: u64,
        validators: &ValidatorSet,
        height: u64,
        block_hash: &Hash,
    ) -> Result<(), CertificateError> {
        if self.height != height {
            return Err(CertificateError::WrongHeight {
                expected: height,
                got: self.height,
            });
        }
        if &self.block_hash != block_hash {
            return Err(CertificateError::WrongBlock {
                expected: *block_hash,
                got: self.block_hash,
            });
        }
        self.verify(chain_id, validators)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::validator::Validator;
    use ed25519_dalek::{Signer, SigningKey};

    pub(crate) fn keys(n: u8) -> Vec<SigningKey> {
        (1..=n).map(|i| SigningKey::from_bytes(&[i; 32])).collect()
    }

    pub(crate) fn set_of(keys: &[SigningKey]) -> ValidatorSet {
        ValidatorSet::new(
            keys.iter()
                .map(|k| Validator::new(k.verifying_key().to_bytes(), 1))
                .collect(),
        )
        .unwrap()
    }

    pub(crate) fn certify(
        keys: &[SigningKey],
        chain_id: u64,
        height: u64,
        block_hash: Hash,
    ) -> CommitCertificate {
        let signatures = keys
            .iter()
            .map(|k| {
                let address = Address::from_public_key(&k.verifying_key().to_bytes());
                let msg = vote_sign_bytes(
                    chain_id,
                    VoteKind::Precommit,
                    height,
                    0,
                    Some(&block_hash),
                    &address,
                );
                CommitSig {
                    address,
                    signature: k.sign(&msg).to_bytes(),
                }
            })
            .collect();
        CommitCertificate {
            height,
            round: 0,
            block_hash,
            signatures,
        }
    }

    #[test]
    fn quorum_certificate_verifies() {
        let ks = keys(4);
        let set = set_of(&ks);
        let h = Hash::tagged(b"b", &[]);
        assert!(certify(&ks[..3], 1, 5, h)
            .verify_for(1, &set, 5, &h)
            .is_ok());
    }

    #[test]
    fn rejects_missing_quorum_forgery_duplicates_and_wrong_chain() {
        let ks = keys(4);
        let set = set_of(&ks);
        let h = Hash::tagged(b"b", &[]);
        let two = certify(&ks[..2], 1, 5, h);
        assert!(matches!(
            two.verify(1, &set),
            Err(CertificateError::NoQuorum { got: 2, total: 4 })
        ));

        let mut forged = certify(&ks[..3], 1, 5, h);
        forged.signatures[1].signature[5] ^= 1;
        assert!(matches!(
            forged.verify(1, &set),
            Err(CertificateError::BadSignature(_))
        ));

        let mut dup = certify(&ks[..2], 1, 5, h);
        dup.signatures.push(dup.signatures[0].clone());
        assert!(matches!(
            dup.verify(1, &set),
            Err(CertificateError::DuplicateSigner(_))
        ));

        let outsider = keys(5).pop().unwrap();
        let mut extra = certify(&ks[..2], 1, 5, h);
        extra
            .signatures
            .extend(certify(&[outsider], 1, 5, h).signatures);
        assert!(matches!(
            extra.verify(1, &set),
            Err(CertificateError::UnknownValidator(_))
        ));

        assert!(matches!(
            certify(&ks[..3], 2, 5, h).verify(1, &set),
            Err(CertificateError::BadSignature(_))
        ));
        let other = Hash::tagged(b"c", &[]);
        assert!(matches!(
            certify(&ks[..3], 1, 5, h).verify_for(1, &set, 5, &other),
            Err(CertificateError::WrongBlock { .. })
        ));
    }
}
