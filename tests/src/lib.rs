//! End-to-end tests over real `lockstep` processes, through the `lockstep-testnet` harness.
//! The tests live in `tests/`; this library holds what they share.

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod npm;
pub mod raw_ws;

use eyre::eyre;
use jsonrpsee::core::ClientError;
use lockstep_client::SeqApiClient;
use lockstep_testnet::Cluster;
use std::time::Duration;

/// The protocol error of a failed call: `(code, message)`.
pub fn call_error<T: std::fmt::Debug>(r: Result<T, ClientError>) -> (i32, String) {
    match r {
        Err(ClientError::Call(e)) => (e.code(), e.message().to_string()),
        other => panic!("expected a JSON-RPC error, got {other:?}"),
    }
}

/// Node `i`'s latest decided height; an error, not 0, when it does not answer.
pub async fn decided_height(cluster: &Cluster, i: usize) -> eyre::Result<u64> {
    cluster
        .http(i)?
        .block_number()
        .await
        .map_err(|e| eyre!("node{i} does not answer its height: {e}"))
}

/// The fewest heights an agreement check compares: agreement on an empty chain proves nothing.
pub const MIN_HEIGHTS_COMPARED: u64 = 3;

/// Asserts that every node in `which` has the same block hash at every height in `1..=upto`
/// (and at least [`MIN_HEIGHTS_COMPARED`] heights: below that it first waits for them).
pub async fn assert_identical_blocks(
    cluster: &Cluster,
    which: &[usize],
    upto: u64,
) -> eyre::Result<()> {
    let upto = upto.max(MIN_HEIGHTS_COMPARED);
    cluster
        .wait_for_height(which, upto, Duration::from_secs(120))
        .await?;
    let clients = which
        .iter()
        .map(|&i| cluster.http(i))
        .collect::<eyre::Result<Vec<_>>>()?;
    for h in 1..=upto {
        let mut first = None;
        for (k, c) in clients.iter().enumerate() {
            let b = c
                .get_block(h)
                .await?
                .ok_or_else(|| eyre!("node{} has no block {h}", which[k]))?;
            match &first {
                None => first = Some(b.hash),
                Some(x) if *x == b.hash => {}
                Some(x) => {
                    return Err(eyre!(
                        "height {h}: node{} has {} but node{} has {x}",
                        which[k],
                        b.hash,
                        which[0]
                    ))
                }
            }
        }
    }
    Ok(())
}

/// Polls until `f` returns `Some`, or fails after `timeout`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut f: F) -> eyre::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return Ok(v);
        }
        if tokio::time::Instant::now() > deadline {
            return Err(eyre!("timed out after {timeout:?} waiting for {what}"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Awaits `fut` for at most `timeout`; the error says what was awaited. Every wait on a
/// subscription or follower goes through it, so a node that stops sending fails the test
/// with a message instead of hanging it.
pub async fn within<F: std::future::Future>(
    what: &str,
    timeout: Duration,
    fut: F,
) -> eyre::Result<F::Output> {
    tokio::time::timeout(timeout, fut)
        .await
        .map_err(|_| eyre!("timed out after {timeout:?} waiting for {what}"))
}

/// A fresh network directory under the system's temporary directory (kept for inspection
/// after a failure). The directories earlier runs left for the same `name` are removed first,
/// once the process that made them has exited, so each test keeps only its latest run's.
pub fn network_dir(name: &str) -> std::path::PathBuf {
    let base = std::env::temp_dir();
    let prefix = format!("lockstep-e2e-{name}-");
    if let Ok(entries) = std::fs::read_dir(&base) {
        for e in entries.flatten() {
            let file = e.file_name();
            let pid = file.to_str().and_then(|f| f.strip_prefix(&prefix));
            let exited = pid
                .and_then(|p| p.parse::<u32>().ok())
                .is_some_and(|p| !std::path::Path::new(&format!("/proc/{p}")).exists());
            if exited {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
    let dir = base.join(format!("{prefix}{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// The sum of every series of the Prometheus metric `name` that a node's metrics endpoint
/// serves (0 if it has none yet).
pub async fn metric(url: &str, name: &str) -> eyre::Result<f64> {
    Ok(lockstep_testnet::metric_sum(
        &lockstep_testnet::scrape_metrics(url).await?,
        name,
    ))
}
