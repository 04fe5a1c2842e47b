//! What the store holds in memory, by kind, for the node's memory gauges.

use super::layout::CFS;
use super::Store;

/// Bytes the store holds in memory, by kind.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct StoreMemory {
    /// RocksDB memtables, all column families (bounded by
    /// [`MEMTABLE_BUDGET`](super::open::MEMTABLE_BUDGET)).
    pub(crate) memtable_bytes: u64,
    /// Index and filter blocks held outside the read cache (only level-0 tables' pinned ones
    /// are counted in the cache instead).
    pub(crate) table_readers_bytes: u64,
    /// RocksDB's read cache, index and filter blocks included (bounded by
    /// [`READ_CACHE_BYTES`](super::open::READ_CACHE_BYTES)).
    pub(crate) read_cache_bytes: u64,
    /// Decoded recent blocks (bounded by [`BLOCK_CACHE_BYTES`](super::open::BLOCK_CACHE_BYTES)).
    pub(crate) decoded_cache_bytes: u64,
}

impl Store {
    /// What the store holds in memory now, for the node's memory gauges.
    pub(crate) fn memory(&self) -> StoreMemory {
        let mut m = StoreMemory {
            read_cache_bytes: self.read_cache.get_usage() as u64,
            decoded_cache_bytes: self.cache.lock().bytes() as u64,
            ..StoreMemory::default()
        };
        for name in CFS {
            let Ok(cf) = self.cf(name) else { continue };
            let prop = |p: &str| {
                self.db
                    .property_int_value_cf(cf, p)
                    .ok()
                    .flatten()
                    .unwrap_or(0)
            };
            m.memtable_bytes += prop("rocksdb.cur-size-all-mem-tables");
            m.table_readers_bytes += prop("rocksdb.estimate-table-readers-mem");
        }
        m
    }
}
