//! Bundle gossip over its own libp2p swarm (gossipsub over TCP + noise + yamux).
//!
//! The swarm runs in one task that owns it; the rest of the node holds a cloneable
//! [`GossipHandle`] (behind the [`BundleGossip`] trait, the seam tests replace) and reads
//! [`Inbound`] messages from a bounded channel. Gossipsub holds every inbound message until
//! the node reports a [`Verdict`], so invalid bundles are never forwarded and their senders
//! are scored down; a peer whose score falls below the graylist threshold is disconnected and
//! blacklisted. This crate knows nothing of blocks: the message-id function is supplied by the
//! node.
//!
//! A gossip message carries one or more items ([`frame`]): what the node publishes together
//! (say, the bundles of one admission group) travels as one message, so gossipsub's
//! per-message costs (framing, encryption, duplicate tracking, scoring, wake-ups) are shared.
//!
//! The same swarm serves [`fetch`]es: a node asks peers for items it lacks by their 32-byte
//! ids and answers such requests from an [`ItemStore`] (the node's pending bundles).

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod fetch;
pub mod frame;

use bytes::Bytes;
use fetch::{FetchCodec, ItemStore};
use futures::StreamExt;
use libp2p::gossipsub::{self, IdentTopic, MessageAcceptance};
use libp2p::identity::Keypair;
use libp2p::request_response::{self, OutboundRequestId, ProtocolSupport};
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{identify, Multiaddr, Swarm};
use std::collections::{HashMap, HashSet};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info, warn};

pub use libp2p::gossipsub::MessageId;
pub use libp2p::Multiaddr as Address;
pub use libp2p::PeerId;

/// Default capacity of the inbound message queue; when full, new messages are ignored (not
/// forwarded, no penalty) so gossip never blocks the swarm or consensus. Each message holds at
/// most `max_message_bytes`, so this also bounds the queue's memory.
pub const DEFAULT_INBOUND_CAPACITY: usize = 1024;
/// Messages queued to one peer (see `build_swarm`).
pub const SEND_QUEUE_MESSAGES: usize = 512;
/// Capacity of the command queue from the node to the swarm task.
pub const COMMAND_CAPACITY: usize = 4096;
/// How often disconnected peers are redialled and scores checked.
pub const MAINTENANCE_INTERVAL: Duration = Duration::from_secs(2);
/// Peers asked at once for the same items when no peer is preferred; more are asked, one at
/// a time, for what they did not have.
pub const FETCH_FANOUT: usize = 2;
/// How long one peer has to answer a fetch.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(2);
/// Fetch requests one connection may have in progress at once (each direction).
pub const FETCH_STREAMS: usize = 8;

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

/// The libp2p peer id of a gossip secret.
pub fn peer_id(secret: &[u8; 32]) -> Result<PeerId, P2pError> {
    let mut s = *secret;
    let kp = Keypair::ed25519_from_bytes(&mut s).map_err(|e| P2pError::Key(e.to_string()))?;
    Ok(kp.public().to_peer_id())
}

#[derive(NetworkBehaviour)]
struct Behaviour {
    gossipsub: gossipsub::Behaviour,
    identify: identify::Behaviour,
    fetch: request_response::Behaviour<FetchCodec>,
    /// Refuses every connection of a banned peer before any protocol runs.
    blocked: libp2p::allow_block_list::Behaviour<libp2p::allow_block_list::BlockedPeers>,
}

