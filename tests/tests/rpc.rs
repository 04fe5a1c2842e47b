//! The JSON-RPC server's documented limits, over a real one-validator network each: the
//! per-connection rate limit (docs/decisions.md ADR-010), subscriptions refused at `fromHeight`
//! 0 and dropped when they fall behind (ADR-011), and pending bundles that expire (ADR-005).
//!
//! Multi-process tests: run them one at a time (`--test-threads=1`), as `scripts/test.sh` does.

#![allow(clippy::unwrap_used)]

use ed25519_dalek::SigningKey;
use eyre::{bail, eyre};
use jsonrpsee::core::client::ClientT;
use jsonrpsee::core::params::BatchRequestBuilder;
use jsonrpsee::rpc_params;
use jsonrpsee::ws_client::WsClientBuilder;
use lockstep_bundles::{Hash, Limits};
use lockstep_client::bundle::{sign, to_raw_hex};
use lockstep_client::SeqApiClient;
use lockstep_node::config::Config;
use lockstep_testnet::{Cluster, ClusterOptions};
use lockstep_tests::raw_ws::RawWs;
use lockstep_tests::{call_error, decided_height, eventually, metric, network_dir, within};
use serde_json::{json, Value};
use std::time::Duration;

const READY: Duration = Duration::from_secs(90);
/// Longest wait for any one message from the node.
const NEXT: Duration = Duration::from_secs(30);

async fn network(name: &str, opts: ClusterOptions) -> eyre::Result<Cluster> {
    let mut c = Cluster::create(&network_dir(name), &opts)?;
    c.start_all()?;
    c.wait_ready(READY).await?;
    Ok(c)
}

fn one_validator() -> ClusterOptions {
    ClusterOptions {
        validators: 1,
        ..Default::default()
    }
}

fn key() -> SigningKey {
    SigningKey::generate(&mut rand::rngs::OsRng)
}

/// The rate-limit tests' `rpc.rate_per_connection`: low enough that calls made one after
/// another on loopback outrun the refill.
const RATE: u32 = 3;

