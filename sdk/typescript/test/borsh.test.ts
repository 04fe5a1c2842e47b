import { describe, expect, it } from 'vitest';
import {
  BLOCK_HEADER_BYTES,
  BorshError,
  BundleDecodeError,
  decodeBatchProof,
  decodeBundle,
  decodeCommitCertificate,
  fromHex,
  merklePath,
  merkleRoot,
  leafHash,
  Reader,
  rootFromPath,
  Writer,
} from '../src/index.js';
import { validBatch, vectors } from './fixtures.js';

/** A small seeded PRNG (xorshift32), so a failure can be replayed. */
function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 2 ** 32;
  };
}

describe('Borsh', () => {
  it('writes little-endian integers and refuses out-of-range ones', () => {
    const w = new Writer(1).u8(1).u32(0x01020304).u64(2n ** 64n - 1n).i64(-1n);
    expect(Array.from(w.finish())).toEqual([1, 4, 3, 2, 1, ...Array(8).fill(255), ...Array(8).fill(255)]);
    expect(() => new Writer().u64(2n ** 64n)).toThrow(RangeError);
    expect(() => new Writer().u64(-1n)).toThrow(RangeError);
    expect(() => new Writer().i64(2n ** 63n)).toThrow(RangeError);
    expect(() => new Writer().u32(2 ** 32)).toThrow(RangeError);
  });

  it('refuses option tags, enum tags and trailing bytes Borsh refuses', () => {
    expect(() => new Reader(Uint8Array.of(2)).option((r) => r.u8())).toThrow(BorshError);
    expect(() => new Reader(Uint8Array.of(5)).tag(5, 'Witness')).toThrow(/variant 5/);
    const r = new Reader(Uint8Array.of(1, 2));
    r.u8();
    expect(() => r.end()).toThrow(/1 bytes left over/);
  });

  it('refuses every truncation of valid encodings', () => {
    const b = validBatch(2n, 7n);
    const cases: [Uint8Array, (x: Uint8Array) => unknown][] = [
      [fromHex(b.proof as string), decodeBatchProof],
      [fromHex(b.certificate as string), decodeCommitCertificate],
      [fromHex(vectors.bundles[0]!.encoding), (x) => decodeBundle(x)],
    ];
    for (const [bytes, decode] of cases) {
      decode(bytes);
      for (let n = 0; n < bytes.length; n++) expect(() => decode(bytes.subarray(0, n))).toThrow();
    }
  });

  it('never fails on garbage with anything but a decode error', () => {
    const next = rng(215);
    const known = (e: unknown) => e instanceof BorshError || e instanceof BundleDecodeError;
    for (let i = 0; i < 3000; i++) {
      const len = Math.floor(next() * 400);
      const bytes = Uint8Array.from({ length: len }, () => Math.floor(next() * 256));
      // Small counts and tags now and then, so decoding gets deep (a batch proof's witness tag
      // comes after the header and the u64 leaf count).
      const deep = BLOCK_HEADER_BYTES + 8;
      if (len > deep + 8 && next() < 0.5) bytes.set([0, 0, 0, 0], deep);
      for (const decode of [decodeBatchProof, decodeCommitCertificate, (x: Uint8Array) => decodeBundle(x)]) {
        try {
          decode(bytes);
        } catch (e) {
          if (!known(e)) throw e;
        }
      }
    }
  });

  it('refuses a huge count before reading items', () => {
    const w = new Writer().u32(0xffff_ffff);
    expect(() => new Reader(w.finish()).vec((r) => r.fixed(32), 32)).toThrow(/cannot fit/);
  });
});

describe('Merkle paths (RFC 9162)', () => {
  const leaves = (n: number) => Array.from({ length: n }, (_, i) => leafHash(new Writer().u64(BigInt(i)).finish()));

  it('every path leads to the root, for trees of 1 to 33 leaves', () => {
    for (let n = 1; n <= 33; n++) {
      const ls = leaves(n);
      const root = merkleRoot(ls);
      for (let i = 0; i < n; i++) {
        expect(rootFromPath(ls[i]!, BigInt(i), BigInt(n), merklePath(ls, i))).toEqual(root);
      }
    }
  });

  it('a path does not prove another index, nor fit another size', () => {
    for (let n = 2; n <= 20; n++) {
      const ls = leaves(n);
      const root = merkleRoot(ls);
      for (let i = 0; i < n; i++) {
        const p = merklePath(ls, i);
        for (let j = 0; j < n; j++) {
          if (i === j) continue;
          expect(rootFromPath(ls[i]!, BigInt(j), BigInt(n), p)).not.toEqual(root);
          expect(rootFromPath(ls[j]!, BigInt(i), BigInt(n), p)).not.toEqual(root);
        }
      }
      expect(rootFromPath(ls[0]!, BigInt(n), BigInt(n), [])).toBeNull();
    }
  });
});
