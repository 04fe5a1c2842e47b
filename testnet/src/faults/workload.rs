//! What runs against the network while the nemesis works: signers submitting bundles to every
//! validator (the cut-off ones too), a poller recording every node's height, and rollup
//! followers (two per rollup, failing over in opposite orders) recording what they verify.

use super::history::{Ack, FollowedBatch, FollowerRecord, HeightSample, Millis};
use jsonrpsee::core::client::Error as RpcError;
use jsonrpsee::http_client::{HttpClient, HttpClientBuilder};
use lockstep_client::follower::Follower;
use lockstep_client::verify::BatchVerifier;
use lockstep_client::SeqApiClient;
use rand::{Rng, SeedableRng};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Rollups the signers write to and the followers follow.
pub const ROLLUPS: [u64; 2] = [1, 2];
/// How long a submission may take before it counts as unanswered.
const SUBMIT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a height poll may take before the node counts as not answering.
const POLL_TIMEOUT: Duration = Duration::from_millis(1_000);
/// 4006 (busy) is retried this many times, this far apart, before the signer moves on.
const BUSY_RETRIES: u32 = 20;
const BUSY_PAUSE: Duration = Duration::from_millis(100);
/// Heights ahead of the latest that a bundle stays valid (well inside `max_ttl`).
const VALID_FOR: u64 = 1_000;

/// Milliseconds since `t0`.
pub fn since(t0: Instant) -> Millis {
    t0.elapsed().as_millis() as Millis
}

fn http(url: &str, timeout: Duration) -> eyre::Result<HttpClient> {
    HttpClientBuilder::default()
        .request_timeout(timeout)
        .build(url)
        .map_err(|e| eyre::eyre!("rpc client for {url}: {e}"))
}

/// Shared between the workload's tasks and the run.
#[derive(Default)]
pub struct Shared {
    pub acks: Mutex<Vec<Ack>>,
    pub unanswered: AtomicU64,
    pub busy_retries: AtomicU64,
    pub refused: AtomicU64,
    /// The highest height any node has reported (for `valid_until`).
    pub latest: AtomicU64,
    pub heights: Mutex<Vec<HeightSample>>,
    /// One poll at a time, so each node's samples are in the order their answers came.
    poll_lock: tokio::sync::Mutex<()>,
}

/// The signers and the height poller.
pub struct Workload {
    pub shared: Arc<Shared>,
    stop_signers: watch::Sender<bool>,
    stop_poller: watch::Sender<bool>,
    signers: Vec<JoinHandle<()>>,
    poller: JoinHandle<()>,
}

impl Workload {
    /// Starts `signers` signers sending about `rate` bundles a second in all, each to every
    /// node in turn, and the poller.
    pub fn start(
        rpc_urls: Vec<String>,
        chain_id: u64,
        t0: Instant,
        signers: usize,
        rate: f64,
        seed: u64,
    ) -> eyre::Result<Workload> {
        let shared = Arc::new(Shared::default());
        let clients = rpc_urls
            .iter()
            .map(|u| http(u, SUBMIT_TIMEOUT))
            .collect::<eyre::Result<Vec<_>>>()?;
        let pollers = rpc_urls
            .iter()
            .map(|u| http(u, POLL_TIMEOUT))
            .collect::<eyre::Result<Vec<_>>>()?;
        let (stop_signers, stop_rx) = watch::channel(false);
        let period = Duration::from_secs_f64(signers.max(1) as f64 / rate.max(0.1));
        let signers = (0..signers)
            .map(|s| {
                let key = signer_key(seed, s);
                tokio::spawn(sign_and_send(
                    s,
                    key,
                    chain_id,
                    clients.clone(),
                    period,
                    t0,
                    shared.clone(),
                    stop_rx.clone(),
                    seed,
                ))
            })
            .collect();
        let (stop_poller, stop_rx) = watch::channel(false);
        let poller = tokio::spawn(poll_heights(pollers, t0, shared.clone(), stop_rx));
        Ok(Workload {
            shared,
            stop_signers,
            stop_poller,
            signers,
            poller,
        })
    }

