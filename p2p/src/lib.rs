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
//! A gossip message carries one or more items (`frame`): what the node publishes together
//! (say, the bundles of one admission group) travels as one message, so gossipsub's
//! per-message costs (framing, encryption, duplicate tracking, scoring, wake-ups) are shared.
//!
//! The same swarm serves [`fetch`]es: a node asks peers for items it lacks by their 32-byte
//! ids and answers such requests from an [`ItemStore`](fetch::ItemStore) (the node's pending
//! bundles).
//!
//! # Layout
//!
//! - `config`: [`GossipConfig`] and the named limits (queue sizes, timeouts, fan-out).
//! - `api`: what the node uses: the [`BundleGossip`] seam, its [`GossipHandle`], the
//!   [`Inbound`] messages and [`Verdict`]s on them, [`P2pError`]; and the commands the handle
//!   sends to the swarm task.
//! - `swarm`: building the swarm: identity ([`peer_id`]), transport, and the behaviours
//!   (the gate, connection limits, gossipsub with its scoring, identify, fetch, the block
//!   list).
//! - `gate`: who may connect: the per-IP limit and, by default, validators only.
//! - `limits`: the pure rules: per-IP counting, the bounded banned set, the token bucket.
//! - `task`: [`spawn`] and the task that owns the swarm: publishing, verdicts, inbound
//!   messages, peer maintenance and bans; `task::fetches` runs fetches across peers.
//! - `frame`: the wire format of a gossip message (its items).
//! - [`fetch`]: the fetch protocol: wire format, codec, and the [`ItemStore`](fetch::ItemStore)
//!   a node answers from.

#![cfg_attr(test, allow(clippy::unwrap_used))]

mod api;
mod config;
pub mod fetch;
mod frame;
mod gate;
mod limits;
pub mod metrics;
mod swarm;
mod task;

pub use api::{BundleGossip, FetchCheck, GossipHandle, Inbound, P2pError, Verdict};
pub use config::{
    GossipConfig, DEFAULT_INBOUND_CAPACITY, DEFAULT_MAX_INBOUND, DEFAULT_MAX_INBOUND_PER_IP,
};
pub use libp2p::gossipsub::MessageId;
pub use libp2p::Multiaddr as Address;
pub use libp2p::PeerId;
pub use swarm::{peer_id, peer_id_of_public_key};
pub use task::spawn;
