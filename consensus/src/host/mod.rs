//! The host loop: answers Malachite's requests (propose, validate, decide, sync, restream).
//!
//! One task owns all host state and handles `AppMsg`s one at a time, as Malachite's connector
//! delivers them. Storage is behind [`ChainStore`]; the mempool is shared with the RPC and
//! gossip paths.

use crate::codec::{from_protocol_certificate, to_protocol_certificate};
use crate::context::{
    BlockId, Height, LockstepContext as Ctx, ProposalPart, ValidatorAddress, ValidatorSet,
};
use crate::recorder::Recorder;
use crate::resolve::{resolve, BundleFetch, Unresolved, Waits};
use crate::signing::{LockstepSigner, LockstepVerifier};
use crate::store::{ChainStore, Committed, UndecidedRecord};
use crate::streaming::{split, CompleteStream, Reassembly};
use bytes::Bytes;
use lockstep_bundles::hash::FastMap;
use lockstep_bundles::{Block, BlockHeader, Hash, Limits, SignedBundle};
use lockstep_mempool::{Mempool, Origin};
use malachitebft_app_channel::app::consensus::ProposedValue;
use malachitebft_app_channel::app::engine::host::{HeightParams, Next, SyncedValueOutcome};
use malachitebft_app_channel::app::streaming::StreamMessage;
use malachitebft_app_channel::app::types::core::Validator as _;
use malachitebft_app_channel::app::types::core::ValidatorSet as _;
use malachitebft_app_channel::app::types::core::{
    CommitCertificate, Context as _, ExtendedCommitCertificate, LinearTimeouts, Round, Validity,
    VoteExtensions,
};
use malachitebft_app_channel::app::types::sync::RawDecidedValue;
use malachitebft_app_channel::app::types::{LocallyProposedValue, PeerId};
use malachitebft_app_channel::{AppMsg, Channels, NetworkMsg};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::{mpsc, watch};
use tracing::{debug, error, info, warn};

/// How far in the future (by this node's clock) a proposed block's timestamp may be.
pub const MAX_CLOCK_DRIFT_MS: u64 = 5_000;

/// Everything the host needs to know that does not change while it runs.
#[derive(Clone)]
pub struct HostConfig {
    pub chain_id: u64,
    pub limits: Limits,
    pub address: lockstep_bundles::Address,
    pub validators: lockstep_bundles::ValidatorSet,
    pub timeouts: LinearTimeouts,
    /// Minimum time per height (Malachite's `target_time`); `None` decides as fast as it can.
    pub target_block_time: Option<Duration>,
    /// How long a proposer whose pool is empty waits for a bundle before proposing an empty
    /// block. The first bundle to arrive ends the wait, so on a quiet network a bundle is
    /// proposed as soon as it arrives instead of at the next block-time tick, while an idle
    /// chain still makes (empty) blocks at about this pace. Zero proposes at once. It is kept
    /// below half the propose timeout whatever is configured.
    pub propose_wait: Duration,
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
}

/// A block held for an undecided height.
struct Held {
    block: Block,
    hashes: Vec<Hash>,
    encoded: Bytes,
    from_sync: bool,
}

