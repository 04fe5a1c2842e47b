//! Rollup delivery over real processes: a follower that survives its node being killed,
//! many subscribers sharing one encoding per batch, and history retention.

#![allow(clippy::unwrap_used)]

use jsonrpsee::core::ClientError;
use jsonrpsee::ws_client::WsClientBuilder;
use lockstep_client::bundle::sign;
use lockstep_client::follower::Follower;
use lockstep_client::tracker::{send_and_wait, Outcome};
use lockstep_client::SeqApiClient;
use lockstep_testnet::{Cluster, ClusterOptions};
use lockstep_tests::{decided_height, eventually, metric, network_dir, within};
use std::time::Duration;

const READY: Duration = Duration::from_secs(90);
/// Longest wait for a follower's or subscriber's next batch.
const NEXT: Duration = Duration::from_secs(60);

async fn network(name: &str, opts: ClusterOptions) -> eyre::Result<Cluster> {
    let mut c = Cluster::create(&network_dir(name), &opts)?;
    c.start_all()?;
    c.wait_ready(READY).await?;
    Ok(c)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_survives_its_node_being_killed_without_a_gap() -> eyre::Result<()> {
    let mut cluster = network("failover", ClusterOptions::default()).await?;
    let urls = vec![cluster.nodes[3].ws_url(), cluster.nodes[2].ws_url()];
    let from = decided_height(&cluster, 3).await? + 1;
    let mut follower = Follower::new(urls.clone(), 1, Some(from), cluster.verifier()?, 50);
    let mut expected = from;
    for _ in 0..10 {
        let v = within(
            &format!("batch {expected} from the follower"),
            NEXT,
            follower.next(),
        )
        .await??;
        assert_eq!(v.batch.height, expected);
        expected += 1;
    }
    assert_eq!(follower.node(), urls[0]);
    cluster.kill(3)?;
    // A bundle for the rollup while the follower's node is down.
    let k = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
    let b = sign(
        &k,
        cluster.chain_id,
        1,
        expected + 500,
        vec![(1, b"during failover".to_vec())],
    );
    let (hash, outcome) = send_and_wait(&cluster.http(0)?, &b, Duration::from_secs(60)).await?;
    let Outcome::Included {
        height: included_at,
        ..
    } = outcome
    else {
        panic!("dropped: {outcome:?}")
    };
    let mut found = false;
    while expected <= included_at + 3 {
        let v = within(
            &format!("batch {expected} from the follower after node3 was killed"),
            NEXT,
            follower.next(),
        )
        .await??;
        assert_eq!(
            v.batch.height, expected,
            "every height exactly once, in order"
        );
        found |= v.batch.entries.iter().any(|e| e.bundle_hash == hash);
        expected += 1;
    }
    assert!(
        found,
        "the bundle included during the failover was delivered"
    );
    assert_eq!(
        follower.node(),
        urls[1],
        "the follower moved to the surviving node"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_hundred_subscribers_share_one_encoding_per_batch() -> eyre::Result<()> {
    let cluster = network("fanout", ClusterOptions::default()).await?;
    let url = cluster.nodes[1].ws_url();
    let from = decided_height(&cluster, 1).await? + 1;
    let metrics = cluster.nodes[1].metrics_url();
    let scrape = || metric(&metrics, "lockstep_rpc_batch_encodings_total");
    let before = scrape().await?;
    let mut subs = Vec::new();
    for _ in 0..100 {
        let c = WsClientBuilder::default().build(&url).await?;
        let s = c.subscribe_rollup(5, Some(from)).await?;
        subs.push((c, s));
    }
    let heights = 20u64;
    for (i, (_, s)) in subs.iter_mut().enumerate() {
        for h in from..from + heights {
            let b = within(&format!("batch {h} on subscriber {i}"), NEXT, s.next())
                .await?
                .ok_or_else(|| eyre::eyre!("subscriber {i}'s subscription ended before {h}"))??;
            assert_eq!(b.height, h);
        }
    }
    let encodings = scrape().await? - before;
    // One encoding per (rollup, height), not one per subscriber: the 100 subscribers received
    // 2000 batches from at most a few more encodings than heights delivered.
    assert!(encodings >= heights as f64, "encodings {encodings}");
    assert!(
        encodings < (heights * 3) as f64,
        "encodings {encodings} for {heights} heights x 100 subscribers"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_below_the_kept_history_are_refused_with_4007() -> eyre::Result<()> {
    let opts = ClusterOptions {
        limits: lockstep_bundles::Limits {
            max_ttl: 20,
            ..Default::default()
        },
        keep_heights: 20,
        ..Default::default()
    };
    let cluster = network("history", opts).await?;
    cluster.wait_for_height(&[0, 1, 2, 3], 50, READY).await?;
    let ws = WsClientBuilder::default()
        .build(&cluster.nodes[0].ws_url())
        .await?;
    match ws.subscribe_rollup(1, Some(1)).await {
        Err(ClientError::Call(e)) => {
            assert_eq!(e.code(), 4007, "{}", e.message());
            assert!(e.message().contains("oldest"), "{}", e.message());
        }
        other => panic!("expected 4007, got {:?}", other.map(|_| ())),
    }
    let http = cluster.http(0)?;
    assert!(http.get_block(1).await?.is_none(), "pruned");
    let latest = http.block_number().await?;
    let mut s = ws.subscribe_rollup(1, Some(latest - 10)).await?;
    let b = within(&format!("batch {}", latest - 10), NEXT, s.next())
        .await?
        .ok_or_else(|| eyre::eyre!("the subscription ended at once"))??;
    assert_eq!(b.height, latest - 10);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bundle_send_cli_waits_for_inclusion() -> eyre::Result<()> {
    let cluster = network("cli", ClusterOptions::default()).await?;
    let bin = lockstep_testnet::lockstep_binary()?;
    let out = tokio::process::Command::new(&bin)
        .args([
            "bundle", "send", "--leg", "1:0x0102", "--leg", "2:0x03", "--rpc",
        ])
        .arg(cluster.nodes[1].rpc_url())
        .arg("--key")
        .arg(cluster.nodes[0].home.join("key.json"))
        .output()
        .await?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("included at height"), "{stdout}");
    let bad = tokio::process::Command::new(&bin)
        .args(["bundle", "send", "--leg", "1:nothex", "--key"])
        .arg(cluster.nodes[0].home.join("key.json"))
        .output()
        .await?;
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("leg `1:nothex`"));
    Ok(())
}

/// `lockstep start --exit-with-parent` (how the harness starts nodes) shuts the node down when
/// the process that started it goes away, so a killed harness leaves no validator behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_started_with_exit_with_parent_stops_when_its_parent_exits() -> eyre::Result<()> {
    let bin = lockstep_testnet::lockstep_binary()?;
    let home = network_dir("orphan").join("node");
    let init = std::process::Command::new(&bin)
        .args(["init", "--home"])
        .arg(&home)
        .output()?;
    assert!(
        init.status.success(),
        "{}",
        String::from_utf8_lossy(&init.stderr)
    );
    // Any free ports, not the defaults.
    let config_path = home.join("config.toml");
    let mut config = lockstep_node::config::Config::load(&config_path)?;
    config.rpc.listen = "127.0.0.1:0".parse()?;
    config.metrics.listen = "127.0.0.1:0".parse()?;
    config.consensus.listen = "/ip4/127.0.0.1/tcp/0".into();
    config.gossip.listen = "/ip4/127.0.0.1/tcp/0".into();
    config.save(&config_path)?;
    // A shell starts the node in the background, prints its pid, and lives until the test
    // closes its standard input.
    let mut shell = std::process::Command::new("sh")
        .arg("-c")
        .arg(r#""$0" start --home "$1" --exit-with-parent >"$1/node.log" 2>&1 & echo $!; read _"#)
        .arg(&bin)
        .arg(&home)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()?;
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(shell.stdout.take().unwrap()),
        &mut line,
    )?;
    let pid: u32 = line.trim().parse()?;
    let exited = |pid: u32| match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // A zombie nobody reaps has exited too.
        Ok(stat) => stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z')),
        Err(_) => true,
    };
    let log = || std::fs::read_to_string(home.join("node.log")).unwrap_or_default();
    let with_log = |e: eyre::Report| eyre::eyre!("{e}; node log:\n{}", log());

    // While its parent lives, the node runs: it comes up and decides heights of its own
    // one-validator chain.
    let rpc = eventually("the node to say it is ready", READY, || {
        let address = ready_rpc_address(&log());
        async move { address }
    })
    .await
    .map_err(with_log)?;
    let client =
        jsonrpsee::http_client::HttpClientBuilder::default().build(format!("http://{rpc}"))?;
    eventually(
        "the node to decide heights while its parent lives",
        READY,
        || async {
            (client.block_number().await.ok()? >= HEIGHTS_WHILE_PARENT_LIVES).then_some(())
        },
    )
    .await
    .map_err(with_log)?;
    assert!(
        !exited(pid),
        "the node stopped while its parent lived:\n{}",
        log()
    );
    assert!(shell.try_wait()?.is_none(), "the parent lived throughout");

    // The parent exits; the node follows.
    drop(shell.stdin.take());
    shell.wait()?;
    let stopped = eventually(
        "the node to stop after its parent exited",
        Duration::from_secs(30),
        || {
            let gone = exited(pid);
            async move { gone.then_some(()) }
        },
    )
    .await;
    if stopped.is_err() {
        let _ = std::process::Command::new("kill")
            .arg(pid.to_string())
            .status();
    }
    stopped.map_err(|e| eyre::eyre!("node {pid} kept running after its parent exited: {e}"))?;
    assert!(log().contains("shutting down"), "{}", log());
    Ok(())
}

/// Heights the orphan test's node decides before it is checked alive and its parent exits.
const HEIGHTS_WHILE_PARENT_LIVES: u64 = 10;

/// The RPC address a node's log gives in its "node ready" line (`rpc=ADDR`), once it is there.
fn ready_rpc_address(log: &str) -> Option<String> {
    let line = strip_ansi(log.lines().find(|l| l.contains("node ready"))?);
    line.split_whitespace()
        .find_map(|w| w.strip_prefix("rpc="))
        .map(str::to_string)
}

/// `s` without ANSI escape sequences (the node's log is coloured).
fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            // CSI: ESC '[' parameters, ended by a byte in '@'..='~'.
            if chars.next() == Some('[') {
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}
