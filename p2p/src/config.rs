//! The gossip swarm's configuration ([`GossipConfig`]) and the named limits it runs under:
//! queue sizes, maintenance period, fetch fan-out and timeouts.

use crate::fetch::ItemStore;
use libp2p::{Multiaddr, PeerId};
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
/// Default most inbound connections from one IP address (IPv6: one /64) at once, counted from
/// acceptance (before the handshake); a validator's connection stops counting once its peer
/// id is known. Eight leaves room for a few nodes behind one NAT while four addresses cannot
/// fill [`MAX_PENDING_INBOUND`].
pub const DEFAULT_MAX_INBOUND_PER_IP: usize = 8;
/// Default most established inbound connections in all. Validators connect to each other
/// both ways, so a validator takes at most one per other validator; the rest is room for
/// full nodes when they are allowed.
pub const DEFAULT_MAX_INBOUND: usize = 128;
/// Most inbound connections in their handshake at once (a handshake is milliseconds long; a
/// connection that stalls in it is dropped after the transport's upgrade timeout).
pub(crate) const MAX_PENDING_INBOUND: u32 = 32;
/// Most connections to one peer: one each way when two nodes dial each other at once.
pub(crate) const MAX_CONNECTIONS_PER_PEER: u32 = 2;
/// How long a connection no protocol uses stays open. Validators' connections are kept alive
/// by the gate whatever their use (gossipsub keeps only mesh peers'), so this closes only
/// other peers' idle connections: long enough for a peer that fetches between heights to
/// keep its connection, short enough that idle connections do not hold slots.
pub(crate) const IDLE_CONNECTION_TIMEOUT: Duration = Duration::from_secs(30);
/// Most peers remembered as banned; one more forgets the oldest ban (see `limits::Banned`).
pub(crate) const MAX_BANNED: usize = 1024;
/// Fetch requests a peer may make at once before it is held to [`FETCH_REQUESTS_PER_SECOND`];
/// a request beyond that is refused (the asker's request fails and it asks another peer).
pub(crate) const FETCH_REQUEST_BURST: u32 = 64;
/// Fetch requests per second a peer may make in the long run: a validator asks each peer at
/// most once per proposal (heights last 30 ms at the least) plus backed-off block fetches.
pub(crate) const FETCH_REQUESTS_PER_SECOND: u32 = 32;
/// Peers' fetch requests looked up at once, off the swarm task (the lookup takes the mempool's
/// lock and may read blocks from disk); a request beyond that is refused like one over rate.
pub(crate) const SERVE_CONCURRENCY: usize = 4;
/// Most rounds of one fetch: a round asks peers for what is still wanted; an answer that fails
/// the caller's check sends its items to another round, without the peer that sent it.
pub(crate) const FETCH_ROUNDS: usize = 8;

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
    /// How this node names itself to peers (identify's agent version): for a validator, its
    /// address. Informational only: a peer's claim is never trusted.
    pub agent: String,
    /// The validators' gossip peer ids (from the genesis file): the only peers connected
    /// unless `allow_non_validators`.
    pub validators: Vec<PeerId>,
    /// Take connections from peers that are not validators (full nodes).
    pub allow_non_validators: bool,
    /// Most inbound connections from one IP address at once (see [`DEFAULT_MAX_INBOUND_PER_IP`]).
    pub max_inbound_per_ip: usize,
    /// Most established inbound connections (see [`DEFAULT_MAX_INBOUND`]).
    pub max_inbound: usize,
}
