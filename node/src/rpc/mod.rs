//! The JSON-RPC v1 server (HTTP and WebSocket on one port).
//!
//! `mod.rs` holds the methods; [`reads`] runs store reads and JSON encoding on blocking
//! threads; [`limits`] holds who may use how much (call budgets per connection and per client
//! address, connections per address); [`serve`] accepts connections and applies them;
//! [`explorer`] is the web page served beside the API on the same port.

mod explorer;
mod limits;
mod reads;
mod serve;

pub use explorer::CONTENT_SECURITY_POLICY;
pub use limits::{client_key, MAX_TRACKED_BUDGETS};
pub use reads::{Reads, ENCODED_BATCH_CACHE, ENCODED_BATCH_CACHE_BYTES, MAX_BLOCKING_READS};
pub use serve::{serve, MAX_BATCH_CALLS, MAX_REQUEST_BYTES, MAX_RESPONSE_BYTES};

use crate::admission::{Admission, Source};
use crate::store::{Decided, Store};
use bytes::Bytes;
use jsonrpsee::core::{async_trait, RpcResult, SubscriptionResult};
use jsonrpsee::types::ErrorObjectOwned;
use jsonrpsee::{PendingSubscriptionSink, SubscriptionMessage};
use lockstep_bundles::hash::{decode_hex, encode_hex};
use lockstep_bundles::{Hash, RollupBatch, ValidatorSet};
use lockstep_client::api::{
    codes, error, BlockJson, BundleJson, BundleStatusJson, EvidenceJson, HealthJson,
    RollupBatchJson, SeqApiServer, SignedMessageJson, ValidatorJson, ValidatorSetJson,
};
use lockstep_consensus::Tip;
use lockstep_mempool::{Mempool, Status};
use lockstep_p2p::BundleGossip;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Everything the RPC methods read.
pub struct RpcState {
    pub chain_id: u64,
    pub store: Arc<Store>,
    pub mempool: Arc<Mempool>,
    pub admission: Arc<Admission>,
    pub tip: watch::Receiver<Tip>,
    pub gossip: Arc<dyn BundleGossip>,
    /// The validator set of every height.
    pub schedule: Arc<lockstep_consensus::validators::Schedule>,
    /// This node's validator address (whether it votes depends on the height's set).
    pub address: lockstep_bundles::Address,
    /// Whether this node signs where its height's set holds its key (not a full node).
    pub signs: bool,
    /// How long a subscriber's full outbound buffer is tolerated before it is dropped.
    pub subscriber_send_timeout: Duration,
    /// Store reads and encodings off the executor, and the batches already encoded for
    /// subscribers (each is encoded once however many subscribers receive it).
    pub reads: Reads,
    /// When the node started (Unix ms): a node that has committed nothing since is measured
    /// from then for `stalled`.
    pub started_at: u64,
    /// No commit for longer than this is a stall ([`stall_bound`]).
    pub stall_after: Duration,
    /// The equivocations the consensus host has seen.
    pub evidence: lockstep_consensus::evidence::EvidenceLog,
}

/// The least time without a commit that `seq_health` calls a stall.
pub const MIN_STALL: Duration = Duration::from_secs(10);
/// A stall is also at least this many target block times.
pub const STALL_BLOCK_TIMES: u32 = 20;

/// How long without a commit is a stall: `max(10 s, 20 × target block time)`. An idle chain
/// still makes an empty block about every `propose_wait_ms` (100 ms), and a round whose
/// proposer is down costs a propose timeout (1 s) or a few, so a healthy node commits well
/// within it.
pub fn stall_bound(target_block_time: Duration) -> Duration {
    MIN_STALL.max(target_block_time * STALL_BLOCK_TIMES)
}

/// Whether a node is stalled at `now` (Unix ms): its latest commit in this process was at
/// `last_commit`, or it has made none since it started at `started_at`.
pub fn is_stalled(last_commit: Option<u64>, started_at: u64, now: u64, bound: Duration) -> bool {
    let since = last_commit.unwrap_or(started_at).max(started_at);
    u128::from(now.saturating_sub(since)) > bound.as_millis()
}

/// The wall clock, Unix ms.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[derive(Clone)]
pub struct Rpc(pub Arc<RpcState>);

fn internal(e: impl std::fmt::Display) -> ErrorObjectOwned {
    error(-32603, format!("internal error: {e}"))
}

