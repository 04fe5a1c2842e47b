//! The `lockstep` command line (and `lockstep-byzantine`'s, the same with Byzantine behaviours
//! compiled in): `init`, `start`, the rollup and bundle tools, and the validator set tools.

use crate::config::Config;
use crate::home::Home;
use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};

mod validator;

#[derive(Parser)]
#[command(
    name = "lockstep",
    version,
    about = "Lockstep shared sequencer validator"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create a home directory: key, config.toml and (if missing) a one-validator genesis.
    Init {
        #[arg(long)]
        home: PathBuf,
        #[arg(long, default_value = "node0")]
        moniker: String,
        /// A full node (config `role = "full"`): it follows an existing network, whose
        /// genesis file --genesis names, and never votes. Prints its peer id, which the
        /// validators it connects to list in `peers.allowed`.
        #[arg(long, requires = "genesis")]
        full: bool,
        /// The network's genesis file, copied into the home (default: a new one-validator
        /// network of this node's key).
        #[arg(long)]
        genesis: Option<PathBuf>,
    },
    /// Run the node in a home directory until SIGTERM or Ctrl-C.
    Start {
        #[arg(long)]
        home: PathBuf,
        /// Also shut down when the process that started this one exits (for harnesses that
        /// run nodes as child processes).
        #[arg(long)]
        exit_with_parent: bool,
    },
    /// Rollup tools.
    Rollup {
        #[command(subcommand)]
        command: RollupCmd,
    },
    /// Bundle tools.
    Bundle {
        #[command(subcommand)]
        command: BundleCmd,
    },
    /// Validator set updates: propose one, co-sign it, submit it; the set in force.
    Validator {
        #[command(subcommand)]
        command: validator::ValidatorCmd,
    },
}

#[derive(Subcommand)]
enum RollupCmd {
    /// Print a rollup's batches as they are decided, each verified against the genesis
    /// validator set; fails over between the given nodes without skipping a height.
    Follow {
        #[arg(long)]
        rollup: u64,
        /// WebSocket or HTTP URL of one or more nodes (ws:// is used either way).
        #[arg(long, num_args = 1.., required = true)]
        rpc: Vec<String>,
        /// The chain's genesis file: the trust root for verification.
        #[arg(long)]
        genesis: PathBuf,
        /// First height (default: the next one).
        #[arg(long)]
        from: Option<u64>,
    },
}

#[derive(Subcommand)]
enum BundleCmd {
    /// Sign a bundle, send it, and wait until it is included or dropped.
    Send {
        /// A key file as written by `lockstep init` (key.json).
        #[arg(long)]
        key: PathBuf,
        /// A leg as ROLLUP_ID:0xHEX; repeat for an atomic multi-rollup bundle.
        #[arg(long = "leg", required = true)]
        legs: Vec<String>,
        #[arg(long, default_value = "http://127.0.0.1:8545")]
        rpc: String,
        /// The bundle may be included up to this many heights from now.
        #[arg(long, default_value_t = 100)]
        valid_for: u64,
        /// Distinguishes otherwise identical bundles (default: random).
        #[arg(long)]
        nonce: Option<u64>,
        #[arg(long, default_value_t = 60)]
        timeout_secs: u64,
    },
}

fn runtime() -> eyre::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

/// The log filter when `RUST_LOG` is unset or invalid.
const DEFAULT_LOG_FILTER: &str = "info,libp2p=warn,libp2p_gossipsub=error,arc_malachitebft=warn";

/// `RUST_LOG` as given, except that `libp2p_gossipsub` stays at `error` unless the filter
/// names it: gossipsub logs every message it cannot queue to a slow peer at `warn`, with the
/// whole message debug-printed byte by byte. With 64 KiB bundles that was hundreds of KB per
/// line, 675 MB of log in one validator in 20 s, and the CPU spent formatting it slowed the
/// validator further. A plain `RUST_LOG=info` must not turn a slow peer into that.
fn log_filter(env: Option<String>) -> tracing_subscriber::EnvFilter {
    let default = || tracing_subscriber::EnvFilter::new(DEFAULT_LOG_FILTER);
    match env {
        Some(f) if !f.trim().is_empty() => {
            let f = if f.contains("libp2p_gossipsub") {
                f
            } else {
                format!("{f},libp2p_gossipsub=error")
            };
            tracing_subscriber::EnvFilter::try_new(f).unwrap_or_else(|_| default())
        }
        _ => default(),
    }
}

