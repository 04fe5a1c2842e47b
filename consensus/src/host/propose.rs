//! This node's proposals: reaping the pool into a block, waiting briefly for a first bundle
//! when the pool is empty, streaming the proposal as signed parts, and restreaming it when
//! consensus asks (a later round that re-proposes a locked value).

use super::{now_ms, round_u32, Deferred, Held, Host};
use crate::context::{BlockId, Height, LockstepContext as Ctx, ProposalPart, ValidatorAddress};
use crate::streaming::split;
use bytes::Bytes;
use lockstep_bundles::{Block, Hash, SignedBundle, SignedSetUpdate};
use lockstep_mempool::Admitted;
use malachitebft_app_channel::app::consensus::ProposedValue;
use malachitebft_app_channel::app::streaming::StreamMessage;
use malachitebft_app_channel::app::types::core::{Round, Validity};
use malachitebft_app_channel::app::types::LocallyProposedValue;
use malachitebft_app_channel::NetworkMsg;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tracing::{debug, warn};

/// A block's contents before it is built: bundles, their hashes and encodings, its timestamp.
pub(super) struct Contents {
    pub list: Vec<SignedBundle>,
    pub hashes: Vec<Hash>,
    pub encodings: Vec<Bytes>,
    pub timestamp: u64,
}

impl Host {
    /// Answers a `GetValue` now if the pool has bundles (or waiting is off); otherwise waits,
    /// off the host loop, for the first bundle or the end of the propose wait.
    pub(super) async fn get_value(
        &mut self,
        height: u64,
        round: Round,
        timeout: Duration,
        reply: tokio::sync::oneshot::Sender<LocallyProposedValue<Ctx>>,
        network: &mpsc::Sender<NetworkMsg<Ctx>>,
    ) -> eyre::Result<()> {
        let wait = self.cfg.propose_wait.min(timeout / 2);
        let already = self.own_proposal(height, round_u32(round)).is_some();
        if wait.is_zero() || already || self.mempool.size().0 > 0 {
            return self.propose_and_reply(height, round, reply, network).await;
        }
        let mempool = self.mempool.clone();
        let back = self.deferred_tx.clone();
        tokio::spawn(async move {
            mempool.wait_for_any(wait).await;
            let _ = back
                .send(Deferred {
                    height,
                    round,
                    reply,
                })
                .await;
        });
        Ok(())
    }

    pub(super) async fn propose_deferred(
        &mut self,
        d: Deferred,
        network: &mpsc::Sender<NetworkMsg<Ctx>>,
    ) -> eyre::Result<()> {
        if (d.height, round_u32(d.round)) != (self.height, self.round) || d.reply.is_closed() {
            // Consensus moved on while this proposer waited: the value is no longer wanted.
            debug!(height = d.height, round = %d.round, "deferred proposal no longer wanted");
            return Ok(());
        }
        self.propose_and_reply(d.height, d.round, d.reply, network)
            .await
    }

    pub(super) async fn propose_and_reply(
        &mut self,
        height: u64,
        round: Round,
        reply: tokio::sync::oneshot::Sender<LocallyProposedValue<Ctx>>,
        network: &mpsc::Sender<NetworkMsg<Ctx>>,
    ) -> eyre::Result<()> {
        let (value, msgs) = self.propose(height, round_u32(round)).await?;
        let _ = reply.send(LocallyProposedValue::new(Height(height), round, value));
        self.publish(network, msgs).await
    }

    pub(super) async fn publish(
        &self,
        network: &mpsc::Sender<NetworkMsg<Ctx>>,
        msgs: Vec<StreamMessage<ProposalPart>>,
    ) -> eyre::Result<()> {
        for m in msgs {
            network.send(NetworkMsg::PublishProposalPart(m)).await?;
        }
        Ok(())
    }

    /// The value this node already proposed at `height` and `round`, if any.
    pub(super) fn own_proposal(&self, height: u64, round: u32) -> Option<BlockId> {
        let me = ValidatorAddress(self.cfg.address);
        self.proposals.get(&height).and_then(|l| {
            l.iter()
                .find(|p| p.round == Round::new(round) && p.proposer == me)
                .map(|p| p.value)
        })
    }