    /// Stops submitting (the poller goes on).
    pub async fn stop_signers(&mut self) {
        let _ = self.stop_signers.send(true);
        for s in self.signers.drain(..) {
            let _ = s.await;
        }
    }

    /// Stops everything.
    pub async fn stop(mut self) {
        self.stop_signers().await;
        let _ = self.stop_poller.send(true);
        let _ = self.poller.await;
    }
}

#[allow(clippy::too_many_arguments)]
async fn sign_and_send(
    signer: usize,
    key: ed25519_dalek::SigningKey,
    chain_id: u64,
    nodes: Vec<HttpClient>,
    period: Duration,
    t0: Instant,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
    seed: u64,
) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed ^ (signer as u64).wrapping_mul(0x9e37));
    let mut nonce = 0u64;
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut node = signer % nodes.len();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        if *stop.borrow() {
            return;
        }
        nonce += 1;
        // Most bundles are cross-rollup; some have one leg, for one rollup or the other.
        let legs: Vec<(u64, Vec<u8>)> = match rng.gen_range(0..4) {
            0 => vec![(ROLLUPS[0], vec![signer as u8; 48])],
            1 => vec![(ROLLUPS[1], vec![signer as u8; 48])],
            _ => ROLLUPS
                .iter()
                .map(|r| (*r, vec![signer as u8; 48]))
                .collect(),
        };
        let valid_until = shared.latest.load(Relaxed) + VALID_FOR;
        let bundle = lockstep_client::bundle::sign(&key, chain_id, nonce, valid_until, legs);
        let raw = lockstep_client::bundle::to_raw_hex(&bundle);
        node = (node + 1) % nodes.len();
        let mut tries = 0;
        loop {
            match nodes[node].send_raw_bundle(raw.clone()).await {
                Ok(hash) => {
                    if let Ok(mut a) = shared.acks.lock() {
                        a.push(Ack {
                            hash,
                            node,
                            at: since(t0),
                            signer,
                        });
                    }
                    break;
                }
                Err(RpcError::Call(e)) if e.code() == lockstep_client::api::codes::BUSY => {
                    shared.busy_retries.fetch_add(1, Relaxed);
                    tries += 1;
                    if tries > BUSY_RETRIES || *stop.borrow() {
                        break;
                    }
                    tokio::time::sleep(BUSY_PAUSE).await;
                }
                Err(RpcError::Call(_)) => {
                    shared.refused.fetch_add(1, Relaxed);
                    break;
                }
                Err(_) => {
                    shared.unanswered.fetch_add(1, Relaxed);
                    break;
                }
            }
        }
    }
}

/// Reads every node's height once, now, into the record.
pub async fn poll_now(rpc_urls: &[String], t0: Instant, shared: &Shared) -> eyre::Result<()> {
    let clients = rpc_urls
        .iter()
        .map(|u| http(u, POLL_TIMEOUT))
        .collect::<eyre::Result<Vec<_>>>()?;
    poll_once(&clients, t0, shared).await;
    Ok(())
}

async fn poll_once(nodes: &[HttpClient], t0: Instant, shared: &Shared) {
    let _one = shared.poll_lock.lock().await;
    let polls = nodes.iter().enumerate().map(|(i, c)| async move {
        let h = c.block_number().await.ok();
        (i, h)
    });
    let answers = futures::future::join_all(polls).await;
    let at = since(t0);
    let Ok(mut heights) = shared.heights.lock() else {
        return;
    };
    for (node, height) in answers {
        if let Some(h) = height {
            shared.latest.fetch_max(h, Relaxed);
        }
        heights.push(HeightSample { at, node, height });
    }
}

/// Polls every node's height every 250 ms.
async fn poll_heights(
    nodes: Vec<HttpClient>,
    t0: Instant,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        poll_once(&nodes, t0, &shared).await;
    }
}

/// Rollup followers, two per rollup.
pub struct Followers {
    target: watch::Sender<Option<u64>>,
    tasks: Vec<(Arc<Mutex<FollowerRecord>>, JoinHandle<()>)>,
}

