//! Acknowledged bundles: the bundles this node admitted from its own users (JSON-RPC) and
//! not yet included, and the record of those it dropped, with the reason.
//!
//! - `pending`: bundle hash → `valid_until` (8) ++ the height decided when it was admitted
//!   (8) ++ the bundle's encoding. Written in one synced batch per group of acknowledgements
//!   before the replies go out ([`Store::put_pending`]); deleted in the commit that includes
//!   the bundle, or in the commit of its `valid_until` height (expired: a `dropped` record
//!   takes its place in the same batch). Reloaded into the pool at start.
//! - `dropped`: the height it was dropped at (8) ++ bundle hash → the reason (UTF-8), kept
//!   for [`DROPPED_KEEP_HEIGHTS`] heights, so `seq_getBundleStatus` still says `dropped`,
//!   with its reason, after a restart.
//!
//! The commit and the pending writes serialise on one lock held across their writes, so a
//! commit's deletions are ordered after every pending record it could see. A record written
//! after the commit that included its bundle (acknowledged while the block was being
//! committed) is harmless: it is deleted when it expires, after a look at the bundle index
//! (which still holds the bundle then, since `history.keep_heights` is at least `max_ttl`),
//! or at the next start, where included bundles are forgotten silently.

use super::layout::{be, read_u64};
use super::{err, Store};
use bytes::Bytes;
use lockstep_bundles::hash::{FastMap, FastSet};
use lockstep_bundles::Hash;
use lockstep_consensus::store::{Result, StoreError};
use lockstep_mempool::expired_reason;
use rocksdb::{IteratorMode, WriteBatch, WriteOptions};
use std::collections::BTreeSet;

/// Heights a `dropped` record is kept after the height it was dropped at (under an hour at
/// the idle pace of about eight heights a second; longer under load). Only bundles this
/// node acknowledged and then saw expire are recorded, so with the default `max_ttl` of
/// 3,600 heights the records on disk are at most about 4.5 times the pool's share for
/// submissions.
pub const DROPPED_KEEP_HEIGHTS: u64 = 16_384;
/// Dropped records are pruned in one range deletion once this many heights have left the
/// kept window (a range tombstone per 1,024 heights, not one deletion per record).
const DROPPED_PRUNE_EVERY: u64 = 1_024;
/// The bytes before the bundle in a `pending` value.
const PENDING_HEADER: usize = 16;

/// A bundle acknowledged to a user: what is written before the reply goes out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingRecord {
    pub hash: Hash,
    pub valid_until: u64,
    /// The latest decided height when it was admitted.
    pub admitted_at: u64,
    /// Its canonical encoding, as admitted (signature verified).
    pub encoded: Bytes,
}

/// What the store holds in memory of the `pending` and `dropped` families, under the lock
/// that orders pending writes against commits.
#[derive(Debug, Default)]
pub(super) struct PendingIndex {
    /// Hash → `valid_until` of every record in `pending`.
    by_hash: FastMap<Hash, u64>,
    /// The same, by `valid_until`, for expiry at commit.
    by_expiry: BTreeSet<(u64, Hash)>,
    /// The latest committed height.
    latest: u64,
    /// No `dropped` record is below this height.
    dropped_from: u64,
}

impl PendingIndex {
    fn insert(&mut self, hash: Hash, valid_until: u64) {
        if let Some(old) = self.by_hash.insert(hash, valid_until) {
            self.by_expiry.remove(&(old, hash));
        }
        self.by_expiry.insert((valid_until, hash));
    }

    fn remove(&mut self, hash: &Hash) {
        if let Some(v) = self.by_hash.remove(hash) {
            self.by_expiry.remove(&(v, *hash));
        }
    }
}

/// A `dropped` key: height ++ hash.
fn dropped_key(height: u64, hash: &Hash) -> [u8; 40] {
    let mut k = [0u8; 40];
    k[..8].copy_from_slice(&be(height));
    k[8..].copy_from_slice(&hash.0);
    k
}

fn hash_of(key: &[u8]) -> Result<Hash> {
    <[u8; 32]>::try_from(key)
        .map(Hash)
        .map_err(|_| StoreError("corrupt pending bundle key".into()))
}

