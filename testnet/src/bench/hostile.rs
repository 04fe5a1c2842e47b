//! Hostile load beside a benchmark run (`bench --hostile`): what strangers on the network can
//! hold open on the validators while the load runs, so its cost shows in the run's latency and
//! memory beside a clean run's (docs/security.md).
//!
//! - **Gossip port**: raw TCP connections that start libp2p's multistream-select and go no
//!   further, never reading again: all a stranger gets there, as its handshake never
//!   completes with a peer id outside the validator set. The node keeps
//!   `gossip.max_inbound_per_ip` of them per address and closes the others at once; a
//!   refresher opens new ones as the node closes old ones, so the pressure lasts the run.
//! - **RPC port**: idle WebSockets that answer pings (clients that call nothing): the worst
//!   case for the node's connection slots, as nothing ever closes them. The harness connects
//!   from loopback, which the node exempts from its per-address cap (`rpc.ip_limit_exempt`),
//!   so all of them are taken: the cost of that many clients, not of the cap.

use crate::Cluster;
use jsonrpsee::ws_client::{WsClient, WsClientBuilder};
use serde::Serialize;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Connections kept opening to the validators' gossip ports, in all.
pub const GOSSIP_CONNECTIONS: usize = 200;
/// Idle WebSockets opened to the validators' RPC ports, in all.
pub const IDLE_WEBSOCKETS: usize = 500;
/// multistream-select's header, as a libp2p dialer sends it first.
const MULTISTREAM: &[u8] = b"\x13/multistream/1.0.0\n";
/// How often the refresher replaces gossip connections the nodes closed.
const REFRESH: Duration = Duration::from_secs(2);

/// What the hostile load held during a run.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct HostileLoad {
    /// Gossip connections kept open at a time (the target, over every validator).
    pub gossip_target: usize,
    /// Connections opened to the gossip ports over the run, and how many of them the node
    /// answered (took into its handshake) or closed at once.
    pub gossip_opened: usize,
    pub gossip_answered: usize,
    pub gossip_closed_at_once: usize,
    /// Idle WebSockets asked for, opened, and still open when the run ended.
    pub websockets_asked: usize,
    pub websockets_opened: usize,
    pub websockets_open_at_end: usize,
}

/// The hostile connections of one run; [`Hostile::finish`] closes them.
pub struct Hostile {
    websockets: Vec<WsClient>,
    asked: usize,
    stop: Arc<AtomicBool>,
    refresher: tokio::task::JoinHandle<()>,
    opened: Arc<AtomicUsize>,
    answered: Arc<AtomicUsize>,
    refused: Arc<AtomicUsize>,
}

/// The TCP address of a `/ip4/A/tcp/P` multiaddr.
fn tcp_address(multiaddr: &str) -> eyre::Result<SocketAddr> {
    let parts: Vec<&str> = multiaddr.split('/').collect();
    match parts.as_slice() {
        ["", "ip4" | "ip6", ip, "tcp", port, ..] => Ok(format!("{ip}:{port}").parse()?),
        _ => eyre::bail!("not a /ip4|ip6/…/tcp/… address: {multiaddr}"),
    }
}

/// Opens one connection and starts multistream-select: `Some(stream)` if the node answered
/// (it holds the connection in its handshake), `None` if it closed it or did not answer.
async fn open_gossip(addr: SocketAddr) -> Option<TcpStream> {
    let mut s = tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(addr))
        .await
        .ok()?
        .ok()?;
    s.write_all(MULTISTREAM).await.ok()?;
    let mut buf = [0u8; 64];
    match tokio::time::timeout(Duration::from_secs(2), s.read(&mut buf)).await {
        Ok(Ok(n)) if n > 0 => Some(s),
        _ => None,
    }
}

/// Whether the node has closed `s` (an end of stream or an error; data it sends is drained).
fn closed(s: &TcpStream) -> bool {
    let mut buf = [0u8; 256];
    loop {
        match s.try_read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return false,
            Err(_) => return true,
        }
    }
}

impl Hostile {
    /// Opens the idle WebSockets and starts keeping the gossip connections open.
    pub async fn open(c: &Cluster) -> eyre::Result<Hostile> {
        let n = c.nodes.len();
        let gossip: Vec<SocketAddr> = c
            .nodes
            .iter()
            .map(|node| tcp_address(&node.config.gossip.listen))
            .collect::<eyre::Result<_>>()?;
        let mut websockets = Vec::with_capacity(IDLE_WEBSOCKETS);
        for i in 0..IDLE_WEBSOCKETS {
            let url = c.nodes[i % n].ws_url();
            if let Ok(ws) = WsClientBuilder::default()
                .connection_timeout(Duration::from_secs(5))
                .build(&url)
                .await
            {
                websockets.push(ws);
            }
        }
        let stop = Arc::new(AtomicBool::new(false));
        let (opened, answered, refused) = Default::default();
        let refresher = tokio::spawn(keep_gossip_open(
            gossip,
            stop.clone(),
            Arc::clone(&opened),
            Arc::clone(&answered),
            Arc::clone(&refused),
        ));
        Ok(Hostile {
            websockets,
            asked: IDLE_WEBSOCKETS,
            stop,
            refresher,
            opened,
            answered,
            refused,
        })
    }

    /// Closes everything and says what was held.
    pub async fn finish(self) -> HostileLoad {
        self.stop.store(true, Relaxed);
        let _ = self.refresher.await;
        HostileLoad {
            gossip_target: GOSSIP_CONNECTIONS,
            gossip_opened: self.opened.load(Relaxed),
            gossip_answered: self.answered.load(Relaxed),
            gossip_closed_at_once: self.refused.load(Relaxed),
            websockets_asked: self.asked,
            websockets_opened: self.websockets.len(),
            websockets_open_at_end: self.websockets.iter().filter(|w| w.is_connected()).count(),
        }
    }
}

/// Keeps [`GOSSIP_CONNECTIONS`] connections open over the nodes' gossip ports (spread evenly),
/// replacing those the nodes close, until `stop`.
async fn keep_gossip_open(
    nodes: Vec<SocketAddr>,
    stop: Arc<AtomicBool>,
    opened: Arc<AtomicUsize>,
    answered: Arc<AtomicUsize>,
    refused: Arc<AtomicUsize>,
) {
    let per_node = GOSSIP_CONNECTIONS / nodes.len().max(1);
    let mut held: Vec<Vec<TcpStream>> = nodes.iter().map(|_| Vec::new()).collect();
    while !stop.load(Relaxed) {
        for (addr, streams) in nodes.iter().zip(held.iter_mut()) {
            streams.retain(|s| !closed(s));
            // Try for the whole share each round: those the node closes at once are counted
            // and tried again at the next refresh.
            for _ in streams.len()..per_node {
                if stop.load(Relaxed) {
                    return;
                }
                opened.fetch_add(1, Relaxed);
                match open_gossip(*addr).await {
                    Some(s) => {
                        answered.fetch_add(1, Relaxed);
                        streams.push(s);
                    }
                    None => {
                        refused.fetch_add(1, Relaxed);
                    }
                }
            }
        }
        tokio::time::sleep(REFRESH).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gossip_addresses_are_read_from_multiaddrs() {
        assert_eq!(
            tcp_address("/ip4/127.0.0.1/tcp/26656").unwrap(),
            "127.0.0.1:26656".parse().unwrap()
        );
        assert!(tcp_address("/dns4/example.com/tcp/1").is_err());
    }
}
