//! `lockstep-ledger`: run the example token-ledger rollup against Lockstep nodes.

use clap::Parser;
use lockstep_client::follower::Follower;
use lockstep_client::verify::BatchVerifier;
use lockstep_ledger::{Applied, Ledger, Settlement, SettlementLog};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    about = "Example rollup: follow a rollup, execute its legs, settle (height, block, state root) to a log"
)]
struct Args {
    #[arg(long)]
    rollup: u64,
    /// WebSocket URLs of one or more Lockstep nodes.
    #[arg(long, num_args = 1.., required = true)]
    rpc: Vec<String>,
    /// The chain's genesis.json (chain id and validators: the trust root).
    #[arg(long)]
    genesis: PathBuf,
    #[arg(long)]
    settlement_log: PathBuf,
    #[arg(long)]
    from: Option<u64>,
}

#[derive(serde::Deserialize)]
struct GenesisFile {
    chain_id: u64,
    validators: Vec<GenesisValidator>,
}

#[derive(serde::Deserialize)]
struct GenesisValidator {
    public_key: String,
    voting_power: u64,
}

fn verifier(path: &PathBuf) -> eyre::Result<BatchVerifier> {
    let g: GenesisFile = serde_json::from_str(&std::fs::read_to_string(path)?)?;
    let vals = g
        .validators
        .iter()
        .map(|v| {
            let pk = lockstep_bundles::hash::decode_hex_array::<32>(&v.public_key)?;
            Ok(lockstep_bundles::Validator::new(pk, v.voting_power))
        })
        .collect::<eyre::Result<Vec<_>>>()?;
    Ok(BatchVerifier::new(
        g.chain_id,
        lockstep_bundles::ValidatorSet::new(vals)?,
    ))
}

#[tokio::main]
async fn main() -> eyre::Result<()> {
    tracing_subscriber::fmt().with_env_filter("warn").init();
    let args = Args::parse();
    let mut follower = Follower::new(
        args.rpc.clone(),
        args.rollup,
        args.from,
        verifier(&args.genesis)?,
        50,
    );
    let mut ledger = Ledger::new(args.rollup);
    let log = SettlementLog::new(&args.settlement_log);
    loop {
        let v = follower.next().await?;
        for e in &v.batch.entries {
            match ledger.execute(e) {
                Applied::Ok(tx) => println!("height {} executed {:?}", v.batch.height, tx),
                Applied::Failed(why) => println!(
                    "height {} leg of {} failed: {why}",
                    v.batch.height, e.bundle_hash
                ),
            }
        }
        let s = Settlement {
            height: v.batch.height,
            block_hash: v.json.block_hash,
            state_root: ledger.state_root(),
        };
        log.append(&s)?;
    }
}
