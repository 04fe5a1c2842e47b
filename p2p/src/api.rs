//! What the rest of the node uses: the [`BundleGossip`] seam and its swarm-backed
//! [`GossipHandle`], the [`Inbound`] messages the node judges and its [`Verdict`]s on them,
//! and [`P2pError`]. The handle talks to the swarm task through [`Command`]s.

use bytes::Bytes;
use libp2p::gossipsub::MessageId;
use libp2p::{Multiaddr, PeerId};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};
use tracing::warn;

/// Why the gossip swarm could not start.
#[derive(Debug, thiserror::Error)]
pub enum P2pError {
    #[error("invalid gossip key: {0}")]
    Key(String),
    #[error("cannot build the gossip swarm: {0}")]
    Build(String),
    #[error("cannot listen on {addr}: {reason}")]
    Listen { addr: Multiaddr, reason: String },
}

/// What the node decided about an inbound message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Valid: forward it.
    Accept,
    /// Invalid: do not forward, penalise the sender.
    Reject,
    /// Not forwarded, no penalty (e.g. duplicate or node busy).
    Ignore,
}

/// A message received from a peer, awaiting a verdict: its items, in order, as slices of the
/// received buffer.
#[derive(Debug, Clone)]
pub struct Inbound {
    pub id: MessageId,
    pub from: PeerId,
    pub items: Vec<Bytes>,
}

/// The gossip seam: the libp2p swarm in production, an in-memory network in unit tests.
#[async_trait::async_trait]
pub trait BundleGossip: Send + Sync + 'static {
    /// Publishes items to every peer, packed into as few messages as the size limits allow
    /// (order kept).
    async fn publish(&self, items: Vec<Bytes>);
    /// Reports the verdict on an inbound message.
    async fn report(&self, id: MessageId, from: PeerId, verdict: Verdict);
    /// Number of connected gossip peers.
    fn peers(&self) -> usize;
    /// Asks peers for items by id, first the peer whose agent is `prefer` (if connected), as
    /// announced by identify; one entry per id, in order: what some peer sent (not checked:
    /// the caller checks it hashes to its id), or `None` if no peer had it.
    async fn fetch(&self, ids: Vec<[u8; 32]>, prefer: Option<String>) -> Vec<Option<Bytes>> {
        let _ = prefer;
        vec![None; ids.len()]
    }
}

/// What the handle asks of the swarm task.
pub(crate) enum Command {
    Publish(Vec<Bytes>),
    Report(MessageId, PeerId, Verdict),
    Fetch {
        ids: Vec<[u8; 32]>,
        prefer: Option<String>,
        reply: oneshot::Sender<Vec<Option<Bytes>>>,
    },
}

/// Handle to the running swarm task.
#[derive(Clone)]
pub struct GossipHandle {
    pub(crate) tx: mpsc::Sender<Command>,
    pub(crate) peers: Arc<AtomicUsize>,
    pub local_peer_id: PeerId,
}

#[async_trait::async_trait]
impl BundleGossip for GossipHandle {
    async fn publish(&self, items: Vec<Bytes>) {
        if items.is_empty() {
            return;
        }
        if self.tx.send(Command::Publish(items)).await.is_err() {
            warn!("gossip task has stopped; bundles not published");
        }
    }

    async fn report(&self, id: MessageId, from: PeerId, verdict: Verdict) {
        let _ = self.tx.send(Command::Report(id, from, verdict)).await;
    }

    fn peers(&self) -> usize {
        self.peers.load(Ordering::Relaxed)
    }

    async fn fetch(&self, ids: Vec<[u8; 32]>, prefer: Option<String>) -> Vec<Option<Bytes>> {
        let n = ids.len();
        if n == 0 {
            return Vec::new();
        }
        let (reply, rx) = oneshot::channel();
        let cmd = Command::Fetch { ids, prefer, reply };
        if self.tx.send(cmd).await.is_err() {
            return vec![None; n];
        }
        rx.await.unwrap_or_else(|_| vec![None; n])
    }
}
