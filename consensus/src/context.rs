//! The Malachite `Context`: heights, addresses, values, validators, proposals and votes.
//!
//! The consensus value is the block hash ([`BlockId`]): the proposal message that Malachite
//! signs and writes to its WAL stays small, and the block itself travels as streamed
//! [`ProposalPart`]s.

use borsh::{BorshDeserialize, BorshSerialize};
use bytes::Bytes;
use lockstep_bundles::{self as bundles, BlockHeader, Hash};
use malachitebft_app_channel::app::types::core::{
    self as mc, LinearTimeouts, NilOrVal, Round, SignedExtension, VoteType, VotingPower,
};
use malachitebft_signing_ed25519::{Ed25519, PublicKey};
use std::fmt;

/// A block height; the first block is height 1.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Height(pub u64);

impl fmt::Display for Height {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl mc::Height for Height {
    const ZERO: Self = Height(0);
    const INITIAL: Self = Height(1);
    fn increment_by(&self, n: u64) -> Self {
        Height(self.0.saturating_add(n))
    }
    fn decrement_by(&self, n: u64) -> Option<Self> {
        self.0.checked_sub(n).map(Height)
    }
    fn as_u64(&self) -> u64 {
        self.0
    }
}

/// A validator address (see [`bundles::Address`]).
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ValidatorAddress(pub bundles::Address);

impl fmt::Display for ValidatorAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl mc::Address for ValidatorAddress {}

/// The consensus value: the hash of a block header.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BlockId(pub Hash);

impl fmt::Display for BlockId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl mc::Value for BlockId {
    type Id = BlockId;
    fn id(&self) -> BlockId {
        *self
    }
}

/// A validator as Malachite sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Validator {
    pub address: ValidatorAddress,
    pub public_key: PublicKey,
    pub voting_power: VotingPower,
}

impl mc::Validator<LockstepContext> for Validator {
    fn address(&self) -> &ValidatorAddress {
        &self.address
    }
    fn public_key(&self) -> &PublicKey {
        &self.public_key
    }
    fn voting_power(&self) -> VotingPower {
        self.voting_power
    }
}

/// The validator set, in the same (address) order as [`bundles::ValidatorSet`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidatorSet {
    validators: Vec<Validator>,
    total: VotingPower,
}

