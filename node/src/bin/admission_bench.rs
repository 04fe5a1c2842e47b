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
use lockstep_node::admission::{
    raw_verify_rate, run_gossip_inbound, Admission, AdmitError, Source,
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
    let admission = Admission::new(
        1,
        Limits::default(),
        mempool.clone(),
        tip_rx,
        gossip,
        lockstep_node::disk::DiskSpace::unlimited(),
    );
    (mempool, admission)
}

/// RPC path: one `submit_bytes` per bundle, `concurrency` calls in flight at once, driven
/// from one task the way the node's JSON-RPC batch handler drives the calls of a batch
/// request. With `--rpc-task-per-call`, each call is its own task instead (as a server that
/// spawns a task per request; that task is the server's cost, not admission's).
/// Bundles/s admitted.
async fn rpc_path(args: &Args, encoded: Vec<Bytes>) -> eyre::Result<f64> {
    use futures::stream::{FuturesUnordered, StreamExt as _};
    let (mempool, admission) = fresh(args, Arc::new(CountingGossip::default()));
    let started = Instant::now();
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
    Ok(mempool.size().0 as f64 / started.elapsed().as_secs_f64())
}

/// Gossip path: messages pushed into the same bounded inbound queue the libp2p task fills,
/// admitted by the node's own inbound loop. Bundles/s accepted.
async fn gossip_path(args: &Args, encoded: Vec<Bytes>) -> eyre::Result<f64> {
    let gossip = Arc::new(CountingGossip::default());
    let per_message = args.per_message.max(1);
    let messages: Vec<Vec<Bytes>> = encoded.chunks(per_message).map(|c| c.to_vec()).collect();
    gossip.expect.store(messages.len(), Ordering::Release);
    let (mempool, admission) = fresh(args, gossip.clone());
    let (tx, rx) = mpsc::channel(lockstep_p2p::DEFAULT_INBOUND_CAPACITY);
    tokio::spawn(run_gossip_inbound(rx, admission, gossip.clone()));
    let from = PeerId::random();
    let n = messages.len();
    let started = Instant::now();
    let done = gossip.done.notified();
    for items in messages {
        let refs: Vec<&[u8]> = items.iter().map(|b| &b[..]).collect();
        let id = MessageId::new(&lockstep_node::admission::gossip_message_id(&refs));
        tx.send(Inbound { id, from, items }).await?;
    }
    done.await;
    let elapsed = started.elapsed().as_secs_f64();
    let accepted = gossip.accepted.load(Ordering::Relaxed);
    if accepted != n || mempool.size().0 != args.bundles {
        eyre::bail!(
            "gossip admission accepted {accepted} of {n} messages, {} of {} bundles",
            mempool.size().0,
            args.bundles
        );
    }
    Ok(args.bundles as f64 / elapsed)
}

fn main() -> eyre::Result<()> {
    let args = Args::parse();
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
    let (mut raws, mut gossips, mut rpcs, mut gossip_ratios, mut rpc_ratios) =
        (vec![], vec![], vec![], vec![], vec![]);
    for round in 1..=args.rounds.max(1) {
        if !args.no_gossip {
            eprintln!(
                "round {round}: raw batch verification on {} cores, then the gossip path…",
                cores()
            );
            let raw = raw_verify_rate(&items);
            let rate = rt.block_on(gossip_path(&args, encoded.clone()))?;
            raws.push(raw);
            gossips.push(rate);
            gossip_ratios.push(rate / raw);
        }
        if !args.no_rpc {
            eprintln!(
                "round {round}: raw batch verification on {} cores, then the RPC path…",
                cores()
            );
            let raw = raw_verify_rate(&items);
            let rate = rt.block_on(rpc_path(&args, encoded.clone()))?;
            raws.push(raw);
            rpcs.push(rate);
            rpc_ratios.push(rate / raw);
        }
    }
    let round3 = |x: f64| (x * 1000.0).round() / 1000.0;
    let line = serde_json::json!({
        "bench": "admission",
        "bundles": args.bundles,
        "legs": args.legs,
        "leg_bytes": args.leg_bytes,
        "cores": cores(),
        "rounds": args.rounds,
        "bundles_per_message": args.per_message.max(1),
        "bundles_per_s": median(&mut gossips).round(),
        "raw_verify_per_s": median(&mut raws).round(),
        "ratio": round3(median(&mut gossip_ratios)),
        "rpc_bundles_per_s": median(&mut rpcs).round(),
        "rpc_ratio": round3(median(&mut rpc_ratios)),
    })
    .to_string();
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
