//! This crate's metrics: every name and its description in one place. Call sites use the
//! constants; [`describe`] registers the descriptions (the node calls it at start-up).

use ::metrics::{describe_counter, describe_gauge, describe_histogram};

/// Latest decided height.
pub const HEIGHT: &str = "lockstep_consensus_height";
/// Bundles in committed blocks.
pub const BUNDLES_COMMITTED: &str = "lockstep_consensus_bundles_committed_total";
/// Proposals received, by verdict (`valid`, `invalid`, `unavailable`; `unsigned`: not
/// signed by the round's proposer, dropped; `beyond_lookahead`: for a round too far ahead,
/// dropped).
pub const PROPOSALS: &str = "lockstep_consensus_proposals_total";
/// Equivocations seen: a validator signed two different messages where it may sign one, by
/// kind (`proposal`). Each is kept in the evidence record.
pub const EQUIVOCATIONS: &str = "lockstep_consensus_equivocations_total";
/// Bundles per block this node proposed.
pub const PROPOSED_BUNDLES: &str = "lockstep_consensus_proposed_bundles";
/// A proposal's bundles that were not pending here when it arrived.
pub const BUNDLES_AWAITED: &str = "lockstep_consensus_bundles_awaited_total";
/// A proposal's bundles taken from peers (signature verified here).
pub const BUNDLES_FETCHED: &str = "lockstep_consensus_bundles_fetched_total";
/// Time to durably write a decided block.
pub const STORE_COMMIT_SECONDS: &str = "lockstep_store_commit_seconds";
/// Time to record a proposal, on the store writer thread.
pub const STORE_RECORD_SECONDS: &str = "lockstep_store_record_seconds";

/// Registers the description of every metric above.
pub fn describe() {
    describe_gauge!(HEIGHT, "Latest decided height");
    describe_counter!(BUNDLES_COMMITTED, "Bundles in committed blocks");
    describe_counter!(
        PROPOSALS,
        "Proposals received, by verdict (valid, invalid, unavailable, unsigned, beyond_lookahead)"
    );
    describe_counter!(
        EQUIVOCATIONS,
        "Equivocations seen (two different messages signed where one may be), by kind"
    );
    describe_histogram!(PROPOSED_BUNDLES, "Bundles per block this node proposed");
    describe_counter!(
        BUNDLES_AWAITED,
        "Bundles a proposal named that were not pending here when it arrived"
    );
    describe_counter!(
        BUNDLES_FETCHED,
        "Bundles a proposal named that were taken from peers (signatures verified here)"
    );
    describe_histogram!(
        STORE_COMMIT_SECONDS,
        "Time to durably write a decided block"
    );
    describe_histogram!(
        STORE_RECORD_SECONDS,
        "Time to record a proposal (on the store writer thread, off the vote's path)"
    );
}
