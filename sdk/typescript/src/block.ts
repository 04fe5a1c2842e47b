/** Block hashes and the bundles root (protocol §2.1). */

import { Writer } from './borsh.js';
import { taggedHash } from './hash.js';
import { type BlockHeader, encodeBlockHeader } from './types.js';

export const HEADER_TAG = 'lockstep:header:v1';
export const BUNDLES_TAG = 'lockstep:bundles:v1';

/** `H("lockstep:header:v1", borsh(header))`. */
export function blockHash(header: BlockHeader): Uint8Array {
  return taggedHash(HEADER_TAG, encodeBlockHeader(header));
}

/** `H("lockstep:bundles:v1", u64 count, hash_1, …, hash_count)`. */
export function bundlesRoot(hashes: Uint8Array[]): Uint8Array {
  return taggedHash(BUNDLES_TAG, new Writer(8).u64(BigInt(hashes.length)).finish(), ...hashes);
}
