//! This crate's metrics: every name and its description in one place. Call sites use the
//! constants; [`describe`] registers the descriptions (the node calls it at start-up).

use ::metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge};
use lockstep_bundles::{Address, ValidatorSet};

/// Bundles admitted to the mempool, by source.
pub const ADMITTED: &str = "lockstep_mempool_admitted_total";
/// Bundles refused, by reason.
pub const REJECTED: &str = "lockstep_mempool_rejected_total";
/// Signatures per verification batch.
pub const VERIFY_BATCH_SIZE: &str = "lockstep_mempool_verify_batch_size";
/// Time to verify one batch.
pub const VERIFY_BATCH_SECONDS: &str = "lockstep_mempool_verify_batch_seconds";
/// Time to make one group of acknowledged bundles durable (one synced write).
pub const ACK_WRITE_SECONDS: &str = "lockstep_mempool_ack_write_seconds";
/// Acknowledged bundles made durable per synced write.
pub const ACK_WRITE_BUNDLES: &str = "lockstep_mempool_ack_write_bundles";
/// Bytes free on the store's file system (submissions are refused below storage.min_free_mb).
pub const DISK_FREE: &str = "lockstep_disk_free_bytes";
/// Bytes the store holds in memory, by kind (memtables, table_readers, read_cache, decoded_cache).
pub const STORE_MEMORY: &str = "lockstep_store_memory_bytes";
/// The process's heaps, by kind (mimalloc_committed; glibc_in_use and glibc_free, RocksDB's C++ heap; rust_live when started with LOCKSTEP_COUNT_HEAP=1).
pub const PROCESS_MEMORY: &str = "lockstep_process_memory_bytes";
/// Rollup batches held encoded as JSON for subscribers.
pub const BATCH_CACHE_BYTES: &str = "lockstep_rpc_batch_cache_bytes";
/// Rollup batches encoded as JSON (cache misses).
pub const BATCH_ENCODINGS: &str = "lockstep_rpc_batch_encodings_total";
/// Rollup subscribers dropped for falling behind.
pub const SUBSCRIBERS_DROPPED: &str = "lockstep_rpc_subscribers_dropped_total";
/// RPC calls refused by a rate limit, by which (`connection` or `address`).
pub const RATE_LIMITED: &str = "lockstep_rpc_rate_limited_total";
/// RPC connections refused because their client address held `rpc.max_connections_per_ip`.
pub const CONNECTIONS_REFUSED: &str = "lockstep_rpc_connections_refused_total";
/// Rollup subscriptions open now (`seq_subscribeRollup`).
pub const SUBSCRIBERS: &str = "lockstep_rpc_subscribers";
/// The process's resident set (`VmRSS`), read at each scrape.
pub const RESIDENT: &str = "lockstep_process_resident_bytes";

// Settings, set once at start-up: what alert rules compare the live figures with
// (deploy/prometheus/alerts.yml).

/// Validators in the set (the genesis list).
pub const VALIDATORS: &str = "lockstep_consensus_validators";
/// The fewest connected peers with which this node can be part of a quorum ([`quorum_peers`]).
pub const QUORUM_PEERS: &str = "lockstep_consensus_quorum_peers";
/// `mempool.max_count`: the most bundles the pool holds.
pub const MEMPOOL_MAX_BUNDLES: &str = "lockstep_mempool_max_bundles";
/// `mempool.max_bytes`: the most bundle bytes the pool holds.
pub const MEMPOOL_MAX_BYTES: &str = "lockstep_mempool_max_bytes";
/// `storage.min_free_mb` in bytes: below it, submissions are refused (0: never).
pub const DISK_MIN_FREE: &str = "lockstep_disk_min_free_bytes";
/// `storage.stop_free_mb` in bytes: below it, the node stops.
pub const DISK_STOP_FREE: &str = "lockstep_disk_stop_free_bytes";

