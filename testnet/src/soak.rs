//! `lockstep-testnet bench --soak`: back-to-back one-minute runs on one network, every
//! validator sampled (RSS, metrics, disk use) throughout, and how fast its memory grew.

use crate::bench_runs::{bench_network, ceiling_for, spinner, stamp};
use lockstep_testnet::bench;
use std::path::PathBuf;
use std::time::Duration;

/// One validator at one moment of a soak: its RSS, and what its metrics say it holds.
#[derive(serde::Serialize, Clone, Default)]
struct NodeSample {
    rss_mb: f64,
    height: f64,
    mempool_bundles: f64,
    mempool_mb: f64,
    replay_window: f64,
    /// `lockstep_store_memory_bytes` by kind, in MB.
    store_memory_mb: std::collections::BTreeMap<String, f64>,
    /// `lockstep_process_memory_bytes` by kind (the Rust and C heaps), in MB.
    process_memory_mb: std::collections::BTreeMap<String, f64>,
    /// Rollup batches the node holds encoded as JSON for subscribers, in MB.
    rpc_batch_cache_mb: f64,
    /// The node's home on disk (its store, logs and consensus WAL).
    disk_mb: f64,
}

#[derive(serde::Serialize)]
struct SoakSample {
    t_s: f64,
    nodes: Vec<NodeSample>,
}

async fn sample_node(pid: Option<u32>, metrics_url: &str, home: &std::path::Path) -> NodeSample {
    const MB: f64 = 1024.0 * 1024.0;
    // Walking a store of thousands of files is blocking I/O: keep it off the workers that
    // drive the load and the subscriber this soak measures.
    let home = home.to_path_buf();
    let disk_bytes = tokio::task::spawn_blocking(move || lockstep_testnet::dir_bytes(&home))
        .await
        .unwrap_or(0);
    let mut s = NodeSample {
        rss_mb: pid.and_then(bench::proc_rss_mb).unwrap_or(0.0),
        disk_mb: disk_bytes as f64 / MB,
        ..Default::default()
    };
    if let Ok(body) = lockstep_testnet::scrape_metrics(metrics_url).await {
        use lockstep_testnet::{metric_series, metric_sum};
        s.height = metric_sum(&body, "lockstep_consensus_height");
        s.mempool_bundles = metric_sum(&body, "lockstep_mempool_bundles");
        s.mempool_mb = metric_sum(&body, "lockstep_mempool_bytes") / MB;
        s.replay_window = metric_sum(&body, "lockstep_mempool_replay_window");
        let by_kind = |name: &str| {
            metric_series(&body, name)
                .into_iter()
                .map(|(labels, v)| {
                    let kind = labels
                        .split(',')
                        .find_map(|l| l.strip_prefix("kind="))
                        .unwrap_or(labels)
                        .trim_matches('"');
                    (kind.to_string(), v / MB)
                })
                .collect()
        };
        s.store_memory_mb = by_kind("lockstep_store_memory_bytes");
        s.process_memory_mb = by_kind("lockstep_process_memory_bytes");
        s.rpc_batch_cache_mb = metric_sum(&body, "lockstep_rpc_batch_cache_bytes") / MB;
    }
    s
}

pub(crate) async fn bench_soak(
    base: &std::path::Path,
    out: &std::path::Path,
    validators: usize,
    spec: &bench::RunSpec,
    minutes: u64,
) -> eyre::Result<()> {
    let p = spinner();
    p.set_message("measuring raw batch verification");
    let raw = ceiling_for(spec, 40_000).await?;
    let mut cluster = bench_network(base, validators, spec).await?;
    let watched: Vec<(Option<u32>, String, PathBuf)> = cluster
        .nodes
        .iter()
        .map(|n| (n.pid(), n.metrics_url(), n.home.clone()))
        .collect();
    let t0 = std::time::Instant::now();
    let timeline = std::sync::Arc::new(std::sync::Mutex::new(Vec::<SoakSample>::new()));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let (timeline, stop) = (timeline.clone(), stop.clone());
        tokio::spawn(async move {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let t_s = t0.elapsed().as_secs_f64();
                let mut nodes = Vec::with_capacity(watched.len());
                for (pid, url, home) in &watched {
                    nodes.push(sample_node(*pid, url, home).await);
                }
                if let Ok(mut t) = timeline.lock() {
                    t.push(SoakSample { t_s, nodes });
                }
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
        })
    };
    let segment = bench::RunSpec {
        duration: Duration::from_secs(60),
        ..spec.clone()
    };
    let mut runs = Vec::new();
    let mut salt = stamp();
    for m in 0..minutes {
        p.set_message(format!("soak minute {}/{minutes}", m + 1));
        salt += 1;
        runs.push(bench::run_once(&cluster, &segment, raw, salt, Some(&p)).await?);
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = sampler.await;
    cluster.stop_all()?;
    p.finish_and_clear();
    let timeline = std::mem::take(&mut *timeline.lock().map_err(|_| eyre::eyre!("timeline"))?);
    let max_in = |from: f64, to: f64| {
        timeline
            .iter()
            .filter(|s| s.t_s >= from && s.t_s < to)
            .flat_map(|s| s.nodes.iter().map(|n| n.rss_mb))
            .fold(0.0, f64::max)
    };
    let end = timeline.last().map(|s| s.t_s).unwrap_or(0.0);
    // Each validator as it was two minutes in and at the end, to tell what grew.
    let at = |t: f64| timeline.iter().find(|s| s.t_s >= t).or(timeline.last());
    let after_2_min = at(120.0).map(|s| s.nodes.clone());
    let at_end = timeline.last().map(|s| s.nodes.clone());
    let sent: u64 = runs.iter().map(|r| r.sent).sum();
    let delivered: u64 = runs.iter().map(|r| r.delivered).sum();
    let growth = growth_second_half(&timeline, validators);
    let report = serde_json::json!({
        "validators": validators,
        "offered_per_s": spec.rate,
        "minutes": minutes,
        "sent": sent,
        "delivered": delivered,
        "rejected": runs.iter().map(|r| r.rejected).sum::<u64>(),
        "rss_mb_max": max_in(0.0, f64::MAX),
        "rss_mb_max_first_2_min": max_in(0.0, 120.0),
        "rss_mb_max_last_2_min": max_in(end - 120.0, f64::MAX),
        "latency_ms_per_minute": runs.iter().map(|r| &r.latency_ms).collect::<Vec<_>>(),
        "delivered_per_s_per_minute": runs.iter().map(|r| r.delivered_bundles_per_s).collect::<Vec<_>>(),
        "cpu_s_per_node": (0..validators).map(|i| runs.iter().map(|r| r.nodes.get(i).map(|n| n.cpu_s).unwrap_or(0.0)).sum::<f64>()).collect::<Vec<_>>(),
        "nodes_after_2_min": after_2_min,
        "nodes_at_end": at_end,
        "growth_per_min_second_half": growth,
        "keep_heights": spec.keep_heights,
        "timeline": timeline,
    });
    let path = bench::write_json(out, &format!("soak-{}.json", stamp()), &report)?;
    let mut brief = report.clone();
    if let Some(o) = brief.as_object_mut() {
        o.remove("timeline");
    }
    println!("{}", serde_json::to_string_pretty(&brief)?);
    eprintln!("written {}", path.display());
    Ok(())
}

