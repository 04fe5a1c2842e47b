//! The RocksDB store: decided blocks, certificates, bundle index, undecided proposals.
//!
//! Column families (integer keys big-endian, so byte order is numeric order):
//! - `headers`, `blocks`, `certs`, `hashes`: height → header / block hash / certificate /
//!   bundle hashes
//! - `bodies`: block hash → encoded block, for decided blocks and undecided proposals alike
//! - `bundles`: bundle hash → height ++ index
//! - `undecided`: height ++ round ++ block hash → proposal record (its body in `bodies`)
//! - `meta`: `latest`, `earliest` → height; `schema` → [`SCHEMA`]
//!
//! A block's body is written once: when it is proposed (a validator records every proposal it
//! holds, for crash recovery), or at commit if it arrived some other way (sync).
//! Committing it writes only its height → hash entry and what indexes it, so a block is not
//! copied through RocksDB twice. A decided block is written in one synced write batch, before
//! anyone is told about it; that sync also makes the body durable, since it went to the same
//! write-ahead log earlier. Bodies of proposals that lost are deleted at commit, never a body that
//! is some height's decided block; no proposal is recorded for a height already decided.

use crate::cache::FifoCache;
use borsh::BorshDeserialize;
use lockstep_bundles::{Block, BlockHeader, CommitCertificate, Hash};
use lockstep_consensus::store::{ChainStore, Committed, Result, StoreError, UndecidedRecord};
use parking_lot::Mutex;
use rocksdb::{
    ColumnFamilyDescriptor, Direction, IteratorMode, Options, ReadOptions, WriteBatch,
    WriteOptions, DB,
};
use std::path::Path;
use std::sync::Arc;

const CFS: [&str; 8] = [
    "headers",
    "blocks",
    "bodies",
    "certs",
    "hashes",
    "bundles",
    "undecided",
    "meta",
];
const LATEST: &[u8] = b"latest";
const EARLIEST: &[u8] = b"earliest";
const SCHEMA_KEY: &[u8] = b"schema";
/// The store's layout version. 2: block bodies by hash, written once (1 kept them by height,
/// and kept undecided proposals' bodies in their records).
pub const SCHEMA: u64 = 2;
/// Decided blocks kept decoded in memory for subscribers and RPC reads: at most this many…
pub const BLOCK_CACHE_HEIGHTS: usize = 256;
/// …and about this many encoded bytes (decoded, a block takes up to about twice that).
pub const BLOCK_CACHE_BYTES: usize = 32 * 1024 * 1024;
/// RocksDB memtables, all column families together (one shared budget, not 64 MiB × 2 each).
pub const MEMTABLE_BUDGET: usize = 64 * 1024 * 1024;
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
pub const READ_CACHE_BYTES: usize = 32 * 1024 * 1024;

/// Bytes the store holds in memory, by kind.
#[derive(Debug, Default, Clone, Copy)]
pub struct StoreMemory {
    /// RocksDB memtables, all column families (bounded by [`MEMTABLE_BUDGET`]).
    pub memtable_bytes: u64,
    /// Index and filter blocks held outside the read cache (only level-0 tables' pinned ones
    /// are counted in the cache instead).
    pub table_readers_bytes: u64,
    /// RocksDB's read cache, index and filter blocks included (bounded by [`READ_CACHE_BYTES`]).
    pub read_cache_bytes: u64,
    /// Decoded recent blocks (bounded by [`BLOCK_CACHE_BYTES`]).
    pub decoded_cache_bytes: u64,
}

/// A decided block, decoded, with what readers need.
pub struct Decided {
    pub block: Block,
    pub hashes: Vec<Hash>,
    pub certificate: CommitCertificate,
    pub tree: lockstep_bundles::rollup::RollupTree,
}

pub struct Store {
    db: DB,
    read_cache: rocksdb::Cache,
    cache: Mutex<FifoCache<u64, Arc<Decided>>>,
    /// See [`WRITTEN_BODIES`].
    written: Mutex<FifoCache<Hash, ()>>,
    /// The keys of the `undecided` family, so a commit deletes exactly those records (point
    /// deletes: range deletions there made every later iterator over the family slower, and
    /// a commit would have needed one).
    undecided_keys: Mutex<std::collections::BTreeSet<[u8; UNDECIDED_KEY]>>,
    /// Decided heights kept; older ones are pruned (0 keeps everything).
    keep_heights: u64,
}

