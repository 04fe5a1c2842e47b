// The SDK against a live 4-validator network (started by tests/tests/sdk_typescript.rs):
// bundles signed here are included, batches the nodes serve verify here, a follower fails over
// from a dead URL and from a node killed under it. What it sent is written to the report, so
// the Rust test can rebuild each bundle with the Rust client and compare.
import { writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { afterAll, describe, expect, it, vi } from 'vitest';
import {
  BatchVerifier,
  bundleHash,
  encodeBundle,
  ErrorCode,
  Follower,
  LockstepClient,
  RpcError,
  sendAndWait,
  signBundle,
  Signer,
  stringifyJson,
  toHex,
  validatorSetHash,
  waitForBundle,
  type BundleInput,
  type SignedBundle,
} from '../../src/index.js';
import { nodeWebSocket } from '../../src/node.js';
import { endpoints, genesis, reportPath } from './env.js';

const clients = endpoints.nodes.map((n) => new LockstepClient(n.rpc));
const verifier = BatchVerifier.fromGenesis(genesis);
const BIG_ROLLUP = (1n << 60n) + 1n;
const NEXT_BATCH_MS = 60_000;

/** A bundle sent, as the Rust test rebuilds it: the seed and fields, what they signed to, where it went. */
interface Sent {
  name: string;
  seed: string;
  chainId: bigint;
  nonce: bigint;
  validUntil: bigint;
  legs: { rollupId: bigint; data: string }[];
  hash: string;
  encoding: string;
  height?: bigint;
  index?: number;
}
const report: { chainId: bigint; bundles: Sent[]; killed: number[]; failover: Record<string, unknown> } = {
  chainId: genesis.chainId,
  bundles: [],
  killed: [],
  failover: {},
};

afterAll(() => {
  writeFileSync(reportPath, stringifyJson(report));
});

const seedOf = (i: number): string => '0x' + (0x40 + i).toString(16).padStart(2, '0').repeat(32);

async function sign(name: string, i: number, legs: BundleInput['legs'], over: Partial<BundleInput> = {}): Promise<{ bundle: SignedBundle; sent: Sent }> {
  const input: BundleInput = {
    chainId: genesis.chainId,
    nonce: BigInt(Date.now()) * 1000n + BigInt(i),
    validUntil: (await clients[0]!.blockNumber()) + 200n,
    legs,
    ...over,
  };
  const bundle = signBundle(Signer.fromSeed(seedOf(i)), input);
  const b = bundle.body;
  const sent: Sent = {
    name,
    seed: seedOf(i),
    chainId: b.chainId,
    nonce: b.nonce,
    validUntil: b.validUntil,
    legs: b.legs.map((l) => ({ rollupId: l.rollupId, data: toHex(l.data) })),
    hash: toHex(bundleHash(bundle)),
    encoding: toHex(encodeBundle(bundle)),
  };
  return { bundle, sent };
}

/** A ws:// URL nothing listens on. */
async function deadUrl(): Promise<string> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as { port: number }).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return `ws://127.0.0.1:${port}`;
}

async function within<T>(what: string, ms: number, p: Promise<T>): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

