//! `lockstep`: the Lockstep validator node.

use clap::{Parser, Subcommand};
use lockstep_node::config::Config;
use lockstep_node::home::Home;
use std::path::PathBuf;

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
    },
    /// Run the node in a home directory until SIGTERM or Ctrl-C.
    Start {
        #[arg(long)]
        home: PathBuf,
    },
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
                "info,libp2p=warn,libp2p_gossipsub=error,arc_malachitebft=warn".into()
            }),
        )
        .with_writer(std::io::stderr)
        .init();
    let result = match cli.command {
        Command::Init { home, moniker } => {
            let h = Home::new(&home);
            h.init(&Config::new(&moniker), None, None)
                .map(|_| println!("initialised {}", home.display()))
        }
        Command::Start { home } => match tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt.block_on(lockstep_node::run::start(&home)),
            Err(e) => Err(e.into()),
        },
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