/// A value of the `undecided` family: the proposal's record without its body (which is in
/// `bodies`, by block hash); `body` is always empty (layout 2 kept the field).
#[derive(borsh::BorshSerialize, borsh::BorshDeserialize)]
struct StoredProposal {
    height: u64,
    round: u32,
    valid_round: i64,
    proposer: lockstep_bundles::Address,
    block_hash: Hash,
    valid: bool,
    body: Vec<u8>,
}

/// Keys of the `undecided` family: height (8) ++ round (4) ++ block hash (32).
const UNDECIDED_KEY: usize = 44;

fn undecided_key(height: u64, round: u32, block_hash: &Hash) -> [u8; UNDECIDED_KEY] {
    let mut key = [0u8; UNDECIDED_KEY];
    key[..8].copy_from_slice(&be(height));
    key[8..12].copy_from_slice(&round.to_be_bytes());
    key[12..].copy_from_slice(&block_hash.0);
    key
}

/// The block hash in an `undecided` key.
fn undecided_key_hash(key: &[u8; UNDECIDED_KEY]) -> Hash {
    let mut h = [0u8; 32];
    h.copy_from_slice(&key[12..]);
    Hash(h)
}

/// Most heights pruned in one commit, so a large backlog is pruned gradually.
pub const PRUNE_PER_COMMIT: u64 = 64;

fn err(e: impl std::fmt::Display) -> StoreError {
    StoreError(e.to_string())
}

fn be(h: u64) -> [u8; 8] {
    h.to_be_bytes()
}