impl ValidatorSet {
    /// Converts the protocol's validator set; fails if a public key is not a curve point.
    pub fn from_bundles(set: &bundles::ValidatorSet) -> Result<ValidatorSet, String> {
        let validators = set
            .validators()
            .iter()
            .map(|v| {
                let public_key = PublicKey::from_bytes(v.public_key).map_err(|e| {
                    format!("validator {}: invalid ed25519 public key: {e}", v.address)
                })?;
                Ok(Validator {
                    address: ValidatorAddress(v.address),
                    public_key,
                    voting_power: v.voting_power,
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok(ValidatorSet {
            validators,
            total: set.total_power(),
        })
    }
}

impl mc::ValidatorSet<LockstepContext> for ValidatorSet {
    fn count(&self) -> usize {
        self.validators.len()
    }
    fn total_voting_power(&self) -> VotingPower {
        self.total
    }
    fn get_by_address(&self, address: &ValidatorAddress) -> Option<&Validator> {
        self.validators
            .binary_search_by_key(address, |v| v.address)
            .ok()
            .map(|i| &self.validators[i])
    }
    fn get_by_index(&self, index: usize) -> Option<&Validator> {
        self.validators.get(index)
    }
}

/// A proposal for a block at `(height, round)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Proposal {
    pub height: Height,
    pub round: Round,
    pub value: BlockId,
    pub pol_round: Round,
    pub proposer: ValidatorAddress,
}

impl mc::Proposal<LockstepContext> for Proposal {
    fn height(&self) -> Height {
        self.height
    }
    fn round(&self) -> Round {
        self.round
    }
    fn value(&self) -> &BlockId {
        &self.value
    }
    fn take_value(self) -> BlockId {
        self.value
    }
    fn pol_round(&self) -> Round {
        self.pol_round
    }
    fn validator_address(&self) -> &ValidatorAddress {
        &self.proposer
    }
}

/// A prevote or precommit. Vote extensions are disabled; equality ignores them as required.
#[derive(Clone, Debug)]
pub struct Vote {
    pub vote_type: VoteType,
    pub height: Height,
    pub round: Round,
    pub value: NilOrVal<BlockId>,
    pub validator: ValidatorAddress,
    pub extension: Option<SignedExtension<LockstepContext>>,
}

impl PartialEq for Vote {
    fn eq(&self, o: &Self) -> bool {
        (
            self.vote_type,
            self.height,
            self.round,
            &self.value,
            self.validator,
        ) == (o.vote_type, o.height, o.round, &o.value, o.validator)
    }
}

impl Eq for Vote {}

impl mc::Vote<LockstepContext> for Vote {
    fn height(&self) -> Height {
        self.height
    }
    fn round(&self) -> Round {
        self.round
    }
    fn value(&self) -> &NilOrVal<BlockId> {
        &self.value
    }
    fn take_value(self) -> NilOrVal<BlockId> {
        self.value
    }
    fn vote_type(&self) -> VoteType {
        self.vote_type
    }
    fn validator_address(&self) -> &ValidatorAddress {
        &self.validator
    }
    fn extension(&self) -> Option<&SignedExtension<LockstepContext>> {
        self.extension.as_ref()
    }
    fn take_extension(&mut self) -> Option<SignedExtension<LockstepContext>> {
        self.extension.take()
    }
    fn extend(self, extension: SignedExtension<LockstepContext>) -> Self {
        Vote {
            extension: Some(extension),
            ..self
        }
    }
}

/// One piece of a streamed block proposal.
///
/// A stream is `Init` (the header), then `Hashes` chunks (the block's bundle hashes, in block
/// order), then `Fin` with the proposer's signature over the block hash at `(height, round)`.
/// A proposal whose hashes fit in one part travels as a single `Whole` part instead: one
/// gossip message per proposal, not four (every message costs each validator an envelope
/// signature check per relayed copy, framing and a wake-up, whatever it carries).
///
/// Proposals are compact: bundles reach every validator by gossip before they are proposed,
/// so a proposal names them by hash, and a validator takes them from its own pool (fetching
/// from peers the few it lacks). The header commits to the hashes (`bundles_root`), and the
/// signature to the header.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum ProposalPart {
    Init {
        round: u32,
        pol_round: i64,
        proposer: bundles::Address,
        header: BlockHeader,
    },
    /// Bundle hashes, in block order.
    Hashes(Vec<Hash>),
    Fin {
        signature: [u8; 64],
    },
    /// `Init`, one `Hashes` part and `Fin` in one message: the whole stream.
    Whole {
        round: u32,
        pol_round: i64,
        proposer: bundles::Address,
        header: BlockHeader,
        hashes: Vec<Hash>,
        signature: [u8; 64],
    },
}

impl mc::ProposalPart<LockstepContext> for ProposalPart {
    fn is_first(&self) -> bool {
        matches!(self, ProposalPart::Init { .. } | ProposalPart::Whole { .. })
    }
    fn is_last(&self) -> bool {
        matches!(self, ProposalPart::Fin { .. } | ProposalPart::Whole { .. })
    }
}

/// The Lockstep context: round-robin proposers over the address-ordered validator set.
#[derive(Clone, Debug)]
pub struct LockstepContext {
    pub chain_id: u64,
}

impl mc::Context for LockstepContext {
    type Address = ValidatorAddress;
    type Height = Height;
    type ProposalPart = ProposalPart;
    type Proposal = Proposal;
    type Validator = Validator;
    type ValidatorSet = ValidatorSet;
    type Timeouts = LinearTimeouts;
    type Value = BlockId;
    type Vote = Vote;
    type Extension = Bytes;
    type SigningScheme = Ed25519;

    fn select_proposer<'a>(
        &self,
        set: &'a ValidatorSet,
        height: Height,
        round: Round,
    ) -> &'a Validator {
        let n = set.validators.len().max(1) as u64;
        let r = u64::from(round.as_u32().unwrap_or(0));
        let i = height.0.wrapping_add(r) % n;
        &set.validators[i as usize]
    }

    fn new_proposal(
        &self,
        height: Height,
        round: Round,
        value: BlockId,
        pol_round: Round,
        address: ValidatorAddress,
    ) -> Proposal {
        Proposal {
            height,
            round,
            value,
            pol_round,
            proposer: address,
        }
    }

    fn new_prevote(
        &self,
        height: Height,
        round: Round,
        value: NilOrVal<BlockId>,
        address: ValidatorAddress,
    ) -> Vote {
        Vote {
            vote_type: VoteType::Prevote,
            height,
            round,
            value,
            validator: address,
            extension: None,
        }
    }

    fn new_precommit(
        &self,
        height: Height,
        round: Round,
        value: NilOrVal<BlockId>,
        address: ValidatorAddress,
    ) -> Vote {
        Vote {
            vote_type: VoteType::Precommit,
            height,
            round,
            value,
            validator: address,
            extension: None,
        }
    }
}
