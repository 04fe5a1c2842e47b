//! The Lockstep mempool: pure admission rules and the bounded pool, behind a thread-safe
//! handle.
//!
//! - [`admit`]: the admission rules (dedupe, the low-disk rule, limits, what needs its
//!   signature verified), [`AdmitError`] with the fault each refusal names, and the verdict
//!   on a gossip peer. Pure: the node runs them around its verifier threads.
//! - [`pool`]: pending bundles, bounded by bytes, count and per-signer count; reaping
//!   whole bundles in arrival order; expiry; eviction.
//! - [`included::IncludedSet`]: hashes included within the last `max_ttl` heights, so an
//!   included bundle is never admitted or included again.
//! - [`Mempool`]: both, plus the record of dropped bundles and of signatures verified in
//!   proposals, behind one lock with short critical sections. Signature verification happens
//!   outside the lock (see `node`). Bundles enter by two doors: [`Mempool::insert_many`]
//!   after admission, [`Mempool::insert_from_proposal`] for those a proposal brought.

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod admit;
pub mod included;
pub mod metrics;
pub mod pool;

pub use admit::{AdmitError, AdmitResult, Fault, GossipVerdict, Rules, Screened, Source, Taken};

use bytes::Bytes;
use included::IncludedSet;
use lockstep_bundles::hash::FastMap;
use lockstep_bundles::{Hash, SignedBundle};
use parking_lot::Mutex;
pub use pool::Origin;
use pool::{Pool, PoolConfig, PoolError};
use std::collections::VecDeque;
use std::sync::Arc;

/// A bundle that passed admission: decoded, checked, signature verified.
#[derive(Debug, Clone)]
pub struct Admitted {
    pub hash: Hash,
    pub bundle: Arc<SignedBundle>,
    /// The exact bytes it arrived as (its canonical encoding).
    pub encoded: Bytes,
}

/// Where a bundle stands, as far as this node knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    Pending,
    Included { height: u64 },
    Dropped { reason: String },
    Unknown,
}

/// How many dropped hashes are remembered for status queries.
pub const DROPPED_MEMORY: usize = 100_000;

/// Why a bundle left the pool unincluded when height `next_height - 1` was decided: its
/// `valid_until` is below `next_height`. (The node's store records the same words for the
/// bundles it acknowledged, so the status reads the same after a restart.)
pub fn expired_reason(next_height: u64) -> String {
    format!("expired: valid_until is below height {next_height}")
}
/// How many bundles whose signatures were verified outside admission (in proposals) are
/// remembered, each as its hash and the signature verified (about 100 bytes an entry), so a
/// bundle seen first in a proposal is not verified again when the same copy is gossiped or
/// fetched. A copy with another signature is not the one verified (the hash covers the body
/// only) and is verified like a new bundle.
pub const VERIFIED_MEMORY: usize = 200_000;

/// The outcome of inserting an admitted bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inserted {
    /// New to this node: gossip it.
    New,
    /// Already pending with this signature: nothing to do (submission is idempotent).
    AlreadyPending,
    /// Already pending with another signature: the pool keeps its copy, this one is not taken.
    PendingOtherSignature,
    /// Already included at `height`: nothing to do.
    AlreadyIncluded { height: u64 },
}

/// A bundle's signature (ed25519).
pub type Signature = [u8; 64];

/// What a node knows of one copy of a bundle (its hash and the signature it carries) before
/// admitting it. The hash covers the body only, so copies of one bundle may carry different
/// signatures: what was verified here is a copy, not a hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Known {
    /// Pending in the pool with this very signature (verified here).
    Pending,
    /// Pending in the pool with another signature: this copy's was never verified here.
    PendingOtherSignature,
    /// Included at `height`, within the last `max_ttl` heights. The included copy's signature
    /// is not remembered (the replay window keeps 16 bytes per hash).
    Included { height: u64 },
    /// Not pending, but this very signature was verified here in a proposal.
    Verified,
    /// Never seen, forgotten, or verified here only with another signature.
    New,
}

struct State {
    pool: Pool,
    included: IncludedSet,
    dropped: FastMap<Hash, String>,
    dropped_order: VecDeque<Hash>,
    /// Bundles verified in proposals: each hash with the signature that was verified.
    verified: FastMap<Hash, Signature>,
    verified_order: VecDeque<Hash>,
}

