import { ed25519 } from '@noble/curves/ed25519.js';
import { describe, expect, it } from 'vitest';
import {
  addressOf,
  fromHex,
  isValidPublicKey,
  PRECOMMIT,
  PREVOTE,
  toHex,
  verifySignature,
  voteSignBytes,
} from '../src/index.js';
import { vectors } from './fixtures.js';

describe('ed25519 with ZIP-215 rules, against the Rust verdicts', () => {
  it('has the small-order cases and the ordinary ones', () => {
    expect(vectors.signatures.length).toBeGreaterThan(196);
    expect(vectors.signatures.filter((s) => s.valid).length).toBeGreaterThan(196);
    expect(vectors.signatures.filter((s) => !s.valid).length).toBeGreaterThanOrEqual(5);
  });

  for (const s of vectors.signatures) {
    it(`${s.valid ? 'accepts' : 'refuses'} ${s.name}`, () => {
      expect(verifySignature(fromHex(s.publicKey), fromHex(s.message), fromHex(s.signature))).toBe(s.valid);
    });
  }

  it('is not what RFC 8032 strict verification says (the vectors do tell the modes apart)', () => {
    const differ = vectors.signatures.filter(
      (s) => ed25519.verify(fromHex(s.signature), fromHex(s.message), fromHex(s.publicKey), { zip215: false }) !== s.valid,
    );
    expect(differ.length).toBeGreaterThan(0);
  });
});

describe('public keys, as a node checks its genesis file', () => {
  it('has keys on both sides', () => {
    expect(vectors.publicKeys.some((k) => k.valid) && vectors.publicKeys.some((k) => !k.valid)).toBe(true);
  });
  for (const k of vectors.publicKeys) {
    it(`${k.valid ? 'accepts' : 'refuses'} ${k.publicKey.slice(0, 12)}…${k.publicKey.slice(-4)}`, () => {
      expect(isValidPublicKey(fromHex(k.publicKey))).toBe(k.valid);
    });
  }
});

describe('vote sign bytes and addresses', () => {
  for (const v of vectors.votes) {
    it(`encodes the ${v.value ? 'vote for a block' : 'nil vote'} at round ${v.round}`, () => {
      const kind = Number(v.kind) === PRECOMMIT ? PRECOMMIT : PREVOTE;
      const bytes = voteSignBytes(v.chainId, kind, v.height, v.round, v.value ? fromHex(v.value) : null, fromHex(v.validator));
      expect(toHex(bytes)).toBe(v.bytes);
      expect(bytes.length).toBe(v.value ? 94 : 62);
    });
  }

  for (const a of vectors.addresses) {
    it(`derives the address of ${a.publicKey.slice(0, 10)}…`, () => {
      expect(toHex(addressOf(fromHex(a.publicKey)))).toBe(a.address);
    });
  }
});
