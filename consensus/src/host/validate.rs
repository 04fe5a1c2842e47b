//! A peer's proposal: its parts put back together, then checked (header, proposer
//! signature, parent, timestamp, the bundle list against the header, every bundle) before
//! this node votes for it. A proposal that breaks a rule is invalid (a nil vote; not
//! recorded: Malachite's WAL keeps the verdict); one whose bundles cannot all be had gets no
//! verdict.
//!
//! Bounded work (ADR-023): a stream is looked at only once it is signed by its round's
//! proposer (so junk from any peer costs one signature check and takes no room), for a round
//! within Malachite's lookahead; at most one proposal per (height, round, proposer) is stored
//! and validated; the same one again gets the same verdict without work, and a different one
//! is evidence of equivocation, recorded with both signed proposals and not validated.

use super::{now_ms, Held, Host, Received, MAX_CLOCK_DRIFT_MS};
use crate::context::{BlockId, Height, LockstepContext as Ctx, ProposalPart, ValidatorAddress};
use crate::evidence::{Evidence, Misbehaviour, SignedProposal};
use crate::resolve::{resolve, Unresolved, Waits};
use crate::streaming::{Buffered, CompleteStream};
use bytes::Bytes;
use lockstep_bundles::{Block, Hash};
use malachitebft_app_channel::app::consensus::ProposedValue;
use malachitebft_app_channel::app::consensus::MAX_FUTURE_ROUND_LOOKAHEAD;
use malachitebft_app_channel::app::streaming::StreamMessage;
use malachitebft_app_channel::app::types::core::Validator as _;
use malachitebft_app_channel::app::types::core::{Context as _, Round, Validity};
use malachitebft_app_channel::app::types::PeerId;
use std::sync::Arc;
use tracing::{debug, warn};

/// Why a proposal gets no vote from this node.
pub(super) enum Refused {
    /// It breaks a rule: the node records it as invalid (and votes nil).
    Invalid(String),
    /// Some of its bundles cannot be had: the node records nothing (and, at the propose
    /// timeout, votes nil); if the block is decided anyway, value sync brings it.
    Unavailable(String),
}

impl Host {
    pub(super) async fn on_part(
        &mut self,
        peer: PeerId,
        part: StreamMessage<ProposalPart>,
    ) -> Option<ProposedValue<Ctx>> {
        let stream = match self.streams.insert(peer, part) {
            Ok(Some(s)) => s,
            Ok(None) => return None,
            Err(e) => {
                warn!(%peer, "dropped proposal stream: {e}");
                return None;
            }
        };
        let h = stream.header.height;
        // A height already committed is past, even before consensus moves to the next one
        // (a late round's proposal for it, often the decided block itself, is no news).
        if h < self.height || h <= self.tip.height {
            return None;
        }
        // Only what the round's proposer signed takes any room or work (one signature check
        // for anything else). A future height's set is known up to the update delay ahead,
        // and its streams are authenticated again when it starts.
        if let Err(reason) = self.authenticate(&stream, stream.header.hash()) {
            debug!(%peer, height = h, round = stream.round, "dropped proposal stream: {reason}");
            metrics::counter!(crate::metrics::PROPOSALS, "verdict" => "unsigned").increment(1);
            return None;
        }
        if h > self.height {
            if let Buffered::Conflict(held) = self.future.insert(stream.clone()) {
                self.equivocation(signed(&held), signed(&stream));
            }
            return None;
        }
        if u64::from(stream.round) > u64::from(self.round) + u64::from(MAX_FUTURE_ROUND_LOOKAHEAD) {
            // Malachite drops the proposal message for such a round too.
            debug!(%peer, height = h, round = stream.round, "dropped proposal beyond the round lookahead");
            metrics::counter!(crate::metrics::PROPOSALS, "verdict" => "beyond_lookahead")
                .increment(1);
            return None;
        }
        self.take(stream).await
    }

