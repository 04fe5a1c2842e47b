/**
 * The binary Merkle tree of RFC 9162 §2.1 (leaf and node hashes separated by a 0x00/0x01
 * prefix), as the rollups tree uses it (protocol §2.4).
 */

import { sha256 } from './hash.js';

const LEAF = Uint8Array.of(0);
const NODE = Uint8Array.of(1);

/** `SHA-256(0x00 ++ parts…)`. */
export function leafHash(...parts: Uint8Array[]): Uint8Array {
  const h = sha256.create().update(LEAF);
  for (const p of parts) h.update(p);
  return h.digest();
}

/** `SHA-256(0x01 ++ left ++ right)`. */
export function nodeHash(left: Uint8Array, right: Uint8Array): Uint8Array {
  return sha256.create().update(NODE).update(left).update(right).digest();
}

/** Largest power of two strictly below `n` (n >= 2). */
function split(n: number): number {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

/** The root over leaf hashes; 32 zero bytes for none. */
export function merkleRoot(leaves: Uint8Array[]): Uint8Array {
  if (leaves.length === 0) return new Uint8Array(32);
  if (leaves.length === 1) return leaves[0]!;
  const k = split(leaves.length);
  return nodeHash(merkleRoot(leaves.slice(0, k)), merkleRoot(leaves.slice(k)));
}

/** The audit path of leaf `index`: sibling hashes from the leaf up. */
export function merklePath(leaves: Uint8Array[], index: number): Uint8Array[] {
  const n = leaves.length;
  if (n <= 1 || index >= n) return [];
  const k = split(n);
  if (index < k) return [...merklePath(leaves.slice(0, k), index), merkleRoot(leaves.slice(k))];
  return [...merklePath(leaves.slice(k), index - k), merkleRoot(leaves.slice(0, k))];
}

/**
 * Recomputes the root from a leaf, its index, the tree size and its audit path (RFC 9162
 * §2.1.3.2); `null` if the path does not fit the index and size.
 */
export function rootFromPath(leaf: Uint8Array, index: bigint, size: bigint, path: Uint8Array[]): Uint8Array | null {
  if (index >= size) return null;
  let fn = index;
  let sn = size - 1n;
  let r = leaf;
  for (const p of path) {
    if (sn === 0n) return null;
    if ((fn & 1n) === 1n || fn === sn) {
      r = nodeHash(p, r);
      while ((fn & 1n) === 0n && fn !== 0n) {
        fn >>= 1n;
        sn >>= 1n;
      }
    } else {
      r = nodeHash(r, p);
    }
    fn >>= 1n;
    sn >>= 1n;
  }
  return sn === 0n ? r : null;
}
