//! This crate's metrics: every name and its description in one place. Call sites use the
//! constants; [`describe`] registers the descriptions (the node calls it at start-up).

use ::metrics::{describe_counter, describe_gauge};

/// Gossip messages published.
pub const PUBLISHED: &str = "lockstep_gossip_published_total";
/// Gossip messages received.
pub const RECEIVED: &str = "lockstep_gossip_received_total";
/// Gossip messages that are not a valid frame of bundles.
pub const MALFORMED: &str = "lockstep_gossip_malformed_total";
/// Gossip messages ignored because the inbound queue was full.
pub const INBOUND_DROPPED: &str = "lockstep_gossip_inbound_dropped_total";
/// Connected gossip peers.
pub const PEERS: &str = "lockstep_gossip_peers";
/// Gossip peers disconnected for misbehaviour.
pub const PEERS_BANNED: &str = "lockstep_gossip_peers_banned_total";
/// Fetches of bundles by hash this node started (for proposals it lacks bundles of).
pub const FETCHES: &str = "lockstep_gossip_fetches_total";
/// Bundles peers returned to this node's fetches.
pub const FETCHED_ITEMS: &str = "lockstep_gossip_fetched_items_total";
/// Bundles this node returned to peers' fetches.
pub const FETCH_SERVED_ITEMS: &str = "lockstep_gossip_fetch_served_items_total";
/// Fetched items that failed the caller's check (wrong bytes, bad signature); each is asked
/// of another peer.
pub const FETCH_BAD_ANSWERS: &str = "lockstep_gossip_fetch_bad_answers_total";
/// Peers' fetch requests refused (label `reason`: `rate`, over the peer's token bucket;
/// `busy`, every lookup slot taken).
pub const FETCH_REFUSED: &str = "lockstep_gossip_fetch_refused_total";
/// Connections refused by the gate (label `reason`: `ip_limit`, `not_validator`).
pub const CONNECTIONS_REFUSED: &str = "lockstep_gossip_connections_refused_total";

/// Registers the description of every metric above.
pub fn describe() {
    describe_counter!(PUBLISHED, "Gossip messages published");
    describe_counter!(RECEIVED, "Gossip messages received");
    describe_counter!(
        MALFORMED,
        "Gossip messages that are not a valid frame of bundles"
    );
    describe_counter!(
        INBOUND_DROPPED,
        "Gossip messages ignored because the inbound queue was full"
    );
    describe_gauge!(PEERS, "Connected gossip peers");
    describe_counter!(PEERS_BANNED, "Gossip peers disconnected for misbehaviour");
    describe_counter!(
        FETCHES,
        "Fetches of bundles by hash this node started (for proposals it lacks bundles of)"
    );
    describe_counter!(
        FETCHED_ITEMS,
        "Bundles peers returned to this node's fetches"
    );
    describe_counter!(
        FETCH_SERVED_ITEMS,
        "Bundles this node returned to peers' fetches"
    );
    describe_counter!(
        FETCH_BAD_ANSWERS,
        "Fetched items that failed the check (asked of another peer)"
    );
    describe_counter!(
        FETCH_REFUSED,
        "Peers' fetch requests refused, by reason (rate, busy)"
    );
    describe_counter!(
        CONNECTIONS_REFUSED,
        "Gossip connections refused, by reason (ip_limit, not_validator)"
    );
}
