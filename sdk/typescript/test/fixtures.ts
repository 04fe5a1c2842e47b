// The Rust side's vectors (client/src/sdk_fixtures.rs writes them; a Rust test fails when
// this file is not what the Rust code produces).
import { readFileSync } from 'node:fs';
import { parseJson } from '../src/index.js';

export interface BundleVector {
  name: string;
  seed: string;
  chainId: bigint;
  nonce: bigint;
  validUntil: bigint;
  legs: { rollupId: bigint; data: string }[];
  signer: string;
  body: string;
  hash: string;
  signature: string;
  encoding: string;
  json: {
    chainId: bigint;
    signer: string;
    nonce: bigint;
    validUntil: bigint;
    legs: { rollupId: bigint; data: string }[];
    signature: string;
  };
}

export interface Vectors {
  bundles: BundleVector[];
  undecodableBundles: { name: string; encoding: string; maxBundleBytes: bigint; code: bigint }[];
  signatures: { name: string; publicKey: string; message: string; signature: string; valid: boolean }[];
  publicKeys: { publicKey: string; valid: boolean }[];
  votes: {
    chainId: bigint;
    kind: bigint;
    height: bigint;
    round: bigint;
    value: string | null;
    validator: string;
    bytes: string;
  }[];
  addresses: { publicKey: string; address: string }[];
  genesis: unknown;
  batches: {
    valid: { witness: string; batch: Record<string, unknown> }[];
    tampered: { name: string; verifierChainId: bigint; batch: Record<string, unknown>; error: string }[];
  };
}

export const vectors = parseJson(
  readFileSync(new URL('./fixtures/vectors.json', import.meta.url), 'utf8'),
) as Vectors;

/** A deep copy (bigints kept). */
export function clone<T>(v: T): T {
  return structuredClone(v);
}

/** The honest batch of `rollupId` at `height`. */
export function validBatch(height: bigint, rollupId: bigint): Record<string, unknown> {
  const b = vectors.batches.valid.find((v) => v.batch.height === height && v.batch.rollupId === rollupId);
  if (!b) throw new Error(`no batch for rollup ${rollupId} at ${height} in the vectors`);
  return clone(b.batch);
}
