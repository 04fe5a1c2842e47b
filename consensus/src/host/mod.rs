//! The host: Lockstep's side of Malachite. It answers the engine's requests (`AppMsg`):
//! propose, validate, decide, sync, restream.
//!
//! One task owns all host state and handles `AppMsg`s one at a time, as Malachite's connector
//! delivers them. This module holds the state and the dispatch (`run`, `handle`); what each
//! request does lives beside it, as plain methods tested without a running engine:
//!
//! - [`propose`](self::propose): build, defer and restream this node's proposals;
//! - [`validate`](self::validate): reassemble a peer's proposal and check it;
//! - [`commit`](self::commit): decide, serve decided values, take synced ones, reload after a
//!   restart.
//!
//! Storage is behind [`ChainStore`]; the mempool is shared with the RPC and gossip paths.

#[cfg(feature = "byzantine")]
mod byzantine;
mod commit;
mod misbehaviour;
mod propose;
mod validate;

#[cfg(test)]
mod tests;

#[cfg(feature = "byzantine")]
pub use byzantine::{ByzantineProposer, Corruption, Forged};

use crate::context::{Height, LockstepContext as Ctx};
use crate::evidence::{EvidenceLog, SignedProposal};
use crate::recorder::Recorder;
use crate::resolve::BundleFetch;
use crate::signing::{LockstepSigner, LockstepVerifier};
use crate::store::{ChainStore, UndecidedRecord};
use crate::streaming::{FutureStreams, Reassembly};
use crate::validators::Schedule;
use bytes::Bytes;
use lockstep_bundles::hash::FastMap;
use lockstep_bundles::{Block, BlockHeader, Hash, Limits};
use lockstep_mempool::Mempool;
use malachitebft_app_channel::app::consensus::ProposedValue;
use malachitebft_app_channel::app::engine::host::{HeightParams, Next};
use malachitebft_app_channel::app::types::core::{LinearTimeouts, Round};
use malachitebft_app_channel::app::types::LocallyProposedValue;
use malachitebft_app_channel::{AppMsg, Channels, NetworkMsg};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::{mpsc, watch};
use tracing::{debug, error, info};

/// Proposals waiting to come back to the host loop after their propose wait. At most one is
/// waiting per round this node proposes in, so a handful is plenty; a full queue makes the
/// waiting task wait, never the host.
pub const DEFERRED_QUEUE: usize = 16;

/// How far in the future (by this node's clock) a proposed block's timestamp may be.
pub const MAX_CLOCK_DRIFT_MS: u64 = 5_000;

/// Everything the host needs to know that does not change while it runs.
#[derive(Clone)]
pub struct HostConfig {
    pub chain_id: u64,
    pub limits: Limits,
    pub address: lockstep_bundles::Address,
    /// The validator set of every height (shared with the node's admission and RPC).
    pub schedule: Arc<Schedule>,
    /// Where consensus starts when the store holds no block: height 1, or the height a node
    /// joining from a snapshot starts at (it syncs every block from there; 0 means 1).
    pub start_at: u64,
    pub timeouts: LinearTimeouts,
    /// Minimum time per height (Malachite's `target_time`); `None` decides as fast as it can.
    pub target_block_time: Option<Duration>,
    /// How long a proposer whose pool is empty waits for a bundle before proposing an empty
    /// block. The first bundle to arrive ends the wait, so on a quiet network a bundle is
    /// proposed as soon as it arrives instead of at the next block-time tick, while an idle
    /// chain still makes (empty) blocks at about this pace. Zero proposes at once. It is kept
    /// below half the propose timeout whatever is configured.
    pub propose_wait: Duration,
    /// Byzantine test build only: how this node misbehaves as proposer.
    #[cfg(feature = "byzantine")]
    pub byzantine: ByzantineProposer,
}

/// A proposal put off until the pool has a bundle (or the wait is over).
struct Deferred {
    height: u64,
    round: Round,
    reply: tokio::sync::oneshot::Sender<LocallyProposedValue<Ctx>>,
}

/// The latest decided block, published to RPC and subscribers after it is durable.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tip {
    pub height: u64,
    pub hash: Hash,
    pub timestamp: u64,
    /// Whether the latest block arrived through value sync (the node is catching up).
    pub synced: bool,
    /// When this node committed it (local wall clock, Unix ms); `None` for a block committed
    /// before this process started.
    pub committed_at: Option<u64>,
}

/// The proposal taken for a (height, round, proposer), and its verdict once validated (`None`:
/// unavailable, or not validated yet).
struct Received {
    proposal: SignedProposal,
    verdict: Option<ProposedValue<Ctx>>,
}

