//! The chain writes: a decided block's commit (one synced write batch, with its bundle index,
//! the proposals of its height dropped, the heights pruned behind it, and the acknowledged
//! bundles it includes or expires settled: see `pending`), and the undecided proposals
//! recorded for crash recovery.

use super::layout::{
    be, undecided_key, undecided_key_hash, StoredProposal, EARLIEST, LATEST, UNDECIDED_KEY,
};
use super::{err, Store};
use lockstep_bundles::{BlockHeader, CommitCertificate, Hash};
use lockstep_consensus::store::{Committed, Result, StoreError, UndecidedRecord};
use lockstep_consensus::validators::SetRecord;
use rocksdb::{ReadOptions, WriteBatch, WriteOptions};

/// Most heights pruned in one commit, so a large backlog is pruned gradually.
const PRUNE_PER_COMMIT: u64 = 64;

impl Store {
    /// [`ChainStore::commit`](lockstep_consensus::store::ChainStore::commit).
    /// Writes validator sets learned from a peer's snapshot offer (a node joining with an
    /// empty store, before it commits anything), in one synced batch.
    pub fn write_validator_sets(&self, sets: &[SetRecord]) -> Result<()> {
        let mut batch = WriteBatch::default();
        for set in sets {
            batch.put_cf(
                self.cf("validator_sets")?,
                be(set.from_height),
                borsh::to_vec(set).map_err(err)?,
            );
        }
        let mut opts = rocksdb::WriteOptions::default();
        opts.set_sync(true);
        self.db.write_opt(batch, &opts).map_err(err)
    }

    pub(super) fn write_commit(
        &self,
        header: &BlockHeader,
        block: &[u8],
        hashes: &[Hash],
        certificate: &CommitCertificate,
        new_set: Option<&SetRecord>,
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
        if let Some(set) = new_set {
            batch.put_cf(
                self.cf("validator_sets")?,
                be(set.from_height),
                borsh::to_vec(set).map_err(err)?,
            );
        }
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
        // Held until the batch is written: pending records are written in order with it.
        let mut pending = self.pending.lock();
        let settled = self.pending_into_commit(&pending, &mut batch, h, hashes)?;
        let mut wo = WriteOptions::default();
        wo.set_sync(true);
        self.db.write_opt(batch, &wo).map_err(err)?;
        settled.apply(&mut pending);
        drop(pending);
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

    /// [`ChainStore::put_undecided`](lockstep_consensus::store::ChainStore::put_undecided).
    pub(super) fn write_undecided(&self, r: &UndecidedRecord) -> Result<()> {
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
}

#[cfg(test)]
mod tests {
    use super::super::layout::CFS;
    use super::super::test_support::{block, cert};
    use super::*;
    use lockstep_bundles::{Address, Block};
    use lockstep_consensus::store::ChainStore;
    use rocksdb::IteratorMode;

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
                s.commit(&b1.header, &b1.encode(), &[], &cert(&b1), None)
                    .unwrap(),
                Committed::Written
            );
            assert_eq!(
                s.commit(&b1.header, &b1.encode(), &[], &cert(&b1), None)
                    .unwrap(),
                Committed::AlreadyPresent
            );
            let other = block(1, Hash::ZERO, 11);
            assert!(s
                .commit(&other.header, &other.encode(), &[], &cert(&other), None)
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
        s.commit(&won.header, &won.encode(), &[], &cert(&won), None)
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
        s.commit(&next.header, &next.encode(), &[], &cert(&next), None)
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
        s.commit(&b1.header, &b1.encode(), &[], &cert(&b1), None)
            .unwrap();
        // The decided block arrives again, by sync, after the commit.
        s.put_undecided(&proposal(&b1, 1)).unwrap();
        assert_eq!(count(&s, "undecided"), 0, "a decided height gets no record");
        // A record left from an earlier version (or written behind a commit's back) does not
        // take the decided body away either.
        let stale = undecided_key(1, 2, &b1.hash());
        s.db.put_cf(s.cf("undecided").unwrap(), stale, []).unwrap();
        s.undecided_keys.lock().insert(stale);
        let b2 = block(2, b1.hash(), 11);
        s.commit(&b2.header, &b2.encode(), &[], &cert(&b2), None)
            .unwrap();
        assert_eq!(s.block_bytes(1).unwrap(), Some(b1.encode()));
        assert_eq!(s.block_bytes(2).unwrap(), Some(b2.encode()));
        assert_eq!(count(&s, "undecided"), 0, "the stale record is gone");
        drop(s);
        let s = Store::open(dir.path(), 0).unwrap();
        assert_eq!(s.block_bytes(1).unwrap(), Some(b1.encode()));
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
            let blk = Block::build(
                1,
                h,
                h,
                Address::default(),
                parent,
                Hash::ZERO,
                bundles,
                &hashes,
            );
            parent = blk.hash();
            s.commit(&blk.header, &blk.encode(), &hashes, &cert(&blk), None)
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
