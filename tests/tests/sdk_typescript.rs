//! The TypeScript SDK (`sdk/typescript`) against a live 4-validator network. Its live suite
//! (`npm run test:live`) signs bundles and sends them to the nodes, checks they are included
//! and that refusals carry the protocol's codes, verifies the batches the nodes serve, and
//! follows a rollup from a dead URL to a live node and across a node it kills. This test
//! starts the network, runs the suite, and then rebuilds every bundle the suite reports with
//! the Rust client (`lockstep_client::bundle::sign`, from the same seed and fields): the same
//! hash and bytes, included where the suite says, in batches the Rust verifier accepts.
//!
//! It needs `node` and `npm` (Node.js 20.19 or newer) and fails, saying so, without them; it
//! runs `npm ci` first when `sdk/typescript/node_modules` is missing or older than the lock
//! file.

#![allow(clippy::unwrap_used)]

use lockstep_bundles::hash::{decode_hex, decode_hex_array, encode_hex};
use lockstep_client::SeqApiClient;
use lockstep_testnet::{Cluster, ClusterOptions, ENDPOINTS_FILE};
use lockstep_tests::{network_dir, npm};
use serde_json::Value;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const READY: Duration = Duration::from_secs(90);
/// The longest `npm ci` or the live suite may take (the suite's own tests time out sooner).
const NPM_TIMEOUT: Duration = Duration::from_secs(600);

fn sdk_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../sdk/typescript")
}

fn u64_of(v: &Value, what: &str) -> eyre::Result<u64> {
    v.as_u64()
        .ok_or_else(|| eyre::eyre!("report: {what} is not a u64: {v}"))
}

fn str_of<'a>(v: &'a Value, what: &str) -> eyre::Result<&'a str> {
    v.as_str()
        .ok_or_else(|| eyre::eyre!("report: {what} is not a string: {v}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_typescript_sdk_signs_sends_verifies_and_fails_over_on_a_live_network(
) -> eyre::Result<()> {
    const WHO: &str = "the TypeScript SDK's live test";
    let node_version = npm::require("node", WHO, "Node.js 20.19 or newer")?;
    let npm_version = npm::require("npm", WHO, "Node.js's package manager")?;
    eprintln!("sdk_typescript: node {node_version}, npm {npm_version}");
    npm::install(&sdk_dir(), NPM_TIMEOUT).await?;

    let mut cluster = Cluster::create(&network_dir("sdk-typescript"), &ClusterOptions::default())?;
    cluster.start_all()?;
    cluster.wait_ready(READY).await?;
    let genesis = lockstep_node::home::Home::new(&cluster.nodes[0].home).genesis();
    let endpoints = cluster.dir.join(ENDPOINTS_FILE);
    let report_path = cluster.dir.join("sdk-typescript-report.json");
    let _ = std::fs::remove_file(&report_path);

    let started = Instant::now();
    let status = npm::run(
        &sdk_dir(),
        &["run", "test:live"],
        &[
            ("LOCKSTEP_ENDPOINTS", endpoints.as_os_str()),
            ("LOCKSTEP_GENESIS", genesis.as_os_str()),
            ("LOCKSTEP_SDK_REPORT", report_path.as_os_str()),
            // Plain text: the suite's output lands in the test's log.
            ("NO_COLOR", OsStr::new("1")),
        ],
        NPM_TIMEOUT,
    )
    .await?;
    eprintln!(
        "sdk_typescript: the live suite took {:.1} s",
        started.elapsed().as_secs_f64()
    );
    eyre::ensure!(
        status.success(),
        "the SDK's live suite failed ({status}); its output is above, the network in {}",
        cluster.dir.display()
    );

    let report: Value = serde_json::from_str(&std::fs::read_to_string(&report_path)?)?;
    eyre::ensure!(
        u64_of(&report["chainId"], "chainId")? == cluster.chain_id,
        "report for another chain"
    );
    let bundles = report["bundles"]
        .as_array()
        .ok_or_else(|| eyre::eyre!("report has no bundles"))?;
    eyre::ensure!(
        bundles.len() >= 5,
        "the suite reports {} bundles, expected 5",
        bundles.len()
    );
    let verifier = cluster.verifier()?;
    let http = cluster.http(0)?;
    for b in bundles {
        let name = str_of(&b["name"], "name")?;
        // The same bundle, built and signed by the Rust client from the same seed and fields.
        let seed: [u8; 32] = decode_hex_array(str_of(&b["seed"], "seed")?)?;
        let legs = b["legs"]
            .as_array()
            .ok_or_else(|| eyre::eyre!("{name}: no legs"))?
            .iter()
            .map(|l| {
                Ok((
                    u64_of(&l["rollupId"], "rollupId")?,
                    decode_hex(str_of(&l["data"], "data")?)?,
                ))
            })
            .collect::<eyre::Result<Vec<_>>>()?;
        let rust = lockstep_client::bundle::sign(
            &ed25519_dalek::SigningKey::from_bytes(&seed),
            u64_of(&b["chainId"], "chainId")?,
            u64_of(&b["nonce"], "nonce")?,
            u64_of(&b["validUntil"], "validUntil")?,
            legs.clone(),
        );
        assert_eq!(
            rust.hash().to_hex(),
            str_of(&b["hash"], "hash")?,
            "{name}: the TypeScript SDK's bundle hash differs from the Rust client's"
        );
        assert_eq!(
            encode_hex(&rust.encode()),
            str_of(&b["encoding"], "encoding")?,
            "{name}: the TypeScript SDK's encoding differs from the Rust client's"
        );
        // Included where the suite says, on a node the suite did not kill.
        let height = u64_of(&b["height"], "height")?;
        let index = u64_of(&b["index"], "index")?;
        let status = http.get_bundle_status(rust.hash()).await?;
        assert_eq!(status.status, "included", "{name}: {status:?}");
        assert_eq!(
            (status.height, status.index.map(u64::from)),
            (Some(height), Some(index)),
            "{name}"
        );
        // Each of its legs is in its rollup's batch at that height, which the Rust verifier
        // accepts.
        for (leg, (rollup, data)) in legs.iter().enumerate() {
            let json = http
                .get_rollup_batch(*rollup, height)
                .await?
                .ok_or_else(|| eyre::eyre!("{name}: no batch for rollup {rollup} at {height}"))?;
            let batch = verifier.verify(&json)?;
            assert!(
                batch.entries.iter().any(|e| e.bundle_hash == rust.hash()
                    && e.leg_index as usize == leg
                    && &e.data == data),
                "{name}: leg {leg} is not in rollup {rollup}'s batch at {height}"
            );
        }
    }
    // The suite killed node3 to make its follower fail over.
    let killed: Vec<u64> = report["killed"]
        .as_array()
        .map(|k| k.iter().filter_map(Value::as_u64).collect())
        .unwrap_or_default();
    assert_eq!(killed, vec![3], "the suite reports killing node3");
    assert!(
        !cluster.nodes[3].is_running(),
        "node3 still runs after the suite killed it"
    );
    assert!(
        report["failover"]["killed"]["failovers"]
            .as_array()
            .is_some_and(|f| !f.is_empty()),
        "the suite's follower reports its failover: {}",
        report["failover"]
    );
    Ok(())
}
