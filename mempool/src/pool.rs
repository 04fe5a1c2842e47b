//! The pending pool: bounded by bytes, count and per-signer count; arrival-ordered.
//!
//! Eviction rule: when an insert would exceed a bound, bundles that can no longer be included
//! (expired at the next height) are evicted first; if the pool is still full, the new bundle is
//! refused with [`PoolError::Full`] (protocol error 4006). A pending bundle is never displaced
//! by a newer one, so a bundle a user was told is pending is never silently lost.
//!
//! Room for peers: bundles submitted to this node ([`Origin::Local`]) may fill the pool only
//! up to three quarters of its count and byte bounds; the last quarter takes only bundles
//! from peers ([`Origin::Peer`]: gossiped, or fetched for a proposal). Under overload the
//! pools of all validators fill together, and without the reserve each would be full of its
//! own submissions and refuse the others' gossip: every proposal would then name bundles its
//! voters lack and must fetch, making heights slow just when the load is highest. With it,
//! submitters are told 4006 first and bundles already admitted somewhere keep reaching
//! every pool.
//!
//! Reaping order is arrival order (first admitted, first reaped); a bundle too large for the
//! space left in a block is skipped for that block but keeps its place.

use crate::Admitted;
use lockstep_bundles::hash::FastMap;
use lockstep_bundles::Hash;
use std::collections::BTreeMap;

/// Default maximum number of pending bundles.
pub const DEFAULT_MAX_COUNT: usize = 50_000;
/// Default maximum total encoded bytes of pending bundles.
pub const DEFAULT_MAX_BYTES: usize = 64 * 1024 * 1024;
/// Default maximum number of pending bundles from one signer.
pub const DEFAULT_MAX_PER_SIGNER: usize = 1_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolConfig {
    pub max_count: usize,
    pub max_bytes: usize,
    pub max_per_signer: usize,
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            max_count: DEFAULT_MAX_COUNT,
            max_bytes: DEFAULT_MAX_BYTES,
            max_per_signer: DEFAULT_MAX_PER_SIGNER,
        }
    }
}

/// Who brought a bundle to this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Submitted here (JSON-RPC): may fill the pool up to three quarters of its bounds.
    Local,
    /// From a peer (gossip, or fetched for a proposal): may fill it all.
    Peer,
}

/// Why the pool refused a bundle (protocol error 4006: retry later).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PoolError {
    #[error(
        "node busy: mempool full for {origin} bundles ({count} bundles, {bytes} bytes pending; \
         at most {max_count} and {max_bytes} bytes); retry later"
    )]
    Full {
        origin: &'static str,
        count: usize,
        bytes: usize,
        max_count: usize,
        max_bytes: usize,
    },
    #[error("node busy: signer already has {pending} pending bundles (limit {max}); retry later")]
    SignerCap { pending: usize, max: usize },
}

struct Slot {
    seq: u64,
    entry: Admitted,
}

pub(crate) struct Pool {
    config: PoolConfig,
    next_seq: u64,
    order: BTreeMap<u64, Hash>,
    slots: FastMap<Hash, Slot>,
    per_signer: FastMap<[u8; 32], usize>,
    bytes: usize,
    /// Every pending bundle has `valid_until` at or above this height. `expire` scans the
    /// pool only for a later height, so a full pool refusing bundle after bundle does not
    /// rescan it for each one (the commit already expired that height).
    unexpired_from: u64,
}

