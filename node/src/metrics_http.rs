//! `GET /metrics`: this node's metrics and Malachite's registry, in Prometheus text format.

use axum::routing::get;
use axum::Router;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use std::net::SocketAddr;
use std::time::Duration;

/// Installs the process-wide recorder and describes this node's metrics.
pub fn install() -> eyre::Result<PrometheusHandle> {
    let handle = PrometheusBuilder::new().install_recorder()?;
    describe();
    let h = handle.clone();
    tokio::spawn(async move {
        let mut t = tokio::time::interval(Duration::from_secs(5));
        loop {
            t.tick().await;
            h.run_upkeep();
        }
    });
    Ok(handle)
}

/// Every crate's metric descriptions (each crate keeps its names in its `metrics` module).
fn describe() {
    lockstep_consensus::metrics::describe();
    lockstep_mempool::metrics::describe();
    lockstep_p2p::metrics::describe();
    crate::metrics::describe();
}

fn render(handle: &PrometheusHandle) -> String {
    for (kind, bytes) in lockstep_alloc::snapshot() {
        metrics::gauge!(crate::metrics::PROCESS_MEMORY, "kind" => kind).set(bytes);
    }
    if let Some(rss) = crate::metrics::resident_bytes() {
        metrics::gauge!(crate::metrics::RESIDENT).set(rss as f64);
    }
    let mut out = handle.render();
    let mut engine = String::new();
    malachitebft_app_channel::app::metrics::export(&mut engine);
    for line in engine.lines() {
        if line != "# EOF" {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// Serves `/metrics`; returns the bound address.
pub async fn serve(listen: SocketAddr, handle: PrometheusHandle) -> eyre::Result<SocketAddr> {
    let app = Router::new().route("/metrics", get(move || async move { render(&handle) }));
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| eyre::eyre!("cannot listen for metrics on {listen}: {e}"))?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!("metrics server stopped: {e}");
        }
    });
    Ok(addr)
}
