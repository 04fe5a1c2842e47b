//! Signing and verification of votes, proposals and proposal parts.
//!
//! The signed bytes are defined in `lockstep_bundles::certificate`, so a rollup client can
//! check a commit certificate with nothing but the validator set.

use crate::context::{BlockId, LockstepContext, Proposal, ValidatorAddress, Vote};
use async_trait::async_trait;
use bytes::Bytes;
use lockstep_bundles::certificate::{proposal_sign_bytes, vote_sign_bytes, VoteKind};
use lockstep_bundles::Hash;
use malachitebft_app_channel::app::types::core::{
    NilOrVal, SignedExtension, SignedMessage, SignedProposal, SignedVote, ValidatorProof,
    VoteExtensionScope, VoteType,
};
use malachitebft_app_channel::{Signer, Verifier};
use malachitebft_signing::{Error as SigningError, VerificationResult};
use malachitebft_signing_ed25519::{PrivateKey, PublicKey, Signature};

/// Domain tag of vote-extension signing bytes (extensions are disabled; kept distinct anyway).
const EXTENSION_TAG: &[u8] = b"lockstep:vote-extension:v1";

fn kind(t: VoteType) -> VoteKind {
    match t {
        VoteType::Prevote => VoteKind::Prevote,
        VoteType::Precommit => VoteKind::Precommit,
    }
}

/// The bytes signed for a vote.
pub fn vote_bytes(chain_id: u64, vote: &Vote) -> Vec<u8> {
    let value = match &vote.value {
        NilOrVal::Nil => None,
        NilOrVal::Val(id) => Some(&id.0),
    };
    vote_sign_bytes(
        chain_id,
        kind(vote.vote_type),
        vote.height.0,
        vote.round.as_i64(),
        value,
        &vote.validator.0,
    )
}

/// The bytes signed for a proposal.
pub fn proposal_bytes(chain_id: u64, p: &Proposal) -> Vec<u8> {
    proposal_sign_bytes(
        chain_id,
        p.height.0,
        p.round.as_i64(),
        p.pol_round.as_i64(),
        &p.value.0,
        &p.proposer.0,
    )
}

/// The bytes signed in the `Fin` part of a streamed block: a proposal with no POL round.
pub fn part_bytes(
    chain_id: u64,
    height: u64,
    round: u32,
    block: &Hash,
    proposer: &ValidatorAddress,
) -> Vec<u8> {
    proposal_sign_bytes(chain_id, height, i64::from(round), -1, block, &proposer.0)
}

fn extension_bytes(
    chain_id: u64,
    scope: &VoteExtensionScope<LockstepContext>,
    ext: &Bytes,
) -> Vec<u8> {
    let mut v = Vec::with_capacity(EXTENSION_TAG.len() + 80 + ext.len());
    v.extend_from_slice(EXTENSION_TAG);
    v.extend_from_slice(&chain_id.to_le_bytes());
    v.extend_from_slice(&scope.height.0.to_le_bytes());
    v.extend_from_slice(&scope.round.as_i64().to_le_bytes());
    v.extend_from_slice(&scope.value_id.0 .0);
    v.extend_from_slice(&scope.validator_address.0 .0);
    v.extend_from_slice(&(ext.len() as u64).to_le_bytes());
    v.extend_from_slice(ext);
    v
}

/// Signs with the validator's consensus key.
pub struct LockstepSigner {
    key: PrivateKey,
    chain_id: u64,
}

impl LockstepSigner {
    pub fn new(key: PrivateKey, chain_id: u64) -> Self {
        LockstepSigner { key, chain_id }
    }

    pub fn sign_part(
        &self,
        height: u64,
        round: u32,
        block: &BlockId,
        proposer: &ValidatorAddress,
    ) -> [u8; 64] {
        self.key
            .sign(&part_bytes(
                self.chain_id,
                height,
                round,
                &block.0,
                proposer,
            ))
            .to_bytes()
    }
}