/// The kinds of `lockstep_consensus_equivocations_total` (`Misbehaviour::label` in
/// lockstep-consensus), each series made at 0 at start-up: a counter that first appears at 1
/// shows no increase to Prometheus, and an alert on its increase would miss the first one.
pub const EQUIVOCATION_KINDS: [&str; 4] = ["proposal", "proposal-message", "prevote", "precommit"];

/// Registers the description of every metric above.
pub fn describe() {
    describe_gauge!(SUBSCRIBERS, "Rollup subscriptions open now");
    describe_gauge!(
        RESIDENT,
        "The process's resident set (VmRSS), read at each scrape"
    );
    describe_gauge!(VALIDATORS, "Validators in the set (the genesis list)");
    describe_gauge!(
        QUORUM_PEERS,
        "The fewest connected peers with which this node can be part of a quorum (more than two \
         thirds of the voting power, its own included)"
    );
    describe_gauge!(
        MEMPOOL_MAX_BUNDLES,
        "mempool.max_count: the most bundles the pool holds"
    );
    describe_gauge!(
        MEMPOOL_MAX_BYTES,
        "mempool.max_bytes: the most bundle bytes the pool holds"
    );
    describe_gauge!(
        DISK_MIN_FREE,
        "storage.min_free_mb in bytes: below it, submissions are refused (0: never)"
    );
    describe_gauge!(
        DISK_STOP_FREE,
        "storage.stop_free_mb in bytes: below it, the node stops"
    );
    describe_counter!(ADMITTED, "Bundles admitted to the mempool, by source");
    describe_counter!(REJECTED, "Bundles refused, by reason");
    describe_histogram!(VERIFY_BATCH_SIZE, "Signatures per verification batch");
    describe_histogram!(VERIFY_BATCH_SECONDS, "Time to verify one batch");
    describe_histogram!(
        ACK_WRITE_SECONDS,
        "Time to make one group of acknowledged bundles durable (one synced write)"
    );
    describe_histogram!(
        ACK_WRITE_BUNDLES,
        "Acknowledged bundles made durable per synced write"
    );
    describe_gauge!(
        DISK_FREE,
        "Bytes free on the store's file system (submissions are refused below storage.min_free_mb)"
    );
    describe_gauge!(STORE_MEMORY, "Bytes the store holds in memory, by kind (memtables, table_readers, read_cache, decoded_cache)");
    describe_gauge!(PROCESS_MEMORY, "The process's heaps, by kind (mimalloc_committed; glibc_in_use and glibc_free, RocksDB's C++ heap; rust_live when started with LOCKSTEP_COUNT_HEAP=1)");
    describe_gauge!(
        BATCH_CACHE_BYTES,
        "Rollup batches held encoded as JSON for subscribers"
    );
    describe_counter!(
        BATCH_ENCODINGS,
        "Rollup batches encoded as JSON (cache misses)"
    );
    describe_counter!(
        SUBSCRIBERS_DROPPED,
        "Rollup subscribers dropped for falling behind"
    );
    describe_counter!(
        RATE_LIMITED,
        "RPC calls refused by a rate limit, by which (connection or address)"
    );
    describe_counter!(
        CONNECTIONS_REFUSED,
        "RPC connections refused because their client address held rpc.max_connections_per_ip"
    );
}

/// The figures fixed at start-up, and the series that must exist before their first event.
pub struct Startup<'a> {
    pub validators: &'a ValidatorSet,
    pub address: &'a Address,
    pub mempool_max_count: usize,
    pub mempool_max_bytes: usize,
    pub min_free_mb: u64,
    pub stop_free_mb: u64,
    /// The store's latest decided height: the height gauge starts there, not absent until
    /// the next decision.
    pub latest: u64,
}

