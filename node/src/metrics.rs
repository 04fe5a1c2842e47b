//! This crate's metrics: every name and its description in one place. Call sites use the
//! constants; [`describe`] registers the descriptions (the node calls it at start-up).

use ::metrics::{describe_counter, describe_gauge, describe_histogram};

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

/// Registers the description of every metric above.
pub fn describe() {
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
