//! The JSON-RPC v1 server (HTTP and WebSocket on one port).

use crate::admission::{Admission, Source};
use crate::cache::FifoCache;
use crate::store::{Decided, Store};
use bytes::Bytes;
use jsonrpsee::core::server::BatchResponseBuilder;
use jsonrpsee::core::{async_trait, RpcResult, SubscriptionResult};
use jsonrpsee::server::middleware::rpc::{
    Batch, BatchEntry, Notification, Request, RpcServiceBuilder, RpcServiceT,
};
use jsonrpsee::server::{ServerConfig, ServerHandle};
use jsonrpsee::types::ErrorObjectOwned;
use jsonrpsee::{ConnectionId, MethodResponse, PendingSubscriptionSink, SubscriptionMessage};
use lockstep_bundles::hash::{decode_hex, encode_hex};
use lockstep_bundles::{Hash, RollupBatch, ValidatorSet};
use lockstep_client::api::{
    codes, error, BlockJson, BundleJson, BundleStatusJson, HealthJson, RollupBatchJson,
    SeqApiServer, ValidatorJson,
};
use lockstep_consensus::Tip;
use lockstep_mempool::{Mempool, Status};
use lockstep_p2p::BundleGossip;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Everything the RPC methods read.
pub struct RpcState {
    pub chain_id: u64,
    pub store: Arc<Store>,
    pub mempool: Arc<Mempool>,
    pub admission: Arc<Admission>,
    pub tip: watch::Receiver<Tip>,
    pub gossip: Arc<dyn BundleGossip>,
    pub validators: ValidatorSet,
    pub is_validator: bool,
    /// How long a subscriber's full outbound buffer is tolerated before it is dropped.
    pub subscriber_send_timeout: Duration,
    /// Batches already encoded for subscribers, so each is encoded once however many
    /// subscribers receive it.
    pub encoded: Mutex<EncodedBatches>,
    /// When the node started (Unix ms): a node that has committed nothing since is measured
    /// from then for `stalled`.
    pub started_at: u64,
    /// No commit for longer than this is a stall ([`stall_bound`]).
    pub stall_after: Duration,
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

/// Encoded batches per `(rollup, height)`, bounded by count and bytes, oldest evicted first.
pub type EncodedBatches = FifoCache<(u64, u64), Arc<serde_json::value::RawValue>>;

/// Encoded batches kept for subscribers: at most this many…
pub const ENCODED_BATCH_CACHE: usize = 8_192;
/// …and about this many bytes.
pub const ENCODED_BATCH_CACHE_BYTES: usize = 32 * 1024 * 1024;

/// An empty cache of encoded batches with the default bounds.
pub fn encoded_batches() -> Mutex<EncodedBatches> {
    Mutex::new(FifoCache::new(
        ENCODED_BATCH_CACHE,
        ENCODED_BATCH_CACHE_BYTES,
    ))
}

#[derive(Clone)]
pub struct Rpc(pub Arc<RpcState>);

fn internal(e: impl std::fmt::Display) -> ErrorObjectOwned {
    error(-32603, format!("internal error: {e}"))
}

impl RpcState {
    fn batch(&self, rollup_id: u64, height: u64) -> RpcResult<Option<RollupBatchJson>> {
        let Some(d) = self.store.decided(height).map_err(internal)? else {
            return Ok(None);
        };
        Ok(Some(batch_json(&d, rollup_id)))
    }
}

impl RpcState {
    /// The batch as JSON, encoded once and shared by every subscriber.
    fn encoded_batch(
        &self,
        rollup_id: u64,
        height: u64,
    ) -> RpcResult<Option<Arc<serde_json::value::RawValue>>> {
        let key = (rollup_id, height);
        let mut cache = self.encoded.lock();
        if let Some(raw) = cache.get(&key) {
            return Ok(Some(raw));
        }
        let Some(batch) = self.batch(rollup_id, height)? else {
            return Ok(None);
        };
        let raw: Arc<serde_json::value::RawValue> =
            Arc::from(serde_json::value::to_raw_value(&batch).map_err(internal)?);
        metrics::counter!(crate::metrics::BATCH_ENCODINGS).increment(1);
        cache.insert(key, raw.clone(), raw.get().len());
        metrics::gauge!(crate::metrics::BATCH_CACHE_BYTES).set(cache.bytes() as f64);
        Ok(Some(raw))
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
        if let Some((height, index)) = self.0.store.bundle_location(&hash).map_err(internal)? {
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
        let Some(d) = self.0.store.decided(height).map_err(internal)? else {
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
    }

    async fn get_rollup_batch(
        &self,
        rollup_id: u64,
        height: u64,
    ) -> RpcResult<Option<RollupBatchJson>> {
        self.0.batch(rollup_id, height)
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
        let earliest = lockstep_consensus::ChainStore::earliest(&*state.store)
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
        loop {
            let latest = tip.borrow_and_update().height;
            while next <= latest {
                let Some(raw) = state
                    .encoded_batch(rollup_id, next)
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
            validator: self.0.is_validator,
            last_decided_at: tip.committed_at,
            stalled: is_stalled(
                tip.committed_at,
                self.0.started_at,
                now_ms(),
                self.0.stall_after,
            ),
        })
    }

    async fn validators(&self) -> RpcResult<Vec<ValidatorJson>> {
        Ok(self
            .0
            .validators
            .validators()
            .iter()
            .map(|v| ValidatorJson {
                address: v.address,
                public_key: encode_hex(&v.public_key),
                voting_power: v.voting_power,
            })
            .collect())
    }
}

/// Most calls in one JSON-RPC batch request.
pub const MAX_BATCH_CALLS: u32 = 1024;
/// Largest response body (a batch response included).
pub const MAX_RESPONSE_BYTES: u32 = 16 * 1024 * 1024;

/// A per-connection request budget: `rate` calls per second, refilled continuously; each call
/// of a batch request counts. Batch requests are answered with their calls run concurrently
/// (jsonrpsee runs them one after another), so a batch of submissions is admitted as a group.
#[derive(Clone)]
struct RateLimit<S> {
    inner: S,
    rate: u32,
    buckets: Arc<Mutex<HashMap<ConnectionId, (Instant, f64)>>>,
}

impl<S> RateLimit<S> {
    fn allow(&self, conn: ConnectionId) -> bool {
        let mut m = self.buckets.lock();
        let now = Instant::now();
        if m.len() > 100_000 {
            m.retain(|_, (t, _)| now.duration_since(*t) < Duration::from_secs(60));
        }
        let rate = f64::from(self.rate);
        let (last, tokens) = m.entry(conn).or_insert((now, rate));
        *tokens = (*tokens + now.duration_since(*last).as_secs_f64() * rate).min(rate);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

impl<S> RpcServiceT for RateLimit<S>
where
    S: RpcServiceT<
            MethodResponse = MethodResponse,
            BatchResponse = MethodResponse,
            NotificationResponse = MethodResponse,
        > + Clone
        + Send
        + Sync
        + 'static,
{
    type MethodResponse = MethodResponse;
    type NotificationResponse = MethodResponse;
    type BatchResponse = MethodResponse;

    fn call<'a>(&self, req: Request<'a>) -> impl Future<Output = MethodResponse> + Send + 'a {
        let conn = req
            .extensions()
            .get::<ConnectionId>()
            .copied()
            .unwrap_or_default();
        let allowed = self.allow(conn);
        let inner = self.inner.clone();
        async move {
            if allowed {
                inner.call(req).await
            } else {
                metrics::counter!(crate::metrics::RATE_LIMITED).increment(1);
                MethodResponse::error(
                    req.id,
                    error(
                        codes::BUSY,
                        "node busy: rate limit hit for this connection; retry later",
                    ),
                )
            }
        }
    }

    fn batch<'a>(&self, b: Batch<'a>) -> impl Future<Output = MethodResponse> + Send + 'a {
        let this = self.clone();
        async move {
            let mut calls = Vec::with_capacity(b.len());
            let mut got_notification = false;
            for entry in b {
                match entry {
                    Ok(BatchEntry::Call(req)) => {
                        calls.push(futures::future::Either::Left(this.call(req)))
                    }
                    Ok(BatchEntry::Notification(n)) => {
                        got_notification = true;
                        this.inner.notification(n).await;
                    }
                    Err(e) => {
                        let (err, id) = e.into_parts();
                        calls.push(futures::future::Either::Right(std::future::ready(
                            MethodResponse::error(id, err),
                        )));
                    }
                }
            }
            let mut out = BatchResponseBuilder::new_with_limit(MAX_RESPONSE_BYTES as usize);
            for response in futures::future::join_all(calls).await {
                if let Err(too_big) = out.append(response) {
                    return too_big;
                }
            }
            if out.is_empty() && got_notification {
                MethodResponse::notification()
            } else {
                MethodResponse::from_batch(out.finish())
            }
        }
    }

