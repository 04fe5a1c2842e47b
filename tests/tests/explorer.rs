//! The explorer page every node serves on its RPC port (node/src/rpc/explorer.rs,
//! explorer/www/), against a live 4-validator network:
//!
//! - `GET /` answers the page (HTML, with the Content-Security-Policy) on the same port and the
//!   same keep-alive connection as JSON-RPC POSTs, which still work, as do WebSocket upgrades;
//! - in a real Chromium (Debian's `chromium`, driven by `playwright-core`: explorer/test/), the
//!   page shows new heights arriving over the WebSocket, finds a bundle this test sent by its
//!   hash, verifies its rollup batch in the browser with the TypeScript SDK, and shows a batch
//!   altered in one byte on its way to the page as NOT verified. It saves a screenshot to
//!   `target/explorer/screenshot.png`.
//!
//! It needs `node`, `npm` (Node.js 20.19 or newer) and Chromium (`chromium` on PATH, or the
//! `CHROMIUM` variable) and fails, saying so, without them; it runs `npm ci` in
//! `explorer/test` first when its `node_modules` is missing or older than the lock file.

#![allow(clippy::unwrap_used)]

use jsonrpsee::ws_client::WsClientBuilder;
use lockstep_client::tracker::{send_and_wait, Outcome};
use lockstep_client::SeqApiClient;
use lockstep_testnet::{Cluster, ClusterOptions};
use lockstep_tests::{network_dir, npm};
use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const READY: Duration = Duration::from_secs(90);
const INCLUDED: Duration = Duration::from_secs(30);
/// The longest `npm ci` or the browser suite may take (its own waits time out sooner).
const NPM_TIMEOUT: Duration = Duration::from_secs(300);
/// The rollup the test's bundle has a leg for (besides another rollup's).
const ROLLUP: u64 = 7;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn suite_dir() -> PathBuf {
    workspace().join("explorer/test")
}

/// The Chromium to drive: `CHROMIUM`, else `chromium` on PATH.
fn chromium() -> eyre::Result<PathBuf> {
    if let Some(p) = std::env::var_os("CHROMIUM") {
        return Ok(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join("chromium"))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            eyre::eyre!(
                "the explorer's browser test needs Chromium: no `chromium` on PATH and no \
                 CHROMIUM variable. Install it (Debian: apt-get install chromium; \
                 scripts/deps.sh does)"
            )
        })
}