enum Command {
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
    tx: mpsc::Sender<Command>,
    peers: Arc<AtomicUsize>,
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

fn build_swarm(cfg: &GossipConfig, topic: &IdentTopic) -> Result<Swarm<Behaviour>, P2pError> {
    let mut secret = cfg.secret;
    let keypair =
        Keypair::ed25519_from_bytes(&mut secret).map_err(|e| P2pError::Key(e.to_string()))?;
    let id_fn = cfg.message_id;
    let max = cfg.max_message_bytes;
    let mesh_n = cfg.mesh_n.max(1);
    let max_fetch = cfg.max_fetch_bytes;
    let agent = cfg.agent.clone();
    let topic_hash = topic.hash();
    let swarm = libp2p::SwarmBuilder::with_existing_identity(keypair)
        .with_tokio()
        .with_tcp(
            libp2p::tcp::Config::default(),
            libp2p::noise::Config::new,
            libp2p::yamux::Config::default,
        )
        .map_err(|e| P2pError::Build(e.to_string()))?
        .with_behaviour(
            |key| -> Result<Behaviour, Box<dyn std::error::Error + Send + Sync>> {
                let config = gossipsub::ConfigBuilder::default()
                    .heartbeat_interval(Duration::from_millis(500))
                    .mesh_n(mesh_n)
                    .mesh_n_low(mesh_n)
                    .mesh_n_high(mesh_n + 1)
                    .mesh_outbound_min(mesh_n / 2)
                    .flood_publish(true)
                    // Bundles carry their own signature, and peers are scored by who relayed
                    // a message (a noise-authenticated connection), not by its author: an
                    // envelope signature would cost an ed25519 sign per publish and a verify
                    // (SHA-512 over the whole bundle) per receipt, and add nothing.
                    .validation_mode(gossipsub::ValidationMode::Anonymous)
                    // Ids come from content, so an honest peer can send us a message id we
                    // published too: the same bundle submitted to two validators, or our own
                    // message relayed back. Without this, gossipsub counts that as an invalid
                    // "self-origin" message and soon graylists the honest peer; with it, the
                    // copy is just a duplicate.
                    .allow_self_origin(true)
                    .validate_messages()
                    .message_id_fn(move |m: &gossipsub::Message| {
                        MessageId::from(match frame::items(&m.data) {
                            Some(items) => id_fn(&items),
                            None => frame::malformed_id(&m.data),
                        })
                    })
                    .max_transmit_size(max)
                    // Each peer's send queue holds this many messages, half for our own
                    // publishes and half for forwards, each its own copy of up to
                    // `max_message_bytes`. gossipsub's default (5,000) lets one slow peer
                    // hold 660 MB of 132 KiB messages; this bounds it to about 68 MB. A
                    // publish that does not fit is dropped at once rather than after waiting
                    // out gossipsub's 5 s publish timeout, and a peer that needs the bundle
                    // fetches it with the proposal.
                    .connection_handler_queue_len(SEND_QUEUE_MESSAGES)
                    .duplicate_cache_time(Duration::from_secs(120))
                    .build()?;
                let mut gossipsub =
                    gossipsub::Behaviour::new(gossipsub::MessageAuthenticity::Anonymous, config)?;
                let mut params = gossipsub::PeerScoreParams {
                    // Local networks put every peer on one IP address.
                    ip_colocation_factor_weight: 0.0,
                    // No behaviour penalty (P7). Its main source is broken IWANT promises,
                    // which an honest validator breaks when it is overloaded: with 64 KiB
                    // bundles and full pools, peers reached scores of -44,878 and -255,988
                    // (the penalty is squared) within seconds, were graylisted, and were
                    // banned for good, splitting the gossip network while it was busiest.
                    // Misbehaviour that matters here is invalid bundles, scored by P4 below.
                    behaviour_penalty_weight: 0.0,
                    // Nor the slow-peer penalty (a message that cannot be queued to a peer
                    // whose send queue is full): the same overload then took a peer to -95.9
                    // (about 480 such messages) and a ban.
                    slow_peer_weight: 0.0,
                    ..Default::default()
                };
                params.topics.insert(
                    topic_hash.clone(),
                    gossipsub::TopicScoreParams {
                        topic_weight: 1.0,
                        // Invalid bundles dominate the score: a few of them graylist a peer.
                        invalid_message_deliveries_weight: -50.0,
                        invalid_message_deliveries_decay: 0.9,
                        // Small, capped credit for first deliveries; none for mere time in
                        // the mesh (which would otherwise outweigh misbehaviour).
                        first_message_deliveries_weight: 0.5,
                        first_message_deliveries_cap: 100.0,
                        time_in_mesh_weight: 0.0,
                        mesh_message_deliveries_weight: 0.0,
                        mesh_failure_penalty_weight: 0.0,
                        ..Default::default()
                    },
                );
                gossipsub.with_peer_score(params, gossipsub::PeerScoreThresholds::default())?;
                let identify = identify::Behaviour::new(
                    identify::Config::new("/lockstep/gossip/1".into(), key.public())
                        .with_agent_version(agent),
                );
                let fetch = request_response::Behaviour::with_codec(
                    FetchCodec {
                        max_response_bytes: max_fetch,
                    },
                    [(fetch::PROTOCOL, ProtocolSupport::Full)],
                    request_response::Config::default()
                        .with_request_timeout(FETCH_TIMEOUT)
                        .with_max_concurrent_streams(FETCH_STREAMS),
                );
                Ok(Behaviour {
                    gossipsub,
                    identify,
                    fetch,
                    blocked: Default::default(),
                })
            },
        )
        .map_err(|e| P2pError::Build(e.to_string()))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(3600)))
        .build();
    Ok(swarm)
}