fn read_u64(v: &[u8]) -> Result<u64> {
    let a: [u8; 8] = v
        .try_into()
        .map_err(|_| StoreError("corrupt height value".into()))?;
    Ok(u64::from_be_bytes(a))
}

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
    pub fn open(path: &Path, keep_heights: u64) -> Result<Store> {
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
        Ok(store)
    }

    /// A block body by block hash.
    fn body(&self, hash: &[u8]) -> Result<Option<Vec<u8>>> {
        self.db.get_cf(self.cf("bodies")?, hash).map_err(err)
    }

    fn has_body(&self, hash: &Hash) -> Result<bool> {
        if self.written.lock().get(hash).is_some() {
            return Ok(true);
        }
        Ok(self
            .db
            .get_pinned_cf(self.cf("bodies")?, hash.0)
            .map_err(err)?
            .is_some())
    }

    /// Whether the block named by an `undecided` key is the block decided at the key's
    /// height (a record left from before that height's commit must not take its body away).
    fn is_decided_body(&self, key: &[u8; UNDECIDED_KEY], body: &Hash) -> Result<bool> {
        let height = &key[..8];
        Ok(self
            .db
            .get_pinned_cf(self.cf("blocks")?, height)
            .map_err(err)?
            .is_some_and(|decided| decided[..] == body.0[..]))
    }

    /// What the store holds in memory now, for the node's memory gauges.
    pub fn memory(&self) -> StoreMemory {
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

    fn cf(&self, name: &str) -> Result<&rocksdb::ColumnFamily> {
        self.db
            .cf_handle(name)
            .ok_or_else(|| StoreError(format!("missing column family {name}")))
    }

    fn meta(&self, key: &[u8]) -> Result<Option<u64>> {
        match self.db.get_cf(self.cf("meta")?, key).map_err(err)? {
            Some(v) => Ok(Some(read_u64(&v)?)),
            None => Ok(None),
        }
    }

    pub fn latest_height(&self) -> Result<u64> {
        Ok(self.meta(LATEST)?.unwrap_or(0))
    }

    pub fn header(&self, height: u64) -> Result<Option<BlockHeader>> {
        match self
            .db
            .get_cf(self.cf("headers")?, be(height))
            .map_err(err)?
        {
            Some(v) => BlockHeader::decode(&v).map(Some).map_err(err),
            None => Ok(None),
        }
    }

    pub fn hashes(&self, height: u64) -> Result<Option<Vec<Hash>>> {
        self.hashes_with(height, &ReadOptions::default())
    }

    fn hashes_with(&self, height: u64, read: &ReadOptions) -> Result<Option<Vec<Hash>>> {
        let Some(v) = self
            .db
            .get_cf_opt(self.cf("hashes")?, be(height), read)
            .map_err(err)?
        else {
            return Ok(None);
        };
        if v.len() % 32 != 0 {
            return Err(StoreError(format!(
                "corrupt bundle hashes at height {height}"
            )));
        }
        Ok(Some(
            v.chunks_exact(32)
                .map(|c| Hash(c.try_into().unwrap_or([0; 32])))
                .collect(),
        ))
    }

    /// Where a bundle was included: `(height, index)`.
    pub fn bundle_location(&self, hash: &Hash) -> Result<Option<(u64, u32)>> {
        let Some(v) = self.db.get_cf(self.cf("bundles")?, hash.0).map_err(err)? else {
            return Ok(None);
        };
        if v.len() != 12 {
            return Err(StoreError("corrupt bundle index entry".into()));
        }
        let height = read_u64(&v[..8])?;
        let index = u32::from_be_bytes(v[8..12].try_into().unwrap_or([0; 4]));
        Ok(Some((height, index)))
    }

    /// Adds to `batch` the deletion of heights below `latest - keep_heights + 1` (at most
    /// [`PRUNE_PER_COMMIT`] of them); returns the new earliest height if it moved.
    fn prune_into(
        &self,
        batch: &mut WriteBatch,
        earliest: u64,
        latest: u64,
    ) -> Result<Option<u64>> {
        if self.keep_heights == 0 || latest < self.keep_heights {
            return Ok(None);
        }
        let keep_from = latest - self.keep_heights + 1;
        if earliest >= keep_from {
            return Ok(None);
        }
        let to = keep_from.min(earliest + PRUNE_PER_COMMIT);
        // What is read only to be deleted must not take the read cache's room from what
        // readers (subscribers, sync, status queries) will read again.
        let mut once = ReadOptions::default();
        once.fill_cache(false);
        let (blocks, bodies) = (self.cf("blocks")?, self.cf("bodies")?);
        let mut gone = Vec::new();
        for h in earliest..to {
            gone.extend(self.hashes_with(h, &once)?.unwrap_or_default());
            if let Some(hash) = self.db.get_cf_opt(blocks, be(h), &once).map_err(err)? {
                batch.delete_cf(bodies, hash);
            }
        }
        // In key order, for the same reason as the inserts in `commit`.
        gone.sort_unstable();
        let bundles = self.cf("bundles")?;
        for x in gone {
            batch.delete_cf(bundles, x.0);
        }
        for cf in ["headers", "blocks", "certs", "hashes"] {
            batch.delete_range_cf(self.cf(cf)?, be(earliest), be(to));
        }
        batch.put_cf(self.cf("meta")?, EARLIEST, be(to));
        Ok(Some(to))
    }

    /// A decided block with its hashes, certificate and rollup tree (cached).
    pub fn decided(&self, height: u64) -> Result<Option<Arc<Decided>>> {
        if let Some(d) = self.cache.lock().get(&height) {
            return Ok(Some(d));
        }
        let (Some(bytes), Some(cert)) = (self.block_bytes(height)?, self.certificate(height)?)
        else {
            return Ok(None);
        };
        let block = Block::decode(&bytes).map_err(err)?;
        // The bundle hashes were stored with the block; recompute only if they are missing.
        let hashes = match self.hashes(height)? {
            Some(h) if h.len() == block.bundles.len() => h,
            _ => block.bundles.iter().map(|b| b.hash()).collect(),
        };
        let tree = lockstep_bundles::rollup::RollupTree::from_block(&block, &hashes);
        let d = Arc::new(Decided {
            block,
            hashes,
            certificate: cert,
            tree,
        });
        // Decoded bundles, hashes and tree take about twice the encoded size.
        self.cache.lock().insert(height, d.clone(), bytes.len() * 2);
        Ok(Some(d))
    }
}

impl ChainStore for Store {
    fn latest(&self) -> Result<Option<BlockHeader>> {
        match self.meta(LATEST)? {
            Some(h) => self.header(h),
            None => Ok(None),
        }
    }

    fn earliest(&self) -> Result<u64> {
        Ok(self.meta(EARLIEST)?.unwrap_or(0))
    }