/// Least-squares slope of `ys` against `xs`, per minute (`xs` in seconds); 0 for fewer than
/// two distinct times.
fn slope_per_min(xs: &[f64], ys: &[f64]) -> f64 {
    let n = xs.len().min(ys.len());
    if n < 2 {
        return 0.0;
    }
    let (mx, my) = (
        xs[..n].iter().sum::<f64>() / n as f64,
        ys[..n].iter().sum::<f64>() / n as f64,
    );
    let sxx: f64 = xs[..n].iter().map(|x| (x - mx).powi(2)).sum();
    if sxx == 0.0 {
        return 0.0;
    }
    let sxy: f64 = xs[..n]
        .iter()
        .zip(&ys[..n])
        .map(|(x, y)| (x - mx) * (y - my))
        .sum();
    sxy / sxx * 60.0
}

/// How fast each validator's memory grew over the soak's second half, when whatever fills
/// (the replay window, the caches) should have filled: RSS, each heap, the store's memory and
/// the replay window, per minute. "Flat" means these are near zero.
fn growth_second_half(timeline: &[SoakSample], validators: usize) -> Vec<serde_json::Value> {
    let end = timeline.last().map(|s| s.t_s).unwrap_or(0.0);
    let half: Vec<&SoakSample> = timeline.iter().filter(|s| s.t_s >= end / 2.0).collect();
    let xs: Vec<f64> = half.iter().map(|s| s.t_s).collect();
    (0..validators)
        .map(|i| {
            let series = |f: &dyn Fn(&NodeSample) -> f64| -> f64 {
                let ys: Vec<f64> = half
                    .iter()
                    .map(|s| s.nodes.get(i).map(f).unwrap_or(0.0))
                    .collect();
                slope_per_min(&xs, &ys)
            };
            let mut heaps = serde_json::Map::new();
            let kinds: std::collections::BTreeSet<&String> = half
                .iter()
                .filter_map(|s| s.nodes.get(i))
                .flat_map(|n| n.process_memory_mb.keys())
                .collect();
            for k in kinds {
                let v = series(&|n| n.process_memory_mb.get(k).copied().unwrap_or(0.0));
                heaps.insert(k.clone(), serde_json::json!(v));
            }
            serde_json::json!({
                "node": i,
                "rss_mb": series(&|n| n.rss_mb),
                "heaps_mb": heaps,
                "store_memory_mb": series(&|n| n.store_memory_mb.values().sum()),
                "rpc_batch_cache_mb": series(&|n| n.rpc_batch_cache_mb),
                "replay_window_hashes": series(&|n| n.replay_window),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::slope_per_min;

    #[test]
    fn growth_slope_is_per_minute_and_zero_when_flat_or_undefined() {
        let xs: Vec<f64> = (0..10).map(|i| f64::from(i) * 5.0).collect();
        let rising: Vec<f64> = xs.iter().map(|x| 100.0 + 0.5 * x).collect();
        assert!((slope_per_min(&xs, &rising) - 30.0).abs() < 1e-9);
        let flat = vec![42.0; xs.len()];
        assert_eq!(slope_per_min(&xs, &flat), 0.0);
        assert_eq!(slope_per_min(&[1.0], &[5.0]), 0.0);
        assert_eq!(slope_per_min(&[3.0, 3.0], &[1.0, 9.0]), 0.0);
    }
}
