//! Hashes included within the last `max_ttl` heights.
//!
//! A bundle included at height `h` has `valid_until <= h - 1 + max_ttl`, so it can never be
//! valid again once the chain passes `h - 1 + max_ttl`: remembering `max_ttl` heights of
//! inclusions is enough to refuse every replay.

use lockstep_bundles::Hash;
use std::collections::{BTreeMap, HashMap};

#[derive(Debug, Clone, Default)]
pub struct IncludedSet {
    max_ttl: u64,
    by_hash: HashMap<Hash, u64>,
    by_height: BTreeMap<u64, Vec<Hash>>,
}

impl IncludedSet {
    pub fn new(max_ttl: u64) -> IncludedSet {
        IncludedSet {
            max_ttl,
            ..Default::default()
        }
    }

    pub fn insert(&mut self, hash: Hash, height: u64) {
        if self.by_hash.insert(hash, height).is_none() {
            self.by_height.entry(height).or_default().push(hash);
        }
    }

    pub fn height_of(&self, hash: &Hash) -> Option<u64> {
        self.by_hash.get(hash).copied()
    }

    /// Forgets inclusions that can no longer be replayed once `latest` is decided.
    pub fn prune(&mut self, latest: u64) {
        let keep_from = latest.saturating_sub(self.max_ttl) + 1;
        let old: Vec<u64> = self.by_height.range(..keep_from).map(|(h, _)| *h).collect();
        for h in old {
            if let Some(hashes) = self.by_height.remove(&h) {
                for x in hashes {
                    self.by_hash.remove(&x);
                }
            }
        }
    }

    /// The first height whose inclusions must be remembered when `latest` is decided.
    pub fn window_start(&self, latest: u64) -> u64 {
        latest.saturating_sub(self.max_ttl) + 1
    }

    pub fn len(&self) -> usize {
        self.by_hash.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_hash.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_exactly_max_ttl_heights() {
        let mut s = IncludedSet::new(3);
        for h in 1..=5u64 {
            s.insert(Hash::tagged(b"x", &[&h.to_le_bytes()]), h);
        }
        s.prune(5);
        let heights: Vec<u64> = (1..=5u64)
            .filter_map(|h| s.height_of(&Hash::tagged(b"x", &[&h.to_le_bytes()])))
            .collect();
        assert_eq!(heights, vec![3, 4, 5]);
        assert_eq!(s.window_start(5), 3);
    }
}