    /// A proposal signed by its round's proposer, at the current height: validated if it is
    /// the first for its (height, round, proposer); the same one again gets its verdict; a
    /// different one is evidence and gets none.
    pub(super) async fn take(&mut self, s: CompleteStream) -> Option<ProposedValue<Ctx>> {
        let key = (s.header.height, s.round, s.proposer);
        let proposal = signed(&s);
        if let Some(first) = self.received.get(&key) {
            if first.proposal.block_hash() == proposal.block_hash() {
                return first.verdict.clone();
            }
            let first = first.proposal.clone();
            self.equivocation(first, proposal);
            return None;
        }
        self.received.insert(
            key,
            Received {
                proposal,
                verdict: None,
            },
        );
        let pv = self.validate(s).await;
        if let Some(r) = self.received.get_mut(&key) {
            r.verdict = pv.clone();
        }
        if let Some(pv) = &pv {
            self.remember(pv.clone());
        }
        pv
    }

    /// Records a second, different proposal signed by a round's proposer: counted, logged
    /// once, and kept with the first in the evidence record.
    fn equivocation(&self, first: SignedProposal, second: SignedProposal) {
        let evidence = Evidence {
            validator: first.proposer,
            height: first.height,
            round: first.round,
            misbehaviour: Misbehaviour::Proposal { first, second },
        };
        let (validator, height, round) = (evidence.validator, evidence.height, evidence.round);
        if self.evidence.record(evidence) {
            metrics::counter!(crate::metrics::EQUIVOCATIONS, "kind" => "proposal").increment(1);
            warn!(
                %validator,
                height,
                round,
                "equivocation: the proposer signed two different proposals for one round; \
                 only the first is validated"
            );
        }
    }

    /// Checks a complete stream; an invalid block yields an `Invalid` value (a nil vote), one
    /// whose bundles cannot all be had yields nothing.
    pub(super) async fn validate(&mut self, s: CompleteStream) -> Option<ProposedValue<Ctx>> {
        let block_hash = s.header.hash();
        let pv = |validity| ProposedValue {
            height: Height(s.header.height),
            round: Round::new(s.round),
            valid_round: Round::from(s.pol_round),
            proposer: ValidatorAddress(s.proposer),
            value: BlockId(block_hash),
            validity,
        };
        let started = std::time::Instant::now();
        let verdict = self.check(&s, block_hash).await;
        match verdict {
            Ok(held) => {
                let checked = started.elapsed();
                let value = pv(Validity::Valid);
                self.persist(&value, Some(&held)).await;
                debug!(
                    height = s.header.height,
                    round = s.round,
                    bundles = held.hashes.len(),
                    check_ms = checked.as_secs_f64() * 1e3,
                    total_ms = started.elapsed().as_secs_f64() * 1e3,
                    "proposal valid"
                );
                self.blocks.insert(block_hash, Arc::new(held));
                metrics::counter!(crate::metrics::PROPOSALS, "verdict" => "valid").increment(1);
                Some(value)
            }
            Err(Refused::Invalid(reason)) => {
                warn!(height = s.header.height, round = s.round, block = %block_hash, "rejecting proposal: {reason}");
                metrics::counter!(crate::metrics::PROPOSALS, "verdict" => "invalid").increment(1);
                // Not recorded: nothing of it is needed to vote or commit, Malachite's WAL
                // keeps the verdict, and a store write per invalid proposal is work a faulty
                // proposer could make this node do.
                Some(pv(Validity::Invalid))
            }
            Err(Refused::Unavailable(reason)) => {
                warn!(height = s.header.height, round = s.round, block = %block_hash, "cannot vote for proposal: {reason}");
                metrics::counter!(crate::metrics::PROPOSALS, "verdict" => "unavailable")
                    .increment(1);
                None
            }
        }
    }

