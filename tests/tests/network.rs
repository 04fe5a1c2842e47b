#![allow(clippy::unwrap_used)]
//! A 4-validator network of real `lockstep` processes: atomic delivery to two rollups,
//! exactly-once inclusion under round-robin load, crash and catch-up, proposals whose bundles a
//! validator must fetch, and bad input.
//!
//! Multi-process tests: run them one at a time (`--test-threads=1`), as `scripts/test.sh` does.

use ed25519_dalek::SigningKey;
use jsonrpsee::core::client::ClientT;
use jsonrpsee::rpc_params;
use lockstep_bundles::{BundleBody, Hash};
use lockstep_client::bundle::{sign, to_json, to_raw_hex};
use lockstep_client::follower::Subscriber;
use lockstep_client::SeqApiClient;
use lockstep_testnet::{Cluster, ClusterOptions};
use lockstep_tests::{
    assert_identical_blocks, call_error, decided_height, eventually, metric, network_dir, within,
};
use std::collections::HashMap;
use std::time::Duration;

const READY: Duration = Duration::from_secs(90);

async fn network(name: &str) -> eyre::Result<Cluster> {
    let mut c = Cluster::create(&network_dir(name), &ClusterOptions::default())?;
    c.start_all()?;
    c.wait_ready(READY).await?;
    Ok(c)
}