impl Store {
    /// Reads what the index needs from the `pending` and `dropped` families (at open).
    pub(super) fn load_pending_index(&self, latest: u64) -> Result<PendingIndex> {
        let mut idx = PendingIndex {
            latest,
            dropped_from: latest,
            ..PendingIndex::default()
        };
        for item in self
            .db
            .iterator_cf(self.cf("pending")?, IteratorMode::Start)
        {
            let (k, v) = item.map_err(err)?;
            let valid_until = read_u64(v.get(..8).unwrap_or_default())?;
            idx.insert(hash_of(&k)?, valid_until);
        }
        if let Some(first) = self
            .db
            .iterator_cf(self.cf("dropped")?, IteratorMode::Start)
            .next()
        {
            let (k, _) = first.map_err(err)?;
            idx.dropped_from = read_u64(k.get(..8).unwrap_or_default())?;
        }
        Ok(idx)
    }

    /// Makes `records` durable, in one synced write, before their bundles are acknowledged.
    /// A bundle already recorded is not written again; one that expired since it was
    /// admitted (the commit of its `valid_until` height came first) gets its `dropped`
    /// record instead, unless it was included.
    pub fn put_pending(&self, records: &[PendingRecord]) -> Result<()> {
        let pending = self.cf("pending")?;
        let mut idx = self.pending.lock();
        let mut batch = WriteBatch::default();
        let mut added = Vec::new();
        let mut seen = FastSet::default();
        let mut value = Vec::new();
        for r in records {
            if idx.by_hash.contains_key(&r.hash) || !seen.insert(r.hash) {
                continue;
            }
            if r.valid_until <= idx.latest {
                if self.bundle_location(&r.hash)?.is_none() {
                    batch.put_cf(
                        self.cf("dropped")?,
                        dropped_key(idx.latest, &r.hash),
                        expired_reason(r.valid_until + 1),
                    );
                }
                continue;
            }
            value.clear();
            value.extend_from_slice(&be(r.valid_until));
            value.extend_from_slice(&be(r.admitted_at));
            value.extend_from_slice(&r.encoded);
            batch.put_cf(pending, r.hash.0, &value);
            added.push((r.hash, r.valid_until));
        }
        if batch.is_empty() {
            return Ok(());
        }
        let mut wo = WriteOptions::default();
        wo.set_sync(true);
        self.db.write_opt(batch, &wo).map_err(err)?;
        for (h, v) in added {
            idx.insert(h, v);
        }
        Ok(())
    }

    /// Every record in `pending`, in key order (to reload the pool at start).
    pub fn pending_records(&self) -> Result<Vec<PendingRecord>> {
        let mut out = Vec::new();
        for item in self
            .db
            .iterator_cf(self.cf("pending")?, IteratorMode::Start)
        {
            let (k, v) = item.map_err(err)?;
            if v.len() < PENDING_HEADER {
                return Err(StoreError("corrupt pending bundle record".into()));
            }
            out.push(PendingRecord {
                hash: hash_of(&k)?,
                valid_until: read_u64(&v[..8])?,
                admitted_at: read_u64(&v[8..16])?,
                encoded: Bytes::copy_from_slice(&v[PENDING_HEADER..]),
            });
        }
        Ok(out)
    }

    /// Settles records at start, in one synced write: `forget` leave `pending` without a
    /// trace (included), `dropped` leave it with their reason, at the height given.
    pub fn settle_pending(&self, forget: &[Hash], dropped: &[(Hash, u64, String)]) -> Result<()> {
        if forget.is_empty() && dropped.is_empty() {
            return Ok(());
        }
        let (pending, dropped_cf) = (self.cf("pending")?, self.cf("dropped")?);
        let mut idx = self.pending.lock();
        let mut batch = WriteBatch::default();
        for h in forget {
            batch.delete_cf(pending, h.0);
        }
        for (h, height, reason) in dropped {
            batch.delete_cf(pending, h.0);
            batch.put_cf(dropped_cf, dropped_key(*height, h), reason.as_bytes());
        }
        let mut wo = WriteOptions::default();
        wo.set_sync(true);
        self.db.write_opt(batch, &wo).map_err(err)?;
        for h in forget.iter().chain(dropped.iter().map(|(h, _, _)| h)) {
            idx.remove(h);
        }
        Ok(())
    }

    /// The newest `max` dropped records, oldest first.
    pub fn dropped_records(&self, max: usize) -> Result<Vec<(Hash, String)>> {
        let mut out = Vec::new();
        for item in self
            .db
            .iterator_cf(self.cf("dropped")?, IteratorMode::End)
            .take(max)
        {
            let (k, v) = item.map_err(err)?;
            let hash = hash_of(k.get(8..).unwrap_or_default())?;
            out.push((hash, String::from_utf8_lossy(&v).into_owned()));
        }
        out.reverse();
        Ok(out)
    }

