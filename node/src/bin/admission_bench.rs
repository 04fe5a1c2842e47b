//! `lockstep-admission-bench`: admission throughput next to the machine's raw ed25519
//! batch-verification rate, measured in the same run on all cores.
//!
//! Prints one JSON line `{"bench":"admission","bundles_per_s":…,"raw_verify_per_s":…,"ratio":…}`
//! and appends it to `target/bench-results/admission.jsonl` (or `--out`).

use bytes::Bytes;
use clap::Parser;
use lockstep_bundles::sig::Item;
use lockstep_bundles::Limits;
use lockstep_consensus::Tip;
use lockstep_mempool::included::IncludedSet;
use lockstep_mempool::pool::PoolConfig;
use lockstep_mempool::Mempool;
use lockstep_node::admission::{raw_verify_rate, Admission, Source};
use lockstep_p2p::{BundleGossip, Verdict};
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::{watch, Semaphore};

#[derive(Parser)]
#[command(about = "Benchmark bundle admission against raw signature verification")]
struct Args {
    #[arg(long, default_value_t = 40_000)]
    bundles: usize,
    #[arg(long, default_value_t = 2)]
    legs: usize,
    #[arg(long, default_value_t = 256)]
    leg_bytes: usize,
    /// Bundles submitted concurrently (like many RPC clients and gossip peers at once).
    #[arg(long, default_value_t = 4096)]
    concurrency: usize,
    #[arg(long, default_value = "target/bench-results/admission.jsonl")]
    out: PathBuf,
}

/// Gossip that goes nowhere: the benchmark measures admission alone.
struct NoGossip;

#[async_trait::async_trait]
impl BundleGossip for NoGossip {
    async fn publish(&self, _data: Bytes) {}
    async fn report(
        &self,
        _id: libp2p_gossip_id::MessageId,
        _from: libp2p_gossip_id::PeerId,
        _v: Verdict,
    ) {
    }
    fn peers(&self) -> usize {
        0
    }
}

mod libp2p_gossip_id {
    pub use lockstep_p2p::{MessageId, PeerId};
}

fn cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
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

    eprintln!("raw batch verification on {} cores…", cores());
    let raw = raw_verify_rate(&items);

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let admitted_per_s = rt.block_on(async {
        let pool = PoolConfig {
            max_count: args.bundles + 1,
            max_bytes: usize::MAX / 2,
            max_per_signer: args.bundles,
        };
        let mempool = Arc::new(Mempool::new(
            pool,
            IncludedSet::new(Limits::default().max_ttl),
        ));
        let (_tip_tx, tip_rx) = watch::channel(Tip::default());
        let admission = Admission::new(
            1,
            Limits::default(),
            mempool.clone(),
            tip_rx,
            Arc::new(NoGossip),
        );
        let permits = Arc::new(Semaphore::new(args.concurrency));
        eprintln!("admission of {} bundles…", encoded.len());
        let started = Instant::now();
        let mut tasks = Vec::with_capacity(encoded.len());
        for e in encoded {
            let permit = permits.clone().acquire_owned().await?;
            let a = admission.clone();
            tasks.push(tokio::spawn(async move {
                let r = a.submit_bytes(e, Source::Rpc).await;
                drop(permit);
                r
            }));
        }
        for t in tasks {
            t.await?
                .map_err(|e| eyre::eyre!("admission refused a valid bundle: {e}"))?;
        }
        let rate = mempool.size().0 as f64 / started.elapsed().as_secs_f64();
        Ok::<f64, eyre::Report>(rate)
    })?;

    let line = serde_json::json!({
        "bench": "admission",
        "bundles": args.bundles,
        "legs": args.legs,
        "leg_bytes": args.leg_bytes,
        "cores": cores(),
        "bundles_per_s": admitted_per_s.round(),
        "raw_verify_per_s": raw.round(),
        "ratio": (admitted_per_s / raw * 1000.0).round() / 1000.0,
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
