//! Building the gossip swarm: the node's identity, the transport (TCP + noise + yamux) and
//! the behaviours it runs (the gate and connection limits, gossipsub with its peer scoring,
//! identify, fetch, and the block list of banned peers).

use crate::api::P2pError;
use crate::config::{
    GossipConfig, FETCH_STREAMS, FETCH_TIMEOUT, IDLE_CONNECTION_TIMEOUT, MAX_CONNECTIONS_PER_PEER,
    MAX_PENDING_INBOUND, SEND_QUEUE_MESSAGES,
};
use crate::fetch::{self, FetchCodec};
use crate::frame;
use crate::gate::Gate;
use libp2p::connection_limits::{self, ConnectionLimits};
use libp2p::gossipsub::{self, IdentTopic, MessageId};
use libp2p::identity::Keypair;
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::NetworkBehaviour;
use libp2p::{identify, PeerId, Swarm};
use std::time::Duration;

/// The libp2p peer id of a gossip secret.
pub fn peer_id(secret: &[u8; 32]) -> Result<PeerId, P2pError> {
    let mut s = *secret;
    let kp = Keypair::ed25519_from_bytes(&mut s).map_err(|e| P2pError::Key(e.to_string()))?;
    Ok(kp.public().to_peer_id())
}

/// The libp2p peer id of an ed25519 public key (a validator's, from the genesis file).
pub fn peer_id_of_public_key(public_key: &[u8; 32]) -> Result<PeerId, P2pError> {
    let pk = libp2p::identity::ed25519::PublicKey::try_from_bytes(public_key)
        .map_err(|e| P2pError::Key(e.to_string()))?;
    Ok(libp2p::identity::PublicKey::from(pk).to_peer_id())
}

/// The protocols the swarm runs; the task reaches into it to publish, judge, fetch and ban.
#[derive(NetworkBehaviour)]
pub(crate) struct Behaviour {
    /// Refuses connections past the per-IP limit (before the handshake) and, unless
    /// non-validators are allowed, every peer that is not a validator (right after it).
    pub(crate) gate: Gate,
    /// Total and per-peer connection limits.
    limits: connection_limits::Behaviour,
    pub(crate) gossipsub: gossipsub::Behaviour,
    identify: identify::Behaviour,
    pub(crate) fetch: request_response::Behaviour<FetchCodec>,
    /// Refuses every connection of a banned peer before any protocol runs.
    pub(crate) blocked: libp2p::allow_block_list::Behaviour<libp2p::allow_block_list::BlockedPeers>,
}

/// Builds the swarm (not yet listening nor subscribed) with `cfg`'s identity and limits,
/// scoring peers on `topic`.
pub(crate) fn build_swarm(
    cfg: &GossipConfig,
    topic: &IdentTopic,
) -> Result<Swarm<Behaviour>, P2pError> {
    let mut secret = cfg.secret;
    let keypair =
        Keypair::ed25519_from_bytes(&mut secret).map_err(|e| P2pError::Key(e.to_string()))?;
    let id_fn = cfg.message_id;
    let max = cfg.max_message_bytes;
    let mesh_n = cfg.mesh_n.max(1);
    let max_fetch = cfg.max_fetch_bytes;
    let agent = cfg.agent.clone();
    let topic_hash = topic.hash();
    let gate = Gate::new(
        cfg.validators.iter().copied(),
        cfg.allow_non_validators,
        cfg.max_inbound_per_ip,
    );
    let max_inbound = u32::try_from(cfg.max_inbound).unwrap_or(u32::MAX);
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
                let limits = ConnectionLimits::default()
                    .with_max_pending_incoming(Some(MAX_PENDING_INBOUND))
                    .with_max_established_incoming(Some(max_inbound))
                    .with_max_established_per_peer(Some(MAX_CONNECTIONS_PER_PEER));
                Ok(Behaviour {
                    gate,
                    limits: connection_limits::Behaviour::new(limits),
                    gossipsub,
                    identify,
                    fetch,
                    blocked: Default::default(),
                })
            },
        )
        .map_err(|e| P2pError::Build(e.to_string()))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(IDLE_CONNECTION_TIMEOUT))
        .build();
    Ok(swarm)
}