/// Starts the gossip swarm; returns its handle and the inbound message queue.
pub fn spawn(cfg: GossipConfig) -> Result<(GossipHandle, mpsc::Receiver<Inbound>), P2pError> {
    let topic = IdentTopic::new(cfg.topic.clone());
    let mut swarm = build_swarm(&cfg, &topic)?;
    swarm
        .behaviour_mut()
        .gossipsub
        .subscribe(&topic)
        .map_err(|e| P2pError::Build(e.to_string()))?;
    swarm
        .listen_on(cfg.listen.clone())
        .map_err(|e| P2pError::Listen {
            addr: cfg.listen.clone(),
            reason: e.to_string(),
        })?;
    let local_peer_id = *swarm.local_peer_id();
    let (tx, rx) = mpsc::channel(COMMAND_CAPACITY);
    let (in_tx, in_rx) = mpsc::channel(cfg.inbound_capacity);
    let peers = Arc::new(AtomicUsize::new(0));
    let task = SwarmTask {
        swarm,
        topic,
        cfg,
        inbound: in_tx,
        peers: peers.clone(),
        banned: HashSet::new(),
        fetches: HashMap::new(),
        requests: HashMap::new(),
        next_fetch: 0,
        agents: HashMap::new(),
        pending: Vec::new(),
        pending_bytes: 0,
        last_publish: tokio::time::Instant::now(),
        linger: Box::pin(tokio::time::sleep(Duration::ZERO)),
        lingering: false,
    };
    tokio::spawn(task.run(rx));
    Ok((
        GossipHandle {
            tx,
            peers,
            local_peer_id,
        },
        in_rx,
    ))
}

struct SwarmTask {
    swarm: Swarm<Behaviour>,
    topic: IdentTopic,
    cfg: GossipConfig,
    inbound: mpsc::Sender<Inbound>,
    peers: Arc<AtomicUsize>,
    banned: HashSet<PeerId>,
    /// Fetches in progress, by a local key.
    fetches: HashMap<u64, Fetch>,
    /// Requests in flight: the fetch each serves and the positions it asked for.
    requests: HashMap<OutboundRequestId, (u64, Vec<usize>)>,
    next_fetch: u64,
    /// Each connected peer's agent, as identify reported it.
    agents: HashMap<PeerId, String>,
    /// Items waiting to be published (see [`GossipConfig::publish_linger`]), and their bytes.
    pending: Vec<Bytes>,
    pending_bytes: usize,
    /// When the last message went out, and the timer (armed while items wait) that sends
    /// the next one `publish_linger` later.
    last_publish: tokio::time::Instant,
    linger: Pin<Box<tokio::time::Sleep>>,
    lingering: bool,
}

/// One fetch: what was asked, what has come back, who else may be asked.
struct Fetch {
    ids: Vec<[u8; 32]>,
    found: Vec<Option<Bytes>>,
    in_flight: usize,
    untried: Vec<PeerId>,
    reply: oneshot::Sender<Vec<Option<Bytes>>>,
}

impl Fetch {
    fn missing(&self) -> Vec<usize> {
        (0..self.ids.len())
            .filter(|&i| self.found[i].is_none())
            .collect()
    }
}

fn peer_of(addr: &Multiaddr) -> Option<PeerId> {
    addr.iter().find_map(|p| match p {
        libp2p::multiaddr::Protocol::P2p(id) => Some(id),
        _ => None,
    })
}