    /// Adds to a commit's `batch`, at height `h` whose block holds `hashes`: the deletion of
    /// the included bundles' records, the expiry of the records whose `valid_until` is
    /// below `h + 1` (replaced by `dropped` records, with the mempool's reason), and the
    /// pruning of old `dropped` records. Returns what to apply to the index once the batch
    /// is written.
    pub(super) fn pending_into_commit(
        &self,
        idx: &PendingIndex,
        batch: &mut WriteBatch,
        h: u64,
        hashes: &[Hash],
    ) -> Result<CommitPending> {
        let mut done = CommitPending {
            latest: h,
            ..CommitPending::default()
        };
        if !idx.by_hash.is_empty() {
            let pending = self.cf("pending")?;
            for x in hashes {
                if idx.by_hash.contains_key(x) {
                    batch.delete_cf(pending, x.0);
                    done.removed.push(*x);
                }
            }
            let expiring: Vec<Hash> = idx
                .by_expiry
                .range(..(h + 1, Hash::ZERO))
                .map(|(_, x)| *x)
                .filter(|x| !done.removed.contains(x))
                .collect();
            for x in expiring {
                batch.delete_cf(pending, x.0);
                // Recorded after the commit that included it: it leaves without a trace.
                if self.bundle_location(&x)?.is_none() {
                    batch.put_cf(
                        self.cf("dropped")?,
                        dropped_key(h, &x),
                        expired_reason(h + 1),
                    );
                }
                done.removed.push(x);
            }
        }
        let keep_from = h.saturating_sub(DROPPED_KEEP_HEIGHTS);
        if keep_from >= idx.dropped_from + DROPPED_PRUNE_EVERY {
            batch.delete_range_cf(self.cf("dropped")?, be(idx.dropped_from), be(keep_from));
            done.dropped_from = Some(keep_from);
        }
        Ok(done)
    }
}

/// What a commit changes in the index once its batch is written.
#[derive(Debug, Default)]
pub(super) struct CommitPending {
    latest: u64,
    removed: Vec<Hash>,
    dropped_from: Option<u64>,
}

impl CommitPending {
    pub(super) fn apply(self, idx: &mut PendingIndex) {
        idx.latest = idx.latest.max(self.latest);
        for x in &self.removed {
            idx.remove(x);
        }
        if let Some(d) = self.dropped_from {
            idx.dropped_from = d;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::cert;
    use super::*;
    use lockstep_bundles::{Address, Block, SignedBundle};
    use lockstep_consensus::store::ChainStore;

    fn bundle(nonce: u64, valid_until: u64) -> SignedBundle {
        let k = ed25519_dalek::SigningKey::from_bytes(&[9; 32]);
        lockstep_client::bundle::sign(&k, 1, nonce, valid_until, vec![(1, vec![nonce as u8])])
    }

    fn ack(b: &SignedBundle, admitted_at: u64) -> PendingRecord {
        PendingRecord {
            hash: b.hash(),
            valid_until: b.body.valid_until,
            admitted_at,
            encoded: b.encode().into(),
        }
    }

    /// Commits height `h` on `parent` with `bundles`; returns the block's hash.
    fn commit(s: &Store, h: u64, parent: Hash, bundles: &[&SignedBundle]) -> Hash {
        let hashes: Vec<Hash> = bundles.iter().map(|b| b.hash()).collect();
        let bundles = bundles.iter().map(|b| (*b).clone()).collect();
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
        s.commit(&blk.header, &blk.encode(), &hashes, &cert(&blk), None)
            .unwrap();
        blk.hash()
    }

    fn pending_hashes(s: &Store) -> Vec<Hash> {
        let mut v: Vec<Hash> = s
            .pending_records()
            .unwrap()
            .iter()
            .map(|r| r.hash)
            .collect();
        v.sort();
        v
    }

    fn sorted(mut v: Vec<Hash>) -> Vec<Hash> {
        v.sort();
        v
    }

    #[test]
    fn acknowledged_bundles_reload_after_a_reopen_and_leave_with_the_commit_that_includes_them() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b, c) = (bundle(1, 100), bundle(2, 100), bundle(3, 100));
        {
            let s = Store::open(dir.path(), 0).unwrap();
            s.put_pending(&[ack(&a, 0), ack(&b, 0)]).unwrap();
            // Acknowledged twice (submitted again): recorded once.
            s.put_pending(&[ack(&b, 0), ack(&c, 0)]).unwrap();
        }
        let s = Store::open(dir.path(), 0).unwrap();
        let back = s.pending_records().unwrap();
        assert_eq!(back.len(), 3);
        for x in [&a, &b, &c] {
            let r = back.iter().find(|r| r.hash == x.hash()).unwrap();
            assert_eq!(
                *r,
                ack(x, 0),
                "the bundle and its heights read back as written"
            );
        }
        let b1 = commit(&s, 1, Hash::ZERO, &[&a]);
        assert_eq!(pending_hashes(&s), sorted(vec![b.hash(), c.hash()]));
        commit(&s, 2, b1, &[&b, &c]);
        assert!(s.pending_records().unwrap().is_empty());
        assert!(
            s.dropped_records(10).unwrap().is_empty(),
            "included bundles leave without a dropped record"
        );
        drop(s);
        let s = Store::open(dir.path(), 0).unwrap();
        assert!(s.pending_records().unwrap().is_empty());
        assert!(s.pending.lock().by_hash.is_empty());
    }

