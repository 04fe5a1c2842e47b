//! `lockstep-testnet`: run a local Lockstep network (`up`) or a demonstration (`demo`).

use clap::{Parser, Subcommand};
use eyre::eyre;
use lockstep_client::follower::Follower;
use lockstep_client::SeqApiClient;
use lockstep_ledger::{Applied, Ledger, LedgerTx, Settlement, SettlementLog};
use lockstep_testnet::{bench, Cluster, ClusterOptions};
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "lockstep-testnet",
    about = "Local Lockstep networks of real validator processes"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Start N validators and stay in the foreground; Ctrl-C stops them all.
    Up {
        #[arg(long, default_value_t = 4)]
        validators: usize,
        /// Holds the node homes and endpoints.json; an existing network there is resumed.
        #[arg(long, default_value = "testnet-data")]
        dir: PathBuf,
        /// Delete the network in --dir (homes, keys, data) and start a new one.
        #[arg(long)]
        reset: bool,
    },
    /// Benchmark a fresh local network: open-loop load over JSON-RPC, latency to a verifying
    /// rollup subscriber, throughput, CPU and memory per node. Writes JSON under --out.
    Bench {
        #[arg(long, default_value_t = 4)]
        validators: usize,
        #[arg(long, default_value_t = 2)]
        legs: usize,
        #[arg(long, default_value_t = 256)]
        leg_bytes: usize,
        /// Offered bundles per second (single run).
        #[arg(long, default_value_t = 500.0)]
        rate: f64,
        /// Seconds of load per run.
        #[arg(long, default_value_t = 20)]
        duration: u64,
        /// All runs: saturation, latency at half of it, 64 KiB legs, scaling over 4, 7, 10
        /// validators; also writes summary.json.
        #[arg(long)]
        full: bool,
        /// A short, small run that checks the output is sane (used by the test suite).
        #[arg(long)]
        smoke: bool,
        /// Soak: this many minutes at --rate (give it half of saturation), as back-to-back
        /// one-minute runs on one network (each pre-signed before it starts), sampling every
        /// validator's RSS, metrics (height, mempool, replay window, store memory) and disk use
        /// every 5 s throughout. Writes soak-<time>.json.
        #[arg(long)]
        soak: Option<u64>,
        /// Seconds per saturation step (with --full).
        #[arg(long, default_value_t = 10)]
        step: u64,
        #[arg(long, default_value = "target/bench-results")]
        out: PathBuf,
        /// Where to put the networks (default: a new temporary directory).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// The validators' target block time (`consensus.target_block_time_ms`).
        #[arg(long, default_value_t = lockstep_node::config::DEFAULT_TARGET_BLOCK_TIME_MS)]
        block_time_ms: u64,
        /// The validators' propose wait (`consensus.propose_wait_ms`).
        #[arg(long, default_value_t = lockstep_node::config::DEFAULT_PROPOSE_WAIT_MS)]
        propose_wait_ms: u64,
        /// How long the validators hold admitted bundles to gossip them together
        /// (`gossip.publish_linger_ms`).
        #[arg(long, default_value_t = lockstep_node::config::DEFAULT_PUBLISH_LINGER_MS)]
        publish_linger_ms: u64,
        /// Decided heights each validator keeps (`history.keep_heights`; 0 keeps all, the
        /// node default). A soak keeps its disk use bounded with e.g. the genesis max_ttl.
        #[arg(long, default_value_t = lockstep_node::config::DEFAULT_KEEP_HEIGHTS)]
        keep_heights: u64,
    },
    /// Start a fresh 4-validator network, send atomic bundles across rollups 1 and 2, and
    /// print what each rollup's verifying follower receives and its example ledger executes.
    Demo {
        #[arg(long, default_value_t = 3)]
        bundles: u64,
        /// Where to put the network (default: a new temporary directory).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter("warn")
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(async {
        match cli.command {
            Cmd::Up {
                validators,
                dir,
                reset,
            } => {
                if reset && dir.exists() {
                    std::fs::remove_dir_all(&dir)?;
                }
                up(validators, dir).await
            }
            Cmd::Demo { bundles, dir } => demo(bundles, dir).await,
            Cmd::Bench {
                validators,
                legs,
                leg_bytes,
                rate,
                duration,
                full,
                smoke,
                soak,
                step,
                out,
                dir,
                block_time_ms,
                propose_wait_ms,
                publish_linger_ms,
                keep_heights,
            } => {
                // Networks go under --dir (kept), or a temporary directory removed afterwards
                // (a saturated run writes gigabytes of blocks).
                let temporary = dir.is_none();
                let base = dir.unwrap_or_else(|| {
                    std::env::temp_dir().join(format!("lockstep-bench-{}", std::process::id()))
                });
                let spec = bench::RunSpec {
                    legs,
                    leg_bytes,
                    rate,
                    duration: Duration::from_secs(duration),
                    drain: Duration::from_secs(30),
                    block_time_ms,
                    propose_wait_ms,
                    publish_linger_ms,
                    keep_heights,
                };
                let result = if smoke {
                    bench_smoke(&base, &out).await
                } else if let Some(minutes) = soak {
                    bench_soak(&base, &out, validators, &spec, minutes).await
                } else if full {
                    bench_full(&base, &out, &spec, Duration::from_secs(step)).await
                } else {
                    bench_single(&base, &out, validators, &spec).await
                };
                if temporary {
                    let _ = std::fs::remove_dir_all(&base);
                }
                result
            }
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn up(validators: usize, dir: PathBuf) -> eyre::Result<()> {
    let opts = ClusterOptions {
        validators,
        ..Default::default()
    };
    let mut cluster = Cluster::create(&dir, &opts)?;
    cluster.start_all()?;
    let ready = cluster.wait_ready(Duration::from_secs(60)).await;
    if let Err(e) = ready {
        cluster.stop_all()?;
        return Err(e);
    }
    println!(
        "Lockstep network of {validators} validators, chain id {}",
        cluster.chain_id
    );
    for n in &cluster.endpoints().nodes {
        println!(
            "  {:<7} rpc {}  ws {}  metrics {}",
            n.name, n.rpc, n.ws, n.metrics
        );
    }
    println!(
        "endpoints: {}",
        cluster.dir.join(lockstep_testnet::ENDPOINTS_FILE).display()
    );
    println!("logs:      {}/node*/node.log", cluster.dir.display());
    println!("Ctrl-C stops all nodes.");
    let mut watch = tokio::time::interval(Duration::from_secs(2));
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = watch.tick() => {
                for i in 0..cluster.nodes.len() {
                    if !cluster.nodes[i].is_running() {
                        eprintln!("{} exited; see {}/node.log", cluster.nodes[i].name, cluster.nodes[i].home.display());
                    }
                }
            }
        }
    }
    println!("stopping…");
    cluster.stop_all()?;
    println!("stopped; data kept in {}", cluster.dir.display());
    Ok(())
}

fn show(data: &[u8]) -> String {
    if let Ok(tx) = <LedgerTx as borsh::BorshDeserialize>::try_from_slice(data) {
        return format!("{tx:?}");
    }
    match std::str::from_utf8(data) {
        Ok(s) if s.chars().all(|c| !c.is_control()) => format!("{s:?}"),
        _ => lockstep_bundles::hash::encode_hex(data),
    }
}

async fn demo(count: u64, dir: Option<PathBuf>) -> eyre::Result<()> {
    let dir = match dir {
        Some(d) => d,
        None => std::env::temp_dir().join(format!("lockstep-demo-{}", std::process::id())),
    };
    let mut cluster = Cluster::create(&dir, &ClusterOptions::default())?;
    cluster.start_all()?;
    cluster.wait_ready(Duration::from_secs(60)).await?;
    let verifier = cluster.verifier()?;
    println!(
        "4 validators up (chain {}); data in {}",
        cluster.chain_id,
        cluster.dir.display()
    );
    let start = cluster
        .height(0)
        .await
        .ok_or_else(|| eyre!("node0 does not answer"))?
        + 1;
    let mut followers = [
        (
            1u64,
            Follower::new(
                vec![cluster.nodes[2].ws_url(), cluster.nodes[1].ws_url()],
                1,
                Some(start),
                verifier.clone(),
                20,
            ),
        ),
        (
            2u64,
            Follower::new(
                vec![cluster.nodes[3].ws_url(), cluster.nodes[0].ws_url()],
                2,
                Some(start),
                verifier,
                20,
            ),
        ),
    ];
    println!("rollup 1 follows node2, rollup 2 follows node3, from height {start}; every batch is verified");

    let key = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
    let rpc = cluster.http(0)?;
    let chain = cluster.chain_id;
    let mint = lockstep_client::bundle::sign(
        &key,
        chain,
        0,
        start + 1000,
        vec![(
            1,
            LedgerTx::Mint {
                to: "alice".into(),
                amount: 100,
            }
            .encode(),
        )],
    );
    let mut expected: [HashSet<lockstep_bundles::Hash>; 2] = Default::default();
    let h = rpc
        .send_raw_bundle(lockstep_client::bundle::to_raw_hex(&mint))
        .await?;
    expected[0].insert(h);
    println!("sent {h}: mint 100 to alice on rollup 1");
    let mut bridges = HashSet::new();
    for n in 1..=count {
        let legs = vec![
            (
                1,
                LedgerTx::BridgeOut {
                    from: "alice".into(),
                    amount: 10,
                    to_rollup: 2,
                }
                .encode(),
            ),
            (
                2,
                LedgerTx::BridgeIn {
                    to: "bob".into(),
                    amount: 10,
                    from_rollup: 1,
                }
                .encode(),
            ),
        ];
        let b = lockstep_client::bundle::sign(&key, chain, n, start + 1000, legs);
        let h = rpc
            .send_raw_bundle(lockstep_client::bundle::to_raw_hex(&b))
            .await?;
        println!("sent {h}: atomic bundle, alice (rollup 1) sends 10 to bob (rollup 2)");
        expected[0].insert(h);
        expected[1].insert(h);
        bridges.insert(h);
    }

    let mut executed_at: [HashMap<lockstep_bundles::Hash, u64>; 2] = Default::default();
    for (k, (rollup, follower)) in followers.iter_mut().enumerate() {
        let mut ledger = Ledger::new(*rollup);
        let log_path = cluster.dir.join(format!("rollup-{rollup}-settlement.log"));
        let log = SettlementLog::new(&log_path);
        println!("\nrollup {rollup}: verified batches, executed");
        while executed_at[k].len() < expected[k].len() {
            let v = tokio::time::timeout(Duration::from_secs(30), follower.next())
                .await
                .map_err(|_| eyre!("rollup {rollup}: no batch within 30 s"))??;
            for e in &v.batch.entries {
                let outcome = match ledger.execute(e) {
                    Applied::Ok(_) => "executed".to_string(),
                    Applied::Failed(why) => format!("failed: {why}"),
                };
                println!(
                    "  height {} bundle {} leg {} of rollups {:?}: {} -> {outcome}",
                    v.batch.height,
                    e.bundle_hash,
                    e.leg_index,
                    e.rollups,
                    show(&e.data)
                );
                executed_at[k].insert(e.bundle_hash, v.batch.height);
            }
            let s = Settlement {
                height: v.batch.height,
                block_hash: v.json.block_hash,
                state_root: ledger.state_root(),
            };
            log.append(&s)?;
        }
        println!(
            "  balances {:?}, state root {} (settled per height to {})",
            ledger.balances,
            ledger.state_root(),
            log_path.display()
        );
    }
    cluster.stop_all()?;
    for h in &bridges {
        let (a, b) = (executed_at[0].get(h), executed_at[1].get(h));
        if a.is_none() || a != b {
            return Err(eyre!(
                "bundle {h}: legs executed at heights {a:?} and {b:?}"
            ));
        }
    }
    println!("\ndone: each atomic bundle's two legs executed at the same sequencer height on both rollups");
    Ok(())
}

/// Offered rate of the 64 KiB-leg run: 400 bundles/s is about 26 MB/s of leg data.
const LARGE_LEG_RATE: f64 = 400.0;

fn stamp() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn spinner() -> indicatif::ProgressBar {
    let p = indicatif::ProgressBar::new_spinner();
    p.enable_steady_tick(Duration::from_millis(200));
    p
}

async fn bench_network(
    base: &std::path::Path,
    validators: usize,
    spec: &bench::RunSpec,
) -> eyre::Result<Cluster> {
    let dir = base.join(format!("{validators}v"));
    let _ = std::fs::remove_dir_all(&dir);
    let mut c = Cluster::create(
        &dir,
        &ClusterOptions {
            validators,
            target_block_time_ms: spec.block_time_ms,
            propose_wait_ms: spec.propose_wait_ms,
            publish_linger_ms: spec.publish_linger_ms,
            keep_heights: spec.keep_heights,
            ..Default::default()
        },
    )?;
    c.start_all()?;
    c.wait_ready(Duration::from_secs(120)).await?;
    Ok(c)
}

async fn bench_single(
    base: &std::path::Path,
    out: &std::path::Path,
    validators: usize,
    spec: &bench::RunSpec,
) -> eyre::Result<()> {
    let p = spinner();
    p.set_message("measuring raw batch verification");
    let raw = tokio::task::spawn_blocking(|| bench::raw_verify_rate(20_000)).await?;
    p.set_message(format!("starting {validators} validators"));
    let mut cluster = bench_network(base, validators, spec).await?;
    let r = bench::run_once(&cluster, spec, raw, 1, Some(&p)).await?;
    cluster.stop_all()?;
    p.finish_and_clear();
    let path = bench::write_json(
        out,
        &format!("run-{validators}v-{:.0}-{}.json", spec.rate, stamp()),
        &r,
    )?;
    println!("{}", serde_json::to_string(&r)?);
    eprintln!("written {}", path.display());
    Ok(())
}

async fn bench_smoke(base: &std::path::Path, out: &std::path::Path) -> eyre::Result<()> {
    let spec = bench::RunSpec {
        legs: 2,
        leg_bytes: 64,
        rate: 50.0,
        duration: Duration::from_secs(5),
        drain: Duration::from_secs(30),
        block_time_ms: lockstep_node::config::DEFAULT_TARGET_BLOCK_TIME_MS,
        propose_wait_ms: lockstep_node::config::DEFAULT_PROPOSE_WAIT_MS,
        publish_linger_ms: lockstep_node::config::DEFAULT_PUBLISH_LINGER_MS,
        keep_heights: lockstep_node::config::DEFAULT_KEEP_HEIGHTS,
    };
    let raw = tokio::task::spawn_blocking(|| bench::raw_verify_rate(2_000)).await?;
    let mut cluster = bench_network(base, 4, &spec).await?;
    let r = bench::run_once(&cluster, &spec, raw, 1, None).await?;
    cluster.stop_all()?;
    let path = bench::write_json(out, &format!("smoke-{}.json", stamp()), &r)?;
    println!("{}", serde_json::to_string(&r)?);
    eprintln!("written {}", path.display());
    Ok(())
}

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

async fn bench_soak(
    base: &std::path::Path,
    out: &std::path::Path,
    validators: usize,
    spec: &bench::RunSpec,
    minutes: u64,
) -> eyre::Result<()> {
    let p = spinner();
    p.set_message("measuring raw batch verification");
    let raw = tokio::task::spawn_blocking(|| bench::raw_verify_rate(40_000)).await?;
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

#[derive(serde::Serialize)]
struct ScalingRow {
    validators: usize,
    saturation_bundles_per_s: f64,
    p50_ms: f64,
}

async fn bench_full(
    base: &std::path::Path,
    out: &std::path::Path,
    spec: &bench::RunSpec,
    step: Duration,
) -> eyre::Result<()> {
    let p = spinner();
    p.set_message("measuring raw batch verification");
    let raw = tokio::task::spawn_blocking(|| bench::raw_verify_rate(40_000)).await?;
    let mut salt = stamp();
    let mut scaling = Vec::new();
    let mut summary = serde_json::Map::new();
    let mut all_runs = Vec::new();
    for validators in [4usize, 7, 10] {
        p.set_message(format!("starting {validators} validators"));
        let mut cluster = bench_network(base, validators, spec).await?;
        let sat_spec = bench::RunSpec {
            duration: step,
            ..spec.clone()
        };
        let (best, steps) =
            bench::saturation(&cluster, &sat_spec, 200.0, raw, &mut salt, Some(&p)).await?;
        let at_best = steps
            .iter()
            .rev()
            .find(|r| (r.offered_per_s - best).abs() < 1e-6)
            .cloned();
        scaling.push(ScalingRow {
            validators,
            saturation_bundles_per_s: best,
            p50_ms: at_best.as_ref().map(|r| r.latency_ms.p50).unwrap_or(0.0),
        });
        all_runs.extend(steps);
        if validators == 4 {
            let ceiling = raw / 4.0;
            summary.insert("validators".into(), 4.into());
            summary.insert("saturation_bundles_per_s".into(), best.into());
            summary.insert("ceiling_bundles_per_s".into(), ceiling.into());
            summary.insert("ratio_to_ceiling".into(), (best / ceiling).into());
            salt += 1;
            let half = bench::RunSpec {
                rate: (best / 2.0).max(10.0),
                ..spec.clone()
            };
            let lat = bench::run_once(&cluster, &half, raw, salt, Some(&p)).await?;
            summary.insert(
                "latency_at_half_ms".into(),
                serde_json::to_value(&lat.latency_ms)?,
            );
            summary.insert("rss_mb_max".into(), lat.rss_mb_max.into());
            all_runs.push(lat);
            salt += 1;
            let large = bench::RunSpec {
                legs: 1,
                leg_bytes: 64 * 1024,
                rate: LARGE_LEG_RATE,
                ..spec.clone()
            };
            let lr = bench::run_once(&cluster, &large, raw, salt, Some(&p)).await?;
            summary.insert("large_legs_mb_per_s".into(), lr.delivered_mb_per_s.into());
            all_runs.push(lr);
        }
        cluster.stop_all()?;
    }
    summary.insert("raw_verify_per_s".into(), raw.into());
    let four: Vec<bench::RunResult> = all_runs
        .iter()
        .filter(|r| r.validators == 4 && r.legs == spec.legs && r.leg_bytes == spec.leg_bytes)
        .cloned()
        .collect();
    let sc: Vec<(usize, f64)> = scaling
        .iter()
        .map(|s| (s.validators, s.saturation_bundles_per_s))
        .collect();
    let png = out.join("summary.png");
    std::fs::create_dir_all(out)?;
    match bench::chart(&png, &four, &sc) {
        Ok(()) => eprintln!("chart {}", png.display()),
        Err(e) => eprintln!("no chart: {e}"),
    }
    summary.insert("scaling".into(), serde_json::to_value(&scaling)?);
    p.finish_and_clear();
    for (i, r) in all_runs.iter().enumerate() {
        bench::write_json(
            out,
            &format!(
                "full-{}-{i:02}-{}v-{:.0}.json",
                stamp(),
                r.validators,
                r.offered_per_s
            ),
            r,
        )?;
    }
    let path = bench::write_json(out, "summary.json", &summary)?;
    println!("{}", serde_json::to_string_pretty(&summary)?);
    eprintln!(
        "written {} and {} run files",
        path.display(),
        all_runs.len()
    );
    Ok(())
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
