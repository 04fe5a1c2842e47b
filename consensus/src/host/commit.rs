//! Decided heights: committing a decided block (durable before anything is published),
//! serving decided blocks to peers that sync, taking blocks that arrive by value sync, and
//! reloading the proposals of an undecided height after a restart.

use super::{now_ms, Held, Host, Tip};
use crate::codec::{from_protocol_certificate, to_protocol_certificate};
use crate::context::{BlockId, Height, LockstepContext as Ctx, ValidatorAddress};
use crate::store::Committed;
use crate::validators::ScheduledSet;
use bytes::Bytes;
use lockstep_bundles::rollup_tree::RollupTree;
use lockstep_bundles::{Block, Hash, Limits, RollupBatch, SignedSetUpdate, SET_UPDATE_ROLLUP};
use malachitebft_app_channel::app::consensus::ProposedValue;
use malachitebft_app_channel::app::engine::host::SyncedValueOutcome;
use malachitebft_app_channel::app::types::core::{
    CommitCertificate, Context as _, ExtendedCommitCertificate, Round, Validity, VoteExtensions,
};
use malachitebft_app_channel::app::types::sync::RawDecidedValue;
use std::sync::Arc;
use std::time::Duration;
use tracing::{debug, error, info, warn};

/// Times a decided block's commit is tried before the host stops with an error.
pub(super) const COMMIT_ATTEMPTS: u32 = 3;
/// Wait before a commit is tried again, times the attempts made so far.
const COMMIT_RETRY: Duration = Duration::from_millis(100);
/// How long one request to peers for a decided block may take (each peer has 2 s).
const OBTAIN_ATTEMPT: Duration = Duration::from_secs(5);
/// Wait between requests for a decided block: from this…
const OBTAIN_BACKOFF_MIN: Duration = Duration::from_millis(100);
/// …doubling up to this.
const OBTAIN_BACKOFF_MAX: Duration = Duration::from_secs(2);
/// How often a decided block still not obtained is logged (at warn).
const OBTAIN_WARN_EVERY: Duration = Duration::from_secs(5);