fn low_rate_limit() -> ClusterOptions {
    ClusterOptions {
        tweak: Some(|c: &mut Config| c.rpc.rate_per_connection = RATE),
        ..one_validator()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_over_its_rate_limit_gets_4006_and_is_answered_again_once_its_budget_refills(
) -> eyre::Result<()> {
    let cluster = network("ratelimit", low_rate_limit()).await?;
    let url = cluster.nodes[0].ws_url();
    let busy = WsClientBuilder::default().build(&url).await?;

    // Calls one after another on one connection: its budget starts full, so the first RATE
    // are answered; it refills at RATE a second, far slower than loopback calls follow each
    // other, so one of the next is refused.
    let most_calls = 50 * RATE;
    let mut answered = 0;
    let (code, message) = loop {
        match busy.chain_id().await {
            Ok(id) => assert_eq!(id, cluster.chain_id),
            Err(e) => break call_error::<u64>(Err(e)),
        }
        answered += 1;
        assert!(
            answered < most_calls,
            "{answered} calls in a row were all answered at a limit of {RATE} a second"
        );
    };
    assert!(
        answered >= RATE,
        "only {answered} calls answered before the first refusal; a connection starts with a \
         budget of {RATE}"
    );
    assert_eq!(code, 4006, "{message}");
    assert!(message.contains("retry later"), "{message}");
    assert!(
        metric(
            &cluster.nodes[0].metrics_url(),
            "lockstep_rpc_rate_limited_total"
        )
        .await?
            >= 1.0
    );

    // The budget is the connection's: another connection is answered meanwhile.
    let other = WsClientBuilder::default().build(&url).await?;
    assert_eq!(other.chain_id().await?, cluster.chain_id);

    // Once the budget refills, the limited connection is answered again.
    let id = eventually(
        "the rate-limited connection to be answered again",
        NEXT,
        || async { busy.chain_id().await.ok() },
    )
    .await?;
    assert_eq!(id, cluster.chain_id);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_call_of_a_batch_request_counts_against_the_rate_limit() -> eyre::Result<()> {
    let cluster = network("ratelimit-batch", low_rate_limit()).await?;
    // A new HTTP connection, so a full budget of RATE calls; the batch makes RATE + 1.
    let mut batch = BatchRequestBuilder::new();
    for _ in 0..=RATE {
        batch.insert("seq_chainId", rpc_params![])?;
    }
    let outcomes: Vec<Result<u64, i32>> = cluster
        .http(0)?
        .batch_request::<u64>(batch)
        .await?
        .into_iter()
        .map(|r| r.map_err(|e| e.code()))
        .collect();
    let mut expected = vec![Ok(cluster.chain_id); RATE as usize];
    expected.push(Err(4006));
    assert_eq!(outcomes, expected);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribing_from_height_zero_is_refused_with_32602_and_from_height_one_is_served(
) -> eyre::Result<()> {
    let cluster = network("fromzero", one_validator()).await?;
    let ws = WsClientBuilder::default()
        .build(&cluster.nodes[0].ws_url())
        .await?;
    let (code, message) = call_error(ws.subscribe_rollup(1, Some(0)).await);
    assert_eq!(code, -32602, "{message}");
    assert!(message.contains("fromHeight"), "{message}");

    // Height 1, the first block, is the lowest a subscription may start at.
    let mut s = ws.subscribe_rollup(1, Some(1)).await?;
    let first = within("batch 1", NEXT, s.next())
        .await?
        .ok_or_else(|| eyre!("the subscription from height 1 ended at once"))??;
    assert_eq!(first.height, 1);
    Ok(())
}

/// The lagging-subscriber test's `rpc.connection_buffer`: notifications the node queues for
/// a connection beyond what its socket takes.
const LAG_BUFFER: u32 = 4;
/// The lagging-subscriber test's `rpc.subscriber_send_timeout_ms` (the default is 10 s).
const LAG_TIMEOUT_MS: u64 = 500;
/// The lagging subscriber's TCP receive buffer, so the node's buffers fill sooner.
const LAG_RECV_BUFFER: u32 = 32 * 1024;
/// Leg size of the bundles sent to the lagging subscriber's rollup: large batches fill the
/// connection's socket buffers (a few MB on loopback) in a few heights.
const LAG_LEG_BYTES: usize = 120_000;
const LAG_ROLLUP: u64 = 7;
/// Longest time for the node to give up on the subscriber.
const LAG_DEADLINE: Duration = Duration::from_secs(60);

/// The start of a message, for assertion messages (batches are hundreds of kilobytes).
fn brief(v: &Value) -> String {
    let s = v.to_string();
    match s.char_indices().nth(300) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s,
    }
}

async fn read_json(ws: &mut RawWs, what: &str) -> eyre::Result<Value> {
    Ok(serde_json::from_str(
        &within(what, NEXT, ws.next_text()).await??,
    )?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_that_stops_reading_is_told_its_last_height_and_dropped() -> eyre::Result<()> {
    let opts = ClusterOptions {
        tweak: Some(|c: &mut Config| {
            c.rpc.connection_buffer = LAG_BUFFER;
            c.rpc.subscriber_send_timeout_ms = LAG_TIMEOUT_MS;
        }),
        ..one_validator()
    };
    let cluster = network("lagging", opts).await?;
    let node = &cluster.nodes[0];
    let from = decided_height(&cluster, 0).await? + 1;
    let mut ws = RawWs::connect(&node.ws_url(), LAG_RECV_BUFFER).await?;
    let subscribe = |id: u64, from: u64| {
        json!({"jsonrpc": "2.0", "id": id, "method": "seq_subscribeRollup",
               "params": [LAG_ROLLUP, from]})
        .to_string()
    };
    ws.send_text(&subscribe(1, from)).await?;
    let accepted = read_json(&mut ws, "the subscription's id").await?;
    assert_eq!(accepted["id"], 1, "{accepted}");
    let sub = accepted["result"].clone();
    assert!(!sub.is_null(), "subscription refused: {accepted}");

    // The subscriber reads nothing more while large batches for its rollup keep coming, one
    // bundle a height.
    let http = cluster.http(0)?;
    let k = key();
    let deadline = tokio::time::Instant::now() + LAG_DEADLINE;
    let mut sent = 0u64;
    while metric(
        &node.metrics_url(),
        "lockstep_rpc_subscribers_dropped_total",
    )
    .await?
        < 1.0
    {
        if tokio::time::Instant::now() > deadline {
            bail!(
                "the node still served the subscriber that stopped reading after {LAG_DEADLINE:?} \
                 and {sent} bundles of {LAG_LEG_BYTES} bytes for its rollup"
            );
        }
        let b = sign(
            &k,
            cluster.chain_id,
            sent,
            from + 1_000,
            vec![(LAG_ROLLUP, vec![sent as u8; LAG_LEG_BYTES])],
        );
        let hash = http.send_raw_bundle(to_raw_hex(&b)).await?;
        sent += 1;
        eventually("a large bundle to be included", NEXT, || async {
            let s = http.get_bundle_status(hash).await.ok()?;
            (s.status == "included").then_some(())
        })
        .await?;
    }

    // Reading again, it finds every batch the node sent before giving up, in order, then the
    // error that names the last of them.
    let mut next = from;
    let error = loop {
        let msg = read_json(
            &mut ws,
            &format!("batch {next} or the subscription's error"),
        )
        .await?;
        assert_eq!(msg["params"]["subscription"], sub, "{}", brief(&msg));
        if let Some(e) = msg["params"].get("error") {
            break e
                .as_str()
                .ok_or_else(|| eyre!("the error is not a string: {e}"))?
                .to_string();
        }
        assert_eq!(
            msg["params"]["result"]["height"].as_u64(),
            Some(next),
            "heights in order, none missing: {}",
            brief(&msg)
        );
        next += 1;
    };
    assert!(
        next > from,
        "the subscriber was sent batches before it fell behind"
    );
    let last = next - 1;
    assert!(
        error.contains(&format!("last height received {last};")),
        "the error names height {last}, the last batch received: {error}"
    );
    assert!(
        error.contains(&format!("fromHeight {next}")),
        "the error says where to resume: {error}"
    );

    // The node ended the subscription: nothing follows the error, and it is no longer there
    // to unsubscribe from.
    ws.send_text(
        &json!({"jsonrpc": "2.0", "id": 2, "method": "seq_unsubscribeRollup", "params": [sub]})
            .to_string(),
    )
    .await?;
    let reply = read_json(&mut ws, "the answer to unsubscribing").await?;
    assert_eq!(
        reply["id"],
        2,
        "nothing was sent on the subscription after its error: {}",
        brief(&reply)
    );
    assert_eq!(
        reply["result"], false,
        "the subscription had already ended: {reply}"
    );

    // Resubscribing where the error said resumes without a gap.
    ws.send_text(&subscribe(3, next)).await?;
    let again = read_json(&mut ws, "the new subscription's id").await?;
    assert_eq!(again["id"], 3, "{}", brief(&again));
    let first = read_json(&mut ws, &format!("batch {next} on the new subscription")).await?;
    assert_eq!(
        first["params"]["subscription"],
        again["result"],
        "{}",
        brief(&first)
    );
    assert_eq!(
        first["params"]["result"]["height"].as_u64(),
        Some(next),
        "{}",
        brief(&first)
    );
    Ok(())
}

/// The expiry test's blocks hold one bundle each: two of its bundles exceed `max_block_bytes`.
const ONE_BUNDLE_BLOCK_BYTES: u32 = 4_096;
const EXPIRY_LEG_BYTES: usize = 3_000;
/// Heights an expiry-test bundle may be included at: it is valid until `latest + WINDOW`.
const WINDOW: u64 = 2;
/// Expiry-test bundles admitted together: more than the window's blocks can hold.
const EXPIRY_BUNDLES: u64 = 10;
/// Tries at admitting them all (the chain may pass `valid_until` between reading the
/// height and the submission).
const ADMIT_TRIES: u64 = 5;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pending_bundle_whose_valid_until_passes_is_dropped_with_its_reason() -> eyre::Result<()>
{
    let opts = ClusterOptions {
        limits: Limits {
            max_bundle_bytes: ONE_BUNDLE_BLOCK_BYTES,
            max_block_bytes: ONE_BUNDLE_BLOCK_BYTES,
            ..Default::default()
        },
        ..one_validator()
    };
    let cluster = network("expiry", opts).await?;
    let http = cluster.http(0)?;
    let k = key();

    // EXPIRY_BUNDLES bundles, submitted in one batch request (admitted together), each valid
    // for the next WINDOW heights only. A block holds one of them, so at most WINDOW can be
    // included: the others are admitted, pending, and must expire.
    let mut admitted = None;
    for attempt in 0..ADMIT_TRIES {
        let valid_until = decided_height(&cluster, 0).await? + WINDOW;
        let bundles: Vec<_> = (0..EXPIRY_BUNDLES)
            .map(|i| {
                sign(
                    &k,
                    cluster.chain_id,
                    attempt * EXPIRY_BUNDLES + i,
                    valid_until,
                    vec![(1, vec![i as u8; EXPIRY_LEG_BYTES])],
                )
            })
            .collect();
        let mut batch = BatchRequestBuilder::new();
        for b in &bundles {
            batch.insert("seq_sendRawBundle", rpc_params![to_raw_hex(b)])?;
        }
        let mut hashes = Vec::new();
        for (b, r) in bundles.iter().zip(http.batch_request::<Hash>(batch).await?) {
            match r {
                Ok(h) => {
                    assert_eq!(h, b.hash());
                    hashes.push(h);
                }
                // The chain reached valid_until before this one was admitted.
                Err(e) => assert_eq!(e.code(), 4003, "{}", e.message()),
            }
        }
        if hashes.len() as u64 > WINDOW {
            admitted = Some((valid_until, hashes));
            break;
        }
    }
    let (valid_until, hashes) = admitted.ok_or_else(|| {
        eyre!("in {ADMIT_TRIES} tries the chain always passed valid_until before admission")
    })?;

    let statuses = eventually(
        "every bundle to be included or dropped",
        Duration::from_secs(60),
        || async {
            let mut all = Vec::new();
            for h in &hashes {
                let s = http.get_bundle_status(*h).await.ok()?;
                if s.status == "pending" {
                    return None;
                }
                all.push(s);
            }
            Some(all)
        },
    )
    .await?;
    let mut included_at = Vec::new();
    for s in &statuses {
        match s.status.as_str() {
            "included" => {
                let h = s.height.ok_or_else(|| eyre!("included without a height"))?;
                assert!(h <= valid_until, "included at {h}, after its valid_until");
                included_at.push(h);
            }
            "dropped" => {
                let reason = s.reason.as_deref().unwrap_or_default();
                assert!(
                    reason.contains("expired")
                        && reason.contains(&format!("below height {}", valid_until + 1)),
                    "a dropped bundle says it expired once height {valid_until} was decided: \
                     {reason:?}"
                );
            }
            other => panic!("status {other:?} of an admitted bundle: {s:?}"),
        }
    }
    included_at.sort_unstable();
    included_at.dedup();
    assert_eq!(
        included_at.len(),
        statuses.iter().filter(|s| s.status == "included").count(),
        "one bundle a block: {statuses:?}"
    );
    let dropped = statuses.len() - included_at.len();
    assert!(
        dropped as u64 >= hashes.len() as u64 - WINDOW,
        "at most {WINDOW} of {} could be included; {dropped} dropped: {statuses:?}",
        hashes.len()
    );
    Ok(())
}