#[async_trait]
impl Signer<LockstepContext> for LockstepSigner {
    async fn sign_vote(&self, vote: Vote) -> Result<SignedVote<LockstepContext>, SigningError> {
        let sig = self.key.sign(&vote_bytes(self.chain_id, &vote));
        Ok(SignedVote::new(vote, sig))
    }

    async fn sign_proposal(
        &self,
        proposal: Proposal,
    ) -> Result<SignedProposal<LockstepContext>, SigningError> {
        let sig = self.key.sign(&proposal_bytes(self.chain_id, &proposal));
        Ok(SignedProposal::new(proposal, sig))
    }

    async fn sign_vote_extension(
        &self,
        scope: VoteExtensionScope<LockstepContext>,
        extension: Bytes,
    ) -> Result<SignedExtension<LockstepContext>, SigningError> {
        let sig = self
            .key
            .sign(&extension_bytes(self.chain_id, &scope, &extension));
        Ok(SignedMessage::new(extension, sig))
    }

    async fn sign_validator_proof(
        &self,
        public_key: Vec<u8>,
        peer_id: Vec<u8>,
    ) -> Result<ValidatorProof<LockstepContext>, SigningError> {
        let pre = ValidatorProof::<LockstepContext>::signing_bytes(&public_key, &peer_id);
        Ok(ValidatorProof::new(
            public_key,
            peer_id,
            self.key.sign(&pre),
        ))
    }
}

/// Verifies with validators' public keys (ZIP-215 rules, via Malachite's keys, which use `ed25519-consensus`).
pub struct LockstepVerifier {
    chain_id: u64,
}

impl LockstepVerifier {
    pub fn new(chain_id: u64) -> Self {
        LockstepVerifier { chain_id }
    }

    pub fn verify_part(
        &self,
        height: u64,
        round: u32,
        block: &Hash,
        proposer: &ValidatorAddress,
        signature: &[u8; 64],
        public_key: &PublicKey,
    ) -> bool {
        public_key
            .verify(
                &part_bytes(self.chain_id, height, round, block, proposer),
                &Signature::from_bytes(*signature),
            )
            .is_ok()
    }
}

#[async_trait]
impl Verifier<LockstepContext> for LockstepVerifier {
    async fn verify_signed_vote(
        &self,
        vote: &Vote,
        signature: &Signature,
        public_key: &PublicKey,
    ) -> Result<VerificationResult, SigningError> {
        let ok = public_key
            .verify(&vote_bytes(self.chain_id, vote), signature)
            .is_ok();
        Ok(VerificationResult::from_bool(ok))
    }

    async fn verify_signed_proposal(
        &self,
        proposal: &Proposal,
        signature: &Signature,
        public_key: &PublicKey,
    ) -> Result<VerificationResult, SigningError> {
        let ok = public_key
            .verify(&proposal_bytes(self.chain_id, proposal), signature)
            .is_ok();
        Ok(VerificationResult::from_bool(ok))
    }

    async fn verify_signed_vote_extension(
        &self,
        scope: &VoteExtensionScope<LockstepContext>,
        extension: &Bytes,
        signature: &Signature,
        public_key: &PublicKey,
    ) -> Result<VerificationResult, SigningError> {
        let ok = public_key
            .verify(&extension_bytes(self.chain_id, scope, extension), signature)
            .is_ok();
        Ok(VerificationResult::from_bool(ok))
    }

    async fn verify_validator_proof(
        &self,
        proof: &ValidatorProof<LockstepContext>,
    ) -> Result<VerificationResult, SigningError> {
        match proof.decoded_public_key() {
            Ok(pk) => Ok(VerificationResult::from_bool(
                pk.verify(&proof.preimage(), &proof.signature).is_ok(),
            )),
            Err(_) => Ok(VerificationResult::Invalid),
        }
    }
}