/// The batch for `rollup_id` at `height`, read and converted (a blocking read).
fn batch(store: &Store, rollup_id: u64, height: u64) -> RpcResult<Option<RollupBatchJson>> {
    let Some(d) = store.decided(height).map_err(internal)? else {
        return Ok(None);
    };
    Ok(Some(batch_json(&d, rollup_id)))
}

impl RpcState {
    /// The batch as JSON, encoded once (on a blocking thread) and shared by every subscriber.
    async fn encoded_batch(
        &self,
        rollup_id: u64,
        height: u64,
    ) -> RpcResult<Option<Arc<serde_json::value::RawValue>>> {
        let store = self.store.clone();
        self.reads
            .encoded_batch(rollup_id, height, move || {
                let Some(b) = batch(&store, rollup_id, height)? else {
                    return Ok(None);
                };
                let raw: Arc<serde_json::value::RawValue> =
                    Arc::from(serde_json::value::to_raw_value(&b).map_err(internal)?);
                metrics::counter!(crate::metrics::BATCH_ENCODINGS).increment(1);
                Ok(Some(raw))
            })
            .await
    }
}

fn batch_json(d: &Decided, rollup_id: u64) -> RollupBatchJson {
    let b = RollupBatch::from_block(
        &d.block,
        &d.hashes,
        &d.tree,
        d.certificate.clone(),
        rollup_id,
    );
    lockstep_client::verify::to_json(&b)
}

#[async_trait]
impl SeqApiServer for Rpc {
    async fn chain_id(&self) -> RpcResult<u64> {
        Ok(self.0.chain_id)
    }

    async fn block_number(&self) -> RpcResult<u64> {
        Ok(self.0.tip.borrow().height)
    }

    async fn send_raw_bundle(&self, raw: String) -> RpcResult<Hash> {
        let bytes = decode_hex(&raw).map_err(|e| {
            error(
                codes::UNDECODABLE,
                format!("not decodable as a SignedBundle: parameter is not 0x-prefixed hex ({e})"),
            )
        })?;
        self.0
            .admission
            .submit_bytes(Bytes::from(bytes), Source::Rpc)
            .await
            .map_err(|e| error(e.code(), e.to_string()))
    }

    async fn send_bundle(&self, bundle: BundleJson) -> RpcResult<Hash> {
        let b = lockstep_client::bundle::from_json(&bundle)
            .map_err(|e| error(codes::INVALID_PARAMS, format!("invalid bundle object: {e}")))?;
        let encoded = Bytes::from(b.encode());
        self.0
            .admission
            .submit(b, encoded, Source::Rpc)
            .await
            .map_err(|e| error(e.code(), e.to_string()))
    }

    async fn get_bundle_status(&self, hash: Hash) -> RpcResult<BundleStatusJson> {
        let store = self.0.store.clone();
        let location = self
            .0
            .reads
            .blocking(move || store.bundle_location(&hash).map_err(internal))
            .await?;
        if let Some((height, index)) = location {
            return Ok(BundleStatusJson {
                status: "included".into(),
                height: Some(height),
                index: Some(index),
                reason: None,
            });
        }
        let (status, reason) = match self.0.mempool.status(&hash) {
            Status::Pending => ("pending", None),
            Status::Dropped { reason } => ("dropped", Some(reason)),
            // Included per the mempool but not yet in the index cannot happen: the store is
            // written before the mempool learns of a commit.
            Status::Included { .. } | Status::Unknown => ("unknown", None),
        };
        Ok(BundleStatusJson {
            status: status.into(),
            height: None,
            index: None,
            reason,
        })
    }

    async fn get_block(&self, height: u64) -> RpcResult<Option<BlockJson>> {
        let store = self.0.store.clone();
        self.0
            .reads
            .blocking(move || {
                let Some(d) = store.decided(height).map_err(internal)? else {
                    return Ok(None);
                };
                let h = &d.block.header;
                Ok(Some(BlockJson {
                    height: h.height,
                    hash: h.hash(),
                    parent_hash: h.parent_hash,
                    timestamp: h.timestamp,
                    proposer: h.proposer,
                    bundles: d.hashes.clone(),
                }))
            })
            .await
    }