impl Followers {
    /// Starts following every rollup of [`ROLLUPS`] from height 1, each through two followers
    /// that try the nodes in opposite orders.
    pub fn start(ws_urls: &[String], verifier: &BatchVerifier) -> Followers {
        let (target, rx) = watch::channel(None);
        let mut tasks = Vec::new();
        for rollup in ROLLUPS {
            for (name, reversed) in [("a", false), ("b", true)] {
                let mut urls = ws_urls.to_vec();
                if reversed {
                    urls.reverse();
                }
                let f = Follower::new(urls, rollup, Some(1), verifier.clone(), usize::MAX);
                let rec = Arc::new(Mutex::new(FollowerRecord {
                    name: format!("follower-{rollup}{name}"),
                    rollup,
                    batches: Vec::new(),
                    error: None,
                }));
                let task = tokio::spawn(follow(rec.clone(), f, rx.clone()));
                tasks.push((rec, task));
            }
        }
        Followers { target, tasks }
    }

    /// Lets every follower run until it has verified `height`, or until `within` is over.
    pub async fn finish(self, height: u64, within: Duration) -> Vec<FollowerRecord> {
        let _ = self.target.send(Some(height));
        let deadline = tokio::time::Instant::now() + within;
        let mut out = Vec::new();
        for (rec, task) in self.tasks {
            let abort = task.abort_handle();
            let ended = tokio::time::timeout_at(deadline, task).await;
            abort.abort();
            let mut r = rec
                .lock()
                .map(|r| r.clone())
                .unwrap_or_else(|e| e.into_inner().clone());
            if r.error.is_none() {
                match ended {
                    Err(_) => {
                        r.error = Some(format!("did not reach height {height} within {within:?}"))
                    }
                    Ok(Err(e)) => r.error = Some(format!("follower task failed: {e}")),
                    Ok(Ok(())) => {}
                }
            }
            out.push(r);
        }
        out
    }
}

async fn follow(
    rec: Arc<Mutex<FollowerRecord>>,
    mut f: Follower,
    mut target: watch::Receiver<Option<u64>>,
) {
    let last = |rec: &Arc<Mutex<FollowerRecord>>| {
        rec.lock()
            .ok()
            .and_then(|r| r.batches.last().map(|b| b.height))
            .unwrap_or(0)
    };
    loop {
        if target.borrow().is_some_and(|t| last(&rec) >= t) {
            return;
        }
        tokio::select! {
            v = f.next() => {
                let Ok(mut r) = rec.lock() else { return };
                match v {
                    Ok(v) => r.batches.push(FollowedBatch {
                        height: v.json.height,
                        block_hash: v.json.block_hash,
                        bundles: v.json.entries.iter().map(|e| e.bundle_hash).collect(),
                    }),
                    Err(e) => {
                        r.error = Some(e.to_string());
                        return;
                    }
                }
            },
            _ = target.changed() => {}
        }
    }
}

/// Number of signers' bundles in a status poll at once.
pub const STATUS_CONCURRENCY: usize = 64;

/// Asks each acknowledging node for its bundles' statuses.
pub async fn statuses(
    rpc_urls: &[String],
    acks: &[Ack],
) -> eyre::Result<Vec<super::history::AckStatus>> {
    use futures::StreamExt;
    let clients = rpc_urls
        .iter()
        .map(|u| http(u, SUBMIT_TIMEOUT))
        .collect::<eyre::Result<Vec<_>>>()?;
    let out = futures::stream::iter(acks.iter().map(|a| {
        let c = clients[a.node].clone();
        let (hash, node) = (a.hash, a.node);
        async move {
            match c.get_bundle_status(hash).await {
                Ok(s) => super::history::AckStatus {
                    hash,
                    node,
                    status: s.status,
                    height: s.height,
                    reason: s.reason,
                },
                Err(e) => super::history::AckStatus {
                    hash,
                    node,
                    status: format!("error: {e}"),
                    height: None,
                    reason: None,
                },
            }
        }
    }))
    .buffer_unordered(STATUS_CONCURRENCY)
    .collect::<Vec<_>>()
    .await;
    Ok(out)
}