impl State {
    fn known(&self, hash: &Hash, signature: &Signature) -> Known {
        if let Some(pending) = self.pool.get(hash) {
            if pending.bundle.signature == *signature {
                Known::Pending
            } else {
                Known::PendingOtherSignature
            }
        } else if let Some(height) = self.included.height_of(hash) {
            Known::Included { height }
        } else if self.verified.get(hash) == Some(signature) {
            Known::Verified
        } else {
            Known::New
        }
    }

    fn insert(
        &mut self,
        a: Admitted,
        next_height: u64,
        origin: Origin,
    ) -> Result<Inserted, PoolError> {
        if let Some(height) = self.included.height_of(&a.hash) {
            return Ok(Inserted::AlreadyIncluded { height });
        }
        if let Some(pending) = self.pool.get(&a.hash) {
            return Ok(if pending.bundle.signature == a.bundle.signature {
                Inserted::AlreadyPending
            } else {
                Inserted::PendingOtherSignature
            });
        }
        let hash = a.hash;
        let evicted = self.pool.insert(a, next_height, origin)?;
        if !evicted.is_empty() {
            ::metrics::counter!(crate::metrics::EVICTED).increment(evicted.len() as u64);
        }
        for h in evicted {
            self.remember_dropped(h, "evicted: expired while the mempool was full".into());
        }
        self.dropped.remove(&hash);
        Ok(Inserted::New)
    }

    /// Sets the pool-size gauges (count and bytes).
    fn publish_size(&self) {
        ::metrics::gauge!(crate::metrics::BUNDLES).set(self.pool.len() as f64);
        ::metrics::gauge!(crate::metrics::BYTES).set(self.pool.bytes() as f64);
        ::metrics::gauge!(crate::metrics::REPLAY_WINDOW).set(self.included.len() as f64);
    }

    fn mark_verified(&mut self, copies: &[(Hash, Signature)]) {
        for (h, sig) in copies {
            if self.verified.insert(*h, *sig).is_none() {
                self.verified_order.push_back(*h);
            }
        }
        while self.verified_order.len() > VERIFIED_MEMORY {
            if let Some(old) = self.verified_order.pop_front() {
                self.verified.remove(&old);
            }
        }
    }

    fn remember_dropped(&mut self, hash: Hash, reason: String) {
        if self.dropped.insert(hash, reason).is_none() {
            self.dropped_order.push_back(hash);
            if self.dropped_order.len() > DROPPED_MEMORY {
                if let Some(old) = self.dropped_order.pop_front() {
                    self.dropped.remove(&old);
                }
            }
        }
    }
}

/// The shared mempool handle.
pub struct Mempool {
    state: Mutex<State>,
    /// Woken whenever bundles become pending, for [`Mempool::wait_for`] and
    /// [`Mempool::wait_for_any`].
    inserted: tokio::sync::Notify,
}

impl Mempool {
    pub fn new(config: PoolConfig, included: IncludedSet) -> Mempool {
        Mempool {
            state: Mutex::new(State {
                pool: Pool::new(config),
                included,
                dropped: FastMap::default(),
                dropped_order: VecDeque::new(),
                verified: FastMap::default(),
                verified_order: VecDeque::new(),
            }),
            inserted: tokio::sync::Notify::new(),
        }
    }

    /// What this node knows of each copy (a bundle's hash and the signature it carries),
    /// under one lock.
    pub fn known_many(&self, copies: &[(Hash, Signature)]) -> Vec<Known> {
        let s = self.state.lock();
        copies.iter().map(|(h, sig)| s.known(h, sig)).collect()
    }

    /// The height each hash was included at, if within the last `max_ttl` heights, under one
    /// lock.
    pub fn included_many(&self, hashes: &[Hash]) -> Vec<Option<u64>> {
        let s = self.state.lock();
        hashes.iter().map(|h| s.included.height_of(h)).collect()
    }

    /// The door for bundles a proposal brought from peers, whose signatures the consensus
    /// host has verified: remembers each as verified with its signature (so the same copy is
    /// not verified again when gossiped or fetched) and inserts them as peers' bundles ([`Origin::Peer`]), so this node can hand
    /// them on. `height` is the proposal's height: bundles expiring before it may be evicted
    /// to make room. A bundle the pool has no room for is only remembered as verified (it
    /// is in the proposal whatever the pool holds); one already pending or included is left
    /// as it is. One lock for all of it.
    pub fn insert_from_proposal(&self, fetched: Vec<Admitted>, height: u64) {
        if fetched.is_empty() {
            return;
        }
        let copies: Vec<(Hash, Signature)> = fetched
            .iter()
            .map(|a| (a.hash, a.bundle.signature))
            .collect();
        self.insert_with(
            |s| s.mark_verified(&copies),
            fetched.into_iter().map(|a| (a, Origin::Peer)),
            height,
        );
    }

