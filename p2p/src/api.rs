//! What the rest of the node uses: the [`BundleGossip`] seam and its swarm-backed
//! [`GossipHandle`], the [`Inbound`] messages the node judges and its [`Verdict`]s on them,
//! and [`P2pError`]. The handle talks to the swarm task through [`Command`]s.

use crate::config::FETCH_ROUNDS;
use bytes::Bytes;
use libp2p::gossipsub::MessageId;
use libp2p::{Multiaddr, PeerId};
use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, warn};

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

/// The caller's check of a fetched item against the id it asked by (for a bundle: it decodes,
/// hashes to the id and carries a valid signature). It runs on tokio's blocking pool.
pub type FetchCheck = Arc<dyn Fn(&[u8; 32], &Bytes) -> bool + Send + Sync>;

/// One item's answer in one round of a fetch: who sent it, and what.
pub(crate) type Answer = Option<(PeerId, Bytes)>;

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
    /// Asks peers for items by id, first the peer `prefer` alone (if connected; its peer id
    /// is authenticated by the connection's handshake); one entry per id, in order: what some
    /// peer sent that passed `check`, or `None` if no peer had it. An answer that fails
    /// `check` does not end the search: its item is asked of peers that have not sent a bad
    /// answer in this fetch.
    async fn fetch(
        &self,
        ids: Vec<[u8; 32]>,
        prefer: Option<PeerId>,
        check: FetchCheck,
    ) -> Vec<Option<Bytes>> {
        let _ = (prefer, check);
        vec![None; ids.len()]
    }
    /// Admits these peers past the gate as validators are (a validator set update added
    /// them).
    async fn admit(&self, peers: Vec<PeerId>) {
        let _ = peers;
    }
}

/// What the handle asks of the swarm task.
pub(crate) enum Command {
    Publish(Vec<Bytes>),
    Admit(Vec<PeerId>),
    Report(MessageId, PeerId, Verdict),
    Fetch {
        ids: Vec<[u8; 32]>,
        prefer: Option<PeerId>,
        /// Peers not to ask (they sent a bad answer earlier in this fetch).
        exclude: HashSet<PeerId>,
        reply: oneshot::Sender<Vec<Answer>>,
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

    async fn admit(&self, peers: Vec<PeerId>) {
        if self.tx.send(Command::Admit(peers)).await.is_err() {
            warn!("gossip task has stopped; new validators not admitted");
        }
    }

    async fn fetch(
        &self,
        ids: Vec<[u8; 32]>,
        prefer: Option<PeerId>,
        check: FetchCheck,
    ) -> Vec<Option<Bytes>> {
        let mut found: Vec<Option<Bytes>> = vec![None; ids.len()];
        let mut wanted: Vec<usize> = (0..ids.len()).collect();
        let mut exclude = HashSet::new();
        for _ in 0..FETCH_ROUNDS {
            if wanted.is_empty() {
                break;
            }
            let asked: Vec<[u8; 32]> = wanted.iter().map(|&i| ids[i]).collect();
            let answers = self
                .fetch_round(asked.clone(), prefer, exclude.clone())
                .await;
            let check = check.clone();
            let judged = tokio::task::spawn_blocking(move || {
                answers
                    .into_iter()
                    .zip(&asked)
                    .map(|(a, id)| a.map(|(peer, item)| (check(id, &item), peer, item)))
                    .collect::<Vec<_>>()
            })
            .await
            .unwrap_or_default();
            let mut again = Vec::new();
            for (&i, answer) in wanted.iter().zip(judged) {
                match answer {
                    Some((true, _, item)) => found[i] = Some(item),
                    Some((false, peer, _)) => {
                        debug!(%peer, "a fetched item failed its check; asking another peer");
                        metrics::counter!(crate::metrics::FETCH_BAD_ANSWERS).increment(1);
                        exclude.insert(peer);
                        again.push(i);
                    }
                    // Nobody had it.
                    None => {}
                }
            }
            wanted = again;
        }
        found
    }
}

impl GossipHandle {
    /// One round of a fetch: the swarm task asks connected peers (but `exclude`) in turn.
    async fn fetch_round(
        &self,
        ids: Vec<[u8; 32]>,
        prefer: Option<PeerId>,
        exclude: HashSet<PeerId>,
    ) -> Vec<Answer> {
        let n = ids.len();
        if n == 0 {
            return Vec::new();
        }
        let (reply, rx) = oneshot::channel();
        let cmd = Command::Fetch {
            ids,
            prefer,
            exclude,
            reply,
        };
        if self.tx.send(cmd).await.is_err() {
            return vec![None; n];
        }
        rx.await.unwrap_or_else(|_| vec![None; n])
    }
}
