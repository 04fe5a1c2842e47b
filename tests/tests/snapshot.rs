//! Joining from a snapshot over real processes (ADR-027): with `keep_heights` set, a validator
//! whose store is wiped after the others pruned past its height starts where their history
//! starts, syncs every block from there (each certified), agrees with them, keeps no history
//! below it (4007), and votes again once it holds the replay window. Without the snapshot it
//! could not catch up at all: no peer serves height 1.
//!
//! Multi-process tests: run them one at a time (`--test-threads=1`), as `scripts/test.sh` does.

#![allow(clippy::unwrap_used)]

use lockstep_bundles::Address;
use lockstep_client::SeqApiClient;
use lockstep_node::config::Config;
use lockstep_node::home::Home;
use lockstep_node::keys::NodeKey;
use lockstep_testnet::{Cluster, ClusterOptions};
use lockstep_tests::{call_error, decided_height, eventually, network_dir};
use std::time::{Duration, Instant};

const READY: Duration = Duration::from_secs(90);
const JOIN: Duration = Duration::from_secs(120);
/// Heights each node keeps; genesis `max_ttl` below it.
const KEEP: u64 = 40;
const MAX_TTL: u64 = 20;
const WIPED: usize = 3;

/// Node `i`'s earliest kept height, as `seq_subscribeRollup` tells it: the lowest
/// `fromHeight` it takes (4007 below).
async fn refuses_from(cluster: &Cluster, i: usize, from: u64) -> bool {
    let url = cluster.nodes[i].ws_url();
    let client = jsonrpsee::ws_client::WsClientBuilder::default()
        .build(&url)
        .await
        .unwrap();
    let r = client.subscribe_rollup(1, Some(from)).await;
    match r {
        Ok(_) => false,
        Err(e) => {
            let (code, _) = call_error::<()>(Err(e));
            code == 4007
        }
    }
}

/// Four validators in `dir`, started and deciding; and the address of the one to be wiped.
async fn running(dir: &std::path::Path, opts: ClusterOptions) -> eyre::Result<(Cluster, Address)> {
    let mut cluster = Cluster::create(dir, &opts)?;
    cluster.start_all()?;
    cluster.wait_ready(READY).await?;
    let key = NodeKey::load(&Home::new(&cluster.nodes[WIPED].home).key())?;
    Ok((cluster, Address::from_public_key(&key.public_key())))
}