    /// Builds (or rebuilds, after a restart) this node's block for `(height, round)`.
    pub(super) async fn propose(
        &mut self,
        height: u64,
        round: u32,
    ) -> eyre::Result<(BlockId, Vec<StreamMessage<ProposalPart>>)> {
        let me = ValidatorAddress(self.cfg.address);
        // What this validator proposed here already: remembered from this run or a recorded
        // proposal, or only in its floor (the record was lost with its store).
        let previous = self
            .own_proposal(height, round)
            .or_else(|| self.signer.proposed(height, round));
        if let Some(v) = previous {
            if !self.blocks.contains_key(&v.0) {
                // This validator proposed block `v` here before a restart and no longer holds
                // it: the record was lost (a full disk, a crash before the write) or does not
                // read back. Another block would be a second proposal for this round:
                // re-announce `v` without parts (peers that received them can still vote for
                // it).
                warn!(height, round, block = %v.0, "re-announcing a proposal whose block this node lost");
                return Ok((v, Vec::new()));
            }
        }
        #[cfg(feature = "byzantine")]
        let mut forge_signature = false;
        let held = match previous.and_then(|v| self.blocks.get(&v.0).cloned()) {
            Some(h) => h,
            None => {
                let started = std::time::Instant::now();
                let reaped = self
                    .mempool
                    .reap(self.cfg.limits.max_block_bytes as usize, height);
                #[cfg(feature = "byzantine")]
                let reaped: Vec<_> = reaped
                    .into_iter()
                    .filter(|a| !self.cfg.byzantine.censor.contains(&a.bundle.body.signer))
                    .collect();
                let reaped = self.with_one_set_update(reaped, height);
                let reap_ms = started.elapsed().as_secs_f64() * 1e3;
                #[allow(unused_mut)]
                let mut c = Contents {
                    hashes: reaped.iter().map(|a| a.hash).collect(),
                    encodings: reaped.iter().map(|a| a.encoded.clone()).collect(),
                    list: reaped.iter().map(|a| (*a.bundle).clone()).collect(),
                    timestamp: now_ms().max(self.tip.timestamp),
                };
                #[cfg(feature = "byzantine")]
                if let Some(kind) = self.next_corruption() {
                    self.corrupt(kind, height, &mut c);
                    forge_signature = kind == super::Corruption::ForgedPartSignature;
                }
                let Contents {
                    list,
                    hashes,
                    encodings,
                    timestamp,
                } = c;
                let block = Block::build(
                    self.cfg.chain_id,
                    height,
                    timestamp,
                    self.cfg.address,
                    self.tip.hash,
                    self.cfg.schedule.at(height).hash,
                    list,
                    &hashes,
                );
                let held = Arc::new(Held {
                    encoded: Bytes::from(Block::encode_from_parts(&block.header, &encodings)),
                    block,
                    hashes,
                    from_sync: false,
                });
                let pv = ProposedValue {
                    height: Height(height),
                    round: Round::new(round),
                    valid_round: Round::Nil,
                    proposer: me,
                    value: BlockId(held.block.hash()),
                    validity: Validity::Valid,
                };
                self.persist(&pv, Some(&held)).await;
                self.remember(pv);
                self.blocks.insert(held.block.hash(), held.clone());
                debug!(
                    height,
                    round,
                    bundles = held.hashes.len(),
                    bytes = held.encoded.len(),
                    reap_ms,
                    total_ms = started.elapsed().as_secs_f64() * 1e3,
                    "proposing block"
                );
                held
            }
        };
        let id = BlockId(held.block.hash());
        metrics::histogram!(crate::metrics::PROPOSED_BUNDLES).record(held.hashes.len() as f64);
        let sig = self
            .signer
            .sign_part(height, round, &id, &me)
            .map_err(|e| eyre::eyre!(e))?;
        #[cfg(feature = "byzantine")]
        let sig = if forge_signature {
            self.forge_part_signature(height, round, &id)
        } else {
            sig
        };
        let msgs = split(
            height,
            round,
            -1,
            self.cfg.address,
            held.block.header.clone(),
            &held.hashes,
            sig,
        );
        Ok((id, msgs))
    }

    /// The reaped bundles without the validator set updates this block cannot carry: all but
    /// the first that [`Schedule::check`] takes at `height`. Those left out stay pending (one
    /// may be taken once the update in force now is, or expire).
    ///
    /// [`Schedule::check`]: crate::validators::Schedule::check
    fn with_one_set_update(&self, reaped: Vec<Admitted>, height: u64) -> Vec<Admitted> {
        let mut taken = false;
        reaped
            .into_iter()
            .filter(|a| match SignedSetUpdate::from_bundle(&a.bundle) {
                None => true,
                Some(Ok(u)) if !taken => match self.cfg.schedule.check(height, &u) {
                    Ok(_) => {
                        taken = true;
                        true
                    }
                    Err(e) => {
                        debug!(height, bundle = %a.hash, "set update left out: {e}");
                        false
                    }
                },
                Some(_) => false,
            })
            .collect()
    }

    pub(super) fn restream(
        &self,
        height: u64,
        round: Round,
        valid_round: Round,
        address: ValidatorAddress,
        value_id: BlockId,
    ) -> Option<Vec<StreamMessage<ProposalPart>>> {
        if address.0 != self.cfg.address {
            return None;
        }
        let held = self.blocks.get(&value_id.0)?;
        let r = round_u32(round);
        let sig = match self.signer.sign_part(height, r, &value_id, &address) {
            Ok(sig) => sig,
            Err(e) => {
                tracing::error!("not restreaming: {e}");
                return None;
            }
        };
        Some(split(
            height,
            r,
            valid_round.as_i64(),
            address.0,
            held.block.header.clone(),
            &held.hashes,
            sig,
        ))
    }
}
