//! `lockstep-admission-bench`: admission throughput next to the machine's raw ed25519
//! batch-verification rate, measured in the same run on all cores.
//!
//! Prints one JSON line `{"bench":"admission","bundles_per_s":…,"raw_verify_per_s":…,"ratio":…}`
//! and appends it to `target/bench-results/admission.jsonl` (or `--out`).

/// mimalloc: cheaper cross-thread frees and less fragmentation than glibc malloc.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

use bytes::Bytes;
use clap::Parser;
use lockstep_bundles::sig::Item;
use lockstep_bundles::Limits;
use lockstep_consensus::Tip;
use lockstep_mempool::included::IncludedSet;
use lockstep_mempool::pool::PoolConfig;
use lockstep_mempool::Mempool;
use lockstep_node::admission::MAX_BATCH;
use lockstep_node::admission::{
    raw_verify_rate_in_batches, run_gossip_inbound, Admission, AdmitError, Source,
};
use lockstep_p2p::{BundleGossip, Inbound, MessageId, PeerId, Verdict};
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::{mpsc, watch};

#[derive(Parser)]
#[command(about = "Benchmark bundle admission against raw signature verification")]
struct Args {
    #[arg(long, default_value_t = 40_000)]
    bundles: usize,
    #[arg(long, default_value_t = 2)]
    legs: usize,
    #[arg(long, default_value_t = 256)]
    leg_bytes: usize,
    /// RPC path: bundles submitted concurrently (like many RPC clients at once).
    #[arg(long, default_value_t = 4096)]
    concurrency: usize,
    #[arg(long, default_value = "target/bench-results/admission.jsonl")]
    out: PathBuf,
    /// Rounds of (raw rate, admission) pairs; medians are reported.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Gossip path: bundles per gossip message. 1 is the worst case for per-message costs;
    /// under load a node publishes each admission group as one message.
    #[arg(long, default_value_t = 1)]
    per_message: usize,
    /// Skip the RPC path (for profiling the gossip path alone).
    #[arg(long)]
    no_rpc: bool,
    /// Skip the gossip path (for profiling the RPC path alone).
    #[arg(long)]
    no_gossip: bool,
    /// RPC path: one tokio task per call (as a server that spawns a task per request) instead
    /// of the calls multiplexed in one task (as the node's batch handler runs a batch request).
    #[arg(long)]
    rpc_task_per_call: bool,
    /// Also measure the raw rate with other batch sizes (admission's batches vary with load).
    #[arg(long)]
    batch_sweep: bool,
}

/// A rate, and how many cores the process kept busy while reaching it (CPU seconds over wall
/// seconds): below the machine's core count, the pipeline left cores idle.
#[derive(Clone, Copy)]
struct Measured {
    per_s: f64,
    cores_used: f64,
}

/// CPU seconds (user and system) this process has used so far.
fn cpu_seconds() -> f64 {
    use nix::sys::resource::{getrusage, UsageWho};
    let secs = |t: nix::sys::time::TimeVal| t.tv_sec() as f64 + t.tv_usec() as f64 / 1e6;
    getrusage(UsageWho::RUSAGE_SELF)
        .map(|u| secs(u.user_time()) + secs(u.system_time()))
        .unwrap_or(f64::NAN)
}

/// Times `run` (which returns how many items it processed) by wall clock and by CPU.
async fn measure<F: std::future::Future<Output = eyre::Result<usize>>>(
    run: F,
) -> eyre::Result<Measured> {
    let (cpu, wall) = (cpu_seconds(), Instant::now());
    let n = run.await?;
    let wall = wall.elapsed().as_secs_f64();
    Ok(Measured {
        per_s: n as f64 / wall,
        cores_used: (cpu_seconds() - cpu) / wall,
    })
}