    async fn get_rollup_batch(
        &self,
        rollup_id: u64,
        height: u64,
    ) -> RpcResult<Option<RollupBatchJson>> {
        let store = self.0.store.clone();
        let found = self
            .0
            .reads
            .blocking(move || batch(&store, rollup_id, height))
            .await?;
        if found.is_none() && rollup_id == lockstep_bundles::SET_UPDATE_ROLLUP {
            // A validator set update's batch is kept with its set after its block is pruned.
            let kept = self
                .0
                .schedule
                .all()
                .iter()
                .find(|s| s.included_at == height)
                .and_then(|s| s.update.as_ref().map(lockstep_client::verify::to_json));
            return Ok(kept);
        }
        Ok(found)
    }

    async fn subscribe_rollup(
        &self,
        pending: PendingSubscriptionSink,
        rollup_id: u64,
        from_height: Option<u64>,
    ) -> SubscriptionResult {
        let state = self.0.clone();
        let mut tip = state.tip.clone();
        let latest = tip.borrow().height;
        let store = state.store.clone();
        let earliest = state
            .reads
            .blocking(move || Ok(lockstep_consensus::ChainStore::earliest(&*store).unwrap_or(0)))
            .await
            .unwrap_or(0)
            .max(1);
        let mut next = from_height.unwrap_or(latest + 1);
        if next == 0 {
            pending
                .reject(error(
                    codes::INVALID_PARAMS,
                    "fromHeight must be at least 1",
                ))
                .await;
            return Ok(());
        }
        if next < earliest {
            pending
                .reject(error(
                    codes::SUBSCRIPTION_REFUSED,
                    format!(
                        "fromHeight {next} is below the oldest height this node keeps ({earliest})"
                    ),
                ))
                .await;
            return Ok(());
        }
        let sink = pending.accept().await?;
        let _open = OpenSubscription::count();
        loop {
            let latest = tip.borrow_and_update().height;
            while next <= latest {
                let Some(raw) = state
                    .encoded_batch(rollup_id, next)
                    .await
                    .map_err(|e| e.message().to_string())?
                else {
                    break;
                };
                let msg = SubscriptionMessage::from(raw.as_ref().to_owned());
                // The connection's outbound buffer is bounded; a subscriber that leaves it full
                // for the whole timeout has fallen behind and is dropped.
                match sink.send_timeout(msg, state.subscriber_send_timeout).await {
                    Ok(()) => {}
                    Err(jsonrpsee::core::server::SendTimeoutError::Closed(_)) => return Ok(()),
                    Err(jsonrpsee::core::server::SendTimeoutError::Timeout(_)) => {
                        metrics::counter!(crate::metrics::SUBSCRIBERS_DROPPED).increment(1);
                        return Err(format!(
                            "subscriber fell behind; last height received {}; resubscribe with fromHeight {}",
                            next.saturating_sub(1),
                            next
                        )
                        .into());
                    }
                }
                next += 1;
            }
            tokio::select! {
                r = tip.changed() => if r.is_err() { return Ok(()) },
                _ = sink.closed() => return Ok(()),
            }
        }
    }

    async fn health(&self) -> RpcResult<HealthJson> {
        let tip = self.0.tip.borrow().clone();
        Ok(HealthJson {
            height: tip.height,
            peers: self.0.gossip.peers() as u64,
            syncing: tip.synced,
            validator: self.0.signs
                && self
                    .0
                    .schedule
                    .at(tip.height + 1)
                    .set
                    .get(&self.0.address)
                    .is_some(),
            last_decided_at: tip.committed_at,
            stalled: is_stalled(
                tip.committed_at,
                self.0.started_at,
                now_ms(),
                self.0.stall_after,
            ),
        })
    }

    async fn validators(&self, height: Option<u64>) -> RpcResult<Vec<ValidatorJson>> {
        let height = match height {
            Some(0) => return Err(error(codes::INVALID_PARAMS, "height must be at least 1")),
            Some(h) => h,
            None => self.0.tip.borrow().height + 1,
        };
        Ok(validators_json(&self.0.schedule.at(height).set))
    }

    async fn get_validator_sets(
        &self,
        from_version: Option<u64>,
    ) -> RpcResult<Vec<ValidatorSetJson>> {
        let from = from_version.unwrap_or(0);
        Ok(self
            .0
            .schedule
            .all()
            .iter()
            .filter(|s| s.version >= from)
            .take(MAX_SETS_PER_CALL)
            .map(|s| ValidatorSetJson {
                version: s.version,
                from_height: s.from_height,
                included_at: s.included_at,
                validators_hash: s.hash,
                validators: validators_json(&s.set),
            })
            .collect())
    }