/// Every node's chain, block by block.
pub async fn chains(rpc_urls: &[String]) -> eyre::Result<Vec<super::history::NodeChain>> {
    use futures::StreamExt;
    let mut out = Vec::new();
    for (node, url) in rpc_urls.iter().enumerate() {
        let c = http(url, SUBMIT_TIMEOUT)?;
        let tip = c
            .block_number()
            .await
            .map_err(|e| eyre::eyre!("node{node} does not answer at the end: {e}"))?;
        let earliest = 1u64;
        let blocks = futures::stream::iter((earliest..=tip).map(|h| {
            let c = c.clone();
            async move { (h, c.get_block(h).await) }
        }))
        .buffered(STATUS_CONCURRENCY)
        .collect::<Vec<_>>()
        .await;
        let mut chain = super::history::NodeChain {
            node,
            tip,
            blocks: Vec::new(),
        };
        for (h, b) in blocks {
            match b {
                Ok(Some(b)) => chain.blocks.push(super::history::ChainBlock {
                    height: b.height,
                    hash: b.hash,
                    parent: b.parent_hash,
                    bundles: b.bundles,
                    proposer: b.proposer.to_string(),
                }),
                Ok(None) => {}
                Err(e) => eyre::bail!("node{node}: block {h}: {e}"),
            }
        }
        out.push(chain);
    }
    Ok(out)
}

/// A node's proposal verdicts so far, from its metrics (empty if it does not answer).
pub async fn proposal_verdicts(metrics_url: &str) -> std::collections::BTreeMap<String, u64> {
    let body = match tokio::time::timeout(SUBMIT_TIMEOUT, crate::scrape_metrics(metrics_url)).await
    {
        Ok(Ok(body)) => body,
        _ => return Default::default(),
    };
    crate::metric_series(&body, "lockstep_consensus_proposals_total")
        .into_iter()
        .filter_map(|(labels, value)| {
            let verdict = labels
                .split(',')
                .find_map(|l| l.trim().strip_prefix("verdict="))?
                .trim_matches('"');
            Some((verdict.to_string(), value as u64))
        })
        .collect()
}

/// Each node's `seq_getEvidence` answer (empty for a node that does not answer).
pub async fn evidence(rpc_urls: &[String]) -> Vec<Vec<super::history::EvidenceSeen>> {
    let mut out = Vec::new();
    for url in rpc_urls {
        let seen = match http(url, SUBMIT_TIMEOUT) {
            Ok(c) => c.get_evidence().await.unwrap_or_default(),
            Err(_) => Vec::new(),
        };
        out.push(
            seen.into_iter()
                .map(|e| super::history::EvidenceSeen {
                    validator: e.validator.to_string(),
                    height: e.height,
                    round: e.round,
                    kind: e.kind,
                })
                .collect(),
        );
    }
    out
}

/// A validator's log of signed messages (`signed.jsonl`, and the previous file if rotated).
pub fn signed_log(home: &std::path::Path) -> Vec<super::history::Signed> {
    let mut out = Vec::new();
    for name in ["signed.jsonl.1", "signed.jsonl"] {
        let Ok(text) = std::fs::read_to_string(home.join(name)) else {
            continue;
        };
        for line in text.lines() {
            if let Ok(s) = serde_json::from_str(line) {
                out.push(s);
            }
        }
    }
    out
}

/// A random generator for the nemesis, from the run's seed.
/// The key of the workload's signer `s` in a run with `seed`.
pub fn signer_key(seed: u64, s: usize) -> ed25519_dalek::SigningKey {
    ed25519_dalek::SigningKey::from_bytes(
        &lockstep_bundles::Hash::tagged(
            b"lockstep:fault-signer",
            &[&seed.to_le_bytes(), &(s as u64).to_le_bytes()],
        )
        .0,
    )
}

pub fn rng(seed: u64) -> rand::rngs::StdRng {
    rand::rngs::StdRng::seed_from_u64(seed)
}
