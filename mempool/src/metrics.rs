//! This crate's metrics: every name and its description in one place. Call sites use the
//! constants; [`describe`] registers the descriptions (the node calls it at start-up).

use ::metrics::{describe_counter, describe_gauge};

/// Pending bundles evicted to make room.
pub const EVICTED: &str = "lockstep_mempool_evicted_total";
/// Pending bundles dropped because their valid_until passed.
pub const EXPIRED: &str = "lockstep_mempool_expired_total";
/// Pending bundles.
pub const BUNDLES: &str = "lockstep_mempool_bundles";
/// Pending bundle bytes.
pub const BYTES: &str = "lockstep_mempool_bytes";
/// Included bundle hashes remembered (the last max_ttl heights).
pub const REPLAY_WINDOW: &str = "lockstep_mempool_replay_window";

/// Registers the description of every metric above.
pub fn describe() {
    describe_counter!(EVICTED, "Pending bundles evicted to make room");
    describe_counter!(
        EXPIRED,
        "Pending bundles dropped because their valid_until passed"
    );
    describe_gauge!(BUNDLES, "Pending bundles");
    describe_gauge!(BYTES, "Pending bundle bytes");
    describe_gauge!(
        REPLAY_WINDOW,
        "Included bundle hashes remembered (the last max_ttl heights)"
    );
}