impl SwarmTask {
    async fn run(mut self, mut commands: mpsc::Receiver<Command>) {
        let mut tick = tokio::time::interval(MAINTENANCE_INTERVAL);
        loop {
            tokio::select! {
                cmd = commands.recv() => match cmd {
                    Some(c) => self.command(c),
                    None => break,
                },
                event = self.swarm.select_next_some() => self.event(event),
                _ = &mut self.linger, if self.lingering => self.flush_publish(),
                _ = tick.tick() => self.maintain(),
            }
        }
        self.flush_publish();
        debug!("gossip task stopped");
    }

    fn command(&mut self, c: Command) {
        match c {
            Command::Publish(items) => self.queue_publish(items),
            Command::Report(id, from, verdict) => {
                let acceptance = match verdict {
                    Verdict::Accept => MessageAcceptance::Accept,
                    Verdict::Reject => MessageAcceptance::Reject,
                    Verdict::Ignore => MessageAcceptance::Ignore,
                };
                self.validation_result(&id, &from, acceptance);
            }
            Command::Fetch { ids, prefer, reply } => self.start_fetch(ids, prefer, reply),
        }
    }

    /// Adds `items` to what waits to be published, and publishes it all if the last message
    /// went at least `publish_linger` ago (an idle node adds no delay) or a full message's
    /// worth waits; otherwise the timer sends it when `publish_linger` has passed, with
    /// whatever else is published meanwhile: at most one message per `publish_linger`.
    fn queue_publish(&mut self, items: Vec<Bytes>) {
        self.pending_bytes += items.iter().map(Bytes::len).sum::<usize>();
        self.pending.extend(items);
        let full = self.pending_bytes >= self.cfg.max_message_bytes
            || self.pending.len() >= frame::MAX_ITEMS;
        let due = self.last_publish + self.cfg.publish_linger;
        if full || due <= tokio::time::Instant::now() {
            self.flush_publish();
        } else if !self.lingering {
            self.lingering = true;
            self.linger.as_mut().reset(due);
        }
    }

    fn flush_publish(&mut self) {
        self.lingering = false;
        if !self.pending.is_empty() {
            let items = std::mem::take(&mut self.pending);
            self.pending_bytes = 0;
            self.publish(items);
            self.last_publish = tokio::time::Instant::now();
        }
    }

    fn publish(&mut self, items: Vec<Bytes>) {
        for message in frame::pack(&items, self.cfg.max_message_bytes) {
            let n = message.len();
            match self
                .swarm
                .behaviour_mut()
                .gossipsub
                .publish(self.topic.clone(), message)
            {
                Ok(_) => metrics::counter!("lockstep_gossip_published_total").increment(1),
                Err(gossipsub::PublishError::Duplicate) => {}
                Err(e) => debug!(bytes = n, "gossip publish: {e}"),
            }
        }
    }

    fn start_fetch(
        &mut self,
        ids: Vec<[u8; 32]>,
        prefer: Option<String>,
        reply: oneshot::Sender<Vec<Option<Bytes>>>,
    ) {
        metrics::counter!("lockstep_gossip_fetches_total").increment(1);
        let mut peers: Vec<PeerId> = self
            .swarm
            .connected_peers()
            .filter(|p| !self.banned.contains(p))
            .copied()
            .collect();
        // Spread the load: a different first peer each time; but the preferred peer (the one
        // that surely holds the items, such as a proposal's proposer) goes first.
        if !peers.is_empty() {
            let k = (self.next_fetch as usize) % peers.len();
            peers.rotate_left(k);
        }
        // The preferred peer is asked alone: others only for what it lacks, or if it fails.
        let mut fanout = FETCH_FANOUT;
        if let Some(want) = prefer {
            if let Some(i) = peers
                .iter()
                .position(|p| self.agents.get(p).is_some_and(|a| *a == want))
            {
                let p = peers.remove(i);
                peers.insert(0, p);
                fanout = 1;
            }
        }
        peers.reverse(); // `untried` is popped from the back.
        let key = self.next_fetch;
        self.next_fetch += 1;
        let n = ids.len();
        self.fetches.insert(
            key,
            Fetch {
                ids,
                found: vec![None; n],
                in_flight: 0,
                untried: peers,
                reply,
            },
        );
        for _ in 0..fanout {
            self.ask_next(key);
        }
        self.finish_if_done(key);
    }