/// Why a proposal gets no vote from this node.
enum Refused {
    /// It breaks a rule: the node records it as invalid (and votes nil).
    Invalid(String),
    /// Some of its bundles cannot be had: the node records nothing (and, at the propose
    /// timeout, votes nil); if the block is decided anyway, value sync brings it.
    Unavailable(String),
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
    set: ValidatorSet,
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
    /// Future-height streams, validated when their height starts.
    future: Vec<CompleteStream>,
    blocks: FastMap<Hash, Arc<Held>>,
    proposals: BTreeMap<u64, Vec<ProposedValue<Ctx>>>,
    committed: Option<u64>,
    /// Proposals put off by [`HostConfig::propose_wait`] come back here when their wait ends.
    deferred_tx: mpsc::UnboundedSender<Deferred>,
    deferred_rx: mpsc::UnboundedReceiver<Deferred>,
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
        let set = ValidatorSet::from_bundles(&cfg.validators).map_err(|e| eyre::eyre!(e))?;
        let tip_header = store.latest()?;
        let tip = tip_header
            .as_ref()
            .map(|h| Tip {
                height: h.height,
                hash: h.hash(),
                timestamp: h.timestamp,
                synced: false,
            })
            .unwrap_or_default();
        tip_tx.send_replace(tip.clone());
        let (deferred_tx, deferred_rx) = mpsc::unbounded_channel();
        let recorder = Recorder::start(store.clone())?;
        Ok(Host {
            ctx: Ctx {
                chain_id: cfg.chain_id,
            },
            verifier: LockstepVerifier::new(cfg.chain_id),
            streams: Reassembly::new(&cfg.limits),
            set,
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
            future: Vec::new(),
            blocks: FastMap::default(),
            proposals: BTreeMap::new(),
            committed: None,
            deferred_tx,
            deferred_rx,
            cfg,
        })
    }

    fn params(&self) -> HeightParams<Ctx> {
        HeightParams::new(
            self.set.clone(),
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

    /// Answers a `GetValue` now if the pool has bundles (or waiting is off); otherwise waits,
    /// off the host loop, for the first bundle or the end of the propose wait.
    async fn get_value(
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
            let _ = back.send(Deferred {
                height,
                round,
                reply,
            });
        });
        Ok(())
    }

    async fn propose_deferred(
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

    async fn propose_and_reply(
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

    async fn publish(
        &self,
        network: &mpsc::Sender<NetworkMsg<Ctx>>,
        msgs: Vec<StreamMessage<ProposalPart>>,
    ) -> eyre::Result<()> {
        for m in msgs {
            network.send(NetworkMsg::PublishProposalPart(m)).await?;
        }
        Ok(())
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
                let _ = reply.send((Height(start), self.params()));
            }
            AppMsg::StartedRound {
                height,
                round,
                proposer,
                role,
                reply_value,
            } => {
                self.enter(height.0, round_u32(round)).await;
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
                self.decide(&certificate).await;
                let _ = reply.send(());
            }
            AppMsg::Finalized {
                certificate, reply, ..
            } => {
                let h = certificate.height.0;
                let next = if self.committed == Some(h) {
                    Next::Start(Height(h + 1), self.params())
                } else {
                    error!(height = h, "block was not committed; restarting the height");
                    Next::Restart(Height(h), self.params())
                };
                let _ = reply.send(next);
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

    fn load_undecided(&mut self, height: u64) -> eyre::Result<()> {
        for r in self.store.undecided(height)? {
            let pv = ProposedValue {
                height: Height(r.height),
                round: Round::new(r.round),
                valid_round: Round::from(r.valid_round),
                proposer: ValidatorAddress(r.proposer),
                value: BlockId(r.block_hash),
                validity: Validity::from_bool(r.valid),
            };
            if r.valid {
                match hold(r.block.clone(), &self.cfg.limits, false) {
                    Ok(held) => {
                        self.blocks.insert(r.block_hash, Arc::new(held));
                    }
                    Err(e) => warn!(height, "stored proposal does not decode: {e}"),
                }
            }
            self.remember(pv);
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
            self.streams.prune_below(height);
        }
        self.height = height;
        self.round = round;
        let ready: Vec<CompleteStream> = {
            let (now, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.future)
                .into_iter()
                .partition(|s| s.header.height == height);
            self.future = later
                .into_iter()
                .filter(|s| s.header.height > height)
                .collect();
            now
        };
        for s in ready {
            if let Some(pv) = self.validate(s).await {
                self.remember(pv);
            }
        }
    }

    /// The value this node already proposed at `height` and `round`, if any.
    fn own_proposal(&self, height: u64, round: u32) -> Option<BlockId> {
        let me = ValidatorAddress(self.cfg.address);
        self.proposals.get(&height).and_then(|l| {
            l.iter()
                .find(|p| p.round == Round::new(round) && p.proposer == me)
                .map(|p| p.value)
        })
    }

    /// Builds (or rebuilds, after a restart) this node's block for `(height, round)`.
    async fn propose(
        &mut self,
        height: u64,
        round: u32,
    ) -> eyre::Result<(BlockId, Vec<StreamMessage<ProposalPart>>)> {
        let me = ValidatorAddress(self.cfg.address);
        let previous = self.own_proposal(height, round);
        let held = match previous.and_then(|v| self.blocks.get(&v.0).cloned()) {
            Some(h) => h,
            None => {
                let started = std::time::Instant::now();
                let reaped = self
                    .mempool
                    .reap(self.cfg.limits.max_block_bytes as usize, height);
                let reap_ms = started.elapsed().as_secs_f64() * 1e3;
                let hashes: Vec<Hash> = reaped.iter().map(|a| a.hash).collect();
                let encodings: Vec<&[u8]> = reaped.iter().map(|a| &a.encoded[..]).collect();
                let list: Vec<SignedBundle> = reaped.iter().map(|a| (*a.bundle).clone()).collect();
                let timestamp = now_ms().max(self.tip.timestamp);
                let block = Block::build(
                    self.cfg.chain_id,
                    height,
                    timestamp,
                    self.cfg.address,
                    self.tip.hash,
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
        metrics::histogram!("lockstep_consensus_proposed_bundles").record(held.hashes.len() as f64);
        let sig = self.signer.sign_part(height, round, &id, &me);
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

    fn restream(
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
        let sig = self.signer.sign_part(height, r, &value_id, &address);
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

    async fn on_part(
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
    async fn validate(&mut self, s: CompleteStream) -> Option<ProposedValue<Ctx>> {
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
                metrics::counter!("lockstep_consensus_proposals_total", "verdict" => "valid")
                    .increment(1);
                Some(value)
            }
            Err(Refused::Invalid(reason)) => {
                warn!(height = s.header.height, round = s.round, block = %block_hash, "rejecting proposal: {reason}");
                metrics::counter!("lockstep_consensus_proposals_total", "verdict" => "invalid")
                    .increment(1);
                let value = pv(Validity::Invalid);
                self.persist(&value, None).await;
                Some(value)
            }
            Err(Refused::Unavailable(reason)) => {
                warn!(height = s.header.height, round = s.round, block = %block_hash, "cannot vote for proposal: {reason}");
                metrics::counter!("lockstep_consensus_proposals_total", "verdict" => "unavailable")
                    .increment(1);
                None
            }
        }
    }

    async fn check(&self, s: &CompleteStream, block_hash: Hash) -> Result<Held, Refused> {
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
        if !resolved.fetched.is_empty() {
            // Verified here: pending like gossiped bundles, so they are not verified again and
            // this node can hand them on.
            let fetched: Vec<Hash> = resolved.fetched.iter().map(|a| a.hash).collect();
            self.mempool.mark_verified(&fetched);
            self.mempool.insert_many(
                resolved
                    .fetched
                    .into_iter()
                    .map(|a| (a, Origin::Peer))
                    .collect(),
                h.height,
            );
        }
        Ok(Held {
            encoded: Bytes::from(Block::encode_from_parts(&block.header, &resolved.encoded)),
            block,
            hashes: s.hashes.clone(),
            from_sync: false,
        })
    }

    /// The checks of a proposal that need only its header and signature.
    fn check_header(&self, s: &CompleteStream, block_hash: Hash) -> Result<(), String> {
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
        if self
            .set
            .get_by_address(&ValidatorAddress(h.proposer))
            .is_none()
        {
            return Err("block proposer is not a validator".into());
        }
        if h.timestamp < self.tip.timestamp || h.timestamp > now_ms() + MAX_CLOCK_DRIFT_MS {
            return Err(format!("timestamp {} is out of range", h.timestamp));
        }
        Ok(())
    }

    async fn decide(&mut self, certificate: &CommitCertificate<Ctx>) {
        let height = certificate.height.0;
        let hash = certificate.value_id.0;
        let Some(held) = self.blocks.get(&hash).cloned() else {
            error!(height, block = %hash, "decided a block this node does not hold");
            return;
        };
        let cert = to_protocol_certificate(certificate);
        let started = std::time::Instant::now();
        let res = self
            .recorder
            .commit(
                held.block.header.clone(),
                held.encoded.clone(),
                held.hashes.clone(),
                cert,
            )
            .await;
        match res {
            Ok(outcome) => {
                metrics::histogram!("lockstep_store_commit_seconds")
                    .record(started.elapsed().as_secs_f64());
                if outcome == Committed::AlreadyPresent {
                    info!(height, "block already committed (replay)");
                }
                self.mempool.on_commit(height, &held.hashes);
                self.committed = Some(height);
                self.tip = Tip {
                    height,
                    hash,
                    timestamp: held.block.header.timestamp,
                    synced: held.from_sync,
                };
                self.tip_header = Some(held.block.header.clone());
                self.tip_tx.send_replace(self.tip.clone());
                metrics::gauge!("lockstep_consensus_height").set(height as f64);
                metrics::counter!("lockstep_consensus_bundles_committed_total")
                    .increment(held.hashes.len() as u64);
                debug!(height, block = %hash, bundles = held.hashes.len(), "committed");
            }
            Err(e) => error!(height, "commit failed: {e}"),
        }
    }

    fn decided_values(&self, from: u64, to: u64) -> Vec<RawDecidedValue<Ctx>> {
        let mut out = Vec::new();
        let mut bytes = 0usize;
        for h in from..=to {
            let (Ok(Some(block)), Ok(Some(cert))) =
                (self.store.block_bytes(h), self.store.certificate(h))
            else {
                break;
            };
            bytes += block.len();
            let cert = ExtendedCommitCertificate::from_commit_certificate_and_extensions(
                from_protocol_certificate(&cert),
                VoteExtensions::default(),
            );
            out.push(RawDecidedValue::new(Bytes::from(block), cert));
            if bytes >= 8 * 1024 * 1024 {
                break;
            }
        }
        out
    }

    async fn synced(
        &mut self,
        height: u64,
        round: Round,
        proposer: ValidatorAddress,
        bytes: Bytes,
    ) -> SyncedValueOutcome<Ctx> {
        let held = match hold(bytes, &self.cfg.limits, true) {
            Ok(h) => h,
            Err(e) => {
                warn!(height, "synced block is invalid: {e}");
                return SyncedValueOutcome::PeerFault;
            }
        };
        if held.block.header.height != height || held.block.header.chain_id != self.cfg.chain_id {
            return SyncedValueOutcome::PeerFault;
        }
        let pv = ProposedValue {
            height: Height(height),
            round,
            valid_round: Round::Nil,
            proposer,
            value: BlockId(held.block.hash()),
            validity: Validity::Valid,
        };
        if height <= self.tip.height {
            // Consensus decided this height while the synced copy was on its way: there is
            // nothing left to hold or record (consensus ignores the verdict).
            info!(height, "synced value arrived for a height already decided");
            return SyncedValueOutcome::Verdict(pv);
        }
        self.persist(&pv, Some(&held)).await;
        self.blocks.insert(held.block.hash(), Arc::new(held));
        self.remember(pv.clone());
        SyncedValueOutcome::Verdict(pv)
    }
}

/// Decodes a stored or synced block and checks its body against its header.
fn hold(bytes: Bytes, limits: &Limits, from_sync: bool) -> Result<Held, String> {
    let block = Block::decode(&bytes).map_err(|e| e.to_string())?;
    let mut hashes = Vec::with_capacity(block.bundles.len());
    let mut sizes = Vec::with_capacity(block.bundles.len());
    for b in &block.bundles {
        hashes.push(b.hash());
        sizes.push(b.encode().len());
    }
    block
        .check_body(&hashes, &sizes, limits)
        .map_err(|e| e.to_string())?;
    Ok(Held {
        encoded: bytes,
        block,
        hashes,
        from_sync,
    })
}
