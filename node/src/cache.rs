//! A small first-in-first-out cache bounded by entry count and by bytes.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;

pub struct FifoCache<K, V> {
    map: HashMap<K, (V, usize)>,
    order: VecDeque<K>,
    bytes: usize,
    max_entries: usize,
    max_bytes: usize,
}

impl<K: Hash + Eq + Clone, V: Clone> FifoCache<K, V> {
    pub fn new(max_entries: usize, max_bytes: usize) -> Self {
        FifoCache {
            map: HashMap::new(),
            order: VecDeque::new(),
            bytes: 0,
            max_entries,
            max_bytes,
        }
    }

    pub fn get(&self, k: &K) -> Option<V> {
        self.map.get(k).map(|(v, _)| v.clone())
    }

    /// Inserts `v` (about `size` bytes), evicting the oldest entries beyond either bound.
    pub fn insert(&mut self, k: K, v: V, size: usize) {
        if let Some((_, old)) = self.map.insert(k.clone(), (v, size)) {
            self.bytes -= old;
        } else {
            self.order.push_back(k);
        }
        self.bytes += size;
        while self.order.len() > self.max_entries
            || (self.bytes > self.max_bytes && self.order.len() > 1)
        {
            let Some(old) = self.order.pop_front() else {
                break;
            };
            if let Some((_, s)) = self.map.remove(&old) {
                self.bytes -= s;
            }
        }
    }

    /// Keeps only the entries whose key satisfies `keep`.
    pub fn retain(&mut self, mut keep: impl FnMut(&K) -> bool) {
        let map = &mut self.map;
        let bytes = &mut self.bytes;
        self.order.retain(|k| {
            if keep(k) {
                true
            } else {
                if let Some((_, s)) = map.remove(k) {
                    *bytes -= s;
                }
                false
            }
        });
    }

    pub fn len(&self) -> usize {
        self.order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_oldest_beyond_count_or_bytes() {
        let mut c = FifoCache::new(3, 100);
        for i in 0..5u32 {
            c.insert(i, i, 10);
        }
        assert_eq!(c.len(), 3);
        assert_eq!(c.get(&1), None);
        assert_eq!(c.get(&4), Some(4));
        c.insert(9, 9, 95);
        assert_eq!(c.len(), 1, "byte bound evicts everything older");
        assert_eq!(c.bytes(), 95);
        c.retain(|k| *k != 9);
        assert!(c.is_empty());
        assert_eq!(c.bytes(), 0);
    }
}
