//! One load run against a running cluster, measured per bundle from its due time to a
//! verifying rollup subscriber.

use super::*;

pub(super) fn proc_cpu_s(pid: u32) -> Option<f64> {
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

/// The `field` line (e.g. `VmRSS:`) of `/proc/<pid>/status`, in MB.
pub(super) fn proc_status_mb(pid: u32, field: &str) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// Resident set size of process `pid`, in MB.
pub fn proc_rss_mb(pid: u32) -> Option<f64> {
    proc_status_mb(pid, "VmRSS:")
}

/// The kernel's high-water mark of process `pid`'s resident set (`VmHWM`), in MB: since it
/// started, or since [`reset_rss_peak`] last succeeded.
pub fn proc_rss_peak_mb(pid: u32) -> Option<f64> {
    proc_status_mb(pid, "VmHWM:")
}

/// Resets process `pid`'s peak-RSS mark to its current RSS by writing `5` to
/// `/proc/<pid>/clear_refs` (Linux 4.0 or later, with permission to write it); whether it
/// did.
pub fn reset_rss_peak(pid: u32) -> bool {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok()
}

/// Runs one open-loop load against a running cluster.
pub async fn run_once(
    cluster: &Cluster,
    spec: &RunSpec,
    raw_verify: RawVerify,
    salt: u64,
    progress: Option<&indicatif::ProgressBar>,
) -> eyre::Result<RunResult> {
    let n = cluster.nodes.len();
    let raw_verify_keys = raw_verify.keys_for(spec.bundles_per_signer)?;
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
        per_signer: spec.bundles_per_signer,
        salt,
    });
    let raw: Vec<String> = bundles
        .iter()
        .map(lockstep_client::bundle::to_raw_hex)
        .collect();
    let hashes: Vec<Hash> = bundles.iter().map(|b| b.hash()).collect();
    drop(bundles);

    let pids: Vec<Option<u32>> = cluster.nodes.iter().map(|n| n.pid()).collect();
    // The peak RSS is the kernel's mark, reset here so that it covers this run only.
    let peak_reset: Vec<bool> = pids.iter().map(|p| p.is_some_and(reset_rss_peak)).collect();
    let cpu0: Vec<f64> = pids
        .iter()
        .map(|p| p.and_then(proc_cpu_s).unwrap_or(0.0))
        .collect();
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
    let due_at = |i: usize| Duration::from_secs_f64(i as f64 / spec.rate);
    let sending = Arc::new(Sending::default());
    let t0 = Instant::now();
    let t0_wall_us = wall_clock_us()?;
    let mut sender = Some(tokio::spawn(send_open_loop(
        clients,
        raw,
        spec.rate,
        t0,
        sending.clone(),
    )));

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
    let mut ended_by_deadline = false;
    loop {
        if sender.as_ref().is_some_and(|s| s.is_finished()) {
            if let Some(s) = sender.take() {
                s.await?;
            }
        }
        if sender.is_none() && delivered >= sending.accepted.load(Relaxed) {
            break;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            ended_by_deadline = true;
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
            let due = t0 + due_at(*i);
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
                sending.sent.load(Relaxed)
            ));
        }
    }
    // The deadline stops the sender (and its requests in flight) so that nothing of this run
    // is submitted into the next; bundles it never sent count in the lag.
    if let Some(s) = sender.take() {
        s.abort();
        let _ = s.await;
    }
    let ended = Instant::now();
    let unsent = sending.oldest_unsent.load(Relaxed);
    if unsent < total {
        sending.note_lag(ended, t0 + due_at(unsent));
    }
    let elapsed = last_delivery
        .duration_since(t0)
        .as_secs_f64()
        .max(spec.duration.as_secs_f64());
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
            rss_peak_mb: pids[i].and_then(proc_rss_peak_mb).unwrap_or(0.0),
            rss_peak_scope: if peak_reset[i] {
                RssScope::Run
            } else {
                RssScope::Process
            },
        })
        .collect();
    let delivered_per_s = delivered as f64 / elapsed;
    let ceiling = raw_verify.per_s / n as f64;
    Ok(RunResult {
        validators: n,
        target_block_time_ms: spec.block_time_ms,
        propose_wait_ms: spec.propose_wait_ms,
        publish_linger_ms: spec.publish_linger_ms,
        keep_heights: spec.keep_heights,
        link_delay_ms: spec.link_delay_ms,
        link_jitter_ms: spec.link_jitter_ms,
        network: cluster.network_description(),
        legs: spec.legs,
        leg_bytes: spec.leg_bytes,
        bundles_per_signer: spec.bundles_per_signer,
        offered_per_s: spec.rate,
        planned: total as u64,
        sent: sending.sent.load(Relaxed),
        accepted: sending.accepted.load(Relaxed),
        rejected: sending.rejected.load(Relaxed),
        delivered,
        delivered_bundles_per_s: delivered_per_s,
        delivered_mb_per_s: delivered_bytes as f64 / elapsed / 1e6,
        latency_ms: Percentiles::of(&hist),
        latency_split_ms: LatencySplit {
            due_to_block: Percentiles::of(&to_block),
            block_to_delivery: Percentiles::of(&to_delivery),
            block_interval: Percentiles::of(&interval),
        },
        raw_verify_per_s: raw_verify.per_s,
        raw_verify_keys,
        ceiling_bundles_per_s: ceiling,
        ratio_to_ceiling: delivered_per_s / ceiling,
        schedule_lag_ms_max: sending.lag_max_us.load(Relaxed) as f64 / 1000.0,
        ended_by_deadline,
        rss_peak_mb: nodes.iter().map(|u| u.rss_peak_mb).fold(0.0, f64::max),
        rss_peak_scope: if peak_reset.iter().all(|r| *r) {
            RssScope::Run
        } else {
            RssScope::Process
        },
        nodes,
        heights,
        duration_s: elapsed,
        hostile: None,
    })
}