    fn block_bytes(&self, height: u64) -> Result<Option<Vec<u8>>> {
        match self
            .db
            .get_cf(self.cf("blocks")?, be(height))
            .map_err(err)?
        {
            Some(hash) => match self.body(&hash)? {
                Some(body) => Ok(Some(body)),
                None => Err(StoreError(format!(
                    "missing body of decided height {height}"
                ))),
            },
            None => Ok(None),
        }
    }

    fn certificate(&self, height: u64) -> Result<Option<CommitCertificate>> {
        match self.db.get_cf(self.cf("certs")?, be(height)).map_err(err)? {
            Some(v) => CommitCertificate::try_from_slice(&v).map(Some).map_err(err),
            None => Ok(None),
        }
    }

    fn commit(
        &self,
        header: &BlockHeader,
        block: &[u8],
        hashes: &[Hash],
        certificate: &CommitCertificate,
    ) -> Result<Committed> {
        let h = header.height;
        if let Some(existing) = self.header(h)? {
            if existing.hash() == header.hash() {
                return Ok(Committed::AlreadyPresent);
            }
            return Err(StoreError(format!(
                "height {h} already holds block {}, refusing {}",
                existing.hash(),
                header.hash()
            )));
        }
        let hash = header.hash();
        let mut batch = WriteBatch::default();
        batch.put_cf(self.cf("headers")?, be(h), header.encode());
        batch.put_cf(self.cf("blocks")?, be(h), hash.0);
        // Usually recorded already, as a proposal; only a block that came by sync is new here.
        if !self.has_body(&hash)? {
            batch.put_cf(self.cf("bodies")?, hash.0, block);
        }
        batch.put_cf(
            self.cf("certs")?,
            be(h),
            borsh::to_vec(certificate).map_err(err)?,
        );
        let mut all = Vec::with_capacity(hashes.len() * 32);
        for x in hashes {
            all.extend_from_slice(&x.0);
        }
        // The bundle index is keyed by hash, so a block's keys land all over the memtable's
        // skip list. Put in key order, each insert starts from where the last one ended
        // (RocksDB keeps that splice), instead of from the top of the list.
        let mut by_key: Vec<(&Hash, u32)> = hashes.iter().zip(0u32..).collect();
        by_key.sort_unstable();
        let bundles = self.cf("bundles")?;
        for (x, i) in by_key {
            let mut loc = [0u8; 12];
            loc[..8].copy_from_slice(&be(h));
            loc[8..].copy_from_slice(&i.to_be_bytes());
            batch.put_cf(bundles, x.0, loc);
        }
        batch.put_cf(self.cf("hashes")?, be(h), all);
        if self.latest_height()? < h {
            batch.put_cf(self.cf("meta")?, LATEST, be(h));
        }
        let earliest = match self.meta(EARLIEST)? {
            Some(e) => e,
            None => {
                batch.put_cf(self.cf("meta")?, EARLIEST, be(h));
                h
            }
        };
        let pruned = self.prune_into(&mut batch, earliest, h)?;
        let undecided = self.cf("undecided")?;
        // Proposals up to this height leave; those not decided take their bodies with them.
        let done: Vec<[u8; UNDECIDED_KEY]> = {
            let keys = self.undecided_keys.lock();
            keys.range(..undecided_key(h + 1, 0, &Hash::ZERO))
                .copied()
                .collect()
        };
        let mut lost = Vec::new();
        for k in &done {
            batch.delete_cf(undecided, k);
            let body = undecided_key_hash(k);
            if body != hash && !self.is_decided_body(k, &body)? {
                batch.delete_cf(self.cf("bodies")?, body.0);
                lost.push(body);
            }
        }
        let mut wo = WriteOptions::default();
        wo.set_sync(true);
        self.db.write_opt(batch, &wo).map_err(err)?;
        {
            let mut keys = self.undecided_keys.lock();
            for k in &done {
                keys.remove(k);
            }
        }
        if !lost.is_empty() {
            self.written.lock().retain(|x| !lost.contains(x));
        }
        if let Some(to) = pruned {
            self.cache.lock().retain(|height| *height >= to);
        }
        Ok(Committed::Written)
    }

