//! A peer's proposal: its parts put back together, then checked (header, proposer
//! signature, parent, timestamp, the bundle list against the header, every bundle) before
//! this node votes for it. A proposal that breaks a rule is recorded as invalid (a nil vote);
//! one whose bundles cannot all be had gets no verdict.

use super::{now_ms, Held, Host, MAX_CLOCK_DRIFT_MS};
use crate::context::{BlockId, Height, LockstepContext as Ctx, ProposalPart, ValidatorAddress};
use crate::resolve::{resolve, Unresolved, Waits};
use crate::streaming::CompleteStream;
use bytes::Bytes;
use lockstep_bundles::{Block, Hash};
use malachitebft_app_channel::app::consensus::ProposedValue;
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
        if h > self.height {
            if self.future.len() < 16 {
                self.future.push(stream);
            }
            return None;
        }
        let pv = self.validate(stream).await?;
        self.remember(pv.clone());
        Some(pv)
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
                let value = pv(Validity::Invalid);
                self.persist(&value, None).await;
                Some(value)
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

    /// The checks of a proposal that need only its header and signature.
    pub(super) fn check_header(&self, s: &CompleteStream, block_hash: Hash) -> Result<(), String> {
        let h = &s.header;
        let proposer = ValidatorAddress(s.proposer);
        let expected = self
            .ctx
            .select_proposer(&self.set, Height(h.height), Round::new(s.round));
        if expected.address != proposer {
            return Err(format!(
                "{} is not the proposer of round {}",
                s.proposer, s.round
            ));
        }
        if !self.verifier.verify_part(
            h.height,
            s.round,
            &block_hash,
            &proposer,
            &s.signature,
            expected.public_key(),
        ) {
            return Err("proposer signature does not verify".into());
        }
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
        Ok(())
    }
}