    pub(super) async fn check(
        &self,
        s: &CompleteStream,
        block_hash: Hash,
    ) -> Result<Held, Refused> {
        self.check_header(s, block_hash).map_err(Refused::Invalid)?;
        let h = &s.header;
        let limits = self.cfg.limits;
        // The list must be the one the header commits to before any bundle is looked for.
        if s.hashes.len() != h.bundle_count as usize
            || lockstep_bundles::block::bundles_root(&s.hashes) != h.bundles_root
        {
            return Err(Refused::Invalid(
                "bundle hashes do not match the header".into(),
            ));
        }
        let resolved = resolve(
            &self.mempool,
            self.fetcher.as_ref(),
            s.proposer,
            &s.hashes,
            &limits,
            Waits::default(),
        )
        .await
        .map_err(|e| match e {
            Unresolved::Included { hash, height } => Refused::Invalid(format!(
                "bundle {hash} was already included at height {height}"
            )),
            Unresolved::Missing(n) => Refused::Unavailable(format!(
                "{n} of its {} bundles are neither pending here nor at any peer",
                s.hashes.len()
            )),
        })?;
        let sizes: Vec<usize> = resolved.encoded.iter().map(Bytes::len).collect();
        let block = Block {
            header: h.clone(),
            bundles: resolved.bundles,
        };
        block
            .check_body(&s.hashes, &sizes, &limits)
            .map_err(|e| Refused::Invalid(e.to_string()))?;
        self.set_update_of(&block).map_err(Refused::Invalid)?;
        // Verified here: pending like gossiped bundles, so they are not verified again and
        // this node can hand them on.
        self.mempool
            .insert_from_proposal(resolved.fetched, h.height);
        Ok(Held {
            encoded: Bytes::from(Block::encode_from_parts(&block.header, &resolved.encoded)),
            block,
            hashes: s.hashes.clone(),
            from_sync: false,
        })
    }

    /// Whether `s` comes from its round's proposer: the proposer it names is the round's, and
    /// its signature over `block_hash` verifies with that validator's key.
    pub(super) fn authenticate(&self, s: &CompleteStream, block_hash: Hash) -> Result<(), String> {
        let proposer = ValidatorAddress(s.proposer);
        // Exact up to the latest height plus the update delay; a stream for a later height
        // is authenticated again when its height starts.
        let set = self.cfg.schedule.at(s.header.height);
        let expected =
            self.ctx
                .select_proposer(&set.engine, Height(s.header.height), Round::new(s.round));
        if expected.address != proposer {
            return Err(format!(
                "{} is not the proposer of round {}",
                s.proposer, s.round
            ));
        }
        if !self.verifier.verify_part(
            s.header.height,
            s.round,
            &block_hash,
            &proposer,
            &s.signature,
            expected.public_key(),
        ) {
            return Err("proposer signature does not verify".into());
        }
        Ok(())
    }

    /// The checks of a proposal that need only its header and signature.
    pub(super) fn check_header(&self, s: &CompleteStream, block_hash: Hash) -> Result<(), String> {
        let h = &s.header;
        self.authenticate(s, block_hash)?;
        if h.chain_id != self.cfg.chain_id {
            return Err(format!("block is for chain {}", h.chain_id));
        }
        if h.height != self.tip.height + 1 || h.parent_hash != self.tip.hash {
            return Err(format!(
                "block {} does not extend the latest block {}",
                h.height, self.tip.height
            ));
        }
        // The header names who proposed the block (what `seq_getBlock` reports): it must be
        // the validator who streamed and signed it, not anyone else in the set.
        if h.proposer != s.proposer {
            return Err(format!(
                "block names {} as its proposer, but {} proposed it",
                h.proposer, s.proposer
            ));
        }
        if h.timestamp < self.tip.timestamp || h.timestamp > now_ms() + MAX_CLOCK_DRIFT_MS {
            return Err(format!("timestamp {} is out of range", h.timestamp));
        }
        let set = self.cfg.schedule.at(h.height);
        if h.validators_hash != set.hash {
            return Err(format!(
                "validators_hash {} is not the hash of height {}'s set (version {}, {})",
                h.validators_hash, h.height, set.version, set.hash
            ));
        }
        Ok(())
    }
}

/// What `s`'s proposer signed.
fn signed(s: &CompleteStream) -> SignedProposal {
    SignedProposal {
        height: s.header.height,
        round: s.round,
        proposer: s.proposer,
        pol_round: s.pol_round,
        header: s.header.clone(),
        signature: s.signature,
    }
}