/// The raw batch-verification rate, measured like the paths.
fn raw(items: &[Item], batch: usize) -> Measured {
    let cpu = cpu_seconds();
    let wall = Instant::now();
    let per_s = raw_verify_rate_in_batches(items, batch);
    Measured {
        per_s,
        cores_used: (cpu_seconds() - cpu) / wall.elapsed().as_secs_f64(),
    }
}

/// Waits (outside the timed part) until a finished run's admission has shut down and the
/// mempool is released, then frees it, so its teardown (100,000 bundles freed) does not
/// overlap the next measurement.
async fn release(mempool: Arc<Mempool>) {
    let deadline = Instant::now() + std::time::Duration::from_secs(30);
    while Arc::strong_count(&mempool) > 1 && Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    drop(mempool);
}

/// Gossip that goes nowhere and counts the verdicts admission reports.
#[derive(Default)]
struct CountingGossip {
    accepted: AtomicUsize,
    reported: AtomicUsize,
    done: tokio::sync::Notify,
    expect: AtomicUsize,
}

#[async_trait::async_trait]
impl BundleGossip for CountingGossip {
    async fn publish(&self, _items: Vec<Bytes>) {}
    async fn report(&self, _id: MessageId, _from: PeerId, v: Verdict) {
        if v == Verdict::Accept {
            self.accepted.fetch_add(1, Ordering::Relaxed);
        }
        if self.reported.fetch_add(1, Ordering::AcqRel) + 1 == self.expect.load(Ordering::Acquire) {
            self.done.notify_one();
        }
    }
    fn peers(&self) -> usize {
        0
    }
}

/// One path's results, a value per round.
#[derive(Default)]
struct Series {
    rates: Vec<f64>,
    ratios: Vec<f64>,
    cores: Vec<f64>,
}

/// The median (NaN when empty).
fn median(xs: &mut [f64]) -> f64 {
    if xs.is_empty() {
        return f64::NAN;
    }
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

fn cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
}

/// A fresh mempool and admission, as a node starts them, with room for every bundle (the
/// count bound is doubled: submissions may fill only three quarters of it).
fn fresh(args: &Args, gossip: Arc<CountingGossip>) -> (Arc<Mempool>, Arc<Admission>) {
    let pool = PoolConfig {
        max_count: 2 * args.bundles + 1,
        max_bytes: usize::MAX / 2,
        max_per_signer: args.bundles,
    };
    let mempool = Arc::new(Mempool::new(
        pool,
        IncludedSet::new(Limits::default().max_ttl),
    ));
    let (tip_tx, tip_rx) = watch::channel(Tip::default());
    // The tip never moves during the run.
    std::mem::forget(tip_tx);
    // Any set: the bench's bundles carry no validator set update.
    let set = lockstep_bundles::ValidatorSet::new(vec![lockstep_bundles::Validator::new(
        ed25519_dalek::SigningKey::from_bytes(&[1; 32])
            .verifying_key()
            .to_bytes(),
        1,
    )])
    .expect("a one-validator set is valid");
    let schedule = lockstep_consensus::validators::Schedule::genesis(1, &set)
        .expect("a one-validator set is valid");
    let admission = Admission::new(
        1,
        Arc::new(schedule),
        0,
        Limits::default(),
        mempool.clone(),
        tip_rx,
        gossip,
        lockstep_node::disk::DiskSpace::unlimited(),
        // Admission alone: the durable write of acknowledgements is the store's cost.
        Arc::new(lockstep_node::admission::NoPendingLog),
    );
    (mempool, admission)
}

/// RPC path: one `submit_bytes` per bundle, `concurrency` calls in flight at once, driven
/// from one task the way the node's JSON-RPC batch handler drives the calls of a batch
/// request. With `--rpc-task-per-call`, each call is its own task instead (as a server that
/// spawns a task per request; that task is the server's cost, not admission's).
/// Bundles/s admitted.
async fn rpc_path(args: &Args, encoded: Vec<Bytes>) -> eyre::Result<Measured> {
    let (mempool, admission) = fresh(args, Arc::new(CountingGossip::default()));
    let m = measure(rpc_calls(args, &admission, &mempool, encoded)).await;
    drop(admission);
    release(mempool).await;
    m
}

