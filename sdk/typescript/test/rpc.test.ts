import WsWebSocket from 'ws';
import { describe, expect, it } from 'vitest';
import { nodeWebSocket } from '../src/node.js';
import {
  bundleHash,
  decodeBundle,
  ErrorCode,
  fromHex,
  HttpTransport,
  LockstepClient,
  parseJson,
  RpcError,
  sendAndWait,
  stringifyJson,
  toHex,
  TrackTimeoutError,
  TransportError,
  WsConnection,
  type WebSocketFactory,
} from '../src/index.js';
import { FakeNetwork } from './fake-node.js';
import { validBatch, vectors } from './fixtures.js';

type Call = { method: string; params: unknown[] };

/** A `fetch` answering JSON-RPC calls with `answer`, recording the bodies it got. */
function fakeFetch(answer: (c: Call) => { status?: number; body: string } | Promise<never>) {
  const calls: Call[] = [];
  const bodies: string[] = [];
  const f = (async (_url: string, init: { body: string }) => {
    bodies.push(init.body);
    const req = parseJson(init.body) as { id: bigint } & Call;
    calls.push({ method: req.method, params: req.params });
    const a = await answer(req);
    return new Response(a.body, { status: a.status ?? 200 });
  }) as unknown as typeof fetch;
  return { f, calls, bodies };
}

const ok = (result: unknown) => ({ body: stringifyJson({ jsonrpc: '2.0', id: 1, result }) });
const err = (code: number, message: string, status = 200) => ({
  status,
  body: stringifyJson({ jsonrpc: '2.0', id: 1, error: { code, message } }),
});

const example = decodeBundle(fromHex(vectors.bundles[0]!.encoding));
const exampleHash = vectors.bundles[0]!.hash;