    fn notification<'a>(
        &self,
        n: Notification<'a>,
    ) -> impl Future<Output = MethodResponse> + Send + 'a {
        self.inner.notification(n)
    }
}

/// Starts the server; returns its handle and bound address.
pub async fn serve(
    listen: SocketAddr,
    max_connections: u32,
    max_subscriptions: u32,
    rate: u32,
    connection_buffer: u32,
    rpc: Rpc,
) -> eyre::Result<(ServerHandle, SocketAddr)> {
    let cfg = ServerConfig::builder()
        .max_connections(max_connections)
        .max_subscriptions_per_connection(max_subscriptions)
        .max_request_body_size(4 * 1024 * 1024)
        .max_response_body_size(MAX_RESPONSE_BYTES)
        .set_batch_request_config(jsonrpsee::server::BatchRequestConfig::Limit(
            MAX_BATCH_CALLS,
        ))
        .set_message_buffer_capacity(connection_buffer)
        .build();
    let buckets = Arc::new(Mutex::new(HashMap::new()));
    let mw = RpcServiceBuilder::new().layer_fn(move |inner| RateLimit {
        inner,
        rate,
        buckets: buckets.clone(),
    });
    let server = jsonrpsee::server::Server::builder()
        .set_config(cfg)
        .set_rpc_middleware(mw)
        .build(listen)
        .await
        .map_err(|e| eyre::eyre!("cannot listen for JSON-RPC on {listen}: {e}"))?;
    let addr = server.local_addr()?;
    Ok((server.start(rpc.into_rpc()), addr))
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
