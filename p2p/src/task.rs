//! The task that owns the swarm: it runs the node's commands (publish, verdicts, fetches),
//! hands inbound messages to the node, batches publishes (see
//! [`GossipConfig::publish_linger`]), and every [`MAINTENANCE_INTERVAL`] bans peers scored
//! below the graylist threshold and redials configured peers. [`spawn`] starts it.
//!
//! Fetching across peers (whom to ask, gathering answers, serving peers) is in [`fetches`].

mod fetches;
#[cfg(test)]
mod tests;

use crate::api::{Command, GossipHandle, Inbound, P2pError, Verdict};
use crate::config::{
    GossipConfig, COMMAND_CAPACITY, MAINTENANCE_INTERVAL, MAX_BANNED, SERVE_CONCURRENCY,
};
use crate::fetch;
use crate::frame;
use crate::limits::{Banned, TokenBucket};
use crate::swarm::{build_swarm, Behaviour, BehaviourEvent};
use bytes::Bytes;
use fetches::Fetch;
use futures::StreamExt;
use libp2p::gossipsub::{self, IdentTopic, MessageAcceptance, MessageId};
use libp2p::request_response::{self, OutboundRequestId, ResponseChannel};
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, PeerId, Swarm};
use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

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
    let (served_tx, served_rx) = mpsc::channel(SERVE_CONCURRENCY);
    let task = SwarmTask {
        swarm,
        topic,
        cfg,
        inbound: in_tx,
        peers: peers.clone(),
        banned: Banned::new(MAX_BANNED),
        fetches: HashMap::new(),
        requests: HashMap::new(),
        next_fetch: 0,
        buckets: HashMap::new(),
        serving: Arc::new(tokio::sync::Semaphore::new(SERVE_CONCURRENCY)),
        served: served_tx,
        pending: Vec::new(),
        pending_bytes: 0,
        last_publish: tokio::time::Instant::now(),
        linger: Box::pin(tokio::time::sleep(Duration::ZERO)),
        lingering: false,
    };
    tokio::spawn(task.run(rx, served_rx));
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
    banned: Banned,
    /// Fetches in progress, by a local key.
    fetches: HashMap<u64, Fetch>,
    /// Requests in flight: the fetch each serves and the positions it asked for.
    requests: HashMap<OutboundRequestId, (u64, Vec<usize>)>,
    next_fetch: u64,
    /// Each connected peer's allowance of fetch requests.
    buckets: HashMap<PeerId, TokenBucket>,
    /// Lookup slots for peers' fetch requests (see [`SERVE_CONCURRENCY`]).
    serving: Arc<tokio::sync::Semaphore>,
    /// Where lookups done off this task send back their responses.
    served: mpsc::Sender<Served>,
    /// Items waiting to be published (see [`GossipConfig::publish_linger`]), and their bytes.
    pending: Vec<Bytes>,
    pending_bytes: usize,
    /// When the last message went out, and the timer (armed while items wait) that sends
    /// the next one `publish_linger` later.
    last_publish: tokio::time::Instant,
    linger: Pin<Box<tokio::time::Sleep>>,
    lingering: bool,
}

/// A response to a peer's fetch request, looked up off the swarm task.
type Served = (PeerId, ResponseChannel<fetch::Response>, bytes::Bytes);

fn peer_of(addr: &Multiaddr) -> Option<PeerId> {
    addr.iter().find_map(|p| match p {
        libp2p::multiaddr::Protocol::P2p(id) => Some(id),
        _ => None,
    })
}

impl SwarmTask {
    async fn run(
        mut self,
        mut commands: mpsc::Receiver<Command>,
        mut served: mpsc::Receiver<Served>,
    ) {
        let mut tick = tokio::time::interval(MAINTENANCE_INTERVAL);
        loop {
            tokio::select! {
                cmd = commands.recv() => match cmd {
                    Some(c) => self.command(c),
                    None => break,
                },
                Some((peer, channel, response)) = served.recv() => {
                    self.respond(peer, channel, response)
                }
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
            Command::Admit(peers) => self.swarm.behaviour_mut().gate.admit(peers),
            Command::Report(id, from, verdict) => {
                let acceptance = match verdict {
                    Verdict::Accept => MessageAcceptance::Accept,
                    Verdict::Reject => MessageAcceptance::Reject,
                    Verdict::Ignore => MessageAcceptance::Ignore,
                };
                self.validation_result(&id, &from, acceptance);
            }
            Command::Fetch {
                ids,
                prefer,
                exclude,
                reply,
            } => self.start_fetch(ids, prefer, exclude, reply),
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
                Ok(_) => metrics::counter!(crate::metrics::PUBLISHED).increment(1),
                Err(gossipsub::PublishError::Duplicate) => {}
                Err(e) => debug!(bytes = n, "gossip publish: {e}"),
            }
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
                metrics::counter!(crate::metrics::RECEIVED).increment(1);
                let Some(items) = frame::split(&Bytes::from(message.data)) else {
                    // Not even framed: the sender is at fault, whatever it carries.
                    metrics::counter!(crate::metrics::MALFORMED).increment(1);
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
                    metrics::counter!(crate::metrics::INBOUND_DROPPED).increment(1);
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
                    } => self.request_ended(request_id, Some((peer, response))),
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
            SwarmEvent::ConnectionEstablished { .. } => self.count_peers(),
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established,
                ..
            } => {
                if num_established == 0 {
                    self.buckets.remove(&peer_id);
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
        metrics::gauge!(crate::metrics::PEERS).set(n as f64);
    }

    fn maintain(&mut self) {
        let graylist = gossipsub::PeerScoreThresholds::default().graylist_threshold;
        let connected: Vec<PeerId> = self.swarm.connected_peers().copied().collect();
        for p in connected {
            if let Some(score) = self.swarm.behaviour().gossipsub.peer_score(&p) {
                if score >= graylist {
                    continue;
                }
                let (new, forgotten) = self.banned.insert(p);
                if new {
                    warn!(peer = %p, score, "disconnecting misbehaving gossip peer");
                    metrics::counter!(crate::metrics::PEERS_BANNED).increment(1);
                    self.swarm.behaviour_mut().gossipsub.blacklist_peer(&p);
                    self.swarm.behaviour_mut().blocked.block_peer(p);
                }
                if let Some(old) = forgotten {
                    self.swarm
                        .behaviour_mut()
                        .gossipsub
                        .remove_blacklisted_peer(&old);
                    self.swarm.behaviour_mut().blocked.unblock_peer(old);
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