    /// Asks the next untried peer for what the fetch still misses (the chunks of ids a request
    /// may carry); false if there is nobody left to ask.
    fn ask_next(&mut self, key: u64) -> bool {
        let Some(f) = self.fetches.get_mut(&key) else {
            return false;
        };
        let missing = f.missing();
        if missing.is_empty() {
            return false;
        }
        let Some(peer) = f.untried.pop() else {
            return false;
        };
        for positions in missing.chunks(fetch::MAX_IDS) {
            let ids: Vec<[u8; 32]> = positions.iter().map(|&i| f.ids[i]).collect();
            let id = self.swarm.behaviour_mut().fetch.send_request(&peer, ids);
            f.in_flight += 1;
            self.requests.insert(id, (key, positions.to_vec()));
        }
        true
    }

    /// Replies once everything is found or nobody is left to ask.
    fn finish_if_done(&mut self, key: u64) {
        let Some(f) = self.fetches.get(&key) else {
            return;
        };
        let complete = f.found.iter().all(Option::is_some);
        if complete || (f.in_flight == 0 && f.untried.is_empty()) {
            if let Some(f) = self.fetches.remove(&key) {
                let got = f.found.iter().filter(|x| x.is_some()).count();
                metrics::counter!("lockstep_gossip_fetched_items_total").increment(got as u64);
                if !complete {
                    debug!(
                        missing = f.found.len() - got,
                        "fetch ended without every item"
                    );
                }
                let _ = f.reply.send(f.found);
            }
        }
    }

    /// A request ended (answered or failed): records what came back, asks someone else for
    /// the rest if needed, replies when done.
    fn request_ended(&mut self, request: OutboundRequestId, response: Option<Bytes>) {
        let Some((key, positions)) = self.requests.remove(&request) else {
            return;
        };
        let Some(f) = self.fetches.get_mut(&key) else {
            return;
        };
        f.in_flight = f.in_flight.saturating_sub(1);
        if let Some(data) = response {
            match fetch::decode_response(&data, positions.len()) {
                Some(items) => {
                    for (pos, item) in positions.into_iter().zip(items) {
                        if f.found[pos].is_none() {
                            f.found[pos] = item;
                        }
                    }
                }
                None => debug!("malformed fetch response"),
            }
        }
        let still_missing = f.found.iter().any(Option::is_none);
        if still_missing && f.in_flight == 0 {
            self.ask_next(key);
        }
        self.finish_if_done(key);
    }

    fn serve(
        &mut self,
        peer: PeerId,
        ids: Vec<[u8; 32]>,
        channel: request_response::ResponseChannel<fetch::Response>,
    ) {
        let items = self.cfg.store.lookup(&ids);
        let served = items.iter().filter(|i| i.is_some()).count();
        metrics::counter!("lockstep_gossip_fetch_served_items_total").increment(served as u64);
        let response = Bytes::from(fetch::encode_response(&items, self.cfg.max_fetch_bytes));
        if self
            .swarm
            .behaviour_mut()
            .fetch
            .send_response(channel, response)
            .is_err()
        {
            debug!(%peer, "fetch response not sent: the connection closed");
        }
    }

    /// Tells gossipsub what became of a message it holds for validation.
    fn validation_result(&mut self, id: &MessageId, from: &PeerId, acceptance: MessageAcceptance) {
        self.swarm
            .behaviour_mut()
            .gossipsub
            .report_message_validation_result(id, from, acceptance);
    }

