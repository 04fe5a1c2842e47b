/**
 * Bundles (protocol §1): build, sign, encode, decode, hash, and their JSON form — what
 * `lockstep_client::bundle` and `lockstep_bundles::bundle` do.
 */

import { BorshError, Reader, Writer } from './borsh.js';
import { publicKeyOf, randomSeed, signWithSeed, verifySignature } from './ed25519.js';
import { taggedHash } from './hash.js';
import { type BytesLike, bytesOf, fromHex, fromHexN, toHex } from './hex.js';
import { type U64Like, u64 } from './ints.js';
import { DEFAULT_LIMITS } from './limits.js';
import {
  type BundleBody,
  type SignedBundle,
  PUBLIC_KEY_BYTES,
  SIGNATURE_BYTES,
  writeBundleBody,
  writeSignedBundle,
} from './types.js';

/** Domain tag of a bundle hash. */
export const BUNDLE_HASH_TAG = 'lockstep:bundle:v1';
/** The smallest encoding a `SignedBundle` can have (no legs). */
export const MIN_ENCODED_BYTES = 8 + 32 + 8 + 8 + 4 + 64;

/** An ed25519 key made from a 32-byte secret seed; signs bundles. */
export class Signer {
  readonly publicKey: Uint8Array;
  readonly #seed: Uint8Array;

