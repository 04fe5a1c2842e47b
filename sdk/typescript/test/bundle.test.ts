import { describe, expect, it } from 'vitest';
import {
  BundleDecodeError,
  bundleHash,
  bundleHashOfEncoding,
  decodeBundle,
  encodeBundle,
  encodeBundleBody,
  fromBundleJson,
  fromHex,
  HexError,
  Signer,
  signBundle,
  toBundleJson,
  toHex,
  toRawHex,
  verifyBundleSignature,
} from '../src/index.js';
import { vectors } from './fixtures.js';

describe('bundles, against the Rust vectors', () => {
  it('has the vectors, the protocol example among them', () => {
    expect(vectors.bundles.length).toBeGreaterThanOrEqual(5);
    expect(vectors.bundles[0]!.hash).toBe('0x4f58b7685839203baf12198a924525d0413ac282fe6c0dded6ef48f143d8ec2d');
  });

  for (const v of vectors.bundles) {
    it(`signs "${v.name}" to the same bytes, hash and signature`, () => {
      const signer = Signer.fromSeed(v.seed);
      expect(toHex(signer.publicKey)).toBe(v.signer);
      const b = signBundle(signer, { chainId: v.chainId, nonce: v.nonce, validUntil: v.validUntil, legs: v.legs });
      expect(toHex(encodeBundleBody(b.body))).toBe(v.body);
      expect(toHex(bundleHash(b))).toBe(v.hash);
      expect(toHex(b.signature)).toBe(v.signature);
      expect(toHex(encodeBundle(b))).toBe(v.encoding);
      expect(toRawHex(b)).toBe(v.encoding);
      expect(toBundleJson(b)).toEqual(v.json);
      expect(verifyBundleSignature(b)).toBe(true);
    });

    it(`decodes "${v.name}" back, from bytes and from JSON`, () => {
      const bytes = fromHex(v.encoding);
      const b = decodeBundle(bytes);
      expect(toHex(encodeBundle(b))).toBe(v.encoding);
      expect(toHex(bundleHashOfEncoding(bytes))).toBe(v.hash);
      expect(toHex(encodeBundle(fromBundleJson(v.json)))).toBe(v.encoding);
      expect(b.body.chainId).toBe(v.chainId);
      expect(b.body.nonce).toBe(v.nonce);
    });
  }

  for (const u of vectors.undecodableBundles) {
    it(`refuses "${u.name}" with ${u.code}, as the Rust decoder`, () => {
      let err: unknown;
      try {
        decodeBundle(fromHex(u.encoding), Number(u.maxBundleBytes));
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(BundleDecodeError);
      expect((err as BundleDecodeError).code).toBe(Number(u.code));
    });
  }

  it('keeps u64 fields beyond 2^53 exact, and refuses unsafe numbers', () => {
    const v = vectors.bundles.find((b) => b.name.includes('2^53'))!;
    expect(v.nonce).toBe(2n ** 64n - 1n);
    const s = Signer.fromSeed(v.seed);
    expect(() => signBundle(s, { chainId: 1, nonce: 2 ** 60, validUntil: 1, legs: [] })).toThrow(/safe integer/);
    expect(() => signBundle(s, { chainId: 1, nonce: -1, validUntil: 1, legs: [] })).toThrow(RangeError);
    expect(() => signBundle(s, { chainId: 2n ** 64n, nonce: 0, validUntil: 1, legs: [] })).toThrow(/u64/);
  });

  it('does not verify a bundle whose body changed after signing', () => {
    const b = decodeBundle(fromHex(vectors.bundles[0]!.encoding));
    b.body.legs[0]!.data = Uint8Array.of(9);
    expect(verifyBundleSignature(b)).toBe(false);
  });

  it('names the bad field of a JSON bundle', () => {
    const j = { ...vectors.bundles[0]!.json, legs: [{ rollupId: 1n, data: 'zz' }] };
    expect(() => fromBundleJson(j)).toThrow(/legs\[0\]\.data/);
    expect(() => fromBundleJson({ ...vectors.bundles[0]!.json, signature: '0x00' })).toThrow(/signature: expected 64 bytes/);
  });

  it('reads hex in either case with 0x or 0X, and refuses the rest', () => {
    expect(fromHex('0XaBcD')).toEqual(Uint8Array.of(0xab, 0xcd));
    expect(toHex(Uint8Array.of(0xab, 0x01))).toBe('0xab01');
    expect(toHex(new Uint8Array())).toBe('0x');
    for (const bad of ['abcd', '0xabc', '0xzz', '0x 1']) expect(() => fromHex(bad)).toThrow(HexError);
  });

  it('refuses a seed that is not 32 bytes', () => {
    expect(() => Signer.fromSeed(new Uint8Array(31))).toThrow(/32 bytes/);
  });
});
