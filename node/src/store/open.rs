//! Opening the store: RocksDB options and tuning (one memtable budget and one read cache for
//! all column families, blob files for block bodies, direct I/O for flushes), the column
//! families, the decoded-block cache, and the check of the store's layout version.

use super::layout::{be, CFS, LATEST, SCHEMA, SCHEMA_KEY, UNDECIDED_KEY};
use super::{err, Store};
use crate::cache::FifoCache;
use lockstep_consensus::store::{Result, StoreError};
use parking_lot::Mutex;
use rocksdb::{ColumnFamilyDescriptor, IteratorMode, Options, DB};
use std::path::Path;

/// Decided blocks kept decoded in memory for subscribers and RPC reads: at most this many…
const BLOCK_CACHE_HEIGHTS: usize = 256;
/// …and about this many encoded bytes (decoded, a block takes up to about twice that).
const BLOCK_CACHE_BYTES: usize = 32 * 1024 * 1024;
/// RocksDB memtables, all column families together (one shared budget, not 64 MiB × 2 each).
const MEMTABLE_BUDGET: usize = 64 * 1024 * 1024;
/// One memtable of the `bodies` column family (the only one that sees block bodies).
const BODIES_MEMTABLE: usize = 32 * 1024 * 1024;
/// Bodies at least this large go to blob files: written once at flush and never rewritten
/// by compaction (which otherwise copied and LZ4-compressed every body again at each level).
const MIN_BLOB_BYTES: u64 = 4096;
/// Bodies whose block hashes the store wrote in this process, so a commit or a proposal in a
/// later round need not read a body back (RocksDB copies a value out to answer) to know it is
/// there.
const WRITTEN_BODIES: usize = 1024;
/// One memtable of every other column family.
const SMALL_MEMTABLE: usize = 8 * 1024 * 1024;
/// RocksDB's block cache for reads, shared by every column family.
const READ_CACHE_BYTES: usize = 32 * 1024 * 1024;

/// Whether files in `dir` can be opened for direct I/O (some file systems refuse it).
#[cfg(target_os = "linux")]
fn direct_io_supported(dir: &Path) -> bool {
    use std::os::unix::fs::OpenOptionsExt;
    let probe = dir.join(".direct-io-probe");
    let ok = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .custom_flags(libc::O_DIRECT)
        .open(&probe)
        .is_ok();
    let _ = std::fs::remove_file(&probe);
    ok
}

#[cfg(not(target_os = "linux"))]
fn direct_io_supported(_dir: &Path) -> bool {
    false
}