    fn event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            })) => {
                metrics::counter!("lockstep_gossip_received_total").increment(1);
                let Some(items) = frame::split(&Bytes::from(message.data)) else {
                    // Not even framed: the sender is at fault, whatever it carries.
                    metrics::counter!("lockstep_gossip_malformed_total").increment(1);
                    self.validation_result(
                        &message_id,
                        &propagation_source,
                        MessageAcceptance::Reject,
                    );
                    return;
                };
                let msg = Inbound {
                    id: message_id.clone(),
                    from: propagation_source,
                    items,
                };
                if self.inbound.try_send(msg).is_err() {
                    metrics::counter!("lockstep_gossip_inbound_dropped_total").increment(1);
                    self.validation_result(
                        &message_id,
                        &propagation_source,
                        MessageAcceptance::Ignore,
                    );
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Fetch(e)) => match e {
                request_response::Event::Message { peer, message, .. } => match message {
                    request_response::Message::Request {
                        request, channel, ..
                    } => self.serve(peer, request, channel),
                    request_response::Message::Response {
                        request_id,
                        response,
                    } => self.request_ended(request_id, Some(response)),
                },
                request_response::Event::OutboundFailure {
                    peer,
                    request_id,
                    error,
                    ..
                } => {
                    debug!(%peer, "fetch request failed: {error}");
                    self.request_ended(request_id, None);
                }
                request_response::Event::InboundFailure { peer, error, .. } => {
                    debug!(%peer, "fetch request from a peer failed: {error}");
                }
                request_response::Event::ResponseSent { .. } => {}
            },
            SwarmEvent::Behaviour(BehaviourEvent::Identify(identify::Event::Received {
                peer_id,
                info,
                ..
            })) => {
                self.agents.insert(peer_id, info.agent_version);
            }
            SwarmEvent::ConnectionEstablished { .. } => self.count_peers(),
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established,
                ..
            } => {
                if num_established == 0 {
                    self.agents.remove(&peer_id);
                }
                self.count_peers();
            }
            SwarmEvent::NewListenAddr { address, .. } => info!(%address, "gossip listening"),
            _ => {}
        }
    }

    fn count_peers(&self) {
        let n = self.swarm.connected_peers().count();
        self.peers.store(n, Ordering::Relaxed);
        metrics::gauge!("lockstep_gossip_peers").set(n as f64);
    }

    fn maintain(&mut self) {
        let graylist = gossipsub::PeerScoreThresholds::default().graylist_threshold;
        let connected: Vec<PeerId> = self.swarm.connected_peers().copied().collect();
        for p in connected {
            if let Some(score) = self.swarm.behaviour().gossipsub.peer_score(&p) {
                if score < graylist && self.banned.insert(p) {
                    warn!(peer = %p, score, "disconnecting misbehaving gossip peer");
                    metrics::counter!("lockstep_gossip_peers_banned_total").increment(1);
                    self.swarm.behaviour_mut().gossipsub.blacklist_peer(&p);
                    self.swarm.behaviour_mut().blocked.block_peer(p);
                }
            }
        }
        for addr in self.cfg.peers.clone() {
            let Some(peer) = peer_of(&addr) else {
                if self.swarm.connected_peers().count() == 0 {
                    let _ = self.swarm.dial(addr);
                }
                continue;
            };
            if self.banned.contains(&peer) || self.swarm.is_connected(&peer) {
                continue;
            }
            let opts = DialOpts::peer_id(peer)
                .addresses(vec![addr])
                .condition(PeerCondition::DisconnectedAndNotDialing)
                .build();
            let _ = self.swarm.dial(opts);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(items: &[&[u8]]) -> Vec<u8> {
        use sha2::Digest;
        let mut h = sha2::Sha256::new();
        for i in items {
            h.update(i);
        }
        h.finalize().to_vec()
    }

    fn cfg(secret: u8, port: u16, peers: Vec<Multiaddr>) -> GossipConfig {
        GossipConfig {
            secret: [secret; 32],
            listen: format!("/ip4/127.0.0.1/tcp/{port}").parse().unwrap(),
            peers,
            topic: "test".into(),
            max_message_bytes: 1 << 20,
            inbound_capacity: 16,
            mesh_n: 2,
            publish_linger: Duration::ZERO,
            message_id: id,
            store: Arc::new(fetch::NoItems),
            max_fetch_bytes: 1 << 20,
            agent: format!("test/{secret}"),
        }
    }

    /// Items by id (the id is the item's first byte, repeated).
    struct Held(Vec<Bytes>);

    impl ItemStore for Held {
        fn lookup(&self, ids: &[[u8; 32]]) -> Vec<Option<Bytes>> {
            ids.iter()
                .map(|id| self.0.iter().find(|b| b[0] == id[0]).cloned())
                .collect()
        }
    }

    /// A node fetches from its peers: the preferred peer first, each item from whoever holds
    /// it, in the order asked, and `None` for what nobody holds.
    #[tokio::test]
    async fn a_fetch_gathers_items_from_the_peers_that_hold_them() {
        let (pa, pc, pb) = (free_port(), free_port(), free_port());
        let mut a_cfg = cfg(31, pa, vec![]);
        a_cfg.store = Arc::new(Held(vec![Bytes::from_static(b"xray")]));
        let mut c_cfg = cfg(33, pc, vec![]);
        c_cfg.store = Arc::new(Held(vec![
            Bytes::from_static(b"yankee"),
            Bytes::from_static(b"xylophone"),
        ]));
        let (_a, _a_in) = spawn(a_cfg).unwrap();
        let (_c, _c_in) = spawn(c_cfg).unwrap();
        let peers = vec![address(31, pa), address(33, pc)];
        let (b, _b_in) = spawn(cfg(32, pb, peers)).unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while b.peers() < 2 {
            assert!(tokio::time::Instant::now() < deadline, "never connected");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // Identify tells B each peer's agent shortly after connecting.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let ask = || vec![[b'y'; 32], [b'z'; 32], [b'x'; 32]];
        let from_c = b.fetch(ask(), Some("test/33".into())).await;
        assert_eq!(
            from_c,
            vec![
                Some(Bytes::from_static(b"yankee")),
                None,
                Some(Bytes::from_static(b"xylophone"))
            ]
        );
        // A first: its x, and C's y, which A lacks.
        let from_a = b.fetch(ask(), Some("test/31".into())).await;
        assert_eq!(
            from_a,
            vec![
                Some(Bytes::from_static(b"yankee")),
                None,
                Some(Bytes::from_static(b"xray"))
            ]
        );
        assert_eq!(b.fetch(vec![], None).await, Vec::<Option<Bytes>>::new());
    }

    /// Where to dial the node with `secret` listening on `port`.
    fn address(secret: u8, port: u16) -> Multiaddr {
        let id = peer_id(&[secret; 32]).unwrap();
        format!("/ip4/127.0.0.1/tcp/{port}/p2p/{id}")
            .parse()
            .unwrap()
    }

    fn free_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }

    #[tokio::test]
    async fn a_published_message_reaches_a_peer_and_valid_ones_are_forwarded() {
        let (pa, pb) = (free_port(), free_port());
        let (a, mut a_in) = spawn(cfg(1, pa, vec![])).unwrap();
        let addr = address(1, pa);
        let (b, _b_in) = spawn(cfg(2, pb, vec![addr])).unwrap();
        // Wait for the connection and the mesh, then publish until delivered.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        let got = loop {
            b.publish(vec![
                Bytes::from_static(b"hello"),
                Bytes::from_static(b"world"),
            ])
            .await;
            if let Ok(Some(m)) = tokio::time::timeout(Duration::from_millis(500), a_in.recv()).await
            {
                break m;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "message never arrived"
            );
        };
        assert_eq!(got.items, vec![&b"hello"[..], &b"world"[..]]);
        assert_eq!(got.id, MessageId::from(id(&[b"hello", b"world"])));
        assert_eq!(got.from, b.local_peer_id);
        a.report(got.id, got.from, Verdict::Accept).await;
        assert!(a.peers() >= 1);
    }

    /// Under load, publishes share messages: one that comes less than `publish_linger` after
    /// the previous message waits for the rest of it, and what is published meanwhile goes
    /// with it, in order.
    #[tokio::test]
    async fn publishes_close_together_travel_in_one_message() {
        let (pa, pb) = (free_port(), free_port());
        let (_a, mut a_in) = spawn(cfg(1, pa, vec![])).unwrap();
        let addr = address(1, pa);
        let mut b_cfg = cfg(2, pb, vec![addr]);
        b_cfg.publish_linger = Duration::from_secs(1);
        let (b, _b_in) = spawn(b_cfg).unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        let mut n = 0u32;
        loop {
            n += 1;
            b.publish(vec![Bytes::from(format!("probe {n}"))]).await;
            if let Ok(Some(_)) = tokio::time::timeout(Duration::from_secs(2), a_in.recv()).await {
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "never connected");
        }
        // x may go at once (or join a probe still waiting); y and z come right after a
        // message went out, so they wait for the next one, together.
        for item in [&b"x"[..], b"y", b"z"] {
            b.publish(vec![Bytes::from_static(item)]).await;
        }
        let mut messages: Vec<Vec<Bytes>> = Vec::new();
        while !messages.iter().flatten().any(|i| &i[..] == b"z") {
            let m = tokio::time::timeout(Duration::from_secs(10), a_in.recv())
                .await
                .expect("z never arrived")
                .expect("gossip stopped");
            messages.push(m.items);
        }
        let with_y = messages
            .iter()
            .find(|m| m.iter().any(|i| &i[..] == b"y"))
            .expect("y never arrived");
        let ends: Vec<&[u8]> = with_y.iter().rev().take(2).map(|i| &i[..]).collect();
        assert_eq!(ends, vec![&b"z"[..], b"y"], "{messages:?}");
    }

    /// Two honest nodes that publish the same messages (the same bundles submitted to both)
    /// stay connected: a copy of a message we published ourselves is a duplicate, not an
    /// invalid message.
    #[tokio::test]
    async fn peers_publishing_the_same_messages_are_not_penalised() {
        let (pa, pb) = (free_port(), free_port());
        let (a, a_in) = spawn(cfg(21, pa, vec![])).unwrap();
        let addr = address(21, pa);
        let (b, b_in) = spawn(cfg(22, pb, vec![addr])).unwrap();
        for (h, mut rx) in [(a.clone(), a_in), (b.clone(), b_in)] {
            tokio::spawn(async move {
                while let Some(m) = rx.recv().await {
                    h.report(m.id, m.from, Verdict::Accept).await;
                }
            });
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while a.peers() == 0 || b.peers() == 0 {
            assert!(tokio::time::Instant::now() < deadline, "never connected");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        for n in 0..20 {
            let m = vec![Bytes::from(format!("same bundle {n}"))];
            a.publish(m.clone()).await;
            b.publish(m).await;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tokio::time::sleep(MAINTENANCE_INTERVAL * 3).await;
        assert!(
            a.peers() >= 1 && b.peers() >= 1,
            "an honest peer was cut off"
        );
    }

    /// A peer that keeps sending invalid messages is scored down through gossipsub
    /// validation, then disconnected and kept out, while valid traffic was accepted before.
    #[tokio::test]
    async fn a_peer_sending_invalid_messages_is_disconnected_and_kept_out() {
        let (pa, pb) = (free_port(), free_port());
        let (a, mut a_in) = spawn(cfg(11, pa, vec![])).unwrap();
        let addr = address(11, pa);
        let (bad, _bad_in) = spawn(cfg(12, pb, vec![addr])).unwrap();

        // The honest validator on A rejects anything starting with "bad".
        let a2 = a.clone();
        let rejected = Arc::new(AtomicUsize::new(0));
        let r2 = rejected.clone();
        tokio::spawn(async move {
            while let Some(m) = a_in.recv().await {
                let v = if m.items.iter().any(|i| i.starts_with(b"bad")) {
                    Verdict::Reject
                } else {
                    Verdict::Accept
                };
                if v == Verdict::Reject {
                    r2.fetch_add(1, Ordering::Relaxed);
                }
                a2.report(m.id, m.from, v).await;
            }
        });

        // B sends invalid messages until A has rejected some and cut B off.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        let mut n = 0u64;
        loop {
            if rejected.load(Ordering::Relaxed) > 0 && a.peers() == 0 {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "misbehaving peer was not disconnected ({} rejected, {} peers)",
                rejected.load(Ordering::Relaxed),
                a.peers()
            );
            bad.publish(vec![Bytes::from(format!("bad message {n}"))])
                .await;
            n += 1;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // B keeps redialling (it is configured to stay connected); A keeps it out.
        tokio::time::sleep(MAINTENANCE_INTERVAL * 3).await;
        assert_eq!(a.peers(), 0, "a banned peer stays out");
    }
}
