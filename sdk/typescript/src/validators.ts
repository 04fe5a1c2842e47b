/** Validators, the validator set and the genesis file, the trust root (protocol §2.2, §4.1). */

import { Writer } from './borsh.js';
import { isValidPublicKey } from './ed25519.js';
import { sha256, taggedHash } from './hash.js';
import { bytesEqual, compareBytes, fromHexN, toHex } from './hex.js';
import { type U64Like, U64_MAX, u32, u64 } from './ints.js';
import { parseJson } from './json.js';
import { DEFAULT_LIMITS, type Limits, validateLimits } from './limits.js';

/** Domain tag of a validator set's hash (the header's `validators_hash`). */
export const VALIDATORS_TAG = 'lockstep:validators:v1';

/** A validator's address: the first 20 bytes of `SHA-256(public key)`. */
export function addressOf(publicKey: Uint8Array): Uint8Array {
  return sha256(publicKey).slice(0, 20);
}

/** One validator: its key and voting power. */
export interface Validator {
  address: Uint8Array;
  publicKey: Uint8Array;
  votingPower: bigint;
}

/** The validators, sorted by address, with their total voting power. */
export class ValidatorSet {
  readonly validators: readonly Validator[];
  readonly totalPower: bigint;
  #hash: Uint8Array | undefined;

  /** Refuses an empty set, zero power, a key twice and a total whose triple exceeds a u64. */
  constructor(validators: { publicKey: Uint8Array; votingPower: U64Like }[]) {
    if (validators.length === 0) throw new Error('the validator set is empty');
    const vs: Validator[] = validators.map((v, i) => ({
      address: addressOf(v.publicKey),
      publicKey: Uint8Array.from(v.publicKey),
      votingPower: u64(v.votingPower, `validators[${i}].votingPower`),
    }));
    vs.sort((a, b) => compareBytes(a.address, b.address));
    let total = 0n;
    vs.forEach((v, i) => {
      if (v.votingPower === 0n) throw new Error(`validator ${toHex(v.address)} has zero voting power`);
      if (i > 0 && bytesEqual(vs[i - 1]!.address, v.address)) throw new Error(`validator ${toHex(v.address)} appears twice`);
      total += v.votingPower;
    });
    // Three times the total must fit in a u64, as the Rust side keeps quorum arithmetic exact.
    if (total * 3n > U64_MAX) throw new Error('total voting power overflows');
    this.validators = Object.freeze(vs);
    this.totalPower = total;
  }

  get size(): number {
    return this.validators.length;
  }

  /** The validator with this address, if any. */
  get(address: Uint8Array): Validator | undefined {
    let lo = 0;
    let hi = this.validators.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const c = compareBytes(this.validators[mid]!.address, address);
      if (c === 0) return this.validators[mid];
      if (c < 0) lo = mid + 1;
      else hi = mid;
    }
    return undefined;
  }

  /** Whether `power` is more than two thirds of the total. */
  isQuorum(power: bigint): boolean {
    return power * 3n > this.totalPower * 2n;
  }

  /** The set's hash, as the headers of the heights it decides carry it ([`validatorSetHash`]). */
  hash(): Uint8Array {
    this.#hash ??= validatorSetHash(this);
    return Uint8Array.from(this.#hash);
  }

  /** The round-robin proposer of `(height, round)`. */
  proposer(height: bigint, round: number): Validator {
    const n = BigInt(this.validators.length);
    return this.validators[Number((height + BigInt(round)) % (1n << 64n) % n)]!;
  }
}

/**
 * A validator set's hash, the header's `validators_hash` (`ValidatorSet::hash`):
 * `SHA-256("lockstep:validators:v1" ++ u64 count ++ (public_key ++ u64 voting_power)…)`, the
 * validators in address order, integers little-endian.
 */
export function validatorSetHash(set: ValidatorSet): Uint8Array {
  const w = new Writer(8 + set.validators.length * 40).u64(BigInt(set.validators.length));
  for (const v of set.validators) w.fixed(v.publicKey, 32).u64(v.votingPower);
  return taggedHash(VALIDATORS_TAG, w.finish());
}

/** A parsed, checked `genesis.json`. */
export interface Genesis {
  chainId: bigint;
  validators: ValidatorSet;
  limits: Limits;
}

function record(v: unknown, what: string, fields: readonly string[]): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error(`${what}: expected an object`);
  for (const k of Object.keys(v)) {
    if (!fields.includes(k)) throw new Error(`${what}: unknown field \`${k}\``);
  }
  return v as Record<string, unknown>;
}

function integer(v: unknown, what: string): bigint {
  if (typeof v !== 'bigint' && typeof v !== 'number') throw new Error(`${what}: expected an integer`);
  return u64(v, what);
}

/**
 * Parses `genesis.json` (snake-case, unknown fields refused) and checks it as a node does:
 * usable limits, a non-empty set of valid ed25519 keys with non-zero power, no key twice.
 * Give the already parsed value from [`parseJson`] (u64 values as bigint) or the file's text.
 */
export function parseGenesis(input: unknown): Genesis {
  const g = record(typeof input === 'string' ? parseJson(input) : input, 'genesis', [
    'chain_id',
    'validators',
    'limits',
  ]);
  const chainId = integer(g.chain_id, 'genesis chain_id');
  if (!Array.isArray(g.validators)) throw new Error('genesis validators: expected an array');
  const vals = g.validators.map((v: unknown, i: number) => {
    const o = record(v, `genesis validators[${i}]`, ['public_key', 'voting_power']);
    const pk = fromHexN(o.public_key as string, 32, `genesis validators[${i}].public_key`);
    if (!isValidPublicKey(pk)) throw new Error(`genesis validators[${i}].public_key is not an ed25519 public key`);
    return { publicKey: pk, votingPower: integer(o.voting_power, `genesis validators[${i}].voting_power`) };
  });
  let limits: Limits = { ...DEFAULT_LIMITS };
  if (g.limits !== undefined) {
    const l = record(g.limits, 'genesis limits', ['max_legs', 'max_bundle_bytes', 'max_block_bytes', 'max_ttl']);
    const need = (k: string): bigint | number => {
      if (l[k] === undefined) throw new Error(`genesis limits: missing field \`${k}\``);
      return l[k] as bigint | number;
    };
    limits = {
      maxLegs: u32(need('max_legs'), 'genesis limits.max_legs'),
      maxBundleBytes: u32(need('max_bundle_bytes'), 'genesis limits.max_bundle_bytes'),
      maxBlockBytes: u32(need('max_block_bytes'), 'genesis limits.max_block_bytes'),
      maxTtl: integer(need('max_ttl'), 'genesis limits.max_ttl'),
    };
  }
  validateLimits(limits);
  return { chainId, validators: new ValidatorSet(vals), limits };
}
