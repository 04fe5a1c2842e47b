//! The benchmark: open-loop load over JSON-RPC spread across all validators of a real local
//! network, measured per bundle from sending to a verifying rollup subscriber receiving it.

use crate::Cluster;
use eyre::eyre;
use hdrhistogram::Histogram;
use lockstep_bundles::sig::Item;
use lockstep_bundles::Hash;
use lockstep_client::follower::Subscriber;
use lockstep_client::SeqApiClient;
use serde::Serialize;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

/// Most requests in flight from the load generator; beyond it the generator waits (and the
/// run reports how late it fell behind its schedule).
pub const MAX_IN_FLIGHT: usize = 4096;
/// How often the open-loop sender sends what has come due.
const TICK: Duration = Duration::from_millis(5);
/// Most calls in one batch request (the node accepts up to 1024).
const BATCH_CALLS: usize = 512;
/// Most hex bytes of bundles in one batch request (the node accepts 4 MiB bodies).
const BATCH_BYTES: usize = 3 * 1024 * 1024;
/// Bundles pending from one signer are capped by the mempool; spread the load over signers.
const BUNDLES_PER_SIGNER: usize = 400;

/// One load run.
#[derive(Debug, Clone)]
pub struct RunSpec {
    pub legs: usize,
    pub leg_bytes: usize,
    pub rate: f64,
    pub duration: Duration,
    /// How long to wait for the last deliveries after the load stops.
    pub drain: Duration,
    /// The validators' `consensus.target_block_time_ms` (a network setting, recorded with
    /// the results because latency depends on it).
    pub block_time_ms: u64,
    /// The validators' `consensus.propose_wait_ms`.
    pub propose_wait_ms: u64,
    /// The validators' `gossip.publish_linger_ms`.
    pub publish_linger_ms: u64,
    /// The validators' `history.keep_heights` (0 keeps every height).
    pub keep_heights: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Percentiles {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

impl Percentiles {
    /// From a histogram of microseconds.
    fn of(h: &Histogram<u64>) -> Percentiles {
        let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
        Percentiles {
            p50: ms(0.5),
            p90: ms(0.9),
            p99: ms(0.99),
            max: h.max() as f64 / 1000.0,
        }
    }
}

/// A histogram of microseconds, from 1 µs to 10 minutes at 3 significant digits.
fn micros_histogram() -> eyre::Result<Histogram<u64>> {
    Ok(Histogram::<u64>::new_with_bounds(1, 600_000_000, 3)?)
}

/// This machine's wall clock in microseconds (block timestamps are wall-clock milliseconds).
fn wall_clock_us() -> eyre::Result<f64> {
    Ok(std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_micros() as f64)
}

/// Latency cut at the block's timestamp (the proposer's clock when it built the block; every
/// process shares this machine's clock, at millisecond resolution).
#[derive(Debug, Clone, Serialize)]
pub struct LatencySplit {
    /// From when the bundle was due to the proposal that included it: sending, admission,
    /// gossip, and waiting in the pool for a proposer.
    pub due_to_block: Percentiles,
    /// From the proposal to the subscriber: consensus, commit, and delivery.
    pub block_to_delivery: Percentiles,
    /// Between consecutive blocks' timestamps, every height of the run counted (empty ones
    /// too): long intervals are heights that were slow to decide, not bundles slow to arrive.
    pub block_interval: Percentiles,
}

#[derive(Debug, Clone, Serialize)]
pub struct NodeUsage {
    pub name: String,
    pub cpu_s: f64,
    pub rss_mb_max: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct RunResult {
    pub validators: usize,
    pub target_block_time_ms: u64,
    pub propose_wait_ms: u64,
    pub publish_linger_ms: u64,
    pub keep_heights: u64,
    pub legs: usize,
    pub leg_bytes: usize,
    pub offered_per_s: f64,
    pub sent: u64,
    pub accepted: u64,
    pub rejected: u64,
    pub delivered: u64,
    pub delivered_bundles_per_s: f64,
    pub delivered_mb_per_s: f64,
    pub latency_ms: Percentiles,
    pub latency_split_ms: LatencySplit,
    pub raw_verify_per_s: f64,
    pub ceiling_bundles_per_s: f64,
    pub ratio_to_ceiling: f64,
    pub schedule_lag_ms_max: f64,
    pub nodes: Vec<NodeUsage>,
    pub rss_mb_max: f64,
    pub heights: u64,
    pub duration_s: f64,
}

/// Splits bundles (hex) into batch requests of at most [`BATCH_CALLS`] calls and
/// [`BATCH_BYTES`] bytes (a bundle larger than that goes alone).
fn split_batches(group: Vec<String>) -> Vec<Vec<String>> {
    let mut out: Vec<Vec<String>> = Vec::new();
    let mut bytes = 0usize;
    for r in group {
        match out.last_mut() {
            Some(b) if b.len() < BATCH_CALLS && bytes + r.len() <= BATCH_BYTES => {
                bytes += r.len();
                b.push(r);
            }
            _ => {
                bytes = r.len();
                out.push(vec![r]);
            }
        }
    }
    out
}

/// Sends one JSON-RPC batch of `seq_sendRawBundle` calls and counts the outcomes.
fn send_batch(
    client: jsonrpsee::http_client::HttpClient,
    batch: Vec<String>,
    permit: tokio::sync::OwnedSemaphorePermit,
    sent: &Arc<std::sync::atomic::AtomicUsize>,
    accepted: &Arc<std::sync::atomic::AtomicU64>,
    rejected: &Arc<std::sync::atomic::AtomicU64>,
) {
    use jsonrpsee::core::client::ClientT;
    use std::sync::atomic::Ordering::Relaxed;
    let (sent, accepted, rejected) = (sent.clone(), accepted.clone(), rejected.clone());
    tokio::spawn(async move {
        let n = batch.len();
        sent.fetch_add(n, Relaxed);
        let mut request = jsonrpsee::core::params::BatchRequestBuilder::new();
        for raw in batch {
            if request
                .insert("seq_sendRawBundle", jsonrpsee::rpc_params![raw])
                .is_err()
            {
                rejected.fetch_add(1, Relaxed);
            }
        }
        match client.batch_request::<Hash>(request).await {
            Ok(r) => {
                accepted.fetch_add(r.num_successful_calls() as u64, Relaxed);
                rejected.fetch_add(r.num_failed_calls() as u64, Relaxed);
            }
            Err(_) => {
                rejected.fetch_add(n as u64, Relaxed);
            }
        }
        drop(permit);
    });
}

/// How many times the raw verification rate is measured; the median is reported, since this
/// machine's speed drifts between seconds.
pub const RAW_VERIFY_REPEATS: usize = 5;

/// The machine's raw ed25519 batch-verification rate on all cores (signatures/s): the median
/// of [`RAW_VERIFY_REPEATS`] passes over `samples` signatures.
pub fn raw_verify_rate(samples: usize) -> f64 {
    let items: Vec<Item> = (0..samples)
        .map(|i| {
            let k = ed25519_dalek::SigningKey::from_bytes(
                &Hash::tagged(b"raw", &[&(i % 256).to_le_bytes()]).0,
            );
            let msg = Hash::tagged(b"msg", &[&i.to_le_bytes()]).0;
            use ed25519_dalek::Signer;
            Item {
                pk: k.verifying_key().to_bytes(),
                msg,
                sig: k.sign(&msg).to_bytes(),
            }
        })
        .collect();
    let mut rates: Vec<f64> = (0..RAW_VERIFY_REPEATS)
        .map(|_| lockstep_node::admission::raw_verify_rate(&items))
        .collect();
    rates.sort_by(f64::total_cmp);
    rates[rates.len() / 2]
}

fn proc_cpu_s(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .unwrap_or(100) as f64;
    Some(ticks / hz)
}

/// Resident set size of process `pid`, in MB.
pub fn proc_rss_mb(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// Runs one open-loop load against a running cluster.
pub async fn run_once(
    cluster: &Cluster,
    spec: &RunSpec,
    raw_verify_per_s: f64,
    salt: u64,
    progress: Option<&indicatif::ProgressBar>,
) -> eyre::Result<RunResult> {
    let n = cluster.nodes.len();
    let clients = (0..n)
        .map(|i| cluster.http(i))
        .collect::<eyre::Result<Vec<_>>>()?;
    let start_height = clients[0].block_number().await?;
    let total = ((spec.rate * spec.duration.as_secs_f64()).round() as usize).max(1);
    let bundles = lockstep_client::bundle::sign_many(lockstep_client::bundle::LoadSpec {
        chain_id: cluster.chain_id,
        valid_until: start_height + cluster.genesis.limits.max_ttl / 2,
        count: total,
        legs: spec.legs,
        leg_bytes: spec.leg_bytes,
        per_signer: BUNDLES_PER_SIGNER,
        salt,
    });
    let raw: Vec<String> = bundles
        .iter()
        .map(lockstep_client::bundle::to_raw_hex)
        .collect();
    let hashes: Vec<Hash> = bundles.iter().map(|b| b.hash()).collect();
    drop(bundles);

    let mut sub = Subscriber::connect(
        &cluster.nodes[0].ws_url(),
        1,
        Some(start_height + 1),
        cluster.verifier()?,
    )
    .await?;
    // Bundle i is due at t0 + i / rate; latency counts from when it was due, not from when
    // the sender got to it, so a sender falling behind shows up as latency.
    let index: HashMap<Hash, usize> = hashes.iter().enumerate().map(|(i, h)| (*h, i)).collect();
    let sent = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let accepted = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let rejected = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let pids: Vec<Option<u32>> = cluster.nodes.iter().map(|n| n.pid()).collect();
    let cpu0: Vec<f64> = pids
        .iter()
        .map(|p| p.and_then(proc_cpu_s).unwrap_or(0.0))
        .collect();
    let rss_max = Arc::new(std::sync::Mutex::new(vec![0f64; n]));
    let stop_sampling = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let (rss_max, stop, pids) = (rss_max.clone(), stop_sampling.clone(), pids.clone());
        tokio::spawn(async move {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                if let Ok(mut m) = rss_max.lock() {
                    for (i, p) in pids.iter().enumerate() {
                        if let Some(r) = p.and_then(proc_rss_mb) {
                            m[i] = m[i].max(r);
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        })
    };

    // Open-loop sender: every TICK it sends what has come due, to validator i mod n, as one
    // JSON-RPC batch request per validator (split at BATCH_CALLS calls or BATCH_BYTES), the
    // way a busy front end forwards its users' bundles.
    let t0 = Instant::now();
    let t0_wall_us = wall_clock_us()?;
    let sender = {
        let (sent, accepted, rejected) = (sent.clone(), accepted.clone(), rejected.clone());
        let rate = spec.rate;
        tokio::spawn(async move {
            let permits = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
            let mut lag_max = Duration::ZERO;
            let mut raw: Vec<Option<String>> = raw.into_iter().map(Some).collect();
            let total = raw.len();
            let mut next = 0usize;
            let mut tick = tokio::time::interval(TICK);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            while next < total {
                tick.tick().await;
                let now = Instant::now();
                let due = (((now - t0).as_secs_f64() * rate) as usize + 1).min(total);
                if due <= next {
                    continue;
                }
                let oldest = t0 + Duration::from_secs_f64(next as f64 / rate);
                lag_max = lag_max.max(now.saturating_duration_since(oldest));
                let mut groups: Vec<Vec<String>> = vec![Vec::new(); n];
                for (i, r) in raw.iter_mut().enumerate().take(due).skip(next) {
                    if let Some(r) = r.take() {
                        groups[i % n].push(r);
                    }
                }
                next = due;
                for (node, group) in groups.into_iter().enumerate() {
                    for batch in split_batches(group) {
                        let Ok(permit) = permits.clone().acquire_owned().await else {
                            return lag_max;
                        };
                        send_batch(
                            clients[node].clone(),
                            batch,
                            permit,
                            &sent,
                            &accepted,
                            &rejected,
                        );
                    }
                }
            }
            let _ = permits.acquire_many(MAX_IN_FLIGHT as u32).await;
            lag_max
        })
    };

    let mut hist = micros_histogram()?;
    let mut to_block = micros_histogram()?;
    let mut to_delivery = micros_histogram()?;
    let mut interval = micros_histogram()?;
    let mut prev_block_ms: Option<u64> = None;
    let mut delivered = 0u64;
    let mut delivered_bytes = 0u64;
    let mut last_delivery = t0;
    let mut heights = 0u64;
    let deadline = t0 + spec.duration + spec.drain;
    let mut sender = Some(sender);
    let mut lag_max = Duration::ZERO;
    loop {
        if let Some(s) = sender.as_ref() {
            if s.is_finished() {
                lag_max = sender.take().ok_or_else(|| eyre!("sender"))?.await?;
            }
        }
        let done_sending = sender.is_none();
        let acc = accepted.load(std::sync::atomic::Ordering::Relaxed);
        if done_sending && delivered >= acc {
            break;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        let Ok(v) = tokio::time::timeout(left.min(Duration::from_secs(1)), sub.next()).await else {
            continue;
        };
        let v = v?;
        heights += 1;
        let now = Instant::now();
        let now_wall_us = wall_clock_us()?;
        let block_ms = v.batch.header.timestamp;
        let block_us = block_ms as f64 * 1000.0;
        if let Some(prev) = prev_block_ms.replace(block_ms) {
            interval.record(block_ms.saturating_sub(prev).saturating_mul(1000).max(1))?;
        }
        for e in v.batch.entries.iter().filter(|e| e.leg_index == 0) {
            let Some(i) = index.get(&e.bundle_hash) else {
                continue;
            };
            let due = t0 + Duration::from_secs_f64(*i as f64 / spec.rate);
            hist.record(now.saturating_duration_since(due).as_micros().max(1) as u64)?;
            let due_wall_us = t0_wall_us + *i as f64 * 1e6 / spec.rate;
            to_block.record((block_us - due_wall_us).max(1.0) as u64)?;
            to_delivery.record((now_wall_us - block_us).max(1.0) as u64)?;
            delivered += 1;
            delivered_bytes += (spec.legs * spec.leg_bytes) as u64;
            last_delivery = now;
        }
        if let Some(p) = progress {
            p.set_message(format!(
                "rate {:.0}/s: sent {} delivered {delivered}",
                spec.rate,
                sent.load(std::sync::atomic::Ordering::Relaxed)
            ));
        }
    }
    stop_sampling.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = sampler.await;
    let elapsed = last_delivery
        .duration_since(t0)
        .as_secs_f64()
        .max(spec.duration.as_secs_f64());
    let rss = rss_max.lock().map(|m| m.clone()).unwrap_or_default();
    let nodes: Vec<NodeUsage> = cluster
        .nodes
        .iter()
        .enumerate()
        .map(|(i, node)| NodeUsage {
            name: node.name.clone(),
            cpu_s: pids[i]
                .and_then(proc_cpu_s)
                .map(|c| c - cpu0[i])
                .unwrap_or(0.0),
            rss_mb_max: rss.get(i).copied().unwrap_or(0.0),
        })
        .collect();
    let delivered_per_s = delivered as f64 / elapsed;
    let ceiling = raw_verify_per_s / n as f64;
    Ok(RunResult {
        validators: n,
        target_block_time_ms: spec.block_time_ms,
        propose_wait_ms: spec.propose_wait_ms,
        publish_linger_ms: spec.publish_linger_ms,
        keep_heights: spec.keep_heights,
        legs: spec.legs,
        leg_bytes: spec.leg_bytes,
        offered_per_s: spec.rate,
        sent: total as u64,
        accepted: accepted.load(std::sync::atomic::Ordering::Relaxed),
        rejected: rejected.load(std::sync::atomic::Ordering::Relaxed),
        delivered,
        delivered_bundles_per_s: delivered_per_s,
        delivered_mb_per_s: delivered_bytes as f64 / elapsed / 1e6,
        latency_ms: Percentiles::of(&hist),
        latency_split_ms: LatencySplit {
            due_to_block: Percentiles::of(&to_block),
            block_to_delivery: Percentiles::of(&to_delivery),
            block_interval: Percentiles::of(&interval),
        },
        raw_verify_per_s,
        ceiling_bundles_per_s: ceiling,
        ratio_to_ceiling: delivered_per_s / ceiling,
        schedule_lag_ms_max: lag_max.as_secs_f64() * 1000.0,
        rss_mb_max: nodes.iter().map(|u| u.rss_mb_max).fold(0.0, f64::max),
        nodes,
        heights,
        duration_s: elapsed,
    })
}

/// Whether a run kept up: p99 within 1 s and at least 95% of the offered rate delivered.
pub fn sustained(r: &RunResult) -> bool {
    r.latency_ms.p99 <= 1000.0 && r.delivered as f64 >= 0.95 * r.sent as f64 && r.rejected == 0
}

/// Ramps the offered rate (×1.5 per step) until a step no longer keeps up, then tries once
/// between the last two rates; returns the highest sustained rate (0 if even the first failed)
/// and every step's result.
pub async fn saturation(
    cluster: &Cluster,
    base: &RunSpec,
    start_rate: f64,
    raw_verify_per_s: f64,
    salt: &mut u64,
    progress: Option<&indicatif::ProgressBar>,
) -> eyre::Result<(f64, Vec<RunResult>)> {
    let mut rate = start_rate;
    let mut best = 0.0;
    let mut steps = Vec::new();
    loop {
        *salt += 1;
        let spec = RunSpec {
            rate,
            ..base.clone()
        };
        let r = run_once(cluster, &spec, raw_verify_per_s, *salt, progress).await?;
        let ok = sustained(&r);
        steps.push(r);
        if !ok || rate > 200_000.0 {
            break;
        }
        best = rate;
        rate *= 1.5;
        // Let the network settle (drain any backlog) between steps.
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    // One more step between the last rate that kept up and the first that did not (×1.22).
    if best > 0.0 {
        tokio::time::sleep(Duration::from_secs(2)).await;
        *salt += 1;
        let between = (best * rate).sqrt();
        let spec = RunSpec {
            rate: between,
            ..base.clone()
        };
        let r = run_once(cluster, &spec, raw_verify_per_s, *salt, progress).await?;
        if sustained(&r) {
            best = between;
        }
        steps.push(r);
    }
    Ok((best, steps))
}

/// Writes `value` as pretty JSON to `dir/name`.
pub fn write_json<T: Serialize>(
    dir: &std::path::Path,
    name: &str,
    value: &T,
) -> eyre::Result<std::path::PathBuf> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join(name);
    std::fs::write(&path, serde_json::to_string_pretty(value)? + "\n")?;
    Ok(path)
}

/// Where the chart's font is read from (Debian's fonts-dejavu-core; `scripts/deps.sh`
/// installs it).
pub const CHART_FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";

/// Draws the latency percentiles against delivered rate (saturation steps, 4 validators) and
/// the saturation rate against the number of validators, side by side, into a PNG.
pub fn chart(
    path: &std::path::Path,
    steps: &[RunResult],
    scaling: &[(usize, f64)],
) -> eyre::Result<()> {
    use plotters::prelude::*;
    let font = std::fs::read(CHART_FONT).map_err(|e| eyre!("chart font {CHART_FONT}: {e}"))?;
    let font: &'static [u8] = Box::leak(font.into_boxed_slice());
    plotters::style::register_font("sans-serif", FontStyle::Normal, font)
        .map_err(|_| eyre!("{CHART_FONT} is not a usable font"))?;
    let root = BitMapBackend::new(path, (1400, 560)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| eyre!("{e}"))?;
    let (left, right) = root.split_horizontally(760);

    let max_rate = steps
        .iter()
        .map(|r| r.delivered_bundles_per_s)
        .fold(1.0, f64::max)
        * 1.1;
    let max_lat = steps.iter().map(|r| r.latency_ms.p99).fold(1.0, f64::max) * 1.1;
    let mut c = ChartBuilder::on(&left)
        .caption(
            "Latency to a verifying subscriber vs delivered rate",
            ("sans-serif", 20),
        )
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..max_rate, 0.0..max_lat)
        .map_err(|e| eyre!("{e}"))?;
    c.configure_mesh()
        .x_desc("delivered bundles/s")
        .y_desc("latency (ms)")
        .draw()
        .map_err(|e| eyre!("{e}"))?;
    type Series = (&'static str, RGBColor, fn(&RunResult) -> f64);
    let series: [Series; 3] = [
        ("p50", BLUE, |r| r.latency_ms.p50),
        ("p90", GREEN, |r| r.latency_ms.p90),
        ("p99", RED, |r| r.latency_ms.p99),
    ];
    for (name, color, f) in series {
        let mut pts: Vec<(f64, f64)> = steps
            .iter()
            .map(|r| (r.delivered_bundles_per_s, f(r)))
            .collect();
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
        c.draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))
            .map_err(|e| eyre!("{e}"))?
            .label(name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
        c.draw_series(pts.into_iter().map(|p| Circle::new(p, 3, color.filled())))
            .map_err(|e| eyre!("{e}"))?;
    }
    c.configure_series_labels()
        .border_style(BLACK)
        .draw()
        .map_err(|e| eyre!("{e}"))?;

    let max_v = scaling.iter().map(|(v, _)| *v).max().unwrap_or(10) as f64 + 1.0;
    let max_s = scaling.iter().map(|(_, s)| *s).fold(1.0, f64::max) * 1.2;
    let mut c2 = ChartBuilder::on(&right)
        .caption("Saturation rate vs validators", ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..max_v, 0.0..max_s)
        .map_err(|e| eyre!("{e}"))?;
    c2.configure_mesh()
        .x_desc("validators")
        .y_desc("sustained bundles/s")
        .draw()
        .map_err(|e| eyre!("{e}"))?;
    let pts: Vec<(f64, f64)> = scaling.iter().map(|(v, s)| (*v as f64, *s)).collect();
    c2.draw_series(LineSeries::new(pts.clone(), BLUE.stroke_width(2)))
        .map_err(|e| eyre!("{e}"))?;
    c2.draw_series(pts.into_iter().map(|p| Circle::new(p, 4, BLUE.filled())))
        .map_err(|e| eyre!("{e}"))?;
    root.present().map_err(|e| eyre!("{e}"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_split_at_the_call_and_byte_bounds_in_order() {
        let many: Vec<String> = (0..BATCH_CALLS + 3).map(|i| i.to_string()).collect();
        let b = split_batches(many.clone());
        assert_eq!(
            b.iter().map(Vec::len).collect::<Vec<_>>(),
            vec![BATCH_CALLS, 3]
        );
        assert_eq!(b.concat(), many);
        let big = "x".repeat(BATCH_BYTES / 2 + 1);
        let b = split_batches(vec![big.clone(), big.clone(), "y".into()]);
        assert_eq!(b, vec![vec![big.clone()], vec![big, "y".to_string()]]);
    }

    fn result(rate: f64, p50: f64) -> RunResult {
        let flat = Percentiles {
            p50: 1.0,
            p90: 1.0,
            p99: 1.0,
            max: 1.0,
        };
        RunResult {
            validators: 4,
            target_block_time_ms: 100,
            propose_wait_ms: 100,
            publish_linger_ms: 10,
            keep_heights: 0,
            legs: 2,
            leg_bytes: 256,
            offered_per_s: rate,
            sent: 10,
            accepted: 10,
            rejected: 0,
            delivered: 10,
            delivered_bundles_per_s: rate,
            delivered_mb_per_s: 0.1,
            latency_ms: Percentiles {
                p50,
                p90: p50 * 1.5,
                p99: p50 * 2.0,
                max: p50 * 3.0,
            },
            latency_split_ms: LatencySplit {
                due_to_block: flat.clone(),
                block_to_delivery: flat.clone(),
                block_interval: flat,
            },
            raw_verify_per_s: 1.0,
            ceiling_bundles_per_s: 1.0,
            ratio_to_ceiling: 1.0,
            schedule_lag_ms_max: 0.0,
            nodes: vec![],
            rss_mb_max: 1.0,
            heights: 1,
            duration_s: 1.0,
        }
    }

    #[test]
    fn chart_is_written_as_a_png() {
        if !std::path::Path::new(CHART_FONT).exists() {
            eprintln!("skipping: {CHART_FONT} is not installed (scripts/deps.sh installs it)");
            return;
        }
        let dir = std::env::temp_dir().join(format!("lockstep-chart-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("chart.png");
        let steps = vec![
            result(100.0, 40.0),
            result(300.0, 60.0),
            result(900.0, 300.0),
        ];
        chart(&path, &steps, &[(4, 900.0), (7, 600.0), (10, 400.0)]).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(&bytes[1..4], b"PNG");
    }

    #[test]
    fn a_run_is_sustained_only_with_p99_under_a_second_and_95_percent_delivered() {
        let ok = result(100.0, 100.0);
        assert!(sustained(&ok));
        let slow = result(100.0, 600.0);
        assert!(!sustained(&slow));
        let mut lossy = result(100.0, 10.0);
        lossy.delivered = 9;
        assert!(!sustained(&lossy));
    }
}
