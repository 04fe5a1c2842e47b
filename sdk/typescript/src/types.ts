/**
 * The protocol's binary structures (protocol §1, §2) and their Borsh codecs. `u64`/`i64` are
 * `bigint`; hashes, keys, addresses and signatures are `Uint8Array`s of their fixed sizes.
 */

import { Reader, Writer, decodeAll } from './borsh.js';

export const HASH_BYTES = 32;
export const ADDRESS_BYTES = 20;
export const PUBLIC_KEY_BYTES = 32;
export const SIGNATURE_BYTES = 64;
/** `borsh(BlockHeader)`'s size: every field is fixed-size. */
export const BLOCK_HEADER_BYTES = 8 + 8 + 8 + ADDRESS_BYTES + HASH_BYTES + 4 + HASH_BYTES + HASH_BYTES + HASH_BYTES;

/** One rollup's part of a bundle. */
export interface Leg {
  rollupId: bigint;
  data: Uint8Array;
}

/** What the signer signs (through its hash). */
export interface BundleBody {
  chainId: bigint;
  /** The signer's ed25519 public key. */
  signer: Uint8Array;
  nonce: bigint;
  /** The last height the bundle may be included at. */
  validUntil: bigint;
  legs: Leg[];
}

/** A bundle with its ed25519 signature over the bundle hash. */
export interface SignedBundle {
  body: BundleBody;
  signature: Uint8Array;
}

/** A block header ([`BLOCK_HEADER_BYTES`], 176 bytes encoded). */
export interface BlockHeader {
  chainId: bigint;
  height: bigint;
  /** Milliseconds since the Unix epoch, the proposer's clock. */
  timestamp: bigint;
  proposer: Uint8Array;
  parentHash: Uint8Array;
  bundleCount: number;
  bundlesRoot: Uint8Array;
  rollupsRoot: Uint8Array;
  /**
   * The hash of the validator set that decides this height ([`validatorSetHash`]): a client
   * sees from the header alone when the set changed.
   */
  validatorsHash: Uint8Array;
}

/** One validator's precommit signature in a certificate. */
export interface CommitSig {
  address: Uint8Array;
  signature: Uint8Array;
}

/** The quorum of precommits that decided a block. */
export interface CommitCertificate {
  height: bigint;
  round: number;
  blockHash: Uint8Array;
  signatures: CommitSig[];
}

/** One leg as a rollup receives it. */
export interface RollupEntry {
  bundleHash: Uint8Array;
  legIndex: number;
  /** The rollup id of every leg of the bundle, in leg order. */
  rollups: bigint[];
  data: Uint8Array;
}

/** A leaf of the rollups tree with its audit path. */
export interface Neighbor {
  index: bigint;
  rollupId: bigint;
  commitment: Uint8Array;
  path: Uint8Array[];
}

/** How a proof shows the rollup's place in the tree (enum variants 0–4). */
export type Witness =
  | { kind: 'present'; index: bigint; path: Uint8Array[] }
  | { kind: 'empty' }
  | { kind: 'before'; neighbor: Neighbor }
  | { kind: 'after'; neighbor: Neighbor }
  | { kind: 'between'; left: Neighbor; right: Neighbor };

/** Proof that a rollup's entries for one block are complete. */
export interface RollupProof {
  leafCount: bigint;
  witness: Witness;
}

/** The `proof` field of a batch: the header and the completeness proof. */
export interface BatchProof {
  header: BlockHeader;
  rollup: RollupProof;
}

// --- writers -------------------------------------------------------------------------------

export function writeLeg(w: Writer, l: Leg): void {
  w.u64(l.rollupId).bytes(l.data);
}

export function writeBundleBody(w: Writer, b: BundleBody): void {
  w.u64(b.chainId).fixed(b.signer, PUBLIC_KEY_BYTES).u64(b.nonce).u64(b.validUntil).vec(b.legs, writeLeg);
}

export function writeSignedBundle(w: Writer, b: SignedBundle): void {
  writeBundleBody(w, b.body);
  w.fixed(b.signature, SIGNATURE_BYTES);
}

export function writeBlockHeader(w: Writer, h: BlockHeader): void {
  w.u64(h.chainId)
    .u64(h.height)
    .u64(h.timestamp)
    .fixed(h.proposer, ADDRESS_BYTES)
    .fixed(h.parentHash, HASH_BYTES)
    .u32(h.bundleCount)
    .fixed(h.bundlesRoot, HASH_BYTES)
    .fixed(h.rollupsRoot, HASH_BYTES)
    .fixed(h.validatorsHash, HASH_BYTES);
}