    /// Inserts a verified bundle. `next_height` is the height it could be included at.
    pub fn insert(
        &self,
        a: Admitted,
        next_height: u64,
        origin: Origin,
    ) -> Result<Inserted, PoolError> {
        self.insert_many(vec![(a, origin)], next_height)
            .pop()
            .unwrap_or(Ok(Inserted::AlreadyPending))
    }

    /// Inserts verified bundles, each with its origin (which bounds apply, see [`pool`]), in
    /// order under one lock; one outcome per bundle.
    pub fn insert_many(
        &self,
        bundles: Vec<(Admitted, Origin)>,
        next_height: u64,
    ) -> Vec<Result<Inserted, PoolError>> {
        self.insert_with(|_| {}, bundles.into_iter(), next_height)
    }

    /// Under one lock: `first`, then each bundle inserted in order; then wakes the waiters
    /// if any bundle is new. One outcome per bundle.
    fn insert_with(
        &self,
        first: impl FnOnce(&mut State),
        bundles: impl Iterator<Item = (Admitted, Origin)>,
        next_height: u64,
    ) -> Vec<Result<Inserted, PoolError>> {
        let out: Vec<_> = {
            let mut s = self.state.lock();
            first(&mut s);
            let out = bundles
                .map(|(a, origin)| s.insert(a, next_height, origin))
                .collect();
            s.publish_size();
            out
        };
        if out.iter().any(|r| matches!(r, Ok(Inserted::New))) {
            self.inserted.notify_waiters();
        }
        out
    }

    /// The pending bundles among `hashes` (the others `None`), under one lock.
    pub fn pending_many(&self, hashes: &[Hash]) -> Vec<Option<Admitted>> {
        let s = self.state.lock();
        hashes.iter().map(|h| s.pool.get(h).cloned()).collect()
    }

    /// Waits until every one of `hashes` is pending or `timeout` passes; returns them as
    /// [`Mempool::pending_many`] does at that moment. Used by a validator that holds a
    /// proposal's bundle list but not yet every bundle (gossip may be a moment behind).
    pub async fn wait_for(
        &self,
        hashes: &[Hash],
        timeout: std::time::Duration,
    ) -> Vec<Option<Admitted>> {
        self.wait_until(timeout, || {
            let found = self.pending_many(hashes);
            (found.iter().all(Option::is_some), found)
        })
        .await
    }

    /// Waits until the pool holds at least one pending bundle or `timeout` passes; returns
    /// whether it does. Used by a proposer with nothing to propose: the first bundle to arrive
    /// ends the wait, so a quiet network does not make it wait out a whole block time.
    pub async fn wait_for_any(&self, timeout: std::time::Duration) -> bool {
        self.wait_until(timeout, || {
            let any = self.size().0 > 0;
            (any, any)
        })
        .await
    }

