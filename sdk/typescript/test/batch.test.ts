import { describe, expect, it } from 'vitest';
import {
  BatchVerifier,
  BLOCK_HEADER_BYTES,
  decodeBatchProof,
  decodeCommitCertificate,
  encodeBatchProof,
  encodeBlockHeader,
  encodeCommitCertificate,
  fromHex,
  parseGenesis,
  parseJson,
  parseRollupBatchJson,
  sha256,
  stringifyJson,
  toHex,
  validatorSetHash,
  ValidatorSet,
  VerifyError,
} from '../src/index.js';
import { clone, validBatch, vectors } from './fixtures.js';

const genesis = parseGenesis(vectors.genesis);
const verifier = BatchVerifier.fromGenesis(genesis);

function kindOf(f: () => unknown): string {
  try {
    f();
    return 'ok';
  } catch (e) {
    if (e instanceof VerifyError) return e.kind;
    throw e;
  }
}

describe('genesis', () => {
  it('reads the chain, the validators in address order and the limits', () => {
    expect(genesis.chainId).toBe(1337n);
    expect(genesis.validators.size).toBe(4);
    expect(genesis.validators.totalPower).toBe(5n);
    expect(genesis.validators.isQuorum(3n)).toBe(false);
    expect(genesis.validators.isQuorum(4n)).toBe(true);
    expect(genesis.limits.maxTtl).toBe(3600n);
    const addrs = genesis.validators.validators.map((v) => toHex(v.address));
    expect([...addrs].sort()).toEqual(addrs);
  });

  it('reads the file text too, and defaults the limits', () => {
    const g = clone(vectors.genesis) as Record<string, unknown>;
    delete g.limits;
    const parsed = parseGenesis(stringifyJson(g));
    expect(parsed.limits.maxLegs).toBe(16);
    expect(parsed.validators.size).toBe(4);
  });

  it('refuses what a node refuses', () => {
    const g = () => clone(vectors.genesis) as { validators: Record<string, unknown>[]; limits: Record<string, unknown> } & Record<string, unknown>;
    const unknownField = g();
    unknownField.extra = 1n;
    expect(() => parseGenesis(unknownField)).toThrow(/unknown field `extra`/);
    const empty = g();
    empty.validators = [];
    expect(() => parseGenesis(empty)).toThrow(/empty/);
    const zero = g();
    zero.validators[0]!.voting_power = 0n;
    expect(() => parseGenesis(zero)).toThrow(/zero voting power/);
    const twice = g();
    twice.validators[1] = twice.validators[0]!;
    expect(() => parseGenesis(twice)).toThrow(/twice/);
    const badKey = g();
    // y = 2 is not on the curve (the Rust side's verdict on it is in the vectors).
    badKey.validators[0]!.public_key = toHex(Uint8Array.of(2, ...new Uint8Array(31)));
    expect(() => parseGenesis(badKey)).toThrow(/not an ed25519 public key/);
    const overflow = g();
    overflow.validators[0]!.voting_power = 2n ** 63n;
    expect(() => parseGenesis(overflow)).toThrow(/overflows/);
    const limits = g();
    limits.limits.max_bundle_bytes = 100n;
    expect(() => parseGenesis(limits)).toThrow(/max_bundle_bytes/);
  });
});

describe('the validator set hash', () => {
  it('is what the Rust side put in every header (all decided by the genesis set)', () => {
    const want = toHex(validatorSetHash(genesis.validators));
    expect(toHex(genesis.validators.hash())).toBe(want);
    for (const v of vectors.batches.valid) {
      const header = decodeBatchProof(fromHex(v.batch.proof as string)).header;
      expect(toHex(header.validatorsHash)).toBe(want);
      expect(encodeBlockHeader(header).length).toBe(BLOCK_HEADER_BYTES);
    }
    expect(BLOCK_HEADER_BYTES).toBe(176);
  });

  it('is SHA-256 of the tag, the u64 count, then each key and u64 power in address order', () => {
    const vs = genesis.validators.validators;
    const bytes = new Uint8Array(22 + 8 + vs.length * 40);
    const view = new DataView(bytes.buffer);
    bytes.set(new TextEncoder().encode('lockstep:validators:v1'));
    view.setBigUint64(22, BigInt(vs.length), true);
    vs.forEach((v, i) => {
      bytes.set(v.publicKey, 30 + i * 40);
      view.setBigUint64(30 + i * 40 + 32, v.votingPower, true);
    });
    expect(toHex(validatorSetHash(genesis.validators))).toBe(toHex(sha256(bytes)));
  });

  it('depends on the keys and powers, not on the order they were given in', () => {
    const input = genesis.validators.validators.map((v) => ({ publicKey: v.publicKey, votingPower: v.votingPower }));
    const hash = (xs: typeof input) => toHex(new ValidatorSet(xs).hash());
    expect(hash([...input].reverse())).toBe(hash(input));
    expect(hash(input.map((v, i) => (i === 0 ? { ...v, votingPower: v.votingPower + 1n } : v)))).not.toBe(hash(input));
    expect(hash(input.slice(1))).not.toBe(hash(input));
  });
});