    fn put_undecided(&self, r: &UndecidedRecord) -> Result<()> {
        // A proposal for a height already decided needs no record for recovery, and its key
        // would outlive that height's commit: the next commit would take it for a proposal
        // that lost, and delete its body, which may be the decided block's (a value that
        // arrives by sync just after consensus decided it is exactly that).
        if r.height <= self.latest_height()? {
            return Ok(());
        }
        let key = undecided_key(r.height, r.round, &r.block_hash);
        let mut batch = WriteBatch::default();
        // The record without its body; the body once, by hash (a block proposed again in a
        // later round is not written again).
        let record = StoredProposal {
            height: r.height,
            round: r.round,
            valid_round: r.valid_round,
            proposer: r.proposer,
            block_hash: r.block_hash,
            valid: r.valid,
            body: Vec::new(),
        };
        batch.put_cf(
            self.cf("undecided")?,
            key,
            borsh::to_vec(&record).map_err(err)?,
        );
        let new_body = !r.block.is_empty() && !self.has_body(&r.block_hash)?;
        if new_body {
            batch.put_cf(self.cf("bodies")?, r.block_hash.0, &r.block);
        }
        self.db.write(batch).map_err(err)?;
        self.undecided_keys.lock().insert(key);
        if new_body {
            self.written.lock().insert(r.block_hash, (), 0);
        }
        Ok(())
    }

    fn undecided(&self, height: u64) -> Result<Vec<UndecidedRecord>> {
        let cf = self.cf("undecided")?;
        let start = be(height);
        let mut out = Vec::new();
        for item in self
            .db
            .iterator_cf(cf, IteratorMode::From(&start, Direction::Forward))
        {
            let (k, v) = item.map_err(err)?;
            if k.len() < 8 || k[..8] != start {
                break;
            }
            let r = StoredProposal::try_from_slice(&v).map_err(err)?;
            let block = if r.valid {
                self.body(&r.block_hash.0)?.unwrap_or_default().into()
            } else {
                bytes::Bytes::new()
            };
            out.push(UndecidedRecord {
                height: r.height,
                round: r.round,
                valid_round: r.valid_round,
                proposer: r.proposer,
                block_hash: r.block_hash,
                valid: r.valid,
                block,
            });
        }
        Ok(out)
    }

