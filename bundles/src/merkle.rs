//! A binary Merkle tree in the shape of RFC 6962/9162 (leaf and node hashes domain-separated,
//! left subtree = largest power of two below the size), with audit paths.

use crate::hash::Hash;

const LEAF: &[u8] = &[0];
const NODE: &[u8] = &[1];

pub fn leaf_hash(data: &[&[u8]]) -> Hash {
    let mut parts: Vec<&[u8]> = Vec::with_capacity(data.len() + 1);
    parts.push(LEAF);
    parts.extend_from_slice(data);
    Hash::tagged(b"", &parts)
}

fn node_hash(left: &Hash, right: &Hash) -> Hash {
    Hash::tagged(NODE, &[left.as_bytes(), right.as_bytes()])
}

/// Largest power of two strictly below `n` (n >= 2).
fn split(n: usize) -> usize {
    let mut k = 1;
    while k << 1 < n {
        k <<= 1;
    }
    k
}

/// The root over `leaves` (already leaf-hashed); the zero hash for no leaves.
pub fn root(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => Hash::ZERO,
        1 => leaves[0],
        n => {
            let k = split(n);
            node_hash(&root(&leaves[..k]), &root(&leaves[k..]))
        }
    }
}

/// The audit path of leaf `index`: sibling hashes from the leaf up to the root.
pub fn path(leaves: &[Hash], index: usize) -> Vec<Hash> {
    let n = leaves.len();
    if n <= 1 || index >= n {
        return Vec::new();
    }
    let k = split(n);
    if index < k {
        let mut p = path(&leaves[..k], index);
        p.push(root(&leaves[k..]));
        p
    } else {
        let mut p = path(&leaves[k..], index - k);
        p.push(root(&leaves[..k]));
        p
    }
}

/// Recomputes the root from a leaf, its index, the tree size and its audit path
/// (RFC 9162 §2.1.3.2). `None` if the path does not fit the index and size.
pub fn root_from_path(leaf: Hash, index: u64, size: u64, path: &[Hash]) -> Option<Hash> {
    if index >= size {
        return None;
    }
    let (mut fnode, mut snode) = (index, size - 1);
    let mut r = leaf;
    for p in path {
        if snode == 0 {
            return None;
        }
        if fnode & 1 == 1 || fnode == snode {
            r = node_hash(p, &r);
            while fnode & 1 == 0 && fnode != 0 {
                fnode >>= 1;
                snode >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    (snode == 0).then_some(r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn leaves(n: usize) -> Vec<Hash> {
        (0..n)
            .map(|i| leaf_hash(&[&(i as u64).to_le_bytes()]))
            .collect()
    }

    #[test]
    fn every_path_leads_to_the_root_for_small_trees() {
        for n in 1..=33 {
            let ls = leaves(n);
            let r = root(&ls);
            for i in 0..n {
                let p = path(&ls, i);
                assert_eq!(
                    root_from_path(ls[i], i as u64, n as u64, &p),
                    Some(r),
                    "n={n} i={i}"
                );
            }
        }
    }

    proptest! {
        #[test]
        fn a_path_does_not_prove_another_index(n in 2usize..40, i in 0usize..40, j in 0usize..40) {
            let ls = leaves(n);
            let i = i % n;
            let j = j % n;
            let r = root(&ls);
            let p = path(&ls, i);
            if i != j {
                prop_assert_ne!(root_from_path(ls[i], j as u64, n as u64, &p), Some(r));
                prop_assert_ne!(root_from_path(ls[j], i as u64, n as u64, &p), Some(r));
            }
            // The bare root does not bind the size; `rollup::root_of` commits to it.
        }
    }
}