impl Host {
    pub(super) fn load_undecided(&mut self, height: u64) -> eyre::Result<()> {
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

    /// Commits the decided block, then publishes it. A height is never restarted (that would
    /// reset its consensus state and WAL, and this node could sign votes conflicting with those
    /// it already sent): a block this node does not hold is taken from its store or fetched
    /// from peers until it has it, and a commit the store keeps refusing stops the host with
    /// an error (fail-stop; a restarted node replays its WAL and decides the height again).
    pub(super) async fn decide(
        &mut self,
        certificate: &CommitCertificate<Ctx>,
    ) -> eyre::Result<()> {
        let height = certificate.height.0;
        let hash = certificate.value_id.0;
        let held = match self.blocks.get(&hash).cloned() {
            Some(held) => held,
            None => {
                warn!(height, block = %hash, "decided a block this node does not hold; getting it");
                let held = self.obtain(height, certificate.round, hash).await;
                self.blocks.insert(hash, held.clone());
                held
            }
        };
        // A decided block's update was checked by a quorum; this node refusing it means its
        // view of the set differs from theirs, and going on would fork its schedule: stop.
        let cert = to_protocol_certificate(certificate);
        let new_set = self.set_update_of(&held.block).map_err(|e| {
            error!(height, block = %hash, "decided block carries a set update this node refuses: {e}");
            eyre::eyre!(
                "the decided block {hash} at height {height} carries a validator set update \
                 this node refuses ({e}); stopping rather than follow another set"
            )
        })?
        .map(|mut set| {
            // Kept with the set, so the update stays provable after the block is pruned.
            let tree = RollupTree::from_block(&held.block, &held.hashes);
            set.update = Some(RollupBatch::from_block(
                &held.block,
                &held.hashes,
                &tree,
                cert.clone(),
                SET_UPDATE_ROLLUP,
            ));
            set
        });
        let started = std::time::Instant::now();
        let mut attempt = 1;
        let outcome = loop {
            let res = self
                .recorder
                .commit(
                    held.block.header.clone(),
                    held.encoded.clone(),
                    held.hashes.clone(),
                    cert.clone(),
                    new_set.as_ref().map(ScheduledSet::record),
                )
                .await;
            match res {
                Ok(outcome) => break outcome,
                Err(e) if attempt < COMMIT_ATTEMPTS => {
                    warn!(height, attempt, "commit failed, retrying: {e}");
                    tokio::time::sleep(COMMIT_RETRY * attempt).await;
                    attempt += 1;
                }
                Err(e) => {
                    error!(height, block = %hash, "commit failed {attempt} times: {e}");
                    return Err(eyre::eyre!(
                        "cannot commit the decided block {hash} at height {height} \
                         ({attempt} attempts): {e}; stopping rather than restart the height \
                         (a restarted node replays its WAL)"
                    ));
                }
            }
        };
        metrics::histogram!(crate::metrics::STORE_COMMIT_SECONDS)
            .record(started.elapsed().as_secs_f64());
        if outcome == Committed::AlreadyPresent {
            info!(height, "block already committed (replay)");
        }
        if let Some(set) = new_set {
            info!(
                height,
                version = set.version,
                from_height = set.from_height,
                validators = set.set.len(),
                "validator set update committed"
            );
            self.cfg.schedule.insert(set);
        }
        self.mempool.on_commit(height, &held.hashes);
        self.committed = Some(height);
        self.tip = Tip {
            height,
            hash,
            timestamp: held.block.header.timestamp,
            synced: held.from_sync,
            committed_at: Some(now_ms()),
        };
        self.tip_header = Some(held.block.header.clone());
        self.tip_tx.send_replace(self.tip.clone());
        metrics::gauge!(crate::metrics::HEIGHT).set(height as f64);
        metrics::counter!(crate::metrics::BUNDLES_COMMITTED).increment(held.hashes.len() as u64);
        debug!(height, block = %hash, bundles = held.hashes.len(), "committed");
        Ok(())
    }

    /// The set the validator set update in `block` makes, if it carries one: refused when it
    /// carries more than one, or one [`Schedule::check`] refuses at its height. A block whose
    /// set this node already recorded (a commit replayed) makes none.
    ///
    /// [`Schedule::check`]: crate::validators::Schedule::check
    pub(super) fn set_update_of(&self, block: &Block) -> Result<Option<ScheduledSet>, String> {
        let height = block.header.height;
        let mut found = None;
        for b in &block.bundles {
            match SignedSetUpdate::from_bundle(b) {
                None => {}
                Some(Err(e)) => return Err(format!("bundle {}: {e}", b.hash())),
                Some(Ok(u)) if found.is_none() => found = Some(u),
                Some(Ok(_)) => {
                    return Err("a block carries at most one validator set update".into())
                }
            }
        }
        let Some(update) = found else {
            return Ok(None);
        };
        if self.cfg.schedule.latest().included_at == height {
            return Ok(None);
        }
        self.cfg
            .schedule
            .check(height, &update)
            .map(Some)
            .map_err(|e| format!("validator set update: {e}"))
    }

    /// The decided block `hash` at `height` (decided in `round`), which this node does not
    /// hold: from the store's proposal records, else from peers, asked again with backoff
    /// until one answers with the block. Consensus has decided it, so there is nothing else
    /// to do at this height meanwhile.
    async fn obtain(&self, height: u64, round: Round, hash: Hash) -> Arc<Held> {
        // A record may still be queued to the writer.
        self.recorder.flush().await;
        match self.store.block_by_hash(&hash) {
            Ok(Some(bytes)) => match self.check_decided(bytes, height, hash) {
                Ok(held) => {
                    info!(height, block = %hash, "decided block taken from the store");
                    return Arc::new(held);
                }
                Err(e) => warn!(height, block = %hash, "stored copy of the decided block: {e}"),
            },
            Ok(None) => {}
            Err(e) => warn!(height, block = %hash, "cannot read the store: {e}"),
        }
        let set = self.cfg.schedule.at(height);
        let proposer = self
            .ctx
            .select_proposer(&set.engine, Height(height), round)
            .address
            .0;
        let started = std::time::Instant::now();
        let mut last_warn = started;
        let mut backoff = OBTAIN_BACKOFF_MIN;
        let mut attempts = 0u64;
        loop {
            attempts += 1;
            // The round's proposer holds the block and is asked first, alone; every other
            // attempt names no one, so peers are asked in turn and a proposer that answers
            // with something else cannot keep the block from this node.
            let prefer = if attempts % 2 == 1 {
                proposer
            } else {
                lockstep_bundles::Address::default()
            };
            let answer =
                tokio::time::timeout(OBTAIN_ATTEMPT, self.fetcher.fetch(vec![hash], prefer))
                    .await
                    .ok()
                    .and_then(|answers| answers.into_iter().next().flatten());
            let why = match answer {
                None => "no peer has it".to_string(),
                Some(bytes) => match self.check_decided(bytes, height, hash) {
                    Ok(held) => {
                        info!(height, block = %hash, attempts, "decided block fetched from peers");
                        return Arc::new(held);
                    }
                    Err(e) => format!("a peer answered with something else: {e}"),
                },
            };
            if last_warn.elapsed() >= OBTAIN_WARN_EVERY {
                last_warn = std::time::Instant::now();
                warn!(
                    height,
                    block = %hash,
                    attempts,
                    waited_s = started.elapsed().as_secs(),
                    "still fetching the decided block: {why}"
                );
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(OBTAIN_BACKOFF_MAX);
        }
    }

    /// `bytes` as the decided block `hash` at `height`: it decodes, is that block, and its
    /// body matches its header (its bundles' signatures are covered by the certificate).
    fn check_decided(&self, bytes: Bytes, height: u64, hash: Hash) -> Result<Held, String> {
        let held = hold(bytes, &self.cfg.limits, false)?;
        let got = held.block.hash();
        if got != hash {
            return Err(format!("block {got}, not {hash}"));
        }
        if held.block.header.height != height || held.block.header.chain_id != self.cfg.chain_id {
            return Err(format!(
                "block for chain {} height {}",
                held.block.header.chain_id, held.block.header.height
            ));
        }
        Ok(held)
    }

    pub(super) fn decided_values(&self, from: u64, to: u64) -> Vec<RawDecidedValue<Ctx>> {
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

    pub(super) async fn synced(
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
        if held.block.header.validators_hash != self.cfg.schedule.at(height).hash {
            warn!(height, "synced block names another validator set");
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
