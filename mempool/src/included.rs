//! Hashes included within the last `max_ttl` heights.
//!
//! A bundle included at height `h` has `valid_until <= h - 1 + max_ttl`, so it can never be
//! valid again once the chain passes `h - 1 + max_ttl`: remembering `max_ttl` heights of
//! inclusions is enough to refuse every replay.

use lockstep_bundles::hash::FastMap;
use lockstep_bundles::Hash;

/// What is remembered of an included hash: its first 96 bits. At a few thousand bundles a
/// second the window holds over a million hashes, so every byte of an entry counts. Two
/// distinct bundles share a prefix with probability about `n / 2^96` for a window of `n`
/// (about 10^-23 for a million), and finding a bundle whose hash starts like a given one is
/// a 2^96 search, so the set still answers exactly for any realistic input.
type Key = [u8; 12];

fn key(hash: &Hash) -> Key {
    let mut k = [0u8; 12];
    k.copy_from_slice(&hash.0[..12]);
    k
}

/// Inclusion heights are stored modulo 2^32 (a window is far shorter than 2^32 heights) and
/// widened again against the latest height: an entry is 16 bytes.
type Stored = u32;

/// The full height of a stored one: the latest height at or below `latest` that is congruent
/// to it modulo 2^32.
fn widen(latest: u64, stored: Stored) -> u64 {
    latest - u64::from((latest as Stored).wrapping_sub(stored))
}

/// Included hashes of the last `max_ttl` heights, with the height each was included at.
///
/// One hash table and nothing else: heights that leave the window are swept out of the table
/// in one pass every `IncludedSet::sweep_every` heights rather than tracked per height,
/// which would cost another copy of every key. Entries past the window but not yet swept are
/// never reported.
#[derive(Debug, Clone, Default)]
pub struct IncludedSet {
    max_ttl: u64,
    by_hash: FastMap<Key, Stored>,
    /// The highest height inserted or pruned at.
    latest: u64,
    /// Every entry below this height has been swept out.
    swept_below: u64,
}

impl IncludedSet {
    pub fn new(max_ttl: u64) -> IncludedSet {
        IncludedSet {
            max_ttl,
            ..Default::default()
        }
    }

    pub fn insert(&mut self, hash: Hash, height: u64) {
        self.latest = self.latest.max(height);
        // The first inclusion is the one remembered (a hash is never included twice).
        self.by_hash.entry(key(&hash)).or_insert(height as Stored);
    }

    /// The height `hash` was included at, if that is within the last `max_ttl` heights.
    pub(crate) fn height_of(&self, hash: &Hash) -> Option<u64> {
        let stored = *self.by_hash.get(&key(hash))?;
        let height = widen(self.latest, stored);
        (height >= self.window_start(self.latest)).then_some(height)
    }

    /// How many heights may leave the window before they are swept out of the table.
    fn sweep_every(&self) -> u64 {
        (self.max_ttl / 16).max(1)
    }

    /// Forgets inclusions that can no longer be replayed once `latest` is decided.
    pub(crate) fn prune(&mut self, latest: u64) {
        self.latest = self.latest.max(latest);
        let keep_from = self.window_start(self.latest);
        if keep_from < self.swept_below + self.sweep_every() {
            return;
        }
        let latest = self.latest;
        self.by_hash
            .retain(|_, stored| widen(latest, *stored) >= keep_from);
        self.swept_below = keep_from;
        // Give back the table's spare room once it is far larger than what it holds.
        if self.by_hash.capacity() > 4 * self.by_hash.len().max(1024) {
            self.by_hash.shrink_to_fit();
        }
    }

    /// The first height whose inclusions must be remembered when `latest` is decided.
    pub fn window_start(&self, latest: u64) -> u64 {
        latest.saturating_sub(self.max_ttl) + 1
    }

    /// Hashes held, including those that left the window since the last sweep.
    pub(crate) fn len(&self) -> usize {
        self.by_hash.len()
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
    fn sweeps_what_left_the_window_and_never_reports_it_before() {
        let max_ttl = 64;
        let mut s = IncludedSet::new(max_ttl);
        let h = |i: u64| Hash::tagged(b"x", &[&i.to_le_bytes()]);
        for height in 1..=1_000u64 {
            s.insert(h(height), height);
            s.prune(height);
            let start = s.window_start(height);
            // Exactly the window answers, whatever has been swept so far…
            for back in 0..(max_ttl + 8).min(height) {
                let probe = height - back;
                let expect = (probe >= start).then_some(probe);
                assert_eq!(s.height_of(&h(probe)), expect, "at {height}, {probe}");
            }
            // …and at most one sweep interval of stale entries is held.
            assert!(s.len() as u64 <= max_ttl + s.sweep_every());
        }
    }

    #[test]
    fn heights_beyond_32_bits_widen_back_exactly() {
        let base = (1u64 << 32) - 3;
        let mut s = IncludedSet::new(10);
        for i in 0..8 {
            s.insert(Hash::tagged(b"x", &[&[i]]), base + u64::from(i));
        }
        s.prune(base + 7);
        for i in 0..8u8 {
            assert_eq!(
                s.height_of(&Hash::tagged(b"x", &[&[i]])),
                Some(base + u64::from(i))
            );
        }
    }

    #[test]
    fn a_hash_differing_only_after_its_first_96_bits_is_the_same_entry() {
        let mut s = IncludedSet::new(10);
        let a = Hash::tagged(b"x", &[b"a"]);
        let mut b = a;
        b.0[12] ^= 1;
        let mut c = a;
        c.0[11] ^= 1;
        s.insert(a, 1);
        s.insert(b, 2);
        assert_eq!(s.len(), 1);
        assert_eq!(s.height_of(&b), Some(1));
        assert_eq!(s.height_of(&c), None);
    }
}
