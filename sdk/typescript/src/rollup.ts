/**
 * A rollup's entry commitment, the rollups root and the completeness proof (protocol §2.4):
 * what `lockstep_bundles::rollup_tree` checks.
 */

import { Writer } from './borsh.js';
import { taggedHash, ZERO_HASH } from './hash.js';
import { bytesEqual } from './hex.js';
import { leafHash, rootFromPath } from './merkle.js';
import { type Neighbor, type RollupEntry, type RollupProof, writeRollupEntry } from './types.js';

export const ROLLUP_TAG = 'lockstep:rollup:v1';
export const ROLLUPS_ROOT_TAG = 'lockstep:rollups:v1';

const u64le = (v: bigint): Uint8Array => new Writer(8).u64(v).finish();

/** `H("lockstep:rollup:v1", u64 rollupId, borsh(Vec<RollupEntry>))`. */
export function commitment(rollupId: bigint, entries: RollupEntry[]): Uint8Array {
  const w = new Writer();
  w.vec(entries, writeRollupEntry);
  return taggedHash(ROLLUP_TAG, u64le(rollupId), w.finish());
}

/** `SHA-256(0x00 ++ u64 rollupId ++ commitment)`. */
export function rollupLeaf(rollupId: bigint, c: Uint8Array): Uint8Array {
  return leafHash(u64le(rollupId), c);
}

/** `H("lockstep:rollups:v1", u64 leafCount, merkleRoot)`. */
export function rollupsRoot(leafCount: bigint, merkleRoot: Uint8Array): Uint8Array {
  return taggedHash(ROLLUPS_ROOT_TAG, u64le(leafCount), merkleRoot);
}

/** Why a completeness proof does not hold. */
export class ProofError extends Error {
  override name = 'ProofError';
}

/**
 * Checks that `entries` are all of `rollupId`'s entries in the block whose header has
 * `root` as `rollups_root`; throws [`ProofError`] if not.
 */
export function verifyRollupProof(proof: RollupProof, root: Uint8Array, rollupId: bigint, entries: RollupEntry[]): void {
  const n = proof.leafCount;
  const reaches = (nb: Neighbor): boolean => {
    const r = rootFromPath(rollupLeaf(nb.rollupId, nb.commitment), nb.index, n, nb.path);
    return r !== null && bytesEqual(rollupsRoot(n, r), root);
  };
  const w = proof.witness;
  if (w.kind === 'present' && entries.length > 0) {
    const r = rootFromPath(rollupLeaf(rollupId, commitment(rollupId, entries)), w.index, n, w.path);
    if (r === null) throw new ProofError('path does not fit the tree');
    if (!bytesEqual(rollupsRoot(n, r), root)) throw new ProofError('entries are not the committed ones');
    return;
  }
  if (w.kind === 'present') throw new ProofError('rollup has entries in this block but none were given');
  if (entries.length > 0) throw new ProofError('entries given with a proof of absence');
  switch (w.kind) {
    case 'empty':
      if (n === 0n && bytesEqual(rollupsRoot(0n, ZERO_HASH), root)) return;
      throw new ProofError('block is not empty');
    case 'before': {
      const a = w.neighbor;
      if (a.index === 0n && a.rollupId > rollupId && reaches(a)) return;
      throw new ProofError('first-leaf absence proof is invalid');
    }
    case 'after': {
      const a = w.neighbor;
      if (n > 0n && a.index === n - 1n && a.rollupId < rollupId && reaches(a)) return;
      throw new ProofError('last-leaf absence proof is invalid');
    }
    case 'between': {
      const { left: a, right: b } = w;
      // Rust's `a.index.wrapping_add(1)`: u64 arithmetic.
      const adjacent = b.index === (a.index + 1n) % (1n << 64n);
      const brackets = a.rollupId < rollupId && rollupId < b.rollupId;
      if (adjacent && brackets && reaches(a) && reaches(b)) return;
      throw new ProofError('neighbour absence proof is invalid');
    }
  }
}