    /// Looks (`look` returns whether to stop, and what it saw) after every insert until it
    /// says stop or `timeout` passes; returns what the last look saw.
    async fn wait_until<T>(
        &self,
        timeout: std::time::Duration,
        mut look: impl FnMut() -> (bool, T),
    ) -> T {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            // Registered before looking, so an insert between the look and the wait wakes us.
            let inserted = self.inserted.notified();
            tokio::pin!(inserted);
            inserted.as_mut().enable();
            let (done, seen) = look();
            if done {
                return seen;
            }
            if tokio::time::timeout_at(deadline, inserted).await.is_err() {
                return look().1;
            }
        }
    }

    /// Whole bundles in arrival order, up to `max_bytes` in total, none expiring before
    /// `height`.
    pub fn reap(&self, max_bytes: usize, height: u64) -> Vec<Admitted> {
        self.state.lock().pool.reap(max_bytes, height)
    }

    /// Records a committed block: removes its bundles from the pool, remembers them as
    /// included, drops what expired, and forgets inclusions older than `max_ttl`.
    pub fn on_commit(&self, height: u64, hashes: &[Hash]) {
        let mut s = self.state.lock();
        for h in hashes {
            s.pool.remove(h);
            s.included.insert(*h, height);
        }
        s.included.prune(height);
        let expired = s.pool.expire(height + 1);
        ::metrics::counter!(crate::metrics::EXPIRED).increment(expired.len() as u64);
        for h in expired {
            s.remember_dropped(h, expired_reason(height + 1));
        }
        s.publish_size();
    }

    /// Remembers bundles dropped before this process started (the node's durable record),
    /// oldest first, as if they had been dropped here; at most [`DROPPED_MEMORY`] are kept.
    pub fn restore_dropped(&self, dropped: impl IntoIterator<Item = (Hash, String)>) {
        let mut s = self.state.lock();
        for (h, reason) in dropped {
            if !s.pool.contains(&h) {
                s.remember_dropped(h, reason);
            }
        }
    }

    pub fn status(&self, hash: &Hash) -> Status {
        let s = self.state.lock();
        if let Some(height) = s.included.height_of(hash) {
            return Status::Included { height };
        }
        if s.pool.contains(hash) {
            return Status::Pending;
        }
        match s.dropped.get(hash) {
            Some(reason) => Status::Dropped {
                reason: reason.clone(),
            },
            None => Status::Unknown,
        }
    }

    /// `(count, bytes)` pending.
    pub fn size(&self) -> (usize, usize) {
        let s = self.state.lock();
        (s.pool.len(), s.pool.bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::included::IncludedSet;
    use crate::pool::tests::admitted;
    use crate::pool::PoolConfig;
    use std::time::Duration;

    #[tokio::test]
    async fn a_proposer_waiting_for_work_is_woken_by_the_first_bundle() {
        let m = Arc::new(Mempool::new(PoolConfig::default(), IncludedSet::new(10)));
        // Nothing arrives: the wait ends at its timeout, with nothing.
        assert!(!m.wait_for_any(Duration::from_millis(20)).await);

        // A bundle arrives while it waits: the wait ends with it, long before the hour is up
        // (the outer timeout only keeps a broken wake-up from hanging the suite).
        let waiter = {
            let m = m.clone();
            tokio::spawn(async move { m.wait_for_any(Duration::from_secs(3600)).await })
        };
        tokio::task::yield_now().await;
        m.insert(admitted(1, 1, 100, 10), 1, Origin::Peer).unwrap();
        let woke = tokio::time::timeout(Duration::from_secs(60), waiter).await;
        assert!(matches!(woke, Ok(Ok(true))), "{woke:?}");

        // Already there: no wait at all.
        assert!(m.wait_for_any(Duration::from_secs(3600)).await);
    }

    #[test]
    fn bundles_a_proposal_brought_become_pending_and_known_as_verified() {
        let m = Mempool::new(PoolConfig::default(), IncludedSet::new(10));
        let (a, b) = (admitted(1, 1, 100, 10), admitted(2, 1, 100, 10));
        m.insert_from_proposal(vec![a.clone(), b.clone()], 5);
        assert_eq!(m.known_many(&[copy(&a), copy(&b)]), vec![Known::Pending; 2]);
        assert_eq!(m.size().0, 2);
        assert_eq!(
            m.pending_many(&[a.hash])[0].as_ref().map(|p| p.hash),
            Some(a.hash)
        );
        // Committed like any pending bundle.
        m.on_commit(5, &[a.hash]);
        assert_eq!(
            m.known_many(&[copy(&a)]),
            vec![Known::Included { height: 5 }]
        );
        // Nothing brought: nothing changes.
        m.insert_from_proposal(Vec::new(), 6);
        assert_eq!(m.size().0, 1);
    }

    #[test]
    fn dropped_bundles_restored_at_start_read_as_dropped_with_their_reason() {
        let m = Mempool::new(PoolConfig::default(), IncludedSet::new(10));
        let (gone, back) = (admitted(1, 1, 100, 10), admitted(1, 2, 100, 10));
        m.insert(back.clone(), 1, Origin::Local).unwrap();
        m.restore_dropped(vec![
            (gone.hash, expired_reason(7)),
            (back.hash, "stale".into()),
        ]);
        assert_eq!(
            m.status(&gone.hash),
            Status::Dropped {
                reason: "expired: valid_until is below height 7".into()
            }
        );
        // A bundle pending again is pending, whatever an older record says.
        assert_eq!(m.status(&back.hash), Status::Pending);
    }

    #[test]
    fn a_proposals_bundle_takes_the_room_kept_for_peers() {
        // Count bound 4: submissions stop at 3, peers' bundles (a proposal's) take the 4th.
        let cfg = PoolConfig {
            max_count: 4,
            ..PoolConfig::default()
        };
        let m = Mempool::new(cfg, IncludedSet::new(10));
        let local: Vec<_> = (0..4)
            .map(|n| (admitted(1, n, 100, 10), Origin::Local))
            .collect();
        let out = m.insert_many(local, 1);
        assert!(matches!(out[3], Err(PoolError::Full { .. })), "{out:?}");
        let fetched = admitted(2, 0, 100, 10);
        m.insert_from_proposal(vec![fetched.clone()], 1);
        assert_eq!(m.known_many(&[copy(&fetched)]), vec![Known::Pending]);
        assert_eq!(m.size().0, 4);
    }

    #[test]
    fn a_proposals_bundle_the_pool_has_no_room_for_is_still_known_as_verified() {
        let cfg = PoolConfig {
            max_count: 1,
            ..PoolConfig::default()
        };
        let m = Mempool::new(cfg, IncludedSet::new(10));
        let (a, b) = (admitted(1, 1, 100, 10), admitted(2, 1, 100, 10));
        m.insert_from_proposal(vec![a.clone(), b.clone()], 1);
        assert_eq!(
            m.known_many(&[copy(&a), copy(&b)]),
            vec![Known::Pending, Known::Verified]
        );
        assert_eq!(m.status(&b.hash), Status::Unknown);
    }

    /// `a`'s hash and signature.
    fn copy(a: &Admitted) -> (Hash, Signature) {
        (a.hash, a.bundle.signature)
    }

    /// `a`'s hash with another signature.
    fn other_copy(a: &Admitted) -> (Hash, Signature) {
        let mut sig = a.bundle.signature;
        sig[0] ^= 1;
        (a.hash, sig)
    }

    #[test]
    fn a_copy_is_known_only_with_the_signature_verified_here() {
        let cfg = PoolConfig {
            max_count: 1,
            ..PoolConfig::default()
        };
        let m = Mempool::new(cfg, IncludedSet::new(10));
        let (pending, verified, included) = (
            admitted(1, 1, 100, 10),
            admitted(2, 1, 100, 10),
            admitted(3, 1, 100, 10),
        );
        m.insert(pending.clone(), 1, Origin::Peer).unwrap();
        // No room left: `verified` is only remembered as verified.
        m.insert_from_proposal(vec![verified.clone()], 1);
        m.on_commit(1, &[included.hash]);
        assert_eq!(
            m.known_many(&[copy(&pending), copy(&verified), copy(&included)]),
            vec![
                Known::Pending,
                Known::Verified,
                Known::Included { height: 1 }
            ]
        );
        assert_eq!(
            m.known_many(&[
                other_copy(&pending),
                other_copy(&verified),
                other_copy(&included)
            ]),
            vec![
                Known::PendingOtherSignature,
                Known::New,
                Known::Included { height: 1 }
            ]
        );
        assert_eq!(
            m.included_many(&[pending.hash, included.hash]),
            vec![None, Some(1)]
        );
    }

    #[test]
    fn a_copy_with_another_signature_does_not_replace_the_pending_one() {
        let m = Mempool::new(PoolConfig::default(), IncludedSet::new(10));
        let a = admitted(1, 1, 100, 10);
        m.insert(a.clone(), 1, Origin::Peer).unwrap();
        let mut other = (*a.bundle).clone();
        other.signature[0] ^= 1;
        let other = Admitted {
            hash: a.hash,
            bundle: Arc::new(other),
            encoded: a.encoded.clone(),
        };
        assert_eq!(
            m.insert(other, 1, Origin::Peer),
            Ok(Inserted::PendingOtherSignature)
        );
        assert_eq!(
            m.insert(a.clone(), 1, Origin::Peer),
            Ok(Inserted::AlreadyPending)
        );
        let kept = m.pending_many(&[a.hash]).remove(0).unwrap();
        assert_eq!(kept.bundle.signature, a.bundle.signature);
    }

    #[tokio::test]
    async fn a_validator_waiting_for_a_proposals_bundles_is_woken_when_they_are_brought() {
        let m = Arc::new(Mempool::new(PoolConfig::default(), IncludedSet::new(10)));
        let a = admitted(1, 1, 100, 10);
        let waiter = {
            let (m, hashes) = (m.clone(), vec![a.hash]);
            tokio::spawn(async move { m.wait_for(&hashes, Duration::from_secs(3600)).await })
        };
        tokio::task::yield_now().await;
        m.insert_from_proposal(vec![a.clone()], 1);
        let woke = tokio::time::timeout(Duration::from_secs(60), waiter).await;
        let Ok(Ok(found)) = woke else {
            panic!("not woken: {woke:?}")
        };
        assert_eq!(found[0].as_ref().map(|p| p.hash), Some(a.hash));
    }
}