describe('JSON-RPC client', () => {
  it('sends raw bundles as 0x hex and returns the hash', async () => {
    const { f, calls } = fakeFetch(() => ok(exampleHash.toUpperCase().replace('0X', '0x')));
    const c = new LockstepClient(new HttpTransport('http://node', { fetch: f }));
    expect(await c.sendRawBundle(example)).toBe(exampleHash);
    expect(calls[0]).toEqual({ method: 'seq_sendRawBundle', params: [vectors.bundles[0]!.encoding] });
  });

  it('writes u64 values beyond 2^53 exactly', async () => {
    const big = vectors.bundles.find((b) => b.name.includes('2^53'))!;
    const { f, bodies } = fakeFetch(() => ok(big.hash));
    const c = new LockstepClient('http://node', { fetch: f });
    await c.sendBundle(decodeBundle(fromHex(big.encoding)));
    expect(bodies[0]).toContain('"nonce":18446744073709551615');
    expect(bodies[0]).toContain('"rollupId":18446744073709551615');
    expect(bodies[0]).toContain('"validUntil":9007199254740993');
  });

  it('surfaces protocol errors as RpcError with their codes', async () => {
    const cases: [number, string, boolean][] = [
      [ErrorCode.BadSignature, 'signature does not verify for signer 0x…', false],
      [ErrorCode.WrongChain, 'wrong chain id: bundle is for chain 1, this network is chain 1337', false],
      [ErrorCode.Expired, 'expired: valid_until 1 is below the next height 57', false],
      [ErrorCode.TooLarge, 'bundle too large', false],
      [ErrorCode.Undecodable, 'not decodable', false],
      [ErrorCode.Busy, 'node busy, retry later', true],
    ];
    for (const [code, message, retryable] of cases) {
      const { f } = fakeFetch(() => err(code, message, code === 4006 ? 429 : 200));
      const e = await new LockstepClient('http://node', { fetch: f }).sendRawBundle(example).catch((x: unknown) => x);
      expect(e).toBeInstanceOf(RpcError);
      expect(e).toMatchObject({ code, rpcMessage: message, method: 'seq_sendRawBundle', retryable });
    }
  });

  it('reports transport failures apart from protocol errors', async () => {
    const notJson = fakeFetch(() => ({ status: 502, body: '<html>bad gateway</html>' }));
    await expect(new LockstepClient('http://node', { fetch: notJson.f }).blockNumber()).rejects.toThrow(TransportError);
    const refused = fakeFetch(() => Promise.reject(new TypeError('fetch failed')));
    await expect(new LockstepClient('http://node', { fetch: refused.f }).blockNumber()).rejects.toThrow(/fetch failed/);
    const slow = (async (_u: string, init: { signal: AbortSignal }) =>
      new Promise((_, reject) => init.signal.addEventListener('abort', () => reject(new Error('aborted'))))) as unknown as typeof fetch;
    await expect(new LockstepClient('http://node', { fetch: slow, timeoutMs: 30 }).chainId()).rejects.toThrow(/timed out after 30 ms/);
  });

  it('reads statuses, blocks and batches with exact integers', async () => {
    const batch = validBatch(2n, 7n);
    const { f } = fakeFetch((c) => {
      switch (c.method) {
        case 'seq_getBundleStatus':
          return ok({ status: 'included', height: 9007199254740993n, index: 2n });
        case 'seq_getBlock':
          return ok(c.params[0] === 5n ? null : { height: 6n, hash: exampleHash, parentHash: exampleHash, timestamp: 1n, proposer: '0x' + '00'.repeat(20), bundles: [exampleHash] });
        case 'seq_getRollupBatch':
          return ok(batch);
        default:
          return err(-32601, 'Method not found');
      }
    });
    const c = new LockstepClient('http://node', { fetch: f });
    expect(await c.getBundleStatus(exampleHash)).toEqual({ status: 'included', height: 9007199254740993n, index: 2 });
    expect(await c.getBlock(5)).toBeNull();
    expect((await c.getBlock(6))?.bundles).toEqual([exampleHash]);
    expect((await c.getRollupBatch(7, 2))?.height).toBe(2n);
    await expect(c.health()).rejects.toMatchObject({ code: ErrorCode.MethodNotFound });
  });

  it('asks for the validator set of a height, and for every set from a version', async () => {
    const v = (n: number) => ({ address: '0x' + String(n).repeat(40), publicKey: '0x' + String(n).repeat(64), votingPower: BigInt(n) });
    const sets = [
      { version: 0n, fromHeight: 1n, includedAt: 0n, validatorsHash: '0x' + 'aa'.repeat(32), validators: [v(1), v(2)] },
      { version: 9007199254740993n, fromHeight: 9007199254740995n, includedAt: 9007199254740993n, validatorsHash: '0x' + 'BB'.repeat(32), validators: [v(3)] },
    ];
    const { f, calls } = fakeFetch((c) => {
      switch (c.method) {
        case 'seq_validators':
          return c.params[0] === 0n ? err(ErrorCode.InvalidParams, 'height must be at least 1') : ok(c.params.length ? [v(3)] : [v(1), v(2)]);
        case 'seq_getValidatorSets':
          return ok(c.params.length ? sets.slice(1) : sets);
        default:
          return err(-32601, 'Method not found');
      }
    });
    const c = new LockstepClient('http://node', { fetch: f });
    expect(await c.validators()).toEqual([v(1), v(2)]);
    expect(await c.validators(9007199254740993n)).toEqual([v(3)]);
    await expect(c.validators(0)).rejects.toMatchObject({ code: ErrorCode.InvalidParams });
    expect(await c.getValidatorSets()).toEqual(sets.map((s) => ({ ...s, validatorsHash: s.validatorsHash.toLowerCase() })));
    expect((await c.getValidatorSets(1))[0]).toMatchObject({ version: 9007199254740993n, fromHeight: 9007199254740995n });
    expect(calls.map((x) => [x.method, x.params])).toEqual([
      ['seq_validators', []],
      ['seq_validators', [9007199254740993n]],
      ['seq_validators', [0n]],
      ['seq_getValidatorSets', []],
      ['seq_getValidatorSets', [1n]],
    ]);
    await expect(c.validators(-1)).rejects.toThrow(RangeError);

    const bad = fakeFetch(() => ok([{ ...sets[0], validatorsHash: '0x00' }]));
    await expect(new LockstepClient('http://n', { fetch: bad.f }).getValidatorSets()).rejects.toThrow(/validatorsHash/);
    const notList = fakeFetch(() => ok({ validators: [] }));
    await expect(new LockstepClient('http://n', { fetch: notList.f }).validators(3)).rejects.toThrow(/expected an array/);
  });

  it('sendAndWait polls until the bundle is included, or dropped', async () => {
    let polls = 0;
    const { f } = fakeFetch((c) =>
      c.method === 'seq_sendRawBundle' ? ok(exampleHash) : ok(++polls < 3 ? { status: 'pending' } : { status: 'included', height: 12n, index: 0n }),
    );
    const c = new LockstepClient('http://node', { fetch: f });
    const r = await sendAndWait(c, example, { pollMs: 1 });
    expect(r).toEqual({ hash: toHex(bundleHash(example)), outcome: { status: 'included', height: 12n, index: 0 } });
    expect(polls).toBe(3);

    const dropped = fakeFetch((c) => (c.method === 'seq_sendRawBundle' ? ok(exampleHash) : ok({ status: 'dropped', reason: 'expired' })));
    expect((await sendAndWait(new LockstepClient('http://n', { fetch: dropped.f }), example)).outcome).toEqual({
      status: 'dropped',
      reason: 'expired',
    });

    const stuck = fakeFetch((c) => (c.method === 'seq_sendRawBundle' ? ok(exampleHash) : ok({ status: 'pending' })));
    await expect(sendAndWait(new LockstepClient('http://n', { fetch: stuck.f }), example, { timeoutMs: 20, pollMs: 1 })).rejects.toThrow(
      TrackTimeoutError,
    );

    const liar = fakeFetch(() => ok('0x' + '11'.repeat(32)));
    await expect(sendAndWait(new LockstepClient('http://n', { fetch: liar.f }), example)).rejects.toThrow(/returned hash/);
  });

  it('carries calls over a WebSocket connection too', async () => {
    const net = new FakeNetwork().node('ws://a');
    const conn = await WsConnection.connect('ws://a', { webSocket: net.webSocket });
    const c = new LockstepClient(conn);
    await expect(c.chainId()).rejects.toMatchObject({ code: ErrorCode.MethodNotFound });
    conn.close();
    await expect(c.chainId()).rejects.toThrow(TransportError);
    await expect(WsConnection.connect('ws://nowhere', { webSocket: net.webSocket })).rejects.toThrow(/ECONNREFUSED/);
  });
});

describe('WebSocket factories', () => {
  it('take the browser’s WebSocket and the ws package’s alike (checked by tsc)', () => {
    const browser: WebSocketFactory = (url) => new WebSocket(url);
    const ws: WebSocketFactory = (url) => new WsWebSocket(url);
    expect([typeof browser, typeof ws, typeof nodeWebSocket]).toEqual(['function', 'function', 'function']);
  });
});