describe('honest batches from the Rust side', () => {
  it('cover every kind of witness', () => {
    const kinds = new Set(vectors.batches.valid.map((v) => v.witness));
    expect([...kinds].sort()).toEqual(['after', 'before', 'between', 'empty', 'present']);
  });

  for (const v of vectors.batches.valid) {
    it(`verifies rollup ${v.batch.rollupId} at height ${v.batch.height} (${v.witness})`, () => {
      const b = verifier.verify(v.batch);
      expect(b.height).toBe(v.batch.height);
      expect(b.entries.length).toBe((v.batch.entries as unknown[]).length);
      // Decoding and encoding again gives the same bytes.
      expect(toHex(encodeBatchProof(decodeBatchProof(fromHex(v.batch.proof as string))))).toBe(v.batch.proof);
      expect(toHex(encodeCommitCertificate(decodeCommitCertificate(fromHex(v.batch.certificate as string))))).toBe(
        v.batch.certificate,
      );
    });
  }

  it('keeps a rollup id beyond 2^53 exact through JSON', () => {
    const big = (1n << 60n) + 1n;
    const j = parseRollupBatchJson(parseJson(stringifyJson(validBatch(3n, big))));
    expect(j.rollupId).toBe(big);
    expect(j.entries[0]!.rollups).toContain(big);
    expect(verifier.verify(j).entries.length).toBe(1);
  });
});

describe('tampered batches (the Rust client tests’ cases and more)', () => {
  it('has the cases, each with the Rust verdict', () => {
    expect(vectors.batches.tampered.length).toBeGreaterThanOrEqual(30);
    expect(vectors.batches.tampered.every((t) => t.error !== 'ok')).toBe(true);
  });

  for (const t of vectors.batches.tampered) {
    it(`rejects "${t.name}" as ${t.error}`, () => {
      const v = new BatchVerifier(t.verifierChainId, genesis.validators);
      expect(kindOf(() => v.verify(t.batch))).toBe(t.error);
    });
  }

  it('refuses an honest batch to a verifier holding another set, before trying its certificate', () => {
    const vs = genesis.validators.validators.map((v) => ({ publicKey: v.publicKey, votingPower: v.votingPower }));
    const others = [
      // The same keys, one repowered: the certificate would still carry a quorum.
      vs.map((v, i) => (i === 0 ? { ...v, votingPower: 2n } : v)),
      // One validator removed.
      vs.slice(1),
    ];
    for (const set of others) {
      const v = new BatchVerifier(genesis.chainId, new ValidatorSet(set));
      for (const [height, rollup] of [
        [2n, 7n],
        [4n, 1n],
      ] as const) {
        expect(kindOf(() => v.verify(validBatch(height, rollup)))).toBe('otherValidatorSet');
      }
    }
  });

  it('rejects every single-byte change of a proof or a certificate', () => {
    for (const [height, rollup] of [
      [2n, 7n],
      [1n, 7n],
    ] as const) {
      const good = validBatch(height, rollup);
      for (const f of ['proof', 'certificate'] as const) {
        const bytes = fromHex(good[f] as string);
        for (let i = 0; i < bytes.length; i++) {
          const changed = Uint8Array.from(bytes);
          changed[i]! ^= 0x01;
          const j = { ...good, [f]: toHex(changed) };
          const k = kindOf(() => verifier.verify(j));
          if (k === 'ok') throw new Error(`byte ${i} of the ${f} of rollup ${rollup} at ${height} changed, still verified`);
        }
      }
    }
  });

  it('refuses JSON that is not a batch as malformed', () => {
    const good = validBatch(2n, 7n);
    for (const bad of [
      null,
      [],
      { ...good, rollupId: '7' },
      { ...good, height: -1n },
      { ...good, blockHash: '0x00' },
      { ...good, entries: {} },
      { ...good, entries: [{ ...(good.entries as Record<string, unknown>[])[0], legIndex: 2n ** 32n }] },
      (({ certificate: _c, ...rest }) => rest)(good),
    ]) {
      expect(kindOf(() => verifier.verify(bad))).toBe('malformed');
    }
  });
});
