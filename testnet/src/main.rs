//! `lockstep-testnet`: run a local Lockstep network (`up`) or a demonstration (`demo`).

mod bench_runs;
mod demo;
mod faults_cli;
mod soak;
mod up;

use clap::{Parser, Subcommand};
use lockstep_testnet::bench;
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
        /// Also start this many full nodes (`role = "full"`: they follow the chain, serve the
        /// JSON-RPC API and forward bundles, never vote), listed in endpoints.json with their
        /// role. A network keeps the full nodes it was made with.
        #[arg(long, default_value_t = 0)]
        full_nodes: usize,
        /// Also start Prometheus (the `prometheus` binary: Debian package `prometheus`, or
        /// $PROMETHEUS_BIN) scraping every node, with the alert rules of
        /// deploy/prometheus/alerts.yml; its config, data and log go in DIR/prometheus/, its
        /// address into endpoints.json ("prometheus"). Stopped with the network.
        #[arg(long)]
        monitor: bool,
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
        /// Consecutive bundles of the load signed by one key. The default, 1, gives every
        /// bundle its own key, as independent users do; 400 is the load of the fifteenth and
        /// earlier sessions (a verification batch then holds one to three keys, which verify
        /// much faster). The ceiling is measured on distinct keys, or on this same mix when it
        /// is not 1 (each run records which as `raw_verify_keys`). At most the mempool's
        /// pending-per-signer cap (1,000).
        #[arg(long, default_value_t = bench::DEFAULT_BUNDLES_PER_SIGNER)]
        bundles_per_signer: usize,
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
        /// Delay every peer link by this many ms one way: the validators run in the network
        /// lab (a network namespace each; root needed) with every consensus and gossip link
        /// through the harness's delaying TCP relay (the kernel has no netem). Recorded in the
        /// result JSON (`link_delay_ms`, `network`).
        #[arg(long)]
        link_delay_ms: Option<u64>,
        /// Jitter on top of --link-delay-ms: uniform in [0, J] ms per chunk, never reordering
        /// a stream.
        #[arg(long, default_value_t = 0, requires = "link_delay_ms")]
        link_jitter_ms: u64,
        /// Beside a single run, hold what strangers can: 500 idle WebSockets that answer
        /// pings and 200 gossip connections that never finish their handshake (recorded as
        /// `hostile` in the result; compare with the same run without it).
        #[arg(long, conflicts_with_all = ["full", "smoke", "soak"])]
        hostile: bool,
    },
    /// Fault runs: 4 validators in Linux network namespaces (root needed), a workload that
    /// records every acknowledgement, a nemesis, and a checker of agreement, no equivocation,
    /// acknowledged bundles kept, heights kept and liveness. Writes history.json and
    /// result.json per run under --out and prints a table of scenario × property.
    Faults {
        /// A scenario name, a comma-separated list, `all` (every scenario CI runs),
        /// `all-byzantine` (every Byzantine one, with 4 and with 7 validators), or `random` (a
        /// randomized schedule drawn from --seed, lasting --duration).
        #[arg(long, default_value = "all")]
        scenario: String,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Seconds of faults in a randomized schedule.
        #[arg(long, default_value_t = 300)]
        duration: u64,
        /// Seconds each fault is held.
        #[arg(long, default_value_t = 10)]
        hold: u64,
        #[arg(long, default_value = "target/fault-results")]
        out: PathBuf,
        /// Run nothing: judge the history a past run saved in this folder again, with this
        /// build's checker.
        #[arg(long)]
        check: Option<PathBuf>,
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
                full_nodes,
                monitor,
            } => {
                if reset && dir.exists() {
                    std::fs::remove_dir_all(&dir)?;
                }
                up::up(validators, full_nodes, dir, monitor).await
            }
            Cmd::Demo { bundles, dir } => demo::demo(bundles, dir).await,
            Cmd::Faults {
                scenario,
                seed,
                duration,
                hold,
                out,
                check,
            } => match check {
                Some(dir) => faults_cli::recheck(&dir),
                None => faults_cli::faults(scenario, seed, duration, hold, out).await,
            },
            Cmd::Bench {
                validators,
                legs,
                leg_bytes,
                bundles_per_signer,
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
                link_delay_ms,
                link_jitter_ms,
                hostile,
            } => {
                let cap = lockstep_node::config::MempoolConfig::default().max_per_signer;
                if bundles_per_signer == 0 || bundles_per_signer > cap {
                    return Err(eyre::eyre!(
                        "--bundles-per-signer must be 1 to {cap} (the mempool holds at most \
                         {cap} pending bundles per signer), not {bundles_per_signer}"
                    ));
                }
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
                    bundles_per_signer,
                    block_time_ms,
                    propose_wait_ms,
                    publish_linger_ms,
                    keep_heights,
                    link_delay_ms,
                    link_jitter_ms,
                };
                let result = if smoke {
                    bench_runs::bench_smoke(&base, &out).await
                } else if let Some(minutes) = soak {
                    soak::bench_soak(&base, &out, validators, &spec, minutes).await
                } else if full {
                    bench_runs::bench_full(&base, &out, &spec, Duration::from_secs(step)).await
                } else {
                    bench_runs::bench_single(&base, &out, validators, &spec, hostile).await
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