describe('the SDK on a live network', () => {
  it('finds the genesis chain and validators on every node', async () => {
    for (const c of clients) {
      expect(await c.chainId()).toBe(genesis.chainId);
      const vs = await c.validators();
      expect(vs.map((v) => v.address)).toEqual(genesis.validators.validators.map((v) => toHex(v.address)));
      // No update was sent: the genesis set decides every height, and is the only set.
      expect(await c.validators(1n)).toEqual(vs);
      expect(await c.getValidatorSets()).toEqual([
        { version: 0n, fromHeight: 1n, includedAt: 0n, validatorsHash: toHex(validatorSetHash(genesis.validators)), validators: vs },
      ]);
      expect(await c.getValidatorSets(1n)).toEqual([]);
    }
  });

  it('gets bundles signed in TypeScript included, sent raw or as JSON, to any node', async () => {
    const cases: [string, BundleInput['legs']][] = [
      ['two rollups', [{ rollupId: 1n, data: '0x01' }, { rollupId: 2n, data: '0x0203' }]],
      ['empty leg data', [{ rollupId: 1n, data: '0x' }, { rollupId: 1n, data: new Uint8Array(300).fill(7) }]],
      ['a rollup id beyond 2^53', [{ rollupId: BIG_ROLLUP, data: '0xbeef' }, { rollupId: 1n, data: '0x02' }]],
      ['sent as a JSON object', [{ rollupId: 2n, data: '0xaa' }, { rollupId: 1n, data: '0xbb' }]],
    ];
    for (const [i, [name, legs]] of cases.entries()) {
      const { bundle, sent } = await sign(name, i, legs);
      const client = clients[i % clients.length]!;
      let hash: string;
      if (name.includes('JSON')) {
        hash = await client.sendBundle(bundle);
      } else {
        hash = (await sendAndWait(client, bundle, { timeoutMs: 60_000 })).hash;
      }
      expect(hash).toBe(sent.hash);
      const outcome = await waitForBundle(client, hash, { timeoutMs: 60_000 });
      if (outcome.status !== 'included') throw new Error(`${name}: ${JSON.stringify(outcome)}`);
      sent.height = outcome.height;
      sent.index = outcome.index;
      report.bundles.push(sent);
      // Another node has it at the same place.
      const other = clients[(i + 1) % clients.length]!;
      await expect(waitForBundle(other, hash, { timeoutMs: 30_000 })).resolves.toEqual(outcome);
      const block = await other.getBlock(outcome.height);
      expect(block?.bundles[outcome.index]).toBe(hash);
      // Sending it again is idempotent.
      expect(await clients[0]!.sendRawBundle(bundle)).toBe(hash);
    }
  });

  it('surfaces refusals as RpcError with the protocol codes', async () => {
    const c = clients[1]!;
    const code = (p: Promise<unknown>) =>
      p.then(
        () => 'accepted',
        (e: unknown) => (e instanceof RpcError ? e.code : `not an RpcError: ${String(e)}`),
      );
    const legs = [{ rollupId: 1n, data: '0x01' }];
    expect(await code(c.sendRawBundle((await sign('wrong chain', 20, legs, { chainId: genesis.chainId + 1n })).bundle))).toBe(
      ErrorCode.WrongChain,
    );
    expect(await code(c.sendRawBundle((await sign('expired', 21, legs, { validUntil: 0n })).bundle))).toBe(ErrorCode.Expired);
    const tip = await c.blockNumber();
    const far = (await sign('too far ahead', 22, legs, { validUntil: tip + genesis.limits.maxTtl + 1000n })).bundle;
    expect(await code(c.sendRawBundle(far))).toBe(ErrorCode.Expired);
    const forged = (await sign('forged', 23, legs)).bundle;
    forged.signature[5]! ^= 1;
    expect(await code(c.sendRawBundle(forged))).toBe(ErrorCode.BadSignature);
    expect(await code(c.sendRawBundle((await sign('no legs', 24, [])).bundle))).toBe(ErrorCode.TooLarge);
    expect(await code(c.sendRawBundle('0x00'))).toBe(ErrorCode.Undecodable);
    // A leg for rollup 0 is a validator set update: alone in its bundle, and decodable as one.
    const update = [{ rollupId: 0n, data: '0x01' }];
    expect(await code(c.sendRawBundle((await sign('update among legs', 26, [...update, ...legs])).bundle))).toBe(
      ErrorCode.SetUpdateRefused,
    );
    expect(await code(c.sendRawBundle((await sign('update not decodable', 27, update)).bundle))).toBe(ErrorCode.SetUpdateRefused);
    expect(await code(c.getBundleStatus('0x00'))).toBe(ErrorCode.InvalidParams);
    const err = await c.sendRawBundle((await sign('expired', 25, legs, { validUntil: 0n })).bundle).catch((e: unknown) => e);
    expect((err as RpcError).rpcMessage).toMatch(/expired/);
  });

  it('verifies the batches every node serves, entries and absences alike', async () => {
    for (const sent of report.bundles) {
      for (const c of clients) {
        for (const rollup of [1n, 2n, BIG_ROLLUP, 999n]) {
          const j = await c.getRollupBatch(rollup, sent.height!);
          if (!j) throw new Error(`no batch for rollup ${rollup} at ${sent.height}`);
          const b = verifier.verify(j);
          expect(b.header.validatorsHash).toEqual(validatorSetHash(genesis.validators));
          const legs = sent.legs.map((l, k) => ({ ...l, k })).filter((l) => l.rollupId === rollup);
          const mine = b.entries.filter((e) => toHex(e.bundleHash) === sent.hash);
          expect(mine.map((e) => e.legIndex)).toEqual(legs.map((l) => l.k));
          expect(mine.map((e) => toHex(e.data))).toEqual(legs.map((l) => l.data));
          if (rollup === 999n) expect(b.entries).toEqual([]);
        }
      }
    }
    expect(report.bundles.length).toBe(4);
  });

  it('follows a rollup from a dead URL over to a live node, every height once', async () => {
    const first = report.bundles[0]!.height!;
    const last = report.bundles.map((s) => s.height!).reduce((a, b) => (a > b ? a : b));
    const dead = await deadUrl();
    const failovers: string[] = [];
    const f = new Follower({
      urls: [dead, endpoints.nodes[0]!.ws],
      rollupId: 1n,
      fromHeight: first - 1n,
      verifier,
      webSocket: nodeWebSocket,
      onFailover: ({ url, error }) => failovers.push(`${url}: ${error.kind}`),
    });
    const seen = new Set<string>();
    try {
      for (let h = first - 1n; h <= last; h++) {
        const v = await within(`batch ${h}`, NEXT_BATCH_MS, f.next());
        expect(v.batch.height).toBe(h);
        for (const e of v.batch.entries) seen.add(toHex(e.bundleHash));
      }
    } finally {
      f.close();
    }
    expect(failovers).toEqual([`${dead}: connection`]);
    for (const s of report.bundles.filter((b) => b.legs.some((l) => l.rollupId === 1n))) {
      expect(seen.has(s.hash)).toBe(true);
    }
    report.failover.deadUrl = { dead, heights: [first - 1n, last] };
  });

  it('keeps following, without a gap, when its node is killed under it', async () => {
    const victim = endpoints.nodes[3]!;
    const survivor = endpoints.nodes[2]!;
    if (victim.pid === null) throw new Error(`${victim.name} has no pid in endpoints.json`);
    const from = (await clients[3]!.blockNumber()) + 1n;
    const failovers: string[] = [];
    const f = new Follower({
      urls: [victim.ws, survivor.ws],
      rollupId: 1n,
      fromHeight: from,
      verifier,
      webSocket: nodeWebSocket,
      maxFailures: 50,
      onFailover: ({ url, error }) => failovers.push(`${url}: ${error.kind}`),
    });
    let expected = from;
    try {
      for (let i = 0; i < 5; i++) {
        const v = await within(`batch ${expected} from ${victim.name}`, NEXT_BATCH_MS, f.next());
        expect(v.batch.height).toBe(expected++);
      }
      expect(f.node).toBe(victim.ws);
      process.kill(Number(victim.pid), 'SIGKILL');
      report.killed.push(3);
      const { bundle, sent } = await sign('during failover', 30, [{ rollupId: 1n, data: '0x' + Buffer.from('during failover').toString('hex') }]);
      const { outcome } = await sendAndWait(clients[0]!, bundle, { timeoutMs: 60_000 });
      if (outcome.status !== 'included') throw new Error(JSON.stringify(outcome));
      sent.height = outcome.height;
      sent.index = outcome.index;
      report.bundles.push(sent);
      let found = false;
      while (expected <= outcome.height + 2n) {
        const v = await within(`batch ${expected} after ${victim.name} was killed`, NEXT_BATCH_MS, f.next());
        expect(v.batch.height).toBe(expected++);
        found ||= v.batch.entries.some((e) => toHex(e.bundleHash) === sent.hash);
      }
      expect(found).toBe(true);
      expect(f.node).toBe(survivor.ws);
      expect(failovers.length).toBeGreaterThan(0);
      expect(failovers[0]).toMatch(new RegExp(`^${victim.ws}: (connection|ended)$`));
      report.failover.killed = { node: victim.name, from, to: expected - 1n, failovers };
    } finally {
      f.close();
    }
  });

  it('runs the README example that sends a bundle', async () => {
    process.env.LOCKSTEP_RPC = endpoints.nodes[1]!.rpc;
    process.env.LOCKSTEP_SEED = seedOf(40);
    const log = vi.spyOn(console, 'log').mockImplementation(() => {});
    try {
      await import('../../examples/send-bundle.ts');
      expect(log).toHaveBeenCalledTimes(1);
      const [hash, outcome] = log.mock.calls[0]! as [string, { status: string; height: bigint }];
      expect(outcome.status).toBe('included');
      expect(await clients[0]!.getBundleStatus(hash)).toMatchObject({ status: 'included', height: outcome.height });
    } finally {
      log.mockRestore();
    }
  });
});