impl Pool {
    pub(crate) fn new(config: PoolConfig) -> Pool {
        Pool {
            config,
            next_seq: 0,
            order: BTreeMap::new(),
            slots: FastMap::default(),
            per_signer: FastMap::default(),
            bytes: 0,
            unexpired_from: 0,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.slots.len()
    }

    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    pub(crate) fn contains(&self, hash: &Hash) -> bool {
        self.slots.contains_key(hash)
    }

    /// The pending bundle with this hash.
    pub(crate) fn get(&self, hash: &Hash) -> Option<&Admitted> {
        self.slots.get(hash).map(|s| &s.entry)
    }

    /// The count and byte bounds for bundles of this origin (see the module doc).
    fn bounds(&self, origin: Origin) -> (usize, usize) {
        let (count, bytes) = (self.config.max_count, self.config.max_bytes);
        match origin {
            Origin::Peer => (count, bytes),
            Origin::Local => (count - count / 4, bytes - bytes / 4),
        }
    }

    fn fits(&self, size: usize, origin: Origin) -> bool {
        let (max_count, max_bytes) = self.bounds(origin);
        self.slots.len() < max_count && self.bytes + size <= max_bytes
    }

    /// Inserts a bundle not yet in the pool; returns the hashes evicted to make room.
    pub(crate) fn insert(
        &mut self,
        entry: Admitted,
        next_height: u64,
        origin: Origin,
    ) -> Result<Vec<Hash>, PoolError> {
        let size = entry.encoded.len();
        let signer = entry.bundle.body.signer;
        let pending = self.per_signer.get(&signer).copied().unwrap_or(0);
        if pending >= self.config.max_per_signer {
            return Err(PoolError::SignerCap {
                pending,
                max: self.config.max_per_signer,
            });
        }
        let mut evicted = Vec::new();
        if !self.fits(size, origin) {
            evicted = self.expire(next_height);
        }
        if !self.fits(size, origin) {
            let (max_count, max_bytes) = self.bounds(origin);
            return Err(PoolError::Full {
                origin: match origin {
                    Origin::Local => "submitted",
                    Origin::Peer => "peers'",
                },
                count: self.slots.len(),
                bytes: self.bytes,
                max_count,
                max_bytes,
            });
        }
        self.unexpired_from = self.unexpired_from.min(entry.bundle.body.valid_until);
        let seq = self.next_seq;
        self.next_seq += 1;
        self.order.insert(seq, entry.hash);
        self.bytes += size;
        *self.per_signer.entry(signer).or_insert(0) += 1;
        self.slots.insert(entry.hash, Slot { seq, entry });
        Ok(evicted)
    }

    /// Removes a bundle (included, or evicted); returns whether it was there.
    pub(crate) fn remove(&mut self, hash: &Hash) -> bool {
        let Some(slot) = self.slots.remove(hash) else {
            return false;
        };
        self.order.remove(&slot.seq);
        self.bytes -= slot.entry.encoded.len();
        let signer = slot.entry.bundle.body.signer;
        if let Some(n) = self.per_signer.get_mut(&signer) {
            *n -= 1;
            if *n == 0 {
                self.per_signer.remove(&signer);
            }
        }
        true
    }

    /// Removes every bundle whose `valid_until` is below `next_height`; returns their hashes.
    pub(crate) fn expire(&mut self, next_height: u64) -> Vec<Hash> {
        if next_height <= self.unexpired_from {
            return Vec::new();
        }
        self.unexpired_from = next_height;
        let expired: Vec<Hash> = self
            .slots
            .iter()
            .filter(|(_, s)| s.entry.bundle.body.valid_until < next_height)
            .map(|(h, _)| *h)
            .collect();
        for h in &expired {
            self.remove(h);
        }
        expired
    }

    /// Whole bundles in arrival order whose total encoded size stays within `max_bytes`,
    /// skipping any that expire before `height`.
    pub(crate) fn reap(&self, max_bytes: usize, height: u64) -> Vec<Admitted> {
        let mut out = Vec::new();
        let mut total = 0usize;
        for hash in self.order.values() {
            let Some(slot) = self.slots.get(hash) else {
                continue;
            };
            if slot.entry.bundle.body.valid_until < height {
                continue;
            }
            let size = slot.entry.encoded.len();
            if total + size > max_bytes {
                if max_bytes - total < 64 {
                    break;
                }
                continue;
            }
            total += size;
            out.push(slot.entry.clone());
        }
        out
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use bytes::Bytes;
    use lockstep_bundles::{BundleBody, Leg, SignedBundle};
    use proptest::prelude::*;
    use std::sync::Arc;

    pub(crate) fn admitted(signer: u8, nonce: u64, valid_until: u64, data_len: usize) -> Admitted {
        let bundle = SignedBundle {
            body: BundleBody {
                chain_id: 1,
                signer: [signer; 32],
                nonce,
                valid_until,
                legs: vec![Leg {
                    rollup_id: 1,
                    data: vec![0; data_len].into(),
                }],
            },
            signature: [0; 64],
        };
        Admitted {
            hash: bundle.hash(),
            encoded: Bytes::from(bundle.encode()),
            bundle: Arc::new(bundle),
        }
    }

    fn cfg(max_count: usize, max_bytes: usize, max_per_signer: usize) -> PoolConfig {
        PoolConfig {
            max_count,
            max_bytes,
            max_per_signer,
        }
    }

    #[test]
    fn refuses_when_full_and_never_displaces_pending() {
        let mut p = Pool::new(cfg(2, 1 << 20, 10));
        p.insert(admitted(1, 1, 100, 10), 1, Origin::Peer).unwrap();
        p.insert(admitted(1, 2, 100, 10), 1, Origin::Peer).unwrap();
        let err = p
            .insert(admitted(1, 3, 100, 10), 1, Origin::Peer)
            .unwrap_err();
        assert!(matches!(err, PoolError::Full { count: 2, .. }));
        assert_eq!(p.len(), 2);
    }

    #[test]
    fn evicts_expired_first_when_full() {
        let mut p = Pool::new(cfg(2, 1 << 20, 10));
        let old = admitted(1, 1, 5, 10);
        p.insert(old.clone(), 1, Origin::Peer).unwrap();
        p.insert(admitted(1, 2, 100, 10), 1, Origin::Peer).unwrap();
        let evicted = p.insert(admitted(1, 3, 100, 10), 6, Origin::Peer).unwrap();
        assert_eq!(evicted, vec![old.hash]);
        assert_eq!(p.len(), 2);
    }

    #[test]
    fn expiry_after_a_scan_still_finds_bundles_inserted_already_expired() {
        let mut p = Pool::new(cfg(2, 1 << 20, 10));
        p.insert(admitted(1, 1, 100, 10), 6, Origin::Peer).unwrap();
        assert!(p.expire(6).is_empty());
        // Inserted after height 6 was expired, but already expired at it.
        let stale = admitted(1, 2, 3, 10);
        p.insert(stale.clone(), 6, Origin::Peer).unwrap();
        let evicted = p.insert(admitted(1, 3, 100, 10), 6, Origin::Peer).unwrap();
        assert_eq!(evicted, vec![stale.hash]);
        assert_eq!(p.len(), 2);
        assert!(p.expire(6).is_empty());
        assert_eq!(p.expire(101).len(), 2);
    }

    #[test]
    fn byte_bound_and_signer_cap_hold_at_the_limit() {
        let a = admitted(1, 1, 100, 100);
        let size = a.encoded.len();
        let mut p = Pool::new(cfg(10, 2 * size, 10));
        p.insert(a, 1, Origin::Peer).unwrap();
        p.insert(admitted(1, 2, 100, 100), 1, Origin::Peer).unwrap();
        assert!(matches!(
            p.insert(admitted(2, 3, 100, 100), 1, Origin::Peer),
            Err(PoolError::Full { .. })
        ));
        assert_eq!(p.bytes(), 2 * size);

        let mut q = Pool::new(cfg(10, 1 << 20, 2));
        q.insert(admitted(7, 1, 100, 1), 1, Origin::Peer).unwrap();
        q.insert(admitted(7, 2, 100, 1), 1, Origin::Peer).unwrap();
        assert!(matches!(
            q.insert(admitted(7, 3, 100, 1), 1, Origin::Peer),
            Err(PoolError::SignerCap { pending: 2, max: 2 })
        ));
        q.insert(admitted(8, 1, 100, 1), 1, Origin::Peer).unwrap();
        assert!(q.remove(&admitted(7, 1, 100, 1).hash));
        q.insert(admitted(7, 3, 100, 1), 1, Origin::Peer).unwrap();
    }

    #[test]
    fn submitted_bundles_leave_a_quarter_of_the_pool_to_peers() {
        let size = admitted(1, 0, 100, 10).encoded.len();
        // Count bound: 8, so submissions stop at 6 and peers' bundles fill the other 2.
        let mut p = Pool::new(cfg(8, 1 << 20, 100));
        for n in 0..6 {
            p.insert(admitted(1, n, 100, 10), 1, Origin::Local).unwrap();
        }
        let err = p
            .insert(admitted(1, 6, 100, 10), 1, Origin::Local)
            .unwrap_err();
        assert!(matches!(
            err,
            PoolError::Full {
                count: 6,
                max_count: 6,
                ..
            }
        ));
        p.insert(admitted(2, 0, 100, 10), 1, Origin::Peer).unwrap();
        p.insert(admitted(2, 1, 100, 10), 1, Origin::Peer).unwrap();
        assert!(matches!(
            p.insert(admitted(2, 2, 100, 10), 1, Origin::Peer),
            Err(PoolError::Full { count: 8, .. })
        ));
        // Room freed below the local bound takes submissions again.
        assert!(p.remove(&admitted(1, 0, 100, 10).hash));
        assert!(p.remove(&admitted(1, 1, 100, 10).hash));
        assert!(p.remove(&admitted(1, 2, 100, 10).hash));
        p.insert(admitted(1, 6, 100, 10), 1, Origin::Local).unwrap();

        // Byte bound: room for 8 bundles, of which 6 may be submitted here.
        let mut q = Pool::new(cfg(100, 8 * size, 100));
        for n in 0..6 {
            q.insert(admitted(1, n, 100, 10), 1, Origin::Local).unwrap();
        }
        assert!(q.insert(admitted(1, 6, 100, 10), 1, Origin::Local).is_err());
        q.insert(admitted(2, 0, 100, 10), 1, Origin::Peer).unwrap();
        q.insert(admitted(2, 1, 100, 10), 1, Origin::Peer).unwrap();
        assert!(q.insert(admitted(2, 2, 100, 10), 1, Origin::Peer).is_err());
        assert_eq!(q.bytes(), 8 * size);

        // A pool too small to split keeps its single slot for either.
        let mut one = Pool::new(cfg(1, 1 << 20, 100));
        one.insert(admitted(1, 0, 100, 10), 1, Origin::Local)
            .unwrap();
    }

    proptest! {
        #[test]
        fn reaping_keeps_whole_bundles_in_arrival_order_within_limits(
            items in proptest::collection::vec((0u8..4, 1u64..20, 0usize..300), 0..40),
            max_bytes in 0usize..4000,
            height in 1u64..20,
        ) {
            let mut p = Pool::new(cfg(1000, 1 << 20, 1000));
            let mut arrival = Vec::new();
            let mut all = Vec::new();
            for (i, (signer, valid_until, len)) in items.into_iter().enumerate() {
                let a = admitted(signer, i as u64, valid_until, len);
                arrival.push(a.hash);
                all.push(a.clone());
                p.insert(a, 1, Origin::Peer).unwrap();
            }
            let reaped = p.reap(max_bytes, height);
            // The rule (ADR-004), written out: in arrival order, skip what expires before
            // `height`, take what fits, skip what does not fit, and stop once less than 64
            // bytes are left. The reap is exactly that, so it cannot leave out a bundle that
            // fits, nor return nothing when something fits.
            let mut expected = Vec::new();
            let mut left = max_bytes;
            for a in &all {
                if a.bundle.body.valid_until < height {
                    continue;
                }
                if a.encoded.len() <= left {
                    left -= a.encoded.len();
                    expected.push(a.hash);
                } else if left < 64 {
                    break;
                }
            }
            prop_assert_eq!(reaped.iter().map(|a| a.hash).collect::<Vec<_>>(), expected);
            let total: usize = reaped.iter().map(|a| a.encoded.len()).sum();
            prop_assert!(total <= max_bytes);
            let mut last = None;
            for a in &reaped {
                prop_assert!(a.bundle.body.valid_until >= height);
                let pos = arrival.iter().position(|h| *h == a.hash);
                prop_assert!(pos > last);
                last = pos;
                // Whole bundles: the reaped bytes are the admitted bytes.
                prop_assert_eq!(a.encoded.len(), a.bundle.encode().len());
            }
        }
    }
}