export function writeCommitCertificate(w: Writer, c: CommitCertificate): void {
  w.u64(c.height)
    .u32(c.round)
    .fixed(c.blockHash, HASH_BYTES)
    .vec(c.signatures, (w, s) => w.fixed(s.address, ADDRESS_BYTES).fixed(s.signature, SIGNATURE_BYTES));
}

export function writeRollupEntry(w: Writer, e: RollupEntry): void {
  w.fixed(e.bundleHash, HASH_BYTES)
    .u32(e.legIndex)
    .vec(e.rollups, (w, r) => w.u64(r))
    .bytes(e.data);
}

const writePath = (w: Writer, path: Uint8Array[]): void => {
  w.vec(path, (w, h) => w.fixed(h, HASH_BYTES));
};

export function writeNeighbor(w: Writer, n: Neighbor): void {
  w.u64(n.index).u64(n.rollupId).fixed(n.commitment, HASH_BYTES);
  writePath(w, n.path);
}

export function writeRollupProof(w: Writer, p: RollupProof): void {
  w.u64(p.leafCount);
  const wt = p.witness;
  switch (wt.kind) {
    case 'present':
      w.u8(0).u64(wt.index);
      writePath(w, wt.path);
      break;
    case 'empty':
      w.u8(1);
      break;
    case 'before':
      w.u8(2);
      writeNeighbor(w, wt.neighbor);
      break;
    case 'after':
      w.u8(3);
      writeNeighbor(w, wt.neighbor);
      break;
    case 'between':
      w.u8(4);
      writeNeighbor(w, wt.left);
      writeNeighbor(w, wt.right);
      break;
  }
}

export function writeBatchProof(w: Writer, p: BatchProof): void {
  writeBlockHeader(w, p.header);
  writeRollupProof(w, p.rollup);
}

// --- readers -------------------------------------------------------------------------------

export function readBlockHeader(r: Reader): BlockHeader {
  return {
    chainId: r.u64(),
    height: r.u64(),
    timestamp: r.u64(),
    proposer: r.fixed(ADDRESS_BYTES),
    parentHash: r.fixed(HASH_BYTES),
    bundleCount: r.u32(),
    bundlesRoot: r.fixed(HASH_BYTES),
    rollupsRoot: r.fixed(HASH_BYTES),
    validatorsHash: r.fixed(HASH_BYTES),
  };
}

export function readCommitCertificate(r: Reader): CommitCertificate {
  return {
    height: r.u64(),
    round: r.u32(),
    blockHash: r.fixed(HASH_BYTES),
    signatures: r.vec(
      (r) => ({ address: r.fixed(ADDRESS_BYTES), signature: r.fixed(SIGNATURE_BYTES) }),
      ADDRESS_BYTES + SIGNATURE_BYTES,
    ),
  };
}

const readPath = (r: Reader): Uint8Array[] => r.vec((r) => r.fixed(HASH_BYTES), HASH_BYTES);

export function readNeighbor(r: Reader): Neighbor {
  return { index: r.u64(), rollupId: r.u64(), commitment: r.fixed(HASH_BYTES), path: readPath(r) };
}

export function readRollupProof(r: Reader): RollupProof {
  const leafCount = r.u64();
  const tag = r.tag(5, 'Witness');
  let witness: Witness;
  switch (tag) {
    case 0:
      witness = { kind: 'present', index: r.u64(), path: readPath(r) };
      break;
    case 1:
      witness = { kind: 'empty' };
      break;
    case 2:
      witness = { kind: 'before', neighbor: readNeighbor(r) };
      break;
    case 3:
      witness = { kind: 'after', neighbor: readNeighbor(r) };
      break;
    default:
      witness = { kind: 'between', left: readNeighbor(r), right: readNeighbor(r) };
  }
  return { leafCount, witness };
}

export function readBatchProof(r: Reader): BatchProof {
  return { header: readBlockHeader(r), rollup: readRollupProof(r) };
}

// --- whole values --------------------------------------------------------------------------

/** `borsh(value)` with `write`. */
export function encodeWith<T>(value: T, write: (w: Writer, v: T) => void): Uint8Array {
  const w = new Writer();
  write(w, value);
  return w.finish();
}

export const encodeBlockHeader = (h: BlockHeader): Uint8Array => encodeWith(h, writeBlockHeader);
export const encodeCommitCertificate = (c: CommitCertificate): Uint8Array => encodeWith(c, writeCommitCertificate);
export const encodeBatchProof = (p: BatchProof): Uint8Array => encodeWith(p, writeBatchProof);
export const decodeBlockHeader = (b: Uint8Array): BlockHeader => decodeAll(b, readBlockHeader);
export const decodeCommitCertificate = (b: Uint8Array): CommitCertificate => decodeAll(b, readCommitCertificate);
export const decodeBatchProof = (b: Uint8Array): BatchProof => decodeAll(b, readBatchProof);
