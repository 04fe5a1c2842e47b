#![allow(clippy::unwrap_used)]
//! Validators in the network lab (one network namespace each, faults made by nftables in the
//! kernel). Needs root: without it the lab refuses to start and these tests fail, they are not
//! skipped.
//!
//! Multi-process tests: run them one at a time (`--test-threads=1`), as `scripts/test.sh` does.

use lockstep_testnet::{Cluster, ClusterOptions, Network, LAB_CONSENSUS_PORT, LAB_GOSSIP_PORT};
use lockstep_tests::network_dir;
use std::time::Duration;

const READY: Duration = Duration::from_secs(90);
/// Long enough for the height in flight when a partition starts to finish or stop.
const SETTLE: Duration = Duration::from_secs(3);
/// A 2|2 partition has no quorum: no height may be decided for this long.
const STALLED: Duration = Duration::from_secs(5);
/// Heights resume within this after a heal (peers redial with backoff).
const RESUME: Duration = Duration::from_secs(60);

async fn lab_network(name: &str, relay: bool) -> eyre::Result<Cluster> {
    let opts = ClusterOptions {
        network: Network::Lab { relay },
        ..Default::default()
    };
    let mut c = Cluster::create(&network_dir(name), &opts)?;
    c.start_all()?;
    c.wait_ready(READY).await?;
    Ok(c)
}

async fn heights(c: &Cluster) -> Vec<Option<u64>> {
    let mut v = Vec::new();
    for i in 0..c.nodes.len() {
        v.push(c.height(i).await);
    }
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_two_two_partition_stalls_every_node_and_heal_resumes_heights() -> eyre::Result<()> {
    let cluster = lab_network("lab-partition", false).await?;
    let all = [0, 1, 2, 3];
    cluster.wait_for_height(&all, 3, READY).await?;
    let lab = cluster.lab().unwrap();
    // The nodes listen on their namespace addresses, reached from the harness on the bridge.
    assert!(cluster.nodes[2]
        .rpc_url()
        .contains(&lab.node_ip(2).to_string()));

    let how = lab.partition(&[vec![0, 1], vec![2, 3]])?;
    assert!(how.contains("nftables"), "{how}");
    tokio::time::sleep(SETTLE).await;
    // The harness still reaches every node's RPC whatever the partition.
    let before = heights(&cluster).await;
    assert!(before.iter().all(Option::is_some), "{before:?}");
    tokio::time::sleep(STALLED).await;
    let after = heights(&cluster).await;
    assert_eq!(before, after, "a height was decided without a quorum");

    lab.heal()?;
    let top = after.iter().flatten().max().copied().unwrap_or(0);
    cluster.wait_for_height(&all, top + 3, RESUME).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_relay_mode_peer_connections_go_only_through_the_delaying_relay() -> eyre::Result<()> {
    let cluster = lab_network("lab-relay", true).await?;
    let all = [0, 1, 2, 3];
    cluster.wait_for_height(&all, 3, READY).await?;
    let lab = cluster.lab().unwrap();
    assert!(lab.has_relay());
    // Peers are listed by relay address: link i→j at shadow_j.
    assert!(cluster.nodes[0].config.consensus.peers[0].contains(&lab.shadow_ip(1).to_string()));

    // Every established connection between peer ports is with a shadow address, never with
    // another node's real address.
    for i in 0..4 {
        let out = lab
            .command(i, "ss")
            .args(["-tnH", "state", "established"])
            .output()?;
        let ss = String::from_utf8_lossy(&out.stdout);
        let mut peers = 0;
        for line in ss.lines() {
            let cols: Vec<&str> = line.split_whitespace().collect();
            let (Some(local), Some(remote)) = (cols.get(cols.len().wrapping_sub(2)), cols.last())
            else {
                continue;
            };
            let remote_ip = remote.rsplit_once(':').map(|(ip, _)| ip).unwrap_or("");
            let local_port: u16 = local
                .rsplit_once(':')
                .and_then(|(_, p)| p.parse().ok())
                .unwrap_or(0);
            if remote_ip == lab.harness_ip().to_string() {
                continue; // the harness's RPC
            }
            for j in (0..4).filter(|&j| j != i) {
                assert_ne!(
                    remote_ip,
                    lab.node_ip(j).to_string(),
                    "node{i} has a direct connection to node{j}: {line}"
                );
            }
            if [LAB_CONSENSUS_PORT, LAB_GOSSIP_PORT].contains(&local_port)
                || (0..4).any(|j| remote_ip == lab.shadow_ip(j).to_string())
            {
                peers += 1;
            }
        }
        assert!(peers > 0, "node{i} has no relayed peer connection:\n{ss}");
    }

    // A one-way delay on every link slows heights but keeps them coming.
    let how = lab.set_delay_all(Duration::from_millis(30), Duration::from_millis(5))?;
    assert!(how.contains("relay"), "{how}");
    let h = cluster.height(0).await.unwrap_or(0);
    cluster.wait_for_height(&all, h + 3, RESUME).await?;
    Ok(())
}