  private constructor(seed: Uint8Array) {
    this.#seed = Uint8Array.from(seed);
    this.publicKey = publicKeyOf(this.#seed);
  }

  /** The key of a 32-byte secret seed (bytes or `0x` hex). */
  static fromSeed(seed: BytesLike): Signer {
    const s = bytesOf(seed, 'seed');
    if (s.length !== 32) throw new RangeError(`seed: expected 32 bytes, got ${s.length}`);
    return new Signer(s);
  }

  /** A new random key. */
  static random(): Signer {
    return new Signer(randomSeed());
  }

  /** RFC 8032 signature of `message`. */
  sign(message: Uint8Array): Uint8Array {
    return signWithSeed(this.#seed, message);
  }
}

/** One leg to sign: rollup id, and data as bytes or `0x` hex. */
export interface LegInput {
  rollupId: U64Like;
  data: BytesLike;
}

/** What [`signBundle`] signs; the signer is the key's public key. */
export interface BundleInput {
  chainId: U64Like;
  nonce: U64Like;
  validUntil: U64Like;
  legs: LegInput[];
}

/** `borsh(BundleBody)`. */
export function encodeBundleBody(body: BundleBody): Uint8Array {
  const w = new Writer();
  writeBundleBody(w, body);
  return w.finish();
}

/** `borsh(SignedBundle)` = `borsh(BundleBody) ++ signature`. */
export function encodeBundle(bundle: SignedBundle): Uint8Array {
  const w = new Writer();
  writeSignedBundle(w, bundle);
  return w.finish();
}

/** `SHA-256("lockstep:bundle:v1" ++ borsh(body))`: the 32 bytes the signer signs. */
export function bundleHash(bundle: SignedBundle | BundleBody): Uint8Array {
  const body = 'body' in bundle ? bundle.body : bundle;
  return taggedHash(BUNDLE_HASH_TAG, encodeBundleBody(body));
}

/** The bundle hash of an encoded `SignedBundle`, from its bytes (all but the signature). */
export function bundleHashOfEncoding(encoded: Uint8Array): Uint8Array {
  return taggedHash(BUNDLE_HASH_TAG, encoded.subarray(0, Math.max(0, encoded.length - SIGNATURE_BYTES)));
}

/** Builds the body of `input` for `signer` and signs its hash (as `lockstep_client::bundle::sign`). */
export function signBundle(signer: Signer, input: BundleInput): SignedBundle {
  const body: BundleBody = {
    chainId: u64(input.chainId, 'chainId'),
    signer: Uint8Array.from(signer.publicKey),
    nonce: u64(input.nonce, 'nonce'),
    validUntil: u64(input.validUntil, 'validUntil'),
    legs: input.legs.map((l, i) => ({
      rollupId: u64(l.rollupId, `legs[${i}].rollupId`),
      data: Uint8Array.from(bytesOf(l.data, `legs[${i}].data`)),
    })),
  };
  return { body, signature: signer.sign(bundleHash(body)) };
}

/** Whether the bundle's signature verifies (ZIP-215) for its signer over its hash. */
export function verifyBundleSignature(bundle: SignedBundle): boolean {
  return verifySignature(bundle.body.signer, bundleHash(bundle), bundle.signature);
}

/** Why bytes are not a bundle, with the protocol code a node would answer (4004 or 4005). */
export class BundleDecodeError extends Error {
  override name = 'BundleDecodeError';
  constructor(
    readonly code: 4004 | 4005,
    message: string,
  ) {
    super(message);
  }
}

/**
 * Decodes `borsh(SignedBundle)`, refusing anything over `maxBundleBytes` first (4004), then
 * anything Borsh would not accept (4005), as `SignedBundle::decode`.
 */
export function decodeBundle(bytes: Uint8Array, maxBundleBytes = DEFAULT_LIMITS.maxBundleBytes): SignedBundle {
  if (bytes.length > maxBundleBytes) {
    throw new BundleDecodeError(4004, `bundle too large: ${bytes.length} encoded bytes, the limit is ${maxBundleBytes}`);
  }
  try {
    const r = new Reader(bytes);
    const chainId = r.u64();
    const signer = r.fixed(PUBLIC_KEY_BYTES);
    const nonce = r.u64();
    const validUntil = r.u64();
    const count = r.u32();
    // Every leg takes at least 12 bytes, and the signature 64.
    if (count > Math.floor(Math.max(0, r.left - SIGNATURE_BYTES) / 12)) throw r.error(`${count} legs cannot fit`);
    const legs = [];
    for (let i = 0; i < count; i++) legs.push({ rollupId: r.u64(), data: r.bytes() });
    const signature = r.fixed(SIGNATURE_BYTES);
    r.end();
    return { body: { chainId, signer, nonce, validUntil, legs }, signature };
  } catch (e) {
    if (e instanceof BorshError) throw new BundleDecodeError(4005, `not decodable as a SignedBundle: ${e.message}`);
    throw e;
  }
}

/** The `seq_sendRawBundle` parameter: `0x` + hex of the Borsh encoding. */
export function toRawHex(bundle: SignedBundle): string {
  return toHex(encodeBundle(bundle));
}

/** One leg as `seq_sendBundle` takes it. */
export interface LegJson {
  rollupId: bigint;
  data: string;
}

/** A signed bundle as a JSON object (`seq_sendBundle`); u64 fields as bigint. */
export interface BundleJson {
  chainId: bigint;
  signer: string;
  nonce: bigint;
  validUntil: bigint;
  legs: LegJson[];
  signature: string;
}

/** The `seq_sendBundle` parameter. */
export function toBundleJson(bundle: SignedBundle): BundleJson {
  const b = bundle.body;
  return {
    chainId: b.chainId,
    signer: toHex(b.signer),
    nonce: b.nonce,
    validUntil: b.validUntil,
    legs: b.legs.map((l) => ({ rollupId: l.rollupId, data: toHex(l.data) })),
    signature: toHex(bundle.signature),
  };
}

/** Parses the JSON form; the error names the field that is wrong. */
export function fromBundleJson(j: BundleJson): SignedBundle {
  return {
    body: {
      chainId: u64(j.chainId, 'chainId'),
      signer: fromHexN(j.signer, PUBLIC_KEY_BYTES, 'signer'),
      nonce: u64(j.nonce, 'nonce'),
      validUntil: u64(j.validUntil, 'validUntil'),
      legs: j.legs.map((l, i) => ({
        rollupId: u64(l.rollupId, `legs[${i}].rollupId`),
        data: fromHex(l.data, `legs[${i}].data`),
      })),
    },
    signature: fromHexN(j.signature, SIGNATURE_BYTES, 'signature'),
  };
}