    #[test]
    fn an_expired_acknowledged_bundle_is_dropped_with_its_reason_which_survives_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let (short, long) = (bundle(1, 2), bundle(2, 100));
        {
            let s = Store::open(dir.path(), 0).unwrap();
            s.put_pending(&[ack(&short, 0), ack(&long, 0)]).unwrap();
            let b1 = commit(&s, 1, Hash::ZERO, &[]);
            assert_eq!(s.pending_records().unwrap().len(), 2, "valid at height 2");
            commit(&s, 2, b1, &[]);
            assert_eq!(pending_hashes(&s), vec![long.hash()]);
            // Acknowledged while height 2 was being committed: dropped at once.
            let late = bundle(3, 2);
            s.put_pending(&[ack(&late, 1)]).unwrap();
            assert_eq!(pending_hashes(&s), vec![long.hash()]);
        }
        let s = Store::open(dir.path(), 0).unwrap();
        let dropped = s.dropped_records(10).unwrap();
        let reason = expired_reason(3);
        assert_eq!(reason, "expired: valid_until is below height 3");
        assert_eq!(
            sorted(dropped.iter().map(|(h, _)| *h).collect()),
            sorted(vec![short.hash(), bundle(3, 2).hash()])
        );
        assert!(dropped.iter().all(|(_, r)| *r == reason), "{dropped:?}");
        assert_eq!(s.dropped_records(1).unwrap().len(), 1, "the newest first");
        assert_eq!(pending_hashes(&s), vec![long.hash()]);
    }

    #[test]
    fn a_record_written_after_its_bundle_was_included_leaves_silently_when_it_expires() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path(), 0).unwrap();
        let x = bundle(1, 3);
        let b1 = commit(&s, 1, Hash::ZERO, &[&x]);
        // The acknowledgement's write came after the commit that included it.
        s.put_pending(&[ack(&x, 0)]).unwrap();
        assert_eq!(pending_hashes(&s), vec![x.hash()]);
        let b2 = commit(&s, 2, b1, &[]);
        commit(&s, 3, b2, &[]);
        assert!(s.pending_records().unwrap().is_empty());
        assert!(s.dropped_records(10).unwrap().is_empty(), "it was included");
    }

    #[test]
    fn settled_records_leave_pending_and_old_dropped_records_are_pruned() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path(), 0).unwrap();
        let (a, b) = (bundle(1, 100), bundle(2, 100));
        s.put_pending(&[ack(&a, 0), ack(&b, 0)]).unwrap();
        s.settle_pending(&[a.hash()], &[(b.hash(), 1, "why".into())])
            .unwrap();
        assert!(s.pending_records().unwrap().is_empty());
        assert_eq!(
            s.dropped_records(10).unwrap(),
            vec![(b.hash(), "why".into())]
        );
        // Once its height is DROPPED_KEEP_HEIGHTS (and a pruning step) behind, it goes.
        let b1 = commit(&s, 1, Hash::ZERO, &[]);
        commit(&s, DROPPED_KEEP_HEIGHTS, b1, &[]);
        assert_eq!(s.dropped_records(10).unwrap().len(), 1, "still kept");
        commit(
            &s,
            DROPPED_KEEP_HEIGHTS + DROPPED_PRUNE_EVERY + 2,
            Hash::ZERO,
            &[],
        );
        assert!(s.dropped_records(10).unwrap().is_empty());
    }
}