impl Store {
    /// Opens (or creates) the store; `keep_heights` decided heights are kept (0: all).
    pub(crate) fn open(path: &Path, keep_heights: u64) -> Result<Store> {
        std::fs::create_dir_all(path)
            .map_err(|e| StoreError(format!("cannot create {}: {e}", path.display())))?;
        let mut opts = Options::default();
        // Flushes and compactions write with direct I/O where the file system allows it.
        // Every block body is written twice, to the write-ahead log and at flush to a blob
        // file; the flush's copy into the page cache cost 8 % of the machine's CPU under
        // 64 KiB-leg load, for pages nothing reads back soon (recent blocks are served from
        // the node's own cache). The log keeps buffered writes (it is synced per commit).
        let direct_io = direct_io_supported(path);
        opts.set_use_direct_io_for_flush_and_compaction(direct_io);
        tracing::info!(direct_io, "opening the store at {}", path.display());
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        opts.set_compression_type(rocksdb::DBCompressionType::Lz4);
        // Memory is bounded: one memtable budget and one read cache for all column families.
        opts.set_db_write_buffer_size(MEMTABLE_BUDGET);
        let read_cache = rocksdb::Cache::new_lru_cache(READ_CACHE_BYTES);
        let cfs = CFS.iter().map(|n| {
            let mut table = rocksdb::BlockBasedOptions::default();
            table.set_block_cache(&read_cache);
            // Index and filter blocks live in the read cache too, so they are bounded by it;
            // otherwise every open table file keeps its own in memory, and that grows with
            // the database (which keeps every height by default). Level-0 ones stay pinned.
            table.set_cache_index_and_filter_blocks(true);
            table.set_pin_l0_filter_and_index_blocks_in_cache(true);
            let mut cf = Options::default();
            cf.set_compression_type(rocksdb::DBCompressionType::Lz4);
            cf.set_block_based_table_factory(&table);
            cf.set_max_write_buffer_number(2);
            cf.set_write_buffer_size(if *n == "bodies" {
                BODIES_MEMTABLE
            } else {
                SMALL_MEMTABLE
            });
            if *n == "bodies" {
                cf.set_enable_blob_files(true);
                cf.set_min_blob_size(MIN_BLOB_BYTES);
                // No blob garbage collection. Bodies never change and are deleted in height
                // order (pruning), so a blob file's bodies become garbage together and the
                // file is dropped without moving anything. Collection instead rewrites every
                // live body in the oldest quarter of blob files whenever a compaction meets
                // its key, and bodies are keyed by hash, so every compaction meets them all:
                // under 64 KiB load that relocation was 10 % of the machine's CPU. What it
                // would reclaim early is the bodies of proposals that lost a round, which are
                // few and go when their heights are pruned.
                cf.set_enable_blob_gc(false);
            }
            ColumnFamilyDescriptor::new(*n, cf)
        });
        let db = DB::open_cf_descriptors(&opts, path, cfs)
            .map_err(|e| StoreError(format!("cannot open RocksDB at {}: {e}", path.display())))?;
        let store = Store {
            db,
            read_cache,
            cache: Mutex::new(FifoCache::new(BLOCK_CACHE_HEIGHTS, BLOCK_CACHE_BYTES)),
            written: Mutex::new(FifoCache::new(WRITTEN_BODIES, usize::MAX)),
            undecided_keys: Mutex::new(Default::default()),
            keep_heights,
            pending: Mutex::new(Default::default()),
        };
        let keys = store
            .db
            .iterator_cf(store.cf("undecided")?, IteratorMode::Start)
            .map(|item| {
                let (k, _) = item.map_err(err)?;
                <[u8; UNDECIDED_KEY]>::try_from(&k[..])
                    .map_err(|_| StoreError("corrupt undecided proposal key".into()))
            })
            .collect::<Result<_>>()?;
        *store.undecided_keys.lock() = keys;
        match store.meta(SCHEMA_KEY)? {
            Some(SCHEMA) => {}
            None if store.meta(LATEST)?.is_none() && store.undecided_keys.lock().is_empty() => {
                store
                    .db
                    .put_cf(store.cf("meta")?, SCHEMA_KEY, be(SCHEMA))
                    .map_err(err)?;
            }
            found => {
                return Err(StoreError(format!(
                    "the store at {} has layout {} and this node reads layout {SCHEMA}; \
                     move it aside and let the node sync from its peers",
                    path.display(),
                    found.unwrap_or(1)
                )))
            }
        }
        let index = store.load_pending_index(store.latest_height()?)?;
        *store.pending.lock() = index;
        Ok(store)
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{block, cert};
    use super::*;
    use lockstep_bundles::{Address, Block, Hash};
    use lockstep_consensus::store::ChainStore;

    #[test]
    fn large_bodies_go_to_blob_files_and_read_back_after_a_restart() {
        // The temporary directory's file system (direct I/O on most), and on Linux tmpfs
        // (direct I/O only on recent kernels): the store works with and without it.
        let disk = tempfile::tempdir().unwrap();
        large_bodies_round_trip_through_blob_files(disk.path());
        // Every Linux machine mounts tmpfs at /dev/shm, so its absence is a broken machine,
        // not a case to skip. (Elsewhere the store never uses direct I/O.)
        #[cfg(target_os = "linux")]
        {
            let shm = tempfile::tempdir_in("/dev/shm").unwrap_or_else(|e| {
                panic!("cannot create a directory in /dev/shm (Linux's tmpfs): {e}")
            });
            large_bodies_round_trip_through_blob_files(shm.path());
        }
    }

    fn large_bodies_round_trip_through_blob_files(dir: &Path) {
        let k = ed25519_dalek::SigningKey::from_bytes(&[2; 32]);
        let b = lockstep_client::bundle::sign(&k, 1, 1, 100, vec![(1, vec![7; 64 * 1024])]);
        let hashes = vec![b.hash()];
        let blk = Block::build(
            1,
            1,
            1,
            Address::default(),
            Hash::ZERO,
            Hash::ZERO,
            vec![b],
            &hashes,
        );
        {
            let s = Store::open(dir, 0).unwrap();
            s.commit(&blk.header, &blk.encode(), &hashes, &cert(&blk), None)
                .unwrap();
            s.db.flush_cf(s.cf("bodies").unwrap()).unwrap();
            let blobs =
                s.db.property_int_value_cf(s.cf("bodies").unwrap(), "rocksdb.num-blob-files")
                    .unwrap();
            assert_eq!(blobs, Some(1), "the body went to a blob file at flush");
        }
        let s = Store::open(dir, 0).unwrap();
        assert_eq!(s.block_bytes(1).unwrap(), Some(blk.encode()));
        assert_eq!(s.decided(1).unwrap().unwrap().hashes, hashes);
    }

    #[test]
    fn pruned_bodies_free_their_blob_files_without_blob_garbage_collection() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path(), 2).unwrap();
        let k = ed25519_dalek::SigningKey::from_bytes(&[3; 32]);
        let bodies = s.cf("bodies").unwrap();
        let blob_files = || {
            s.db.property_int_value_cf(bodies, "rocksdb.num-blob-files")
                .unwrap()
                .unwrap()
        };
        let mut parent = Hash::ZERO;
        for h in 1..=8u64 {
            let b =
                lockstep_client::bundle::sign(&k, 1, h, 100, vec![(1, vec![h as u8; 64 * 1024])]);
            let hashes = vec![b.hash()];
            let blk = Block::build(
                1,
                h,
                h,
                Address::default(),
                parent,
                Hash::ZERO,
                vec![b],
                &hashes,
            );
            parent = blk.hash();
            s.commit(&blk.header, &blk.encode(), &hashes, &cert(&blk), None)
                .unwrap();
            // One blob file per height.
            s.db.flush_cf(bodies).unwrap();
        }
        assert_eq!(s.earliest().unwrap(), 7);
        s.db.compact_range_cf(bodies, None::<&[u8]>, None::<&[u8]>);
        assert!(
            blob_files() <= 2,
            "only the kept heights' blob files remain ({} files)",
            blob_files()
        );
        assert!(s.block_bytes(7).unwrap().is_some());
        assert!(s.block_bytes(8).unwrap().is_some());
    }

    #[test]
    fn a_store_of_an_older_layout_is_refused_with_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = Store::open(dir.path(), 0).unwrap();
            let b = block(1, Hash::ZERO, 10);
            s.commit(&b.header, &b.encode(), &[], &cert(&b), None)
                .unwrap();
            s.db.delete_cf(s.cf("meta").unwrap(), SCHEMA_KEY).unwrap();
        }
        let e = Store::open(dir.path(), 0).err().unwrap();
        assert!(e.0.contains("has layout 1"), "{}", e.0);
        // A fresh store is stamped with the current layout and reopens.
        let fresh = tempfile::tempdir().unwrap();
        drop(Store::open(fresh.path(), 0).unwrap());
        assert!(Store::open(fresh.path(), 0).is_ok());
    }
}
