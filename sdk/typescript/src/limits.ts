/** The protocol limits fixed in the genesis file (protocol §1.3). */

export interface Limits {
  /** Most legs in a bundle (at least 1 is required). */
  maxLegs: number;
  /** Largest `borsh(SignedBundle)`. */
  maxBundleBytes: number;
  /** Largest sum of the encoded bundles of one block. */
  maxBlockBytes: number;
  /** How far `validUntil` may lie beyond the latest decided height. */
  maxTtl: bigint;
}

export const DEFAULT_LIMITS: Readonly<Limits> = Object.freeze({
  maxLegs: 16,
  maxBundleBytes: 131_072,
  maxBlockBytes: 4 * 1024 * 1024,
  maxTtl: 3600n,
});

/** Checks the limits are usable, as a node checks its genesis; throws naming the bad field. */
export function validateLimits(l: Limits): void {
  if (l.maxLegs < 1) throw new Error('max_legs must be at least 1');
  if (l.maxBundleBytes < 128) throw new Error('max_bundle_bytes must be at least 128');
  if (l.maxBlockBytes < l.maxBundleBytes) throw new Error('max_block_bytes must be at least max_bundle_bytes');
  if (l.maxTtl < 1n) throw new Error('max_ttl must be at least 1');
}