/// A block held for an undecided height.
struct Held {
    block: Block,
    hashes: Vec<Hash>,
    encoded: Bytes,
    from_sync: bool,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn round_u32(r: Round) -> u32 {
    r.as_u32().unwrap_or(0)
}

pub struct Host {
    cfg: HostConfig,
    ctx: Ctx,
    signer: LockstepSigner,
    verifier: LockstepVerifier,
    /// Reads; every write goes through `recorder`.
    store: Arc<dyn ChainStore>,
    recorder: Recorder,
    mempool: Arc<Mempool>,
    fetcher: Arc<dyn BundleFetch>,
    tip: Tip,
    tip_header: Option<BlockHeader>,
    tip_tx: watch::Sender<Tip>,
    height: u64,
    round: u32,
    streams: Reassembly,
    /// Future-height streams (signed by their round's proposer), validated when their height
    /// starts.
    future: FutureStreams,
    /// The proposal taken at each (height, round, proposer) of the current height, and what
    /// became of it: at most one is stored and validated (see `validate`).
    received: BTreeMap<(u64, u32, lockstep_bundles::Address), Received>,
    /// Equivocations seen (a second, different proposal from a round's proposer).
    evidence: EvidenceLog,
    blocks: FastMap<Hash, Arc<Held>>,
    proposals: BTreeMap<u64, Vec<ProposedValue<Ctx>>>,
    committed: Option<u64>,
    /// Proposals put off by [`HostConfig::propose_wait`] come back here when their wait ends.
    deferred_tx: mpsc::Sender<Deferred>,
    deferred_rx: mpsc::Receiver<Deferred>,
}

impl Host {
    pub fn new(
        cfg: HostConfig,
        signer: LockstepSigner,
        store: Arc<dyn ChainStore>,
        mempool: Arc<Mempool>,
        fetcher: Arc<dyn BundleFetch>,
        tip_tx: watch::Sender<Tip>,
    ) -> eyre::Result<Host> {
        let tip_header = store.latest()?;
        let tip = tip_header
            .as_ref()
            .map(|h| Tip {
                height: h.height,
                hash: h.hash(),
                timestamp: h.timestamp,
                synced: false,
                committed_at: None,
            })
            .unwrap_or_else(|| Tip {
                // Joining from a snapshot: nothing below `start_at` is held or needed (the
                // first block comes by value sync, certified; its parent is not checked).
                height: cfg.start_at.saturating_sub(1),
                synced: cfg.start_at > 1,
                ..Tip::default()
            });
        tip_tx.send_replace(tip.clone());
        let (deferred_tx, deferred_rx) = mpsc::channel(DEFERRED_QUEUE);
        let recorder = Recorder::start(store.clone())?;
        Ok(Host {
            ctx: Ctx {
                chain_id: cfg.chain_id,
            },
            verifier: LockstepVerifier::new(cfg.chain_id),
            streams: Reassembly::new(&cfg.limits),
            signer,
            store,
            recorder,
            mempool,
            fetcher,
            tip,
            tip_header,
            tip_tx,
            height: 0,
            round: 0,
            future: FutureStreams::default(),
            received: BTreeMap::new(),
            evidence: EvidenceLog::new(),
            blocks: FastMap::default(),
            proposals: BTreeMap::new(),
            committed: None,
            deferred_tx,
            deferred_rx,
            cfg,
        })
    }

    /// The record of equivocations this host sees (a handle: it keeps filling while the host
    /// runs).
    pub fn evidence(&self) -> EvidenceLog {
        self.evidence.clone()
    }

    /// What Malachite needs to start `height`: among it, the height's validator set.
    fn params(&self, height: u64) -> HeightParams<Ctx> {
        HeightParams::new(
            self.cfg.schedule.at(height).engine.clone(),
            self.cfg.timeouts,
            self.cfg.target_block_time,
        )
    }

    /// Runs until the engine goes away.
    pub async fn run(mut self, mut channels: Channels<Ctx>) -> eyre::Result<()> {
        loop {
            tokio::select! {
                msg = channels.consensus.recv() => match msg {
                    Some(msg) => self.handle(msg, &channels.network).await?,
                    None => break,
                },
                Some(d) = self.deferred_rx.recv() => {
                    self.propose_deferred(d, &channels.network).await?;
                }
            }
        }
        Err(eyre::eyre!("consensus engine stopped"))
    }

