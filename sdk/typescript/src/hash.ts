/** SHA-256 and the protocol's domain-separated hashes (protocol §0). */

import { sha256 } from '@noble/hashes/sha2.js';

export { sha256 };

const encoder = new TextEncoder();

/** `SHA-256(tag ++ parts…)`, the tag's ASCII bytes first and no separators. */
export function taggedHash(tag: string, ...parts: Uint8Array[]): Uint8Array {
  const h = sha256.create();
  h.update(encoder.encode(tag));
  for (const p of parts) h.update(p);
  return h.digest();
}

/** The 32 zero bytes (the parent of height 1, the Merkle root of no leaves). */
export const ZERO_HASH: Uint8Array = new Uint8Array(32);

/** The ASCII bytes of a tag. */
export function ascii(s: string): Uint8Array {
  return encoder.encode(s);
}
