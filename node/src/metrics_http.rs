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

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    lockstep_consensus::metrics::describe();
    describe_counter!(
        "lockstep_mempool_admitted_total",
        "Bundles admitted to the mempool, by source"
    );
    describe_counter!(
        "lockstep_mempool_rejected_total",
        "Bundles refused, by reason"
    );
    describe_gauge!("lockstep_mempool_bundles", "Pending bundles");
    describe_gauge!("lockstep_mempool_bytes", "Pending bundle bytes");
    describe_gauge!(
        "lockstep_disk_free_bytes",
        "Bytes free on the store's file system (submissions are refused below storage.min_free_mb)"
    );
    describe_gauge!(
        "lockstep_mempool_replay_window",
        "Included bundle hashes remembered (the last max_ttl heights)"
    );
    describe_gauge!(
        "lockstep_store_memory_bytes",
        "Bytes the store holds in memory, by kind (memtables, table_readers, read_cache, decoded_cache)"
    );
    describe_gauge!(
        "lockstep_rpc_batch_cache_bytes",
        "Rollup batches held encoded as JSON for subscribers"
    );
    describe_gauge!(
        "lockstep_process_memory_bytes",
        "The process's heaps, by kind (mimalloc_committed; glibc_in_use and glibc_free, RocksDB's C++ heap; rust_live when started with LOCKSTEP_COUNT_HEAP=1)"
    );
    describe_histogram!(
        "lockstep_mempool_verify_batch_size",
        "Signatures per verification batch"
    );
    describe_histogram!(
        "lockstep_mempool_verify_batch_seconds",
        "Time to verify one batch"
    );
    describe_counter!(
        "lockstep_gossip_published_total",
        "Bundles published to gossip"
    );
    describe_counter!(
        "lockstep_gossip_received_total",
        "Bundles received from gossip"
    );
    describe_counter!(
        "lockstep_gossip_inbound_dropped_total",
        "Gossip messages ignored because the inbound queue was full"
    );
    describe_counter!(
        "lockstep_gossip_peers_banned_total",
        "Gossip peers disconnected for misbehaviour"
    );
    describe_gauge!("lockstep_gossip_peers", "Connected gossip peers");
    describe_counter!(
        "lockstep_rpc_rate_limited_total",
        "RPC requests refused by the per-connection rate limit"
    );
}

fn render(handle: &PrometheusHandle) -> String {
    for (kind, bytes) in lockstep_alloc::snapshot() {
        metrics::gauge!("lockstep_process_memory_bytes", "kind" => kind).set(bytes);
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