/// The RPC path's timed part: every call made and answered; returns the bundles admitted.
async fn rpc_calls(
    args: &Args,
    admission: &Arc<Admission>,
    mempool: &Mempool,
    encoded: Vec<Bytes>,
) -> eyre::Result<usize> {
    use futures::stream::{FuturesUnordered, StreamExt as _};
    let mut in_flight = FuturesUnordered::new();
    let mut encoded = encoded.into_iter();
    loop {
        while in_flight.len() < args.concurrency.max(1) {
            let Some(e) = encoded.next() else { break };
            let a = admission.clone();
            let call = async move { a.submit_bytes(e, Source::Rpc).await };
            in_flight.push(if args.rpc_task_per_call {
                futures::future::Either::Left(async move {
                    tokio::spawn(call)
                        .await
                        .unwrap_or_else(|e| Err(AdmitError::Busy(format!("task failed: {e}"))))
                })
            } else {
                futures::future::Either::Right(call)
            });
        }
        match in_flight.next().await {
            Some(r) => {
                r.map_err(|e| eyre::eyre!("admission refused a valid bundle: {e}"))?;
            }
            None => break,
        }
    }
    Ok(mempool.size().0)
}

/// Gossip path: messages pushed into the same bounded inbound queue the libp2p task fills,
/// admitted by the node's own inbound loop. Bundles/s accepted.
async fn gossip_path(args: &Args, encoded: Vec<Bytes>) -> eyre::Result<Measured> {
    let gossip = Arc::new(CountingGossip::default());
    let per_message = args.per_message.max(1);
    let messages: Vec<Vec<Bytes>> = encoded.chunks(per_message).map(|c| c.to_vec()).collect();
    gossip.expect.store(messages.len(), Ordering::Release);
    let (mempool, admission) = fresh(args, gossip.clone());
    let (tx, rx) = mpsc::channel(lockstep_p2p::DEFAULT_INBOUND_CAPACITY);
    tokio::spawn(run_gossip_inbound(rx, admission, gossip.clone()));
    let from = PeerId::random();
    let n = messages.len();
    let m = measure(async {
        let done = gossip.done.notified();
        for items in messages {
            let refs: Vec<&[u8]> = items.iter().map(|b| &b[..]).collect();
            let id = MessageId::new(&lockstep_node::admission::gossip_message_id(&refs));
            tx.send(Inbound { id, from, items }).await?;
        }
        done.await;
        Ok(args.bundles)
    })
    .await?;
    drop(tx);
    let accepted = gossip.accepted.load(Ordering::Relaxed);
    if accepted != n || mempool.size().0 != args.bundles {
        eyre::bail!(
            "gossip admission accepted {accepted} of {n} messages, {} of {} bundles",
            mempool.size().0,
            args.bundles
        );
    }
    release(mempool).await;
    Ok(m)
}

/// The mean of a Prometheus summary (`name_sum / name_count`) in a rendered scrape.
fn summary_mean(scrape: &str, name: &str) -> Option<f64> {
    let value = |suffix: &str| {
        let key = format!("{name}_{suffix} ");
        scrape
            .lines()
            .find_map(|l| l.strip_prefix(&key))
            .and_then(|v| v.trim().parse::<f64>().ok())
    };
    Some(value("sum")? / value("count")?)
}

