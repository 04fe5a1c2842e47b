//! Hashes included within the last `max_ttl` heights.
//!
//! A bundle included at height `h` has `valid_until <= h - 1 + max_ttl`, so it can never be
//! valid again once the chain passes `h - 1 + max_ttl`: remembering `max_ttl` heights of
//! inclusions is enough to refuse every replay.

use lockstep_bundles::Hash;
use std::collections::{BTreeMap, HashMap};

/// What is remembered of an included hash: its first 128 bits. At a few thousand bundles a
/// second the window holds about a million hashes, and half of a 32-byte key is half of the
/// set's memory. Two distinct bundles share a prefix with probability about `n / 2^128` for
/// a window of `n` (and finding a bundle whose hash starts like a given one is a 2^128
/// search), so the set still answers exactly for any realistic input.
type Key = [u8; 16];

fn key(hash: &Hash) -> Key {
    let mut k = [0u8; 16];
    k.copy_from_slice(&hash.0[..16]);
    k
}

#[derive(Debug, Clone, Default)]
pub struct IncludedSet {
    max_ttl: u64,
    by_hash: HashMap<Key, u64>,
    by_height: BTreeMap<u64, Vec<Key>>,
}

impl IncludedSet {
    pub fn new(max_ttl: u64) -> IncludedSet {
        IncludedSet {
            max_ttl,
            ..Default::default()
        }
    }

    pub fn insert(&mut self, hash: Hash, height: u64) {
        // The first inclusion is the one remembered (a hash is never included twice).
        let k = key(&hash);
        if let std::collections::hash_map::Entry::Vacant(e) = self.by_hash.entry(k) {
            e.insert(height);
            self.by_height.entry(height).or_default().push(k);
        }
    }

    pub fn height_of(&self, hash: &Hash) -> Option<u64> {
        self.by_hash.get(&key(hash)).copied()
    }

    /// Forgets inclusions that can no longer be replayed once `latest` is decided.
    pub fn prune(&mut self, latest: u64) {
        let keep_from = latest.saturating_sub(self.max_ttl) + 1;
        let old: Vec<u64> = self.by_height.range(..keep_from).map(|(h, _)| *h).collect();
        for h in old {
            if let Some(keys) = self.by_height.remove(&h) {
                for k in keys {
                    self.by_hash.remove(&k);
                }
            }
        }
        // Give back the table's spare room once it is far larger than what it holds.
        if self.by_hash.capacity() > 4 * self.by_hash.len().max(1024) {
            self.by_hash.shrink_to_fit();
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

    #[test]
    fn a_hash_differing_only_in_its_second_half_is_the_same_entry() {
        let mut s = IncludedSet::new(10);
        let a = Hash::tagged(b"x", &[b"a"]);
        let mut b = a;
        b.0[31] ^= 1;
        let mut c = a;
        c.0[15] ^= 1;
        s.insert(a, 1);
        s.insert(b, 2);
        assert_eq!(s.len(), 1);
        assert_eq!(s.height_of(&b), Some(1));
        assert_eq!(s.height_of(&c), None);
    }
}
