/**
 * Rollup batches (protocol §2.5): their JSON form, and verifying one against the validator
 * set the verifier holds (the genesis set, from the genesis file), trusting nothing the serving
 * node says — what
 * `lockstep_client::verify::BatchVerifier` does, check for check and in the same order.
 */

import { blockHash } from './block.js';
import { BorshError } from './borsh.js';
import { CertificateError, type CertificateErrorKind, verifyCertificateFor } from './certificate.js';
import { bytesEqual, fromHex, fromHexN, HexError, toHex } from './hex.js';
import { u32, u64 } from './ints.js';
import { ProofError, verifyRollupProof } from './rollup.js';
import {
  type BlockHeader,
  type CommitCertificate,
  decodeBatchProof,
  decodeCommitCertificate,
  type RollupEntry,
  type RollupProof,
} from './types.js';
import type { Genesis, ValidatorSet } from './validators.js';

/** One entry of a batch as JSON. */
export interface EntryJson {
  bundleHash: string;
  legIndex: number;
  rollups: bigint[];
  /** `0x` hex. */
  data: string;
}

/** What one rollup receives for one height, as JSON (`seq_getRollupBatch`, `seq_rollupBatch`). */
export interface RollupBatchJson {
  rollupId: bigint;
  height: bigint;
  blockHash: string;
  timestamp: bigint;
  entries: EntryJson[];
  /** `0x` + hex of `borsh(BatchProof)`. */
  proof: string;
  /** `0x` + hex of `borsh(CommitCertificate)`. */
  certificate: string;
}

/** A batch in protocol types. */
export interface RollupBatch {
  rollupId: bigint;
  height: bigint;
  header: BlockHeader;
  entries: RollupEntry[];
  proof: RollupProof;
  certificate: CommitCertificate;
}

/**
 * Why a batch was not accepted. `kind` names the check, as the Rust client's error does:
 * `malformed` (hex, Borsh or JSON shape), `mismatch:blockHash` / `mismatch:timestamp` (the JSON
 * claims what the signed header does not say), `heightMismatch`, `wrongChain`,
 * `otherValidatorSet` (the header was decided by another validator set than the one held: the
 * set changed, and the verifier must learn the updates rather than try its set on the
 * certificate), `certificate:<why>`, `foreignEntry`, `proof` (the completeness proof).
 */
export type VerifyErrorKind =
  | 'malformed'
  | 'mismatch:blockHash'
  | 'mismatch:timestamp'
  | 'heightMismatch'
  | 'wrongChain'
  | 'otherValidatorSet'
  | `certificate:${CertificateErrorKind}`
  | 'foreignEntry'
  | 'proof';