fn main() -> eyre::Result<()> {
    let args = Args::parse();
    // The node's metrics recorder, so admission pays for its metrics as in a node, and the
    // batch sizes it reached can be reported.
    let metrics = metrics_exporter_prometheus::PrometheusBuilder::new().install_recorder()?;
    eprintln!(
        "signing {} bundles ({} legs of {} bytes)…",
        args.bundles, args.legs, args.leg_bytes
    );
    let bundles = lockstep_client::bundle::sign_many(lockstep_client::bundle::LoadSpec {
        chain_id: 1,
        valid_until: 1_000,
        count: args.bundles,
        legs: args.legs,
        leg_bytes: args.leg_bytes,
        per_signer: 40,
        salt: 1,
    });
    let items: Vec<Item> = bundles
        .iter()
        .map(|b| Item {
            pk: b.body.signer,
            msg: b.hash().0,
            sig: b.signature,
        })
        .collect();
    let encoded: Vec<Bytes> = bundles.iter().map(|b| Bytes::from(b.encode())).collect();
    drop(bundles);

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    // This machine's speed drifts by ±15% from second to second, so each round measures the
    // raw rate right before each path and the ratios are taken per pair; the medians of the
    // rounds are reported.
    let (mut raws, mut raw_cores) = (vec![], vec![]);
    let (mut gossip, mut rpc) = (Series::default(), Series::default());
    for round in 1..=args.rounds.max(1) {
        for is_gossip in [true, false] {
            if (is_gossip && args.no_gossip) || (!is_gossip && args.no_rpc) {
                continue;
            }
            let name = if is_gossip { "gossip" } else { "RPC" };
            eprintln!(
                "round {round}: raw batch verification on {} cores, then the {name} path…",
                cores()
            );
            let r = raw(&items, MAX_BATCH);
            let m = if is_gossip {
                rt.block_on(gossip_path(&args, encoded.clone()))?
            } else {
                rt.block_on(rpc_path(&args, encoded.clone()))?
            };
            eprintln!(
                "  raw {:.0}/s on {:.2} cores; {name} {:.0}/s on {:.2} cores (ratio {:.3})",
                r.per_s,
                r.cores_used,
                m.per_s,
                m.cores_used,
                m.per_s / r.per_s
            );
            raws.push(r.per_s);
            raw_cores.push(r.cores_used);
            let series = if is_gossip { &mut gossip } else { &mut rpc };
            series.rates.push(m.per_s);
            series.ratios.push(m.per_s / r.per_s);
            series.cores.push(m.cores_used);
        }
    }
    let mut by_batch = serde_json::Map::new();
    if args.batch_sweep {
        for batch in [64, 128, 256, 512, 1024, 2048] {
            let mut rates: Vec<f64> = (0..3).map(|_| raw(&items, batch).per_s).collect();
            let rate = median(&mut rates).round();
            eprintln!("raw batch verification in batches of {batch}: {rate}/s");
            by_batch.insert(batch.to_string(), rate.into());
        }
    }
    let round3 = |x: f64| (x * 1000.0).round() / 1000.0;
    let round2 = |x: f64| (x * 100.0).round() / 100.0;
    let mut line = serde_json::json!({
        "bench": "admission",
        "bundles": args.bundles,
        "legs": args.legs,
        "leg_bytes": args.leg_bytes,
        "cores": cores(),
        "rounds": args.rounds,
        "bundles_per_message": args.per_message.max(1),
        "bundles_per_s": median(&mut gossip.rates).round(),
        "raw_verify_per_s": median(&mut raws).round(),
        "ratio": round3(median(&mut gossip.ratios)),
        "rpc_bundles_per_s": median(&mut rpc.rates).round(),
        "rpc_ratio": round3(median(&mut rpc.ratios)),
        "cores_used": {
            "raw": round2(median(&mut raw_cores)),
            "gossip": round2(median(&mut gossip.cores)),
            "rpc": round2(median(&mut rpc.cores)),
        },
    });
    let scrape = metrics.render();
    line["mean_verify_batch"] = summary_mean(&scrape, lockstep_node::metrics::VERIFY_BATCH_SIZE)
        .map_or(f64::NAN, round2)
        .into();
    if !by_batch.is_empty() {
        line["raw_verify_per_s_by_batch"] = by_batch.into();
    }
    let line = line.to_string();
    println!("{line}");
    if let Some(dir) = args.out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&args.out)?;
    writeln!(f, "{line}")?;
    Ok(())
}