/// Sets the start-up gauges and makes the event series alert rules use at 0.
pub fn record_startup(s: &Startup<'_>) {
    const MB: f64 = 1024.0 * 1024.0;
    gauge!(VALIDATORS).set(s.validators.len() as f64);
    gauge!(QUORUM_PEERS).set(quorum_peers(s.validators, s.address) as f64);
    gauge!(MEMPOOL_MAX_BUNDLES).set(s.mempool_max_count as f64);
    gauge!(MEMPOOL_MAX_BYTES).set(s.mempool_max_bytes as f64);
    gauge!(DISK_MIN_FREE).set(s.min_free_mb as f64 * MB);
    gauge!(DISK_STOP_FREE).set(s.stop_free_mb as f64 * MB);
    gauge!(lockstep_consensus::metrics::HEIGHT).set(s.latest as f64);
    gauge!(SUBSCRIBERS).set(0.0);
    counter!(SUBSCRIBERS_DROPPED).absolute(0);
    for kind in EQUIVOCATION_KINDS {
        counter!(lockstep_consensus::metrics::EQUIVOCATIONS, "kind" => kind).absolute(0);
    }
}

/// The fewest peers this node must be connected to for a quorum (more than two thirds of the
/// voting power) to be possible with its own vote: the other validators' powers, largest
/// first, are added to its own (0 when it is not a validator) until they are a quorum. With n
/// validators of equal power and f = (n - 1) / 3 that is n - f - 1 (2 of 4, 4 of 7), and a
/// node with fewer peers cannot help decide a height.
pub fn quorum_peers(set: &ValidatorSet, me: &Address) -> u64 {
    let mut power = set.get(me).map_or(0, |v| v.voting_power);
    let mut others: Vec<u64> = set
        .validators()
        .iter()
        .filter(|v| v.address != *me)
        .map(|v| v.voting_power)
        .collect();
    others.sort_unstable_by(|a, b| b.cmp(a));
    let mut peers = 0;
    for p in others {
        if set.is_quorum(power) {
            break;
        }
        power = power.saturating_add(p);
        peers += 1;
    }
    peers
}

/// This process's resident set in bytes (`VmRSS` in `/proc/self/status`), if it can be read.
pub fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .strip_suffix("kB")?
        .trim()
        .parse::<u64>()
        .ok()?;
    Some(kb.saturating_mul(1024))
}

#[cfg(test)]
mod tests {
    use super::*;
    use lockstep_bundles::Validator;

    fn set(powers: &[u64]) -> ValidatorSet {
        let vs = powers
            .iter()
            .enumerate()
            .map(|(i, &p)| Validator::new([i as u8 + 1; 32], p))
            .collect();
        ValidatorSet::new(vs).unwrap()
    }

    fn with_power(set: &ValidatorSet, p: u64) -> Address {
        set.validators()
            .iter()
            .find(|v| v.voting_power == p)
            .unwrap()
            .address
    }

    #[test]
    fn quorum_peers_of_equal_validators_is_n_minus_f_minus_one() {
        for (n, want) in [
            (1, 0),
            (2, 1),
            (3, 2),
            (4, 2),
            (5, 3),
            (6, 4),
            (7, 4),
            (10, 6),
        ] {
            let s = set(&vec![1; n]);
            let me = s.validators()[0].address;
            assert_eq!(quorum_peers(&s, &me), want, "{n} validators");
        }
    }

    #[test]
    fn a_node_outside_the_set_needs_a_whole_quorum_of_peers() {
        let s = set(&[1, 1, 1, 1]);
        assert_eq!(quorum_peers(&s, &Address([0xee; 20])), 3);
    }

    #[test]
    fn quorum_peers_counts_the_most_powerful_peers_first() {
        // Total 8: a quorum needs 6. The power-1 node needs the power-5 one; the power-5 node
        // needs one more; the power-2 node needs the power-5 one too.
        let s = set(&[5, 1, 2]);
        assert_eq!(quorum_peers(&s, &with_power(&s, 1)), 1);
        assert_eq!(quorum_peers(&s, &with_power(&s, 5)), 1);
        let s = set(&[5, 1, 1, 1]);
        assert_eq!(quorum_peers(&s, &with_power(&s, 5)), 1);
    }

    #[test]
    fn resident_bytes_reads_this_process() {
        let rss = resident_bytes().unwrap();
        assert!(rss > 1024 * 1024, "{rss}");
    }
}