    fn included_since(&self, from: u64) -> Result<Vec<(u64, Vec<Hash>)>> {
        let latest = self.latest_height()?;
        let mut out = Vec::new();
        for h in from.max(1)..=latest {
            if let Some(hs) = self.hashes(h)? {
                out.push((h, hs));
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lockstep_bundles::{Address, CommitSig};

    fn block(height: u64, parent: Hash, ts: u64) -> Block {
        Block::build(1, height, ts, Address::default(), parent, vec![], &[])
    }

    fn cert(b: &Block) -> CommitCertificate {
        CommitCertificate {
            height: b.header.height,
            round: 0,
            block_hash: b.hash(),
            signatures: vec![CommitSig {
                address: Address::default(),
                signature: [1; 64],
            }],
        }
    }

    /// `b` recorded as a valid proposal of its height in `round`.
    fn proposal(b: &Block, round: u32) -> UndecidedRecord {
        UndecidedRecord {
            height: b.header.height,
            round,
            valid_round: -1,
            proposer: Address::default(),
            block_hash: b.hash(),
            valid: true,
            block: b.encode().into(),
        }
    }

    #[test]
    fn commit_is_durable_idempotent_and_refuses_a_conflicting_block() {
        let dir = tempfile::tempdir().unwrap();
        let b1 = block(1, Hash::ZERO, 10);
        {
            let s = Store::open(dir.path(), 0).unwrap();
            s.put_undecided(&proposal(&b1, 0)).unwrap();
            assert_eq!(s.undecided(1).unwrap().len(), 1);
            assert_eq!(
                s.commit(&b1.header, &b1.encode(), &[], &cert(&b1)).unwrap(),
                Committed::Written
            );
            assert_eq!(
                s.commit(&b1.header, &b1.encode(), &[], &cert(&b1)).unwrap(),
                Committed::AlreadyPresent
            );
            let other = block(1, Hash::ZERO, 11);
            assert!(s
                .commit(&other.header, &other.encode(), &[], &cert(&other))
                .is_err());
            assert!(
                s.undecided(1).unwrap().is_empty(),
                "undecided proposals are dropped at commit"
            );
        }
        let s = Store::open(dir.path(), 0).unwrap();
        assert_eq!(s.latest().unwrap().map(|h| h.hash()), Some(b1.hash()));
        assert_eq!(s.earliest().unwrap(), 1);
        assert_eq!(s.certificate(1).unwrap(), Some(cert(&b1)));
        assert!(s.decided(1).unwrap().is_some());
    }

    fn count(s: &Store, cf: &str) -> usize {
        s.db.iterator_cf(s.cf(cf).unwrap(), IteratorMode::Start)
            .count()
    }

    #[test]
    fn a_body_is_written_once_and_losing_proposals_leave_with_their_bodies() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path(), 0).unwrap();
        let won = block(1, Hash::ZERO, 10);
        let lost = block(1, Hash::ZERO, 11);
        for (round, b) in [(0, &lost), (1, &won), (2, &won)] {
            s.put_undecided(&proposal(b, round)).unwrap();
        }
        // Three records, two bodies (the block proposed in two rounds is stored once); they
        // survive a restart.
        assert_eq!(count(&s, "bodies"), 2);
        drop(s);
        let s = Store::open(dir.path(), 0).unwrap();
        let back = s.undecided(1).unwrap();
        assert_eq!(back.len(), 3);
        assert!(back
            .iter()
            .all(|r| Block::decode(&r.block).unwrap().hash() == r.block_hash));
        s.commit(&won.header, &won.encode(), &[], &cert(&won))
            .unwrap();
        assert_eq!(
            count(&s, "bodies"),
            1,
            "the losing proposal's body is deleted"
        );
        assert_eq!(count(&s, "undecided"), 0, "and every record of the height");
        assert_eq!(s.block_bytes(1).unwrap(), Some(won.encode()));
        // A block that arrives by sync (never recorded as a proposal) gets its body at commit.
        let next = block(2, won.hash(), 12);
        s.commit(&next.header, &next.encode(), &[], &cert(&next))
            .unwrap();
        assert_eq!(s.block_bytes(2).unwrap(), Some(next.encode()));
        assert_eq!(count(&s, "bodies"), 2);
    }

    #[test]
    fn a_proposal_recorded_after_its_height_was_decided_never_takes_the_decided_body() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path(), 0).unwrap();
        let b1 = block(1, Hash::ZERO, 10);
        s.put_undecided(&proposal(&b1, 0)).unwrap();
        s.commit(&b1.header, &b1.encode(), &[], &cert(&b1)).unwrap();
        // The decided block arrives again, by sync, after the commit.
        s.put_undecided(&proposal(&b1, 1)).unwrap();
        assert_eq!(count(&s, "undecided"), 0, "a decided height gets no record");
        // A record left from an earlier version (or written behind a commit's back) does not
        // take the decided body away either.
        let stale = undecided_key(1, 2, &b1.hash());
        s.db.put_cf(s.cf("undecided").unwrap(), stale, []).unwrap();
        s.undecided_keys.lock().insert(stale);
        let b2 = block(2, b1.hash(), 11);
        s.commit(&b2.header, &b2.encode(), &[], &cert(&b2)).unwrap();
        assert_eq!(s.block_bytes(1).unwrap(), Some(b1.encode()));
        assert_eq!(s.block_bytes(2).unwrap(), Some(b2.encode()));
        assert_eq!(count(&s, "undecided"), 0, "the stale record is gone");
        drop(s);
        let s = Store::open(dir.path(), 0).unwrap();
        assert_eq!(s.block_bytes(1).unwrap(), Some(b1.encode()));
    }

    #[test]
    fn large_bodies_go_to_blob_files_and_read_back_after_a_restart() {
        // The build directory's file system (direct I/O on most), and tmpfs where there is
        // one (direct I/O only on recent kernels): the store works with and without it.
        let dirs = [
            Some(tempfile::tempdir().unwrap()),
            tempfile::tempdir_in("/dev/shm").ok(),
        ];
        for dir in dirs.iter().flatten() {
            large_bodies_round_trip_through_blob_files(dir.path());
        }
    }

    fn large_bodies_round_trip_through_blob_files(dir: &Path) {
        let k = ed25519_dalek::SigningKey::from_bytes(&[2; 32]);
        let b = lockstep_client::bundle::sign(&k, 1, 1, 100, vec![(1, vec![7; 64 * 1024])]);
        let hashes = vec![b.hash()];
        let blk = Block::build(1, 1, 1, Address::default(), Hash::ZERO, vec![b], &hashes);
        {
            let s = Store::open(dir, 0).unwrap();
            s.commit(&blk.header, &blk.encode(), &hashes, &cert(&blk))
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
            let blk = Block::build(1, h, h, Address::default(), parent, vec![b], &hashes);
            parent = blk.hash();
            s.commit(&blk.header, &blk.encode(), &hashes, &cert(&blk))
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
            s.commit(&b.header, &b.encode(), &[], &cert(&b)).unwrap();
            s.db.delete_cf(s.cf("meta").unwrap(), SCHEMA_KEY).unwrap();
        }
        let e = Store::open(dir.path(), 0).err().unwrap();
        assert!(e.0.contains("has layout 1"), "{}", e.0);
        // A fresh store is stamped with the current layout and reopens.
        let fresh = tempfile::tempdir().unwrap();
        drop(Store::open(fresh.path(), 0).unwrap());
        assert!(Store::open(fresh.path(), 0).is_ok());
    }

    /// Commits `heights` on `s`, each a block of `per_block` distinct bundles on the one
    /// before (the first on `Hash::ZERO`); returns each height's bundle hashes, in block order.
    fn commit_chain(
        s: &Store,
        heights: std::ops::RangeInclusive<u64>,
        per_block: u64,
    ) -> Vec<Vec<Hash>> {
        let k = ed25519_dalek::SigningKey::from_bytes(&[1; 32]);
        let mut parent = Hash::ZERO;
        let mut blocks = Vec::new();
        for h in heights {
            let bundles: Vec<_> = (0..per_block)
                .map(|n| {
                    lockstep_client::bundle::sign(&k, 1, h * 1000 + n, 100, vec![(1, vec![1])])
                })
                .collect();
            let hashes: Vec<Hash> = bundles.iter().map(|b| b.hash()).collect();
            let blk = Block::build(1, h, h, Address::default(), parent, bundles, &hashes);
            parent = blk.hash();
            s.commit(&blk.header, &blk.encode(), &hashes, &cert(&blk))
                .unwrap();
            blocks.push(hashes);
        }
        blocks
    }

    #[test]
    fn pruning_reads_do_not_fill_the_read_cache() {
        let dir = tempfile::tempdir().unwrap();
        // 300 heights of 40 bundles, kept, and flushed to table files, so that pruning them
        // reads their hashes from disk (about 375 KiB of them) rather than from memtables.
        {
            let s = Store::open(dir.path(), 0).unwrap();
            commit_chain(&s, 1..=300, 40);
            for name in CFS {
                s.db.flush_cf(s.cf(name).unwrap()).unwrap();
            }
        }
        let s = Store::open(dir.path(), 10).unwrap();
        let before = s.memory().read_cache_bytes;
        commit_chain(&s, 301..=306, 1);
        assert_eq!(s.earliest().unwrap(), 297, "the old heights were pruned");
        let after = s.memory().read_cache_bytes;
        assert!(
            after.saturating_sub(before) < 64 * 1024,
            "pruning 296 heights left {} bytes in the read cache (from {before})",
            after
        );
    }

    #[test]
    fn every_bundle_of_a_block_is_indexed_at_its_place_in_block_order() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path(), 2).unwrap();
        let blocks = commit_chain(&s, 1..=3, 40);
        for (h, hashes) in (1u64..).zip(&blocks) {
            // Hashes are not in key order within a block, so the index is written out of
            // block order; it must still map each hash to its own place.
            assert!(hashes.windows(2).any(|w| w[0].0 > w[1].0));
            for (i, x) in (0u32..).zip(hashes) {
                let want = (h > 1).then_some((h, i));
                assert_eq!(s.bundle_location(x).unwrap(), want, "height {h} index {i}");
            }
        }
    }

    #[test]
    fn history_beyond_keep_heights_is_pruned_with_its_index() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path(), 3).unwrap();
        let first_bundle = commit_chain(&s, 1..=6, 1)[0][0];
        assert_eq!(s.earliest().unwrap(), 4);
        assert!(s.block_bytes(3).unwrap().is_none());
        assert!(s.decided(3).unwrap().is_none());
        assert!(s.block_bytes(4).unwrap().is_some());
        assert_eq!(s.bundle_location(&first_bundle).unwrap(), None);
        assert_eq!(s.latest_height().unwrap(), 6);
        assert_eq!(count(&s, "bodies"), 3, "pruned heights' bodies are deleted");
    }
}