    async fn get_evidence(&self) -> RpcResult<Vec<EvidenceJson>> {
        Ok(self.0.evidence.list().iter().map(evidence_json).collect())
    }
}

/// Sets answered by one `seq_getValidatorSets` call.
const MAX_SETS_PER_CALL: usize = 256;

fn validators_json(set: &ValidatorSet) -> Vec<ValidatorJson> {
    set.validators()
        .iter()
        .map(|v| ValidatorJson {
            address: v.address,
            public_key: encode_hex(&v.public_key),
            voting_power: v.voting_power,
        })
        .collect()
}

/// One open rollup subscription, counted in `lockstep_rpc_subscribers` while it lives.
struct OpenSubscription;

impl OpenSubscription {
    fn count() -> OpenSubscription {
        metrics::gauge!(crate::metrics::SUBSCRIBERS).increment(1.0);
        OpenSubscription
    }
}

impl Drop for OpenSubscription {
    fn drop(&mut self) {
        metrics::gauge!(crate::metrics::SUBSCRIBERS).decrement(1.0);
    }
}

fn evidence_json(e: &lockstep_consensus::evidence::Evidence) -> EvidenceJson {
    use lockstep_consensus::evidence::{Misbehaviour, SignedProposal, SignedValue};
    let value = |v: &SignedValue| SignedMessageJson {
        value: v.value,
        signature: encode_hex(&v.signature),
        pol_round: None,
        header: None,
    };
    let proposal = |p: &SignedProposal| SignedMessageJson {
        value: Some(p.block_hash()),
        signature: encode_hex(&p.signature),
        pol_round: Some(p.pol_round),
        header: borsh::to_vec(&p.header).ok().map(|b| encode_hex(&b)),
    };
    let (first, second) = match &e.misbehaviour {
        Misbehaviour::Proposal { first, second } => (proposal(first), proposal(second)),
        Misbehaviour::ProposalMessage { first, second }
        | Misbehaviour::Vote { first, second, .. } => (value(first), value(second)),
    };
    EvidenceJson {
        validator: e.validator,
        height: e.height,
        round: e.round,
        kind: e.misbehaviour.label().to_string(),
        first,
        second,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stall_bound_is_ten_seconds_or_twenty_block_times() {
        assert_eq!(stall_bound(Duration::from_millis(30)), MIN_STALL);
        assert_eq!(stall_bound(Duration::ZERO), MIN_STALL);
        assert_eq!(stall_bound(Duration::from_secs(2)), Duration::from_secs(40));
    }

    #[test]
    fn a_node_is_stalled_only_after_the_bound_passes_without_a_commit() {
        let bound = Duration::from_secs(10);
        let start = 1_000_000;
        // Nothing committed since it started: measured from the start.
        assert!(!is_stalled(None, start, start + 10_000, bound));
        assert!(is_stalled(None, start, start + 10_001, bound));
        // A commit restarts the count.
        let last = start + 60_000;
        assert!(!is_stalled(Some(last), start, last + 9_999, bound));
        assert!(is_stalled(Some(last), start, last + 10_001, bound));
        // A clock that went back is not a stall.
        assert!(!is_stalled(Some(last), start, last - 5_000, bound));
    }

    #[test]
    fn health_says_null_before_a_commit_and_the_time_after_one() {
        let mut h = HealthJson {
            height: 3,
            peers: 2,
            syncing: false,
            validator: true,
            last_decided_at: None,
            stalled: true,
        };
        let json = serde_json::to_value(&h).unwrap();
        assert_eq!(json["lastDecidedAt"], serde_json::Value::Null);
        assert_eq!(json["stalled"], true);
        h.last_decided_at = Some(1_700_000_000_123);
        let json = serde_json::to_value(&h).unwrap();
        assert_eq!(json["lastDecidedAt"], 1_700_000_000_123u64);
        // A node from before these fields still parses.
        let old: HealthJson =
            serde_json::from_str(r#"{"height":1,"peers":0,"syncing":false,"validator":false}"#)
                .unwrap();
        assert_eq!((old.last_decided_at, old.stalled), (None, false));
    }
}