fn key() -> SigningKey {
    SigningKey::generate(&mut rand::rngs::OsRng)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn atomic_two_leg_bundle_reaches_both_rollups_at_the_same_height() -> eyre::Result<()> {
    let cluster = network("atomic").await?;
    let verifier = cluster.verifier()?;
    let from = decided_height(&cluster, 0).await? + 1;
    let mut sub1 =
        Subscriber::connect(&cluster.nodes[2].ws_url(), 1, Some(from), verifier.clone()).await?;
    let mut sub2 = Subscriber::connect(&cluster.nodes[3].ws_url(), 2, Some(from), verifier).await?;

    let k = key();
    let bundle = sign(
        &k,
        cluster.chain_id,
        1,
        from + 500,
        vec![(1, b"to rollup 1".to_vec()), (2, b"to rollup 2".to_vec())],
    );
    let hash = cluster
        .http(0)?
        .send_raw_bundle(to_raw_hex(&bundle))
        .await?;
    assert_eq!(hash, bundle.hash());

    let mut found = Vec::new();
    for (rollup, sub) in [(1u64, &mut sub1), (2u64, &mut sub2)] {
        let what = format!("the bundle's leg on rollup {rollup}'s subscriber");
        let (height, entry) = within(&what, Duration::from_secs(60), async {
            loop {
                // Every batch (empty ones included) is verified and heights are consecutive.
                let v = sub.next().await?;
                if let Some(e) = v.batch.entries.iter().find(|e| e.bundle_hash == hash) {
                    return Ok::<_, eyre::Report>((v.batch.height, e.clone()));
                }
            }
        })
        .await??;
        assert_eq!(entry.rollups, vec![1, 2]);
        assert_eq!(entry.leg_index as u64, rollup - 1);
        assert_eq!(entry.data, bundle.body.legs[(rollup - 1) as usize].data);
        found.push(height);
    }
    assert_eq!(
        found[0], found[1],
        "both legs are included at the same height"
    );

    // The legs arrived from nodes 2 and 3; node1 may be a height behind them.
    cluster.wait_for_height(&[1], found[0], READY).await?;
    let status = cluster.http(1)?.get_bundle_status(hash).await?;
    assert_eq!(status.status, "included");
    assert_eq!(status.height, Some(found[0]));

    let top = decided_height(&cluster, 0).await?;
    cluster.wait_for_height(&[0, 1, 2, 3], top, READY).await?;
    assert_identical_blocks(&cluster, &[0, 1, 2, 3], top).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_bundles_sent_round_robin_are_each_included_exactly_once() -> eyre::Result<()> {
    let cluster = network("roundrobin").await?;
    let clients = (0..4)
        .map(|i| cluster.http(i))
        .collect::<eyre::Result<Vec<_>>>()?;
    let valid_until = decided_height(&cluster, 0).await? + 1000;
    let k = key();
    let mut hashes = Vec::new();
    for n in 0..200u64 {
        let b = sign(
            &k,
            cluster.chain_id,
            n,
            valid_until,
            vec![(1 + n % 3, n.to_le_bytes().to_vec()), (7, vec![1])],
        );
        let c = &clients[(n % 4) as usize];
        // Half as raw Borsh, half as the JSON object form.
        let h = if n % 2 == 0 {
            c.send_raw_bundle(to_raw_hex(&b)).await?
        } else {
            c.send_bundle(to_json(&b)).await?
        };
        assert_eq!(h, b.hash());
        hashes.push(h);
    }
    let status_client = &clients[1];
    let included: HashMap<Hash, u64> = eventually(
        "all 200 bundles included",
        Duration::from_secs(120),
        || async {
            let mut m = HashMap::new();
            for h in &hashes {
                let s = status_client.get_bundle_status(*h).await.ok()?;
                if s.status != "included" {
                    return None;
                }
                m.insert(*h, s.height?);
            }
            Some(m)
        },
    )
    .await?;

    // The status came from node1; node2 may not have decided the last of those
    // heights yet. Wait for every node to reach it, then read node2's chain up to
    // wherever it is by then, so a second inclusion after the first would show.
    let last_included = included.values().copied().max().unwrap_or(0);
    cluster
        .wait_for_height(&[0, 1, 2, 3], last_included, READY)
        .await?;
    let top = decided_height(&cluster, 2).await?;
    assert!(top >= last_included);
    let mut seen: HashMap<Hash, Vec<u64>> = HashMap::new();
    for h in 1..=top {
        let b = clients[2].get_block(h).await?.expect("decided block");
        for x in b.bundles {
            seen.entry(x).or_default().push(h);
        }
    }
    for h in &hashes {
        assert_eq!(
            seen.get(h).map(Vec::as_slice),
            Some(&[included[h]][..]),
            "bundle {h} is in exactly one block"
        );
    }
    cluster.wait_for_height(&[0, 1, 2, 3], top, READY).await?;
    assert_identical_blocks(&cluster, &[0, 1, 2, 3], top).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_validator_restarts_catches_up_and_agrees_on_every_block() -> eyre::Result<()> {
    let mut cluster = network("restart").await?;
    cluster.wait_for_height(&[0, 1, 2, 3], 3, READY).await?;
    cluster.kill(3)?;
    let at_kill = decided_height(&cluster, 0).await?;

    // The other three keep deciding, and include bundles while node3 is down.
    let k = key();
    let b = sign(
        &k,
        cluster.chain_id,
        1,
        at_kill + 1000,
        vec![(1, b"while node3 was down".to_vec())],
    );
    let status = cluster.http(1)?;
    status.send_raw_bundle(to_raw_hex(&b)).await?;
    let included_at = eventually(
        "bundle included without node3",
        Duration::from_secs(60),
        || async {
            let s = status.get_bundle_status(b.hash()).await.ok()?;
            (s.status == "included").then_some(s.height?)
        },
    )
    .await?;
    let behind = (at_kill + 20).max(included_at + 5);
    cluster.wait_for_height(&[0, 1, 2], behind, READY).await?;

    cluster.start(3)?;
    let target = decided_height(&cluster, 0).await? + 5;
    cluster
        .wait_for_height(&[0, 1, 2, 3], target, READY)
        .await?;
    assert_identical_blocks(&cluster, &[0, 1, 2, 3], target).await?;
    let s = cluster.http(3)?.get_bundle_status(b.hash()).await?;
    assert_eq!(
        s.status, "included",
        "the restarted node synced the block decided without it"
    );
    Ok(())
}

/// More free space than any disk has, in MB (an exbibyte).
const MORE_THAN_ANY_DISK_MB: u64 = 1 << 40;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_validator_low_on_disk_refuses_submissions_keeps_following_and_stops_below_the_floor(
) -> eyre::Result<()> {
    let mut cluster = Cluster::create(&network_dir("disk"), &ClusterOptions::default())?;
    // node3 believes its disk is nearly full: it must refuse what users submit to it.
    let low = &mut cluster.nodes[3];
    low.config.storage.min_free_mb = MORE_THAN_ANY_DISK_MB;
    low.config
        .save(&lockstep_node::home::Home::new(&low.home).config())?;
    cluster.start_all()?;
    cluster.wait_ready(READY).await?;

    let k = key();
    let from = decided_height(&cluster, 0).await?;
    let b = sign(
        &k,
        cluster.chain_id,
        1,
        from + 1000,
        vec![(1, b"x".to_vec())],
    );
    let (code, message) = call_error(cluster.http(3)?.send_raw_bundle(to_raw_hex(&b)).await);
    assert_eq!(code, 4006, "{message}");
    assert!(message.contains("disk is nearly full"), "{message}");
    assert!(
        metric(
            &cluster.nodes[3].metrics_url(),
            "lockstep_mempool_rejected_total"
        )
        .await?
            >= 1.0
    );
    assert!(metric(&cluster.nodes[3].metrics_url(), "lockstep_disk_free_bytes").await? > 0.0);

    // Submitted elsewhere, the same bundle is included, and node3 commits that block too.
    cluster.http(0)?.send_raw_bundle(to_raw_hex(&b)).await?;
    let on_low = cluster.http(3)?;
    let height = eventually(
        "node3 commits the bundle",
        Duration::from_secs(60),
        || async {
            let s = on_low.get_bundle_status(b.hash()).await.ok()?;
            (s.status == "included").then_some(s.height?)
        },
    )
    .await?;
    // Resubmitting an included bundle is still answered with its hash.
    assert_eq!(on_low.send_raw_bundle(to_raw_hex(&b)).await?, b.hash());

    // node2 with less free space than its stop level shuts down and says why; the other
    // three (a quorum) go on.
    cluster.stop(2, Duration::from_secs(10))?;
    let floor = &mut cluster.nodes[2];
    floor.config.storage.min_free_mb = MORE_THAN_ANY_DISK_MB;
    floor.config.storage.stop_free_mb = MORE_THAN_ANY_DISK_MB / 2;
    floor
        .config
        .save(&lockstep_node::home::Home::new(&floor.home).config())?;
    cluster.start(2)?;
    let log = cluster.nodes[2].home.join("node.log");
    eventually("node2 refuses to start", Duration::from_secs(30), || {
        let exited = !cluster.nodes[2].is_running();
        async move { exited.then_some(()) }
    })
    .await?;
    let text = std::fs::read_to_string(&log)?;
    assert!(
        text.contains("not starting") && text.contains("storage.stop_free_mb"),
        "node2's log does not say why it stopped:\n{}",
        &text[text.len().saturating_sub(2000)..]
    );
    cluster
        .wait_for_height(&[0, 1, 3], height + 5, READY)
        .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_with_protocol_codes_and_the_node_keeps_serving() -> eyre::Result<()> {
    let cluster = network("badinput").await?;
    let c = cluster.http(0)?;
    let chain = cluster.chain_id;
    let k = key();
    cluster.wait_for_height(&[0], 3, READY).await?;
    let next = c.block_number().await? + 1;

    let mut bad_sig = sign(&k, chain, 1, next + 100, vec![(1, vec![1])]);
    bad_sig.signature[10] ^= 0xff;
    let wrong_chain = sign(&k, chain + 1, 2, next + 100, vec![(1, vec![1])]);
    let expired = sign(&k, chain, 3, 1, vec![(1, vec![1])]);
    let too_far = sign(&k, chain, 4, next + 100_000, vec![(1, vec![1])]);
    let too_many_legs = sign(
        &k,
        chain,
        5,
        next + 100,
        (0..17).map(|i| (i, vec![])).collect(),
    );
    let no_legs = BundleBody {
        chain_id: chain,
        signer: k.verifying_key().to_bytes(),
        nonce: 6,
        valid_until: next + 100,
        legs: vec![],
    }
    .sign(&k);
    let too_large = sign(&k, chain, 7, next + 100, vec![(1, vec![0; 140_000])]);
    let cases: Vec<(&str, String, i32, &str)> = vec![
        ("bad signature", to_raw_hex(&bad_sig), 4001, "signature"),
        ("wrong chain id", to_raw_hex(&wrong_chain), 4002, "chain"),
        ("expired", to_raw_hex(&expired), 4003, "expired"),
        (
            "beyond max_ttl",
            to_raw_hex(&too_far),
            4003,
            "too far ahead",
        ),
        ("too many legs", to_raw_hex(&too_many_legs), 4004, "legs"),
        ("zero legs", to_raw_hex(&no_legs), 4004, "leg"),
        ("too large", to_raw_hex(&too_large), 4004, "too large"),
        ("undecodable hex", "0xzz".into(), 4005, "hex"),
        ("not a bundle", "0x0102030405".into(), 4005, "decodable"),
    ];
    for (what, raw, code, word) in cases {
        let (got, msg) = call_error(c.send_raw_bundle(raw).await);
        assert_eq!(got, code, "{what}: {msg}");
        assert!(
            msg.to_lowercase().contains(word),
            "{what}: message {msg:?} should mention {word:?}"
        );
        // The node keeps serving after every rejection.
        c.block_number().await?;
    }
    // The JSON form reaches the same verdicts.
    let (got, _) = call_error(c.send_bundle(to_json(&bad_sig)).await);
    assert_eq!(got, 4001);

    let (got, msg) = call_error(
        c.request::<serde_json::Value, _>("seq_noSuchMethod", rpc_params![])
            .await,
    );
    assert_eq!(got, -32601, "{msg}");
    let (got, msg) = call_error(
        c.request::<serde_json::Value, _>("seq_getBlock", rpc_params!["not a height"])
            .await,
    );
    assert_eq!(got, -32602, "{msg}");

    // A JSON-RPC batch request: one outcome per call, in order, errors beside results.
    let batched = sign(&k, chain, 9, next + 100, vec![(1, b"batched".to_vec())]);
    let mut batch = jsonrpsee::core::params::BatchRequestBuilder::new();
    batch.insert("seq_sendRawBundle", rpc_params![to_raw_hex(&batched)])?;
    batch.insert("seq_sendRawBundle", rpc_params![to_raw_hex(&bad_sig)])?;
    batch.insert("seq_sendRawBundle", rpc_params!["0x0102"])?;
    batch.insert("seq_sendRawBundle", rpc_params![to_raw_hex(&batched)])?;
    let outcomes: Vec<Result<Hash, i32>> = c
        .batch_request::<Hash>(batch)
        .await?
        .into_iter()
        .map(|r| r.map_err(|e| e.code()))
        .collect();
    assert_eq!(
        outcomes,
        vec![Ok(batched.hash()), Err(4001), Err(4005), Ok(batched.hash())]
    );

    // Idempotent submission: pending, then included, always the same hash.
    let good = sign(
        &k,
        chain,
        8,
        next + 100,
        vec![(1, b"hi".to_vec()), (2, b"there".to_vec())],
    );
    let h1 = c.send_raw_bundle(to_raw_hex(&good)).await?;
    let h2 = c.send_raw_bundle(to_raw_hex(&good)).await?;
    let h3 = cluster.http(2)?.send_bundle(to_json(&good)).await?;
    assert_eq!((h1, h2, h3), (good.hash(), good.hash(), good.hash()));
    eventually("bundle included", Duration::from_secs(60), || async {
        let s = c.get_bundle_status(h1).await.ok()?;
        (s.status == "included").then_some(())
    })
    .await?;
    assert_eq!(c.send_raw_bundle(to_raw_hex(&good)).await?, good.hash());
    // Rejected bundles were never admitted anywhere.
    assert_eq!(c.get_bundle_status(bad_sig.hash()).await?.status, "unknown");
    assert_eq!(c.chain_id().await?, chain);
    Ok(())
}

/// Proposals name bundles by hash. A validator that does not hold them (here its pool takes one
/// bundle, so gossip cannot fill it) fetches them from peers and still votes: with one of the
/// four validators down, no block is decided without it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_validator_missing_proposed_bundles_fetches_them_and_still_votes() -> eyre::Result<()> {
    let mut cluster = Cluster::create(&network_dir("fetch"), &ClusterOptions::default())?;
    let node2 = &mut cluster.nodes[2];
    node2.config.mempool.max_count = 1;
    node2
        .config
        .save(&lockstep_node::home::Home::new(&node2.home).config())?;
    cluster.start_all()?;
    cluster.wait_ready(READY).await?;
    cluster.kill(3)?;

    let client = cluster.http(0)?;
    let valid_until = decided_height(&cluster, 0).await? + 1000;
    let k = key();
    let mut hashes = Vec::new();
    for n in 0..40u64 {
        let b = sign(
            &k,
            cluster.chain_id,
            n,
            valid_until,
            vec![(1, vec![n as u8; 100])],
        );
        hashes.push(client.send_raw_bundle(to_raw_hex(&b)).await?);
    }
    let status = cluster.http(2)?;
    eventually(
        "all 40 bundles included",
        Duration::from_secs(120),
        || async {
            for h in &hashes {
                if status.get_bundle_status(*h).await.ok()?.status != "included" {
                    return None;
                }
            }
            Some(())
        },
    )
    .await?;
    let metrics = cluster.nodes[2].metrics_url();
    let fetched = metric(&metrics, "lockstep_consensus_bundles_fetched_total").await?;
    assert!(
        fetched >= 20.0,
        "node2 holds at most one bundle, so it fetched most of the 40 (fetched {fetched})"
    );
    let top = decided_height(&cluster, 0).await?;
    cluster.wait_for_height(&[0, 1, 2], top, READY).await?;
    assert_identical_blocks(&cluster, &[0, 1, 2], top).await?;
    Ok(())
}

/// An acknowledgement is durable: a bundle whose hash `seq_sendRawBundle` returned survives the
/// acknowledging node's crash even when nothing else holds it. node0 is alone (no quorum, so
/// nothing is included; no peer, so gossip reaches nobody) when it acknowledges the bundle, and
/// is killed (SIGKILL) at once; after all four restart, the bundle is never `unknown` and is
/// included exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acknowledged_bundle_survives_the_crash_of_the_only_node_that_holds_it(
) -> eyre::Result<()> {
    let mut cluster = network("durable").await?;
    for i in 1..4 {
        cluster.stop(i, Duration::from_secs(10))?;
    }
    let alone_at = decided_height(&cluster, 0).await?;
    let k = key();
    let b = sign(
        &k,
        cluster.chain_id,
        1,
        alone_at + 1000,
        vec![(1, b"acknowledged, then the node died".to_vec())],
    );
    let hash = cluster.http(0)?.send_raw_bundle(to_raw_hex(&b)).await?;
    assert_eq!(hash, b.hash());
    cluster.kill(0)?;

    cluster.start_all()?;
    // As soon as node0 answers again it knows the bundle (pending, or already included).
    let node0 = cluster.http(0)?;
    let first = eventually("node0 answers after restart", READY, || async {
        node0.get_bundle_status(hash).await.ok()
    })
    .await?;
    assert_ne!(
        first.status, "unknown",
        "node0 acknowledged the bundle before it was killed, and forgot it after restart"
    );

    let mut at = None;
    for i in 0..4 {
        let c = cluster.http(i)?;
        let height = eventually(
            &format!("the acknowledged bundle included, per node{i}"),
            Duration::from_secs(120),
            || async {
                let s = c.get_bundle_status(hash).await.ok()?;
                // The others learn of it by gossip or in a block; node0 never forgets it.
                if i == 0 {
                    assert_ne!(
                        s.status, "unknown",
                        "node0 forgot the bundle it acknowledged"
                    );
                }
                (s.status == "included").then_some(s.height?)
            },
        )
        .await?;
        assert_eq!(*at.get_or_insert(height), height, "node{i} disagrees");
    }
    let included_at = at.unwrap_or_default();
    let top = decided_height(&cluster, 0).await?.max(included_at + 3);
    cluster.wait_for_height(&[0, 1, 2, 3], top, READY).await?;
    let c = cluster.http(1)?;
    let mut found = Vec::new();
    for h in 1..=top {
        let block = c.get_block(h).await?.expect("decided block");
        found.extend(block.bundles.iter().filter(|x| **x == hash).map(|_| h));
    }
    assert_eq!(found, vec![included_at], "included exactly once");
    assert_identical_blocks(&cluster, &[0, 1, 2, 3], top).await?;
    Ok(())
}
