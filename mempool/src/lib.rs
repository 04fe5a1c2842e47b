//! The Lockstep mempool: pure admission rules and the bounded pool, behind a thread-safe
//! handle.
//!
//! - [`pool::Pool`]: pending bundles, bounded by bytes, count and per-signer count; reaping
//!   whole bundles in arrival order; expiry; eviction.
//! - [`included::IncludedSet`]: hashes included within the last `max_ttl` heights, so an
//!   included bundle is never admitted or included again.
//! - [`Mempool`]: both, plus the record of dropped bundles, behind one lock with short
//!   critical sections. Signature verification happens outside the lock (see `node`).

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod included;
pub mod pool;

use bytes::Bytes;
use included::IncludedSet;
use lockstep_bundles::{Hash, SignedBundle};
use parking_lot::Mutex;
use pool::{Pool, PoolConfig, PoolError};
use std::collections::{HashMap, HashSet, VecDeque};
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
/// How many hashes whose signatures were verified outside admission (in proposals) are
/// remembered, so a bundle seen first in a proposal is not verified again when gossiped.
pub const VERIFIED_MEMORY: usize = 200_000;

/// The outcome of inserting an admitted bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inserted {
    /// New to this node: gossip it.
    New,
    /// Already pending: nothing to do (submission is idempotent).
    AlreadyPending,
    /// Already included at `height`: nothing to do.
    AlreadyIncluded { height: u64 },
}

struct State {
    pool: Pool,
    included: IncludedSet,
    dropped: HashMap<Hash, String>,
    dropped_order: VecDeque<Hash>,
    verified: HashSet<Hash>,
    verified_order: VecDeque<Hash>,
}

impl State {
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
}

impl Mempool {
    pub fn new(config: PoolConfig, included: IncludedSet) -> Mempool {
        Mempool {
            state: Mutex::new(State {
                pool: Pool::new(config),
                included,
                dropped: HashMap::new(),
                dropped_order: VecDeque::new(),
                verified: HashSet::new(),
                verified_order: VecDeque::new(),
            }),
        }
    }

    /// Whether the hash is pending or recently included (no need to verify it again).
    pub fn seen(&self, hash: &Hash) -> Option<Inserted> {
        let s = self.state.lock();
        if s.pool.contains(hash) {
            return Some(Inserted::AlreadyPending);
        }
        s.included
            .height_of(hash)
            .map(|height| Inserted::AlreadyIncluded { height })
    }

    /// Whether the hash is pending (its signature was verified by this node).
    pub fn is_pending(&self, hash: &Hash) -> bool {
        self.state.lock().pool.contains(hash)
    }

    /// Whether this node already verified the signature of the bundle with this hash: it is
    /// pending, or was verified in a proposal.
    pub fn signature_verified(&self, hash: &Hash) -> bool {
        let s = self.state.lock();
        s.pool.contains(hash) || s.verified.contains(hash)
    }

    /// Records bundles whose signatures were verified outside admission (in a proposal).
    pub fn mark_verified(&self, hashes: &[Hash]) {
        let mut s = self.state.lock();
        for h in hashes {
            if s.verified.insert(*h) {
                s.verified_order.push_back(*h);
            }
        }
        while s.verified_order.len() > VERIFIED_MEMORY {
            if let Some(old) = s.verified_order.pop_front() {
                s.verified.remove(&old);
            }
        }
    }

    /// Whether the hash was included within the last `max_ttl` heights.
    pub fn is_included(&self, hash: &Hash) -> Option<u64> {
        self.state.lock().included.height_of(hash)
    }

    /// Inserts a verified bundle. `next_height` is the height it could be included at.
    pub fn insert(&self, a: Admitted, next_height: u64) -> Result<Inserted, PoolError> {
        let mut s = self.state.lock();
        if let Some(height) = s.included.height_of(&a.hash) {
            return Ok(Inserted::AlreadyIncluded { height });
        }
        if s.pool.contains(&a.hash) {
            return Ok(Inserted::AlreadyPending);
        }
        let hash = a.hash;
        let evicted = s.pool.insert(a, next_height)?;
        metrics::counter!("lockstep_mempool_evicted_total").increment(evicted.len() as u64);
        for h in evicted {
            s.remember_dropped(h, "evicted: expired while the mempool was full".into());
        }
        s.dropped.remove(&hash);
        Ok(Inserted::New)
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
        metrics::counter!("lockstep_mempool_expired_total").increment(expired.len() as u64);
        for h in expired {
            s.remember_dropped(
                h,
                format!("expired: valid_until is below height {}", height + 1),
            );
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
