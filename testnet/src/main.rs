//! `lockstep-testnet`: run a local Lockstep network (`up`) or a demonstration (`demo`).

use clap::{Parser, Subcommand};
use eyre::eyre;
use lockstep_client::follower::Subscriber;
use lockstep_client::SeqApiClient;
use lockstep_testnet::{Cluster, ClusterOptions};
use std::collections::HashSet;
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
    },
    /// Start a fresh 4-validator network, send atomic bundles across rollups 1 and 2, and
    /// print what a verifying subscriber of each rollup receives.
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
            Cmd::Up { validators, dir } => up(validators, dir).await,
            Cmd::Demo { bundles, dir } => demo(bundles, dir).await,
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
    match std::str::from_utf8(data) {
        Ok(s) if s.chars().all(|c| !c.is_control()) => format!("{s:?}"),
        _ => lockstep_bundles::hash::encode_hex(data),
    }
}

async fn demo(count: u64, dir: Option<PathBuf>) -> eyre::Result<()> {
    let tmp;
    let dir = match dir {
        Some(d) => d,
        None => {
            tmp = std::env::temp_dir().join(format!("lockstep-demo-{}", std::process::id()));
            tmp.clone()
        }
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
    let mut sub1 =
        Subscriber::connect(&cluster.nodes[2].ws_url(), 1, Some(start), verifier.clone()).await?;
    let mut sub2 =
        Subscriber::connect(&cluster.nodes[3].ws_url(), 2, Some(start), verifier).await?;
    println!("subscribed: rollup 1 on node2, rollup 2 on node3, from height {start}");

    let key = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
    let rpc = cluster.http(0)?;
    let mut sent = HashSet::new();
    let mut heights: [std::collections::HashMap<lockstep_bundles::Hash, u64>; 2] =
        Default::default();
    for n in 0..count {
        let legs = vec![
            (
                1,
                format!("rollup1: alice pays 10 to bridge #{n}").into_bytes(),
            ),
            (
                2,
                format!("rollup2: bridge pays 10 to bob #{n}").into_bytes(),
            ),
        ];
        let b = lockstep_client::bundle::sign(&key, cluster.chain_id, n, start + 1000, legs);
        let hash = rpc
            .send_raw_bundle(lockstep_client::bundle::to_raw_hex(&b))
            .await?;
        println!("sent bundle {hash} to node0 (2 legs: rollups 1 and 2)");
        sent.insert(hash);
    }
    for (r, (name, sub)) in [
        ("rollup 1 (node2)", &mut sub1),
        ("rollup 2 (node3)", &mut sub2),
    ]
    .into_iter()
    .enumerate()
    {
        let mut seen = HashSet::new();
        println!("\n{name}: verified batches");
        while seen.len() < sent.len() {
            let v = tokio::time::timeout(Duration::from_secs(30), sub.next())
                .await
                .map_err(|_| eyre!("{name}: no batch within 30 s"))??;
            if v.batch.entries.is_empty() {
                continue;
            }
            println!(
                "  height {} block {} ({} entries, certificate and completeness proof verified)",
                v.batch.height,
                v.json.block_hash,
                v.batch.entries.len()
            );
            for e in &v.batch.entries {
                println!(
                    "    bundle {} leg {} of rollups {:?}: {}",
                    e.bundle_hash,
                    e.leg_index,
                    e.rollups,
                    show(&e.data)
                );
                seen.insert(e.bundle_hash);
                heights[r].insert(e.bundle_hash, v.batch.height);
            }
        }
    }
    cluster.stop_all()?;
    if heights[0] != heights[1] {
        return Err(eyre!(
            "legs of one bundle arrived at different heights: {heights:?}"
        ));
    }
    println!("\ndone: each bundle's two legs arrived at the same height on both rollups");
    Ok(())
}
