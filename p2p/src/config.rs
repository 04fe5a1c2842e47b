//! The gossip swarm's configuration ([`GossipConfig`]) and the named limits it runs under:
//! queue sizes, maintenance period, fetch fan-out and timeouts.

use crate::fetch::ItemStore;
use libp2p::Multiaddr;
use std::sync::Arc;
use std::time::Duration;

/// Default capacity of the inbound message queue; when full, new messages are ignored (not
/// forwarded, no penalty) so gossip never blocks the swarm or consensus. Each message holds at
/// most `max_message_bytes`, so this also bounds the queue's memory.
pub const DEFAULT_INBOUND_CAPACITY: usize = 1024;
/// Messages queued to one peer (see `build_swarm`).
pub(crate) const SEND_QUEUE_MESSAGES: usize = 512;
/// Capacity of the command queue from the node to the swarm task.
pub(crate) const COMMAND_CAPACITY: usize = 4096;
/// How often disconnected peers are redialled and scores checked.
pub(crate) const MAINTENANCE_INTERVAL: Duration = Duration::from_secs(2);
/// Peers asked at once for the same items when no peer is preferred; more are asked, one at
/// a time, for what they did not have.
pub(crate) const FETCH_FANOUT: usize = 2;
/// How long one peer has to answer a fetch.
pub(crate) const FETCH_TIMEOUT: Duration = Duration::from_secs(2);
/// Fetch requests one connection may have in progress at once (each direction).
pub(crate) const FETCH_STREAMS: usize = 8;

/// Configuration of the gossip swarm.
#[derive(Clone)]
pub struct GossipConfig {
    /// 32-byte ed25519 secret of this node's gossip identity.
    pub secret: [u8; 32],
    pub listen: Multiaddr,
    /// Peers to stay connected to, as `/ip4/…/tcp/…/p2p/<peer id>`.
    pub peers: Vec<Multiaddr>,
    pub topic: String,
    pub max_message_bytes: usize,
    pub inbound_capacity: usize,
    /// Gossipsub mesh degree (D). Publishing reaches every connected peer directly (flood
    /// publish); the mesh only relays, so a small degree avoids receiving each message once per
    /// mesh peer.
    pub mesh_n: usize,
    /// Least time between two publishes (0: each goes at once). A publish that comes sooner
    /// after the previous one waits out the rest of it, and what is published meanwhile goes
    /// in the same message; an idle node's publish goes at once, and a message that reaches
    /// `max_message_bytes` goes at once. Each gossip message costs every peer framing,
    /// encryption, duplicate tracking and system calls whatever it carries, so under load
    /// this puts many admission groups in one message.
    pub publish_linger: Duration,
    /// Message id of a message's items (for one bundle: its bundle hash), so a peer never
    /// re-gossips what it already has. Malformed messages get a tagged hash of their bytes.
    pub message_id: fn(&[&[u8]]) -> Vec<u8>,
    /// What this node hands out to peers that fetch.
    pub store: Arc<dyn ItemStore>,
    /// Most bytes of items in one fetch response (sent or accepted).
    pub max_fetch_bytes: usize,
    /// How this node names itself to peers (identify's agent version), so a peer that wants
    /// what this node holds can ask it first: for a validator, its address.
    pub agent: String,
}