export class VerifyError extends Error {
  override name = 'VerifyError';
  constructor(
    readonly kind: VerifyErrorKind,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

const malformed = (what: string, e: unknown): VerifyError =>
  new VerifyError('malformed', `malformed batch: ${what}: ${e instanceof Error ? e.message : String(e)}`, { cause: e });

function field(o: Record<string, unknown>, k: string, what: string): unknown {
  if (!(k in o)) throw new Error(`${what}: missing field \`${k}\``);
  return o[k];
}

function obj(v: unknown, what: string): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error(`${what}: expected an object`);
  return v as Record<string, unknown>;
}

function int(v: unknown, what: string): bigint {
  if (typeof v !== 'bigint' && typeof v !== 'number') throw new Error(`${what}: expected an integer`);
  return u64(v, what);
}

function str(v: unknown, what: string): string {
  if (typeof v !== 'string') throw new Error(`${what}: expected a string`);
  return v;
}

/**
 * Checks the JSON shape of a batch (as parsed by [`parseJson`]: integers as bigint; safe
 * integers as numbers are taken too) and returns it typed; throws a `malformed` [`VerifyError`].
 */
export function parseRollupBatchJson(value: unknown): RollupBatchJson {
  try {
    const o = obj(value, 'batch');
    const entries = field(o, 'entries', 'batch');
    if (!Array.isArray(entries)) throw new Error('entries: expected an array');
    const blockHash = str(field(o, 'blockHash', 'batch'), 'blockHash');
    fromHexN(blockHash, 32, 'blockHash');
    return {
      rollupId: int(field(o, 'rollupId', 'batch'), 'rollupId'),
      height: int(field(o, 'height', 'batch'), 'height'),
      blockHash,
      timestamp: int(field(o, 'timestamp', 'batch'), 'timestamp'),
      entries: entries.map((e: unknown, i: number) => {
        const w = `entries[${i}]`;
        const eo = obj(e, w);
        const rollups = field(eo, 'rollups', w);
        if (!Array.isArray(rollups)) throw new Error(`${w}.rollups: expected an array`);
        const bundleHash = str(field(eo, 'bundleHash', w), `${w}.bundleHash`);
        fromHexN(bundleHash, 32, `${w}.bundleHash`);
        return {
          bundleHash,
          legIndex: u32(int(field(eo, 'legIndex', w), `${w}.legIndex`), `${w}.legIndex`),
          rollups: rollups.map((r: unknown, k: number) => int(r, `${w}.rollups[${k}]`)),
          data: str(field(eo, 'data', w), `${w}.data`),
        };
      }),
      proof: str(field(o, 'proof', 'batch'), 'proof'),
      certificate: str(field(o, 'certificate', 'batch'), 'certificate'),
    };
  } catch (e) {
    if (e instanceof VerifyError) throw e;
    throw malformed('json', e);
  }
}

/** Decodes the JSON form into protocol types (hex, then Borsh, every byte consumed); no checks yet. */
export function rollupBatchFromJson(j: RollupBatchJson): RollupBatch {
  const decode = <T>(what: string, f: () => T): T => {
    try {
      return f();
    } catch (e) {
      if (e instanceof HexError || e instanceof BorshError || e instanceof RangeError) throw malformed(what, e);
      throw e;
    }
  };
  const proof = decode('proof', () => decodeBatchProof(fromHex(j.proof, 'proof')));
  const certificate = decode('certificate', () => decodeCommitCertificate(fromHex(j.certificate, 'certificate')));
  const entries = j.entries.map((e, i) =>
    decode(`entries[${i}]`, () => ({
      bundleHash: fromHexN(e.bundleHash, 32, 'bundleHash'),
      legIndex: e.legIndex,
      rollups: [...e.rollups],
      data: fromHex(e.data, 'data'),
    })),
  );
  return { rollupId: j.rollupId, height: j.height, header: proof.header, entries, proof: proof.rollup, certificate };
}

/**
 * Checks a decoded batch: its height and chain against the header, the header's
 * `validators_hash` against the validator set's hash, the certificate against the validator
 * set, every entry's leg against the rollup, and the completeness proof against the header's
 * `rollups_root` (`RollupBatch::verify`).
 */
export function verifyRollupBatch(b: RollupBatch, chainId: bigint, validators: ValidatorSet): void {
  if (b.header.height !== b.height) {
    throw new VerifyError('heightMismatch', `batch says height ${b.height}, its header says ${b.header.height}`);
  }
  if (b.header.chainId !== chainId) {
    throw new VerifyError('wrongChain', `header is for chain ${b.header.chainId}, expected ${chainId}`);
  }
  // The header names the set that decided it; a verifier holding another set (one that missed
  // an update) must learn the updates, not try its set on the certificate.
  const held = validators.hash();
  if (!bytesEqual(b.header.validatorsHash, held)) {
    throw new VerifyError(
      'otherValidatorSet',
      `header was decided by validator set ${toHex(b.header.validatorsHash)}, this verifier holds ${toHex(held)}`,
    );
  }
  try {
    verifyCertificateFor(b.certificate, chainId, validators, b.height, blockHash(b.header));
  } catch (e) {
    if (e instanceof CertificateError) throw new VerifyError(`certificate:${e.kind}`, `certificate: ${e.message}`, { cause: e });
    throw e;
  }
  b.entries.forEach((e, i) => {
    if (e.rollups[e.legIndex] !== b.rollupId) {
      throw new VerifyError('foreignEntry', `entry ${i} does not belong to this rollup at its leg index`);
    }
  });
  try {
    verifyRollupProof(b.proof, b.header.rollupsRoot, b.rollupId, b.entries);
  } catch (e) {
    if (e instanceof ProofError) {
      throw new VerifyError('proof', `completeness proof does not match the header: ${e.message}`, { cause: e });
    }
    throw e;
  }
}

/**
 * Verifies batches for one chain, against one validator set (from the genesis file alone with
 * [`BatchVerifier.fromGenesis`]): a batch of a height another set decides is refused as
 * `otherValidatorSet`.
 */
export class BatchVerifier {
  constructor(
    readonly chainId: bigint,
    readonly validators: ValidatorSet,
  ) {}

  static fromGenesis(g: Genesis): BatchVerifier {
    return new BatchVerifier(g.chainId, g.validators);
  }

  /**
   * Parses and verifies a batch (typed JSON, or a value from [`parseJson`]): the JSON's block
   * hash and timestamp against the header, then the height, the chain, the validator set's
   * hash, the certificate, the entries and the completeness proof. Returns the batch in protocol types; throws [`VerifyError`].
   */
  verify(json: unknown): RollupBatch {
    const j = parseRollupBatchJson(json);
    const b = rollupBatchFromJson(j);
    const actual = blockHash(b.header);
    if (!bytesEqual(actual, fromHexN(j.blockHash, 32))) {
      throw new VerifyError('mismatch:blockHash', `batch claims blockHash ${j.blockHash}, the signed header says ${toHex(actual)}`);
    }
    if (b.header.timestamp !== j.timestamp) {
      throw new VerifyError(
        'mismatch:timestamp',
        `batch claims timestamp ${j.timestamp}, the signed header says ${b.header.timestamp}`,
      );
    }
    verifyRollupBatch(b, this.chainId, this.validators);
    return b;
  }
}
