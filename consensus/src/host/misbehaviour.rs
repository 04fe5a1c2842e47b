//! What Malachite's engine saw validators sign twice: its vote keeper's double votes and its
//! proposal keeper's double proposal messages, handed to the host with each finalized height,
//! turned into entries of this node's [`EvidenceLog`] (beside the conflicting proposal streams
//! the host itself sees, `validate.rs`).

use super::Host;
use crate::context::{BlockId, LockstepContext as Ctx, ValidatorAddress};
use crate::evidence::{Evidence, Misbehaviour, SignedValue, VoteKind};
use malachitebft_app_channel::app::consensus::MisbehaviorEvidence;
use malachitebft_app_channel::app::types::core::{NilOrVal, SignedProposal, SignedVote, VoteType};
use tracing::warn;

/// Every double vote and double proposal message in `ev` by a validator of `validators`.
pub(crate) fn engine_evidence(
    validators: &lockstep_bundles::ValidatorSet,
    ev: &MisbehaviorEvidence<Ctx>,
) -> Vec<Evidence> {
    let mut out = Vec::new();
    for v in validators.validators() {
        let who = ValidatorAddress(v.address);
        for (a, b) in ev.votes.get(&who).into_iter().flatten() {
            out.push(Evidence {
                validator: v.address,
                height: a.message.height.0,
                round: a.message.round.as_u32().unwrap_or(0),
                misbehaviour: Misbehaviour::Vote {
                    kind: match a.message.vote_type {
                        VoteType::Prevote => VoteKind::Prevote,
                        VoteType::Precommit => VoteKind::Precommit,
                    },
                    first: vote(a),
                    second: vote(b),
                },
            });
        }
        for (a, b) in ev.proposals.get(&who).into_iter().flatten() {
            out.push(Evidence {
                validator: v.address,
                height: a.message.height.0,
                round: a.message.round.as_u32().unwrap_or(0),
                misbehaviour: Misbehaviour::ProposalMessage {
                    first: proposal(a),
                    second: proposal(b),
                },
            });
        }
    }
    out
}

fn vote(v: &SignedVote<Ctx>) -> SignedValue {
    SignedValue {
        value: match &v.message.value {
            NilOrVal::Val(BlockId(h)) => Some(*h),
            NilOrVal::Nil => None,
        },
        signature: v.signature.to_bytes(),
    }
}

fn proposal(p: &SignedProposal<Ctx>) -> SignedValue {
    SignedValue {
        value: Some(p.message.value.0),
        signature: p.signature.to_bytes(),
    }
}

impl Host {
    /// Records what the engine reports with a finalized height.
    pub(super) fn record_engine_evidence(&self, ev: &MisbehaviorEvidence<Ctx>) {
        if ev.is_empty() {
            return;
        }
        // Reported with the height just finalized: its set signed what the engine saw.
        let set = self.cfg.schedule.at(self.height);
        for e in engine_evidence(&set.set, ev) {
            let label = e.misbehaviour.label();
            let (validator, height, round) = (e.validator, e.height, e.round);
            if self.evidence.record(e) {
                metrics::counter!(crate::metrics::EQUIVOCATIONS, "kind" => label).increment(1);
                warn!(%validator, height, round, kind = label, "a validator signed two {label}s for one round; evidence recorded");
            }
        }
    }
}
