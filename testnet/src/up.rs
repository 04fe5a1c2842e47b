//! `lockstep-testnet up`: start a local network in the foreground, print its endpoints, watch
//! its nodes, and stop them all on Ctrl-C.

use lockstep_testnet::{Cluster, ClusterOptions};
use std::path::PathBuf;
use std::time::Duration;

pub(crate) async fn up(validators: usize, dir: PathBuf) -> eyre::Result<()> {
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
