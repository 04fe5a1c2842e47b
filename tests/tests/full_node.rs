//! A full node over real processes (`role = "full"`): beside four validators it follows the
//! chain, serves rollup followers exactly the batches a validator serves, takes bundles and
//! gets them included, and keeps following when a validator is killed.
//!
//! Multi-process tests: run them one at a time (`--test-threads=1`), as `scripts/test.sh` does.

#![allow(clippy::unwrap_used)]

use lockstep_client::bundle::sign;
use lockstep_client::follower::Follower;
use lockstep_client::tracker::{send_and_wait, Outcome};
use lockstep_client::SeqApiClient;
use lockstep_node::config::Role;
use lockstep_testnet::{Cluster, ClusterOptions};
use lockstep_tests::{decided_height, network_dir, within};
use std::time::Duration;

const READY: Duration = Duration::from_secs(90);
/// Longest wait for a follower's next batch, or a bundle's inclusion.
const NEXT: Duration = Duration::from_secs(60);
/// The full node: after the four validators in `Cluster::nodes`.
const FULL: usize = 4;

/// The next `n` batches of `f`, as (height, block hash, bundle hashes).
async fn batches(f: &mut Follower, n: usize) -> eyre::Result<Vec<(u64, String, Vec<String>)>> {
    let mut out = Vec::new();
    for _ in 0..n {
        let v = within("the next batch", NEXT, f.next()).await??;
        out.push((
            v.batch.height,
            format!("{:?}", v.json.block_hash),
            v.json
                .entries
                .iter()
                .map(|e| format!("{:?}", e.bundle_hash))
                .collect(),
        ));
    }
    Ok(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_node_follows_serves_forwards_and_outlives_a_validator() -> eyre::Result<()> {
    let mut cluster = Cluster::create(
        &network_dir("full-node"),
        &ClusterOptions {
            validators: 4,
            full_nodes: 1,
            ..Default::default()
        },
    )?;
    cluster.start_all()?;
    cluster.wait_ready(READY).await?;
    assert_eq!(cluster.nodes[FULL].config.role, Role::Full);
    assert_eq!(
        cluster.genesis.validators.len(),
        4,
        "the full node is no validator"
    );
    let endpoints = cluster.endpoints();
    assert_eq!(endpoints.nodes[FULL].role, Role::Full);
    assert_eq!(endpoints.nodes[0].role, Role::Validator);

    // Followers of rollup 1 on the full node and on a validator, from the same height.
    let from = decided_height(&cluster, 0).await? + 1;
    let verifier = cluster.verifier()?;
    let mut on_full = Follower::new(
        vec![cluster.nodes[FULL].ws_url()],
        1,
        Some(from),
        verifier.clone(),
        50,
    );
    let mut on_validator =
        Follower::new(vec![cluster.nodes[0].ws_url()], 1, Some(from), verifier, 50);

    // Bundles sent to the full node are included (it gossips them to the validators).
    let key = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
    let full_rpc = cluster.http(FULL)?;
    let mut included = Vec::new();
    for nonce in 0..5u64 {
        let b = sign(
            &key,
            cluster.chain_id,
            nonce,
            from + 1_000,
            vec![(1, format!("via the full node {nonce}").into_bytes())],
        );
        let (hash, outcome) = send_and_wait(&full_rpc, &b, NEXT).await?;
        match outcome {
            Outcome::Included { height, .. } => included.push((hash, height)),
            Outcome::Dropped { reason } => panic!("bundle {hash} dropped: {reason}"),
        }
    }
    // Its status on a validator says the same.
    let v0 = cluster.http(0)?;
    for (hash, height) in &included {
        let s = v0.get_bundle_status(*hash).await?;
        assert_eq!(
            (s.status.as_str(), s.height),
            ("included", Some(*height)),
            "{s:?}"
        );
    }

    // Both followers receive the same batches (the full node's certificates verified against
    // the validator set like the validator's), including those bundles.
    let last = included.iter().map(|(_, h)| *h).max().unwrap();
    let n = (last + 3 - from) as usize;
    let a = batches(&mut on_full, n).await?;
    let b = batches(&mut on_validator, n).await?;
    assert_eq!(
        a, b,
        "a follower on the full node saw other batches than one on a validator"
    );
    let seen: Vec<&String> = a.iter().flat_map(|(_, _, e)| e).collect();
    for (hash, _) in &included {
        assert!(
            seen.contains(&&format!("{hash:?}")),
            "bundle {hash:?} not delivered"
        );
    }

    // A validator killed: the full node keeps following (three of four still decide).
    cluster.kill(1)?;
    let before = decided_height(&cluster, FULL).await?;
    // Its follower goes on, batch after verified batch, past ten heights after the kill
    // (however far behind the node it was).
    let mut seen = a.last().unwrap().0;
    while seen < before + 10 {
        let next = batches(&mut on_full, 1).await?[0].0;
        assert_eq!(next, seen + 1, "heights consecutive");
        seen = next;
    }
    assert!(decided_height(&cluster, FULL).await? >= before + 10);
    Ok(())
}