    async fn handle(
        &mut self,
        msg: AppMsg<Ctx>,
        network: &mpsc::Sender<NetworkMsg<Ctx>>,
    ) -> eyre::Result<()> {
        match msg {
            AppMsg::ConsensusReady { reply } => {
                let start = self.tip.height + 1;
                self.load_undecided(start)?;
                info!(height = start, "consensus ready");
                let _ = reply.send((Height(start), self.params(start)));
            }
            AppMsg::StartedRound {
                height,
                round,
                proposer,
                role,
                reply_value,
            } => {
                self.enter(height.0, round_u32(round)).await;
                #[cfg(feature = "byzantine")]
                if self.cfg.byzantine.flood > 0 {
                    let junk = self.flood(height.0, round_u32(round));
                    self.publish(network, junk).await?;
                }
                debug!(height = height.0, round = %round, proposer = %proposer, ?role, "started round");
                let values: Vec<_> = self
                    .proposals
                    .get(&height.0)
                    .map(|v| v.iter().filter(|p| p.round == round).cloned().collect())
                    .unwrap_or_default();
                let _ = reply_value.send(values);
            }
            AppMsg::GetValue {
                height,
                round,
                timeout,
                reply,
            } => {
                self.get_value(height.0, round, timeout, reply, network)
                    .await?;
            }
            AppMsg::ExtendVote { reply, .. } => {
                // Vote extensions are disabled (never requested under that policy).
                let _ = reply.send(None);
            }
            AppMsg::VerifyVoteExtensions {
                extensions, reply, ..
            } => {
                let _ = reply.send(extensions.into_iter().map(|(a, _)| (a, Ok(()))).collect());
            }
            AppMsg::RestreamProposal {
                height,
                round,
                valid_round,
                address,
                value_id,
            } => {
                if let Some(msgs) = self.restream(height.0, round, valid_round, address, value_id) {
                    self.publish(network, msgs).await?;
                }
            }
            AppMsg::GetHistoryMinHeight { reply } => {
                let _ = reply.send(Height(self.store.earliest()?));
            }
            AppMsg::ReceivedProposalPart {
                from,
                published_by,
                part,
                reply,
            } => {
                let value = self.on_part(published_by.unwrap_or(from), part).await;
                let _ = reply.send(value);
            }
            AppMsg::Decided {
                certificate,
                extensions: _,
                reply,
            } => {
                self.decide(&certificate).await?;
                let _ = reply.send(());
            }
            AppMsg::Finalized {
                certificate,
                evidence,
                reply,
                ..
            } => {
                self.record_engine_evidence(&evidence);
                let h = certificate.height.0;
                if self.committed != Some(h) {
                    // `Decided` commits or stops the host, so this is a bug. Restarting the
                    // height would reset its consensus state and WAL, and this node could then
                    // sign votes conflicting with those it sent: stop instead.
                    error!(
                        height = h,
                        "finalized a height that was not committed; stopping"
                    );
                    return Err(eyre::eyre!(
                        "height {h} was finalized but not committed; stopping rather than \
                         restart the height (a restarted node replays its WAL)"
                    ));
                }
                let _ = reply.send(Next::Start(Height(h + 1), self.params(h + 1)));
            }
            AppMsg::GetDecidedValues { range, reply } => {
                let _ = reply.send(self.decided_values(range.start().0, range.end().0));
            }
            AppMsg::ProcessSyncedValue {
                height,
                round,
                proposer,
                value_bytes,
                reply,
            } => {
                let outcome = self.synced(height.0, round, proposer, value_bytes).await;
                let _ = reply.send(outcome);
            }
        }
        Ok(())
    }

    fn remember(&mut self, pv: ProposedValue<Ctx>) {
        let list = self.proposals.entry(pv.height.0).or_default();
        if !list
            .iter()
            .any(|p| p.round == pv.round && p.value == pv.value)
        {
            list.push(pv);
        }
    }

    /// Records a proposal (queued to the store writer; the caller does not wait for it).
    async fn persist(&self, pv: &ProposedValue<Ctx>, held: Option<&Held>) {
        let rec = UndecidedRecord {
            height: pv.height.0,
            round: round_u32(pv.round),
            valid_round: pv.valid_round.as_i64(),
            proposer: pv.proposer.0,
            block_hash: pv.value.0,
            valid: pv.validity.to_bool(),
            block: held.map(|h| h.encoded.clone()).unwrap_or_default(),
        };
        self.recorder.record(rec).await;
    }

    async fn enter(&mut self, height: u64, round: u32) {
        if height != self.height {
            self.blocks.retain(|_, b| b.block.header.height >= height);
            self.proposals = self.proposals.split_off(&height);
            self.received =
                self.received
                    .split_off(&(height, 0, lockstep_bundles::Address::default()));
            self.streams.prune_below(height);
        }
        self.height = height;
        self.round = round;
        for s in self.future.take(height) {
            self.take(s).await;
        }
    }
}
