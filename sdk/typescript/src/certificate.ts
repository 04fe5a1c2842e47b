/** Vote sign bytes and commit certificates (protocol §2.3). */

import { Writer } from './borsh.js';
import { verifySignature } from './ed25519.js';
import { ascii } from './hash.js';
import { bytesEqual, toHex } from './hex.js';
import type { CommitCertificate } from './types.js';
import type { ValidatorSet } from './validators.js';

/** The vote tag's 16 bytes. */
export const VOTE_TAG = 'lockstep:vote:v1';

export const PREVOTE = 0;
export const PRECOMMIT = 1;

/**
 * `borsh(tag as [u8; 16], chain_id u64, kind u8, height u64, round i64, value Option<[u8; 32]>,
 * validator [u8; 20])`: 94 bytes with a value, 62 for nil.
 */
export function voteSignBytes(
  chainId: bigint,
  kind: typeof PREVOTE | typeof PRECOMMIT,
  height: bigint,
  round: bigint,
  value: Uint8Array | null,
  validator: Uint8Array,
): Uint8Array {
  return new Writer(96)
    .raw(ascii(VOTE_TAG))
    .u64(chainId)
    .u8(kind)
    .u64(height)
    .i64(round)
    .option(value, (w, v) => w.fixed(v, 32))
    .fixed(validator, 20)
    .finish();
}

export type CertificateErrorKind =
  | 'unknownValidator'
  | 'duplicateSigner'
  | 'badSignature'
  | 'noQuorum'
  | 'wrongHeight'
  | 'wrongBlock';

/** Why a certificate does not prove what it was asked to. */
export class CertificateError extends Error {
  override name = 'CertificateError';
  constructor(
    readonly kind: CertificateErrorKind,
    message: string,
  ) {
    super(message);
  }
}

/**
 * Checks that the signatures, in order, are by distinct validators of the set, each a valid
 * precommit for `(height, round, blockHash)` on `chainId`, and together a quorum.
 */
export function verifyCertificate(cert: CommitCertificate, chainId: bigint, validators: ValidatorSet): void {
  const seen = new Set<string>();
  let power = 0n;
  for (const s of cert.signatures) {
    const who = toHex(s.address);
    const v = validators.get(s.address);
    if (!v) throw new CertificateError('unknownValidator', `signer ${who} is not in the validator set`);
    if (seen.has(who)) throw new CertificateError('duplicateSigner', `validator ${who} signed twice`);
    seen.add(who);
    const msg = voteSignBytes(chainId, PRECOMMIT, cert.height, BigInt(cert.round), cert.blockHash, s.address);
    if (!verifySignature(v.publicKey, msg, s.signature)) {
      throw new CertificateError('badSignature', `invalid signature from validator ${who}`);
    }
    power += v.votingPower;
  }
  if (!validators.isQuorum(power)) {
    throw new CertificateError(
      'noQuorum',
      `signatures carry ${power} of ${validators.totalPower} voting power, more than 2/3 is needed`,
    );
  }
}

/** [`verifyCertificate`], after checking it is for `height` and `blockHash`. */
export function verifyCertificateFor(
  cert: CommitCertificate,
  chainId: bigint,
  validators: ValidatorSet,
  height: bigint,
  blockHash: Uint8Array,
): void {
  if (cert.height !== height) {
    throw new CertificateError('wrongHeight', `certificate is for height ${cert.height}, expected ${height}`);
  }
  if (!bytesEqual(cert.blockHash, blockHash)) {
    throw new CertificateError(
      'wrongBlock',
      `certificate is for block ${toHex(cert.blockHash)}, expected ${toHex(blockHash)}`,
    );
  }
  verifyCertificate(cert, chainId, validators);
}