/// Parses the command line and runs the command.
pub fn main() -> std::process::ExitCode {
    lockstep_alloc::init_from_env();
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(log_filter(std::env::var("RUST_LOG").ok()))
        .with_writer(std::io::stderr)
        .init();
    let result = match cli.command {
        Command::Init {
            home,
            moniker,
            full,
            genesis,
        } => init(&home, &moniker, full, genesis.as_deref()),
        Command::Start {
            home,
            exit_with_parent,
        } => {
            let exit =
                runtime().and_then(|rt| rt.block_on(crate::run::start(&home, exit_with_parent)));
            match exit {
                // Every thread and file of this run is gone with its runtime: run again, the
                // same process (pid, parent, namespaces, environment), now as a validator.
                Ok(crate::run::Exit::Rejoin) => rejoin(),
                Ok(crate::run::Exit::Stopped) => Ok(()),
                Err(e) => Err(e),
            }
        }
        Command::Rollup {
            command:
                RollupCmd::Follow {
                    rollup,
                    rpc,
                    genesis,
                    from,
                },
        } => {
            runtime().and_then(|rt| rt.block_on(crate::tools::follow(rollup, rpc, &genesis, from)))
        }
        Command::Bundle {
            command:
                BundleCmd::Send {
                    key,
                    legs,
                    rpc,
                    valid_for,
                    nonce,
                    timeout_secs,
                },
        } => runtime().and_then(|rt| {
            rt.block_on(crate::tools::send(
                &key,
                &legs,
                &rpc,
                valid_for,
                nonce,
                timeout_secs,
            ))
        }),
        Command::Validator { command } => validator::run(command),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Replaces this process with a new run of the same command line.
fn rejoin() -> eyre::Result<()> {
    use std::os::unix::process::CommandExt as _;
    let exe = std::env::current_exe()?;
    let err = std::process::Command::new(&exe)
        .args(std::env::args_os().skip(1))
        .exec();
    Err(eyre::eyre!("cannot start {} again: {err}", exe.display()))
}

/// `lockstep init`: a home with a key, a config and a genesis file (the network's, or a new
/// one-validator network of this key).
fn init(home: &Path, moniker: &str, full: bool, genesis: Option<&Path>) -> eyre::Result<()> {
    let h = Home::new(home);
    let genesis = genesis.map(crate::genesis::Genesis::load).transpose()?;
    let mut config = Config::new(moniker);
    if full {
        config.role = crate::config::Role::Full;
    }
    h.init(&config, None, genesis.as_ref())?;
    let key = crate::keys::NodeKey::load(&h.key())?;
    let peer = lockstep_p2p::peer_id(&key.secret).map_err(|e| eyre::eyre!("{e}"))?;
    let loaded = Config::load(&h.config())?;
    println!(
        "initialised {} ({}, address {}, peer id {peer})",
        home.display(),
        loaded.role,
        key.address()
    );
    if loaded.role == crate::config::Role::Full {
        println!(
            "set consensus.peers and gossip.peers in its config.toml to validators (or full \
             nodes) that list {peer} in their peers.allowed"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::log_filter;

    #[test]
    fn gossipsub_stays_at_error_unless_the_filter_names_it() {
        assert_eq!(
            log_filter(Some("info".into())).to_string(),
            "libp2p_gossipsub=error,info"
        );
        assert!(log_filter(Some("info,libp2p_gossipsub=debug".into()))
            .to_string()
            .contains("libp2p_gossipsub=debug"));
        assert!(log_filter(None)
            .to_string()
            .contains("libp2p_gossipsub=error"));
        assert!(log_filter(Some("not a [filter".into()))
            .to_string()
            .contains("libp2p_gossipsub=error"));
    }
}