/// The first height from `from` whose certificate (read from node 0) `me` signed.
async fn signs_from(
    cluster: &Cluster,
    me: Address,
    from: u64,
    timeout: Duration,
) -> eyre::Result<u64> {
    let deadline = Instant::now() + timeout;
    let c0 = cluster.http(0)?;
    let mut h = from;
    loop {
        eyre::ensure!(
            Instant::now() < deadline,
            "{me} signed nothing from {from} on"
        );
        let top = decided_height(cluster, 0).await?;
        while h <= top {
            let j = c0.get_rollup_batch(1, h).await?.unwrap();
            let b = lockstep_client::verify::from_json(&j)?;
            if b.certificate.signatures.iter().any(|s| s.address == me) {
                return Ok(h);
            }
            h += 1;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn target_after(cluster: &Cluster) -> eyre::Result<u64> {
    decided_height(cluster, 0).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wiped_validator_joins_from_a_snapshot_after_its_peers_pruned_and_agrees(
) -> eyre::Result<()> {
    let limits = lockstep_bundles::Limits {
        max_ttl: MAX_TTL,
        ..Default::default()
    };
    let (mut cluster, me) = running(
        &network_dir("snapshot"),
        ClusterOptions {
            keep_heights: KEEP,
            limits,
            ..Default::default()
        },
    )
    .await?;

    // Past the keep window: height 1 is pruned everywhere.
    cluster
        .wait_for_height(&[0, 1, 2, 3], 2 * KEEP + 10, READY)
        .await?;
    assert!(
        refuses_from(&cluster, 0, 1).await,
        "node0 still serves height 1"
    );

    // Node 3 loses its store and WAL (key, floor and config kept) while the others go on
    // until they have pruned every height it had.
    let had = decided_height(&cluster, WIPED).await?;
    cluster.kill(WIPED)?;
    let home = cluster.nodes[WIPED].home.clone();
    std::fs::remove_dir_all(home.join("data"))?;
    cluster
        .wait_for_height(&[0, 1, 2], had + KEEP + 10, READY)
        .await?;
    assert!(
        refuses_from(&cluster, 0, had).await,
        "node0 still serves height {had}"
    );

    // Without the snapshot it starts at height 1, which no peer serves: it decides nothing.
    let config_path = Home::new(&home).config();
    let set_snapshot = |on: bool| -> eyre::Result<()> {
        let mut c = Config::load(&config_path)?;
        c.history.join_from_snapshot = on;
        c.save(&config_path)
    };
    set_snapshot(false)?;
    cluster.start(WIPED)?;
    cluster
        .wait_for_height(&[0], target_after(&cluster).await? + 20, READY)
        .await?;
    assert_eq!(
        decided_height(&cluster, WIPED).await?,
        0,
        "a wiped node caught up without a snapshot"
    );
    // …and says so.
    let c3 = cluster.http(WIPED)?;
    eventually(
        "the node without a snapshot to say it is stalled",
        READY,
        || async {
            c3.health()
                .await
                .ok()
                .filter(|h| h.stalled && h.height == 0)
        },
    )
    .await?;
    cluster.kill(WIPED)?;
    std::fs::remove_dir_all(home.join("data"))?;
    set_snapshot(true)?;

    // With it, it starts again and joins where the peers' history starts.
    let target = decided_height(&cluster, 0).await?;
    let started = Instant::now();
    cluster.start(WIPED)?;
    cluster.wait_for_height(&[WIPED], target, JOIN).await?;
    let joined = started.elapsed();
    eprintln!(
        "joined from a snapshot: at height {target} after {:.1} s (chain at {target}, {KEEP} \
         heights kept)",
        joined.as_secs_f64()
    );

    // It keeps nothing below where it started, and the same blocks as the others from there.
    let c3 = cluster.http(WIPED)?;
    assert!(c3.get_block(1).await?.is_none());
    assert!(refuses_from(&cluster, WIPED, had).await);
    let mut first = None;
    let top = decided_height(&cluster, WIPED).await?;
    let c0 = cluster.http(0)?;
    for h in (had + 1)..=top {
        let Some(b) = c3.get_block(h).await? else {
            assert!(first.is_none(), "height {h} missing after {first:?}");
            continue;
        };
        first.get_or_insert(h);
        let other = c0.get_block(h).await?.unwrap();
        assert_eq!(b.hash, other.hash, "height {h}");
    }
    let first = first.unwrap();
    assert!(
        first > had,
        "started at {first}, at or below its old height {had}"
    );
    assert!(top - first >= 10, "compared only {} heights", top - first);

    // Once it holds the replay window it votes again: its signature is in certificates.
    let voted = signs_from(&cluster, me, first + MAX_TTL - 1, JOIN).await?;
    assert!(cluster.http(WIPED)?.health().await?.validator);
    eprintln!("node3 started at {first} and signed again at {voted}");
    Ok(())
}

/// The time a wiped validator takes to join a long chain whose validators keep the default
/// replay window (`max_ttl` 3,600 heights), decided as fast as the machine goes: it is wiped
/// and joins again at each height of `LOCKSTEP_JOIN_AT` (default `100000`; e.g.
/// `10000,20000` shows the time does not grow with the chain). By hand — it takes as long as
/// the chain takes to build: `cargo test --features lockstep-node/byzantine --test snapshot
/// -- --ignored --nocapture` after `cargo build --workspace --bins …`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn join_time_on_a_long_chain() -> eyre::Result<()> {
    let checkpoints: Vec<u64> = std::env::var("LOCKSTEP_JOIN_AT")
        .unwrap_or_else(|_| "100000".into())
        .split(',')
        .map(|v| v.trim().parse())
        .collect::<Result<_, _>>()?;
    let keep = lockstep_bundles::limits::DEFAULT_MAX_TTL;
    let dir = network_dir("snapshot-long");
    let (mut cluster, me) = running(
        &dir,
        ClusterOptions {
            keep_heights: keep,
            target_block_time_ms: 0,
            propose_wait_ms: 0,
            ..Default::default()
        },
    )
    .await?;
    let built = Instant::now();
    for at in checkpoints {
        let mut last = 0;
        while last < at {
            tokio::time::sleep(Duration::from_secs(10)).await;
            last = decided_height(&cluster, 0).await?;
            eprintln!(
                "chain at {last} after {:.0} s",
                built.elapsed().as_secs_f64()
            );
        }
        cluster.kill(WIPED)?;
        std::fs::remove_dir_all(cluster.nodes[WIPED].home.join("data"))?;
        let target = decided_height(&cluster, 0).await?;
        let started = Instant::now();
        cluster.start(WIPED)?;
        cluster
            .wait_for_height(&[WIPED], target, Duration::from_secs(3600))
            .await?;
        let caught_up = started.elapsed();
        signs_from(&cluster, me, target, Duration::from_secs(3600)).await?;
        let voting = started.elapsed();
        eprintln!(
            "{{\"chain_heights\": {target}, \"keep_heights\": {keep}, \"caught_up_s\": {:.1}, \
             \"voting_s\": {:.1}, \"chain_build_s\": {:.0}}}",
            caught_up.as_secs_f64(),
            voting.as_secs_f64(),
            built.elapsed().as_secs_f64()
        );
    }
    cluster.stop_all()?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
