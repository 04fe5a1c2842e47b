//! Evidence over real processes: one validator of four (`lockstep-byzantine`, Malachite's
//! proxy) signs a second prevote and precommit for every vote; an honest node records the
//! evidence, keeps it in its store, and answers it again after a restart.
//!
//! Multi-process tests: run them one at a time (`--test-threads=1`), as `scripts/test.sh` does.

#![allow(clippy::unwrap_used)]

use lockstep_client::SeqApiClient;
use lockstep_node::home::Home;
use lockstep_node::keys::NodeKey;
use lockstep_testnet::{byzantine_binary, Cluster, ClusterOptions};
use lockstep_tests::{eventually, network_dir};
use std::time::Duration;

const READY: Duration = Duration::from_secs(90);
const DEADLINE: Duration = Duration::from_secs(30);
const LIAR: usize = 1;
const HONEST: usize = 0;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evidence_of_a_double_voter_survives_the_honest_nodes_restart() -> eyre::Result<()> {
    let mut cluster = Cluster::create(&network_dir("evidence"), &ClusterOptions::default())?;
    let liar = &mut cluster.nodes[LIAR];
    liar.config.byzantine = Some(toml::from_str(
        "[engine]\nequivocate_votes = { mode = \"always\" }\n",
    )?);
    liar.config.save(&Home::new(&liar.home).config())?;
    liar.bin = Some(byzantine_binary()?);
    cluster.start_all()?;
    cluster.wait_ready(READY).await?;

    let address = NodeKey::load(&Home::new(&cluster.nodes[LIAR].home).key())?.address();
    let honest = cluster.http(HONEST)?;
    let seen = eventually(
        "evidence against the liar on an honest node",
        DEADLINE,
        || async {
            let e = honest.get_evidence().await.ok()?;
            (e.len() >= 3).then_some(e)
        },
    )
    .await?;
    assert!(seen.iter().all(|e| e.validator == address), "{seen:?}");

    // Stop the liar (nothing new is recorded meanwhile) and let the three others decide a few
    // heights, so no consensus state of the node still holds the liar's votes (a restarted
    // node replays its WAL of the height in progress); then restart the honest node.
    cluster.stop(LIAR, Duration::from_secs(10))?;
    let now = cluster.height(HONEST).await.unwrap_or(0);
    cluster
        .wait_for_height(&[0, 2, 3], now + 5, DEADLINE)
        .await?;
    let before = cluster.http(HONEST)?.get_evidence().await?;
    assert!(!before.is_empty());
    cluster.stop(HONEST, Duration::from_secs(10))?;
    cluster.start(HONEST)?;
    cluster.wait_for_height(&[HONEST], 1, READY).await?;
    let after = cluster.http(HONEST)?.get_evidence().await?;
    eprintln!(
        "evidence on node{HONEST}: {} entries before its restart, {} after",
        before.len(),
        after.len()
    );
    assert_eq!(
        serde_json::to_value(&after)?,
        serde_json::to_value(&before)?,
        "the evidence answered after a restart is what was answered before it"
    );
    Ok(())
}
