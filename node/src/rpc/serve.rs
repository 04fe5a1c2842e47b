//! Accepting connections: the jsonrpsee service per TCP connection, with the limits of
//! [`super::limits`] and WebSocket pings. jsonrpsee's own accept loop does not tell its
//! services the client's address, so this one does the accepting.

use super::limits::{
    client_key, AddressSlot, CallBudgets, ClientAddress, ConnectionsPerAddress, RateLimit,
};
use super::Rpc;
use crate::config::RpcConfig;
use hyper::body::Incoming;
use jsonrpsee::server::middleware::rpc::RpcServiceBuilder;
use jsonrpsee::server::{
    serve_with_graceful_shutdown, stop_channel, ws, HttpBody, HttpRequest, HttpResponse,
    PingConfig, ServerConfig, ServerHandle,
};
use lockstep_client::api::{codes, SeqApiServer};
use parking_lot::Mutex;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tower::Service;

type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Most calls in one JSON-RPC batch request.
pub const MAX_BATCH_CALLS: u32 = 1024;
/// Largest request body.
pub const MAX_REQUEST_BYTES: u32 = 4 * 1024 * 1024;
/// Largest response body (a batch response included).
pub const MAX_RESPONSE_BYTES: u32 = 16 * 1024 * 1024;
/// A connection refused for its address's connection count is answered (429) and closed
/// within this long.
const REFUSAL_GRACE: Duration = Duration::from_secs(5);
/// Pause after a failed accept (out of file descriptors, say) before the next, so the loop
/// does not spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// Starts the server on `cfg.listen`; returns its handle and bound address.
pub async fn serve(cfg: &RpcConfig, rpc: Rpc) -> eyre::Result<(ServerHandle, SocketAddr)> {
    let listener = TcpListener::bind(cfg.listen)
        .await
        .map_err(|e| eyre::eyre!("cannot listen for JSON-RPC on {}: {e}", cfg.listen))?;
    let addr = listener.local_addr()?;
    let server_cfg = ServerConfig::builder()
        .max_connections(cfg.max_connections)
        .max_subscriptions_per_connection(cfg.max_subscriptions_per_connection)
        .max_request_body_size(MAX_REQUEST_BYTES)
        .max_response_body_size(MAX_RESPONSE_BYTES)
        .set_batch_request_config(jsonrpsee::server::BatchRequestConfig::Limit(
            MAX_BATCH_CALLS,
        ))
        .set_message_buffer_capacity(cfg.connection_buffer)
        // A WebSocket that has answered no ping (and sent nothing) for the timeout is closed
        // at the next check (one per interval): a dead or silent client frees its slot.
        .enable_ws_ping(
            PingConfig::new()
                .ping_interval(Duration::from_millis(cfg.ping_interval_ms))
                .inactive_limit(Duration::from_millis(cfg.ping_timeout_ms))
                .max_failures(1),
        )
        .build();
    let budgets = Arc::new(Mutex::new(CallBudgets::new(
        cfg.rate_per_connection,
        cfg.rate_per_ip,
    )));
    let mw = RpcServiceBuilder::new().layer_fn(move |inner| RateLimit {
        inner,
        budgets: budgets.clone(),
    });
    let services = jsonrpsee::server::Server::builder()
        .set_config(server_cfg)
        .set_rpc_middleware(mw)
        .to_service_builder();
    let (stop, handle) = stop_channel();
    let accept = Accept {
        methods: rpc.into_rpc().into(),
        per_address: (cfg.max_connections_per_ip > 0)
            .then(|| ConnectionsPerAddress::new(cfg.max_connections_per_ip)),
        rate_per_address: cfg.rate_per_ip > 0,
        exempt: cfg
            .ip_limit_exempt
            .iter()
            .map(|a| a.to_canonical())
            .collect(),
    };
    tokio::spawn(async move {
        loop {
            let (socket, peer) = tokio::select! {
                r = listener.accept() => match r {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        tracing::debug!("JSON-RPC accept failed: {e}");
                        tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                        continue;
                    }
                },
                _ = stop.clone().shutdown() => break,
            };
            let Some((address, slot)) = accept.admit(peer.ip()) else {
                metrics::counter!(crate::metrics::CONNECTIONS_REFUSED).increment(1);
                tokio::spawn(refuse(socket));
                continue;
            };
            let svc = services.clone().build(accept.methods.clone(), stop.clone());
            // The service, and with it the address's place, lives as long as the connection.
            let held = slot;
            let service = tower::service_fn(move |mut req: HttpRequest<Incoming>| {
                let mut svc = svc.clone();
                req.extensions_mut().insert(address);
                // The explorer's page and assets (GET, no upgrade); all else is JSON-RPC.
                let page = if ws::is_upgrade_request(&req) {
                    None
                } else {
                    super::explorer::response(req.method(), req.uri().path())
                };
                // A WebSocket outlives the HTTP connection it came from (hyper hands the
                // socket over): its session keeps the address's place until it closes.
                if let Some(slot) = held.clone().filter(|_| ws::is_upgrade_request(&req)) {
                    let closed = svc.on_session_closed();
                    tokio::spawn(async move {
                        closed.await;
                        drop(slot);
                    });
                }
                async move {
                    if let Some(page) = page {
                        return Ok(page);
                    }
                    let r: Result<HttpResponse, BoxError> = svc.call(req).await;
                    r
                }
            });
            tokio::spawn(serve_with_graceful_shutdown(
                socket,
                service,
                stop.clone().shutdown(),
            ));
        }
    });
    Ok((handle, addr))
}

/// What the accept loop decides per connection.
struct Accept {
    methods: jsonrpsee::Methods,
    /// `None`: no limit on connections per address.
    per_address: Option<Arc<ConnectionsPerAddress>>,
    rate_per_address: bool,
    exempt: Vec<IpAddr>,
}

impl Accept {
    /// The address a connection from `peer`'s calls count against, and its place among the
    /// address's connections; `None` if the address holds all it may.
    fn admit(&self, peer: IpAddr) -> Option<(ClientAddress, Option<Arc<AddressSlot>>)> {
        let ip = peer.to_canonical();
        let limited = (!self.exempt.contains(&ip)).then(|| client_key(ip));
        let slot = match (&self.per_address, limited) {
            (Some(per_address), Some(key)) => Some(Arc::new(per_address.try_open(key)?)),
            _ => None,
        };
        Some((
            ClientAddress(limited.filter(|_| self.rate_per_address)),
            slot,
        ))
    }
}

/// Answers a connection over its address's count with 429 and a JSON-RPC 4006 error, then
/// closes it.
async fn refuse(socket: TcpStream) {
    let service = tower::service_fn(|_req: HttpRequest<Incoming>| async {
        let body = serde_json::json!({
            "jsonrpc": "2.0",
            "id": null,
            "error": {
                "code": codes::BUSY,
                "message": "node busy: too many connections from this client address \
                            (rpc.max_connections_per_ip); retry later",
            },
        })
        .to_string();
        let mut r = HttpResponse::new(HttpBody::from(body));
        *r.status_mut() = axum::http::StatusCode::TOO_MANY_REQUESTS;
        let h = r.headers_mut();
        h.insert(
            axum::http::header::CONTENT_TYPE,
            axum::http::HeaderValue::from_static("application/json"),
        );
        h.insert(
            axum::http::header::CONNECTION,
            axum::http::HeaderValue::from_static("close"),
        );
        Ok::<_, std::convert::Infallible>(r)
    });
    let _ = tokio::time::timeout(REFUSAL_GRACE, jsonrpsee::server::serve(socket, service)).await;
}