/// One HTTP/1.1 response: status, headers (names lower-cased), body.
struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Sends `request` on `conn` (kept alive) and reads one response with a Content-Length.
fn exchange(conn: &mut BufReader<TcpStream>, request: &str) -> eyre::Result<Response> {
    conn.get_mut().write_all(request.as_bytes())?;
    let mut line = String::new();
    conn.read_line(&mut line)?;
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| eyre::eyre!("bad status line {line:?}"))?;
    let mut headers = Vec::new();
    loop {
        line.clear();
        conn.read_line(&mut line)?;
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        let (n, v) = l
            .split_once(':')
            .ok_or_else(|| eyre::eyre!("bad header {l:?}"))?;
        headers.push((n.trim().to_ascii_lowercase(), v.trim().to_string()));
    }
    let len: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .ok_or_else(|| eyre::eyre!("no content-length in {headers:?}"))?;
    let mut body = vec![0; len];
    conn.read_exact(&mut body)?;
    Ok(Response {
        status,
        headers,
        body,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_explorer_page_shows_live_heights_and_verifies_batches_in_chromium() -> eyre::Result<()>
{
    // What it needs, before a network is started: fail, naming what is missing.
    const WHO: &str = "the explorer's browser test";
    let node_version = npm::require("node", WHO, "Node.js 20.19 or newer")?;
    let npm_version = npm::require("npm", WHO, "Node.js's package manager")?;
    let chromium = chromium()?;
    let chromium_version = npm::require(
        chromium.to_str().unwrap_or("chromium"),
        WHO,
        "Debian's chromium",
    )?;
    eprintln!("explorer: node {node_version}, npm {npm_version}, {chromium_version}");
    npm::install(&suite_dir(), NPM_TIMEOUT).await?;

    let mut cluster = Cluster::create(&network_dir("explorer"), &ClusterOptions::default())?;
    cluster.start_all()?;
    cluster.wait_ready(READY).await?;
    let rpc = cluster.nodes[0].config.rpc.listen;

    // The page and JSON-RPC on one port, one keep-alive connection: GET, POST, GET.
    let stream = TcpStream::connect(rpc)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut conn = BufReader::new(stream);
    let get = format!("GET / HTTP/1.1\r\nHost: {rpc}\r\n\r\n");
    let page = exchange(&mut conn, &get)?;
    assert_eq!(page.status, 200);
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(
        page.header("content-security-policy"),
        Some(lockstep_node::rpc::CONTENT_SECURITY_POLICY)
    );
    assert_eq!(page.header("x-content-type-options"), Some("nosniff"));
    let html = String::from_utf8(page.body)?;
    assert!(html.contains("<title>Lockstep explorer</title>"), "{html}");
    let call = r#"{"jsonrpc":"2.0","id":1,"method":"seq_chainId","params":[]}"#;
    let post = format!(
        "POST / HTTP/1.1\r\nHost: {rpc}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{call}",
        call.len()
    );
    let answer = exchange(&mut conn, &post)?;
    assert_eq!(answer.status, 200);
    let answer: serde_json::Value = serde_json::from_slice(&answer.body)?;
    assert_eq!(
        answer["result"].as_u64(),
        Some(cluster.chain_id),
        "{answer}"
    );
    let sdk = exchange(
        &mut conn,
        &format!("GET /explorer/lockstep-sdk.js HTTP/1.1\r\nHost: {rpc}\r\n\r\n"),
    )?;
    assert_eq!(sdk.status, 200);
    assert_eq!(
        sdk.header("content-type"),
        Some("text/javascript; charset=utf-8")
    );
    // A path the explorer does not serve is jsonrpsee's, as before (it answers GETs 405).
    let other = exchange(
        &mut conn,
        &format!("GET /nothing-here HTTP/1.1\r\nHost: {rpc}\r\n\r\n"),
    )?;
    assert_ne!(other.status, 200);
    // The generated clients, HTTP and a WebSocket upgrade at `/`.
    assert_eq!(cluster.http(0)?.chain_id().await?, cluster.chain_id);
    let ws = WsClientBuilder::default()
        .build(cluster.nodes[0].ws_url())
        .await?;
    assert_eq!(ws.chain_id().await?, cluster.chain_id);

    // Some traffic for the page's charts: a few bundles a height, for ten heights.
    let http = cluster.http(2)?;
    for round in 0..10u64 {
        let height = http.block_number().await?;
        for i in 0..(round % 4 + 1) * 3 {
            let key = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
            let b = lockstep_client::bundle::sign(
                &key,
                cluster.chain_id,
                i,
                height + 15,
                vec![(1 + i % 3, format!("traffic {round}.{i}").into_bytes())],
            );
            http.send_raw_bundle(lockstep_client::bundle::to_raw_hex(&b))
                .await?;
        }
        cluster.wait_for_height(&[2], height + 1, INCLUDED).await?;
    }

    // A bundle with legs for two rollups, included.
    let key = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
    let height = cluster.http(0)?.block_number().await?;
    let bundle = lockstep_client::bundle::sign(
        &key,
        cluster.chain_id,
        0,
        height + 15,
        vec![
            (ROLLUP, b"seen in the explorer".to_vec()),
            (ROLLUP + 1, b"the other leg".to_vec()),
        ],
    );
    let (hash, outcome) = send_and_wait(&cluster.http(1)?, &bundle, INCLUDED).await?;
    let Outcome::Included { height, .. } = outcome else {
        eyre::bail!("bundle {hash} not included: {outcome:?}");
    };
    eprintln!("explorer: bundle {hash} included at height {height}");

    // The browser suite, against node 0's page.
    let screenshot = workspace().join("target/explorer/screenshot.png");
    let _ = std::fs::remove_file(&screenshot);
    let url = cluster.nodes[0].rpc_url();
    let hash_hex = hash.to_hex();
    let rollup = ROLLUP.to_string();
    let started = Instant::now();
    let status = npm::run(
        &suite_dir(),
        &["test"],
        &[
            ("EXPLORER_URL", OsStr::new(&url)),
            ("EXPLORER_BUNDLE", OsStr::new(&hash_hex)),
            ("EXPLORER_ROLLUP", OsStr::new(&rollup)),
            ("EXPLORER_SCREENSHOT", screenshot.as_os_str()),
            ("CHROMIUM", chromium.as_os_str()),
            ("NO_COLOR", OsStr::new("1")),
        ],
        NPM_TIMEOUT,
    )
    .await?;
    eprintln!(
        "explorer: the browser suite took {:.1} s",
        started.elapsed().as_secs_f64()
    );
    eyre::ensure!(
        status.success(),
        "the explorer's browser suite failed ({status}); its output is above, the network in {}",
        cluster.dir.display()
    );
    eyre::ensure!(
        screenshot.is_file(),
        "the browser suite saved no screenshot at {}",
        screenshot.display()
    );
    eprintln!("explorer: screenshot in {}", screenshot.display());
    cluster.stop_all()?;
    Ok(())
}
