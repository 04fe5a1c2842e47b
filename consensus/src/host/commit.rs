//! Decided heights: committing a decided block (durable before anything is published),
//! serving decided blocks to peers that sync, taking blocks that arrive by value sync, and
//! reloading the proposals of an undecided height after a restart.

use super::{Held, Host, Tip};
use crate::codec::{from_protocol_certificate, to_protocol_certificate};
use crate::context::{BlockId, Height, LockstepContext as Ctx, ValidatorAddress};
use crate::store::Committed;
use bytes::Bytes;
use lockstep_bundles::{Block, Limits};
use malachitebft_app_channel::app::consensus::ProposedValue;
use malachitebft_app_channel::app::engine::host::SyncedValueOutcome;
use malachitebft_app_channel::app::types::core::{
    CommitCertificate, ExtendedCommitCertificate, Round, Validity, VoteExtensions,
};
use malachitebft_app_channel::app::types::sync::RawDecidedValue;
use std::sync::Arc;
use tracing::{debug, error, info, warn};

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

    pub(super) async fn decide(&mut self, certificate: &CommitCertificate<Ctx>) {
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
                metrics::histogram!(crate::metrics::STORE_COMMIT_SECONDS)
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
                metrics::gauge!(crate::metrics::HEIGHT).set(height as f64);
                metrics::counter!(crate::metrics::BUNDLES_COMMITTED)
                    .increment(held.hashes.len() as u64);
                debug!(height, block = %hash, bundles = held.hashes.len(), "committed");
            }
            Err(e) => error!(height, "commit failed: {e}"),
        }
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
