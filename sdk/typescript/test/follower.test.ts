import { describe, expect, it } from 'vitest';
import { BatchVerifier, FollowError, Follower, parseGenesis, Subscriber, type Verified } from '../src/index.js';
import { FakeNetwork } from './fake-node.js';
import { vectors } from './fixtures.js';

const verifier = BatchVerifier.fromGenesis(parseGenesis(vectors.genesis));
const tampered = (name: string) => vectors.batches.tampered.find((t) => t.name === name)!.batch;

async function take(f: Follower, n: number): Promise<{ heights: bigint[]; nodes: string[] }> {
  const heights: bigint[] = [];
  const nodes: string[] = [];
  for (let i = 0; i < n; i++) {
    const v: Verified = await f.next();
    heights.push(v.batch.height);
    nodes.push(f.node);
  }
  return { heights, nodes };
}

function follower(net: FakeNetwork, urls: string[], extra: Partial<ConstructorParameters<typeof Follower>[0]> = {}) {
  const failovers: FollowError[] = [];
  const f = new Follower({
    urls,
    rollupId: 7n,
    fromHeight: 1n,
    verifier,
    webSocket: net.webSocket,
    onFailover: ({ error }) => failovers.push(error),
    ...extra,
  });
  return { f, failovers };
}

describe('Follower', () => {
  it('yields every height once, in order, verified', async () => {
    const net = new FakeNetwork().node('ws://a');
    const { f, failovers } = follower(net, ['ws://a']);
    const got = await take(f, 4);
    expect(got.heights).toEqual([1n, 2n, 3n, 4n]);
    expect(failovers).toEqual([]);
    expect(f.nextHeight).toBe(5n);
    f.close();
  });

  it('moves to the next node on a batch that does not verify, and resumes at that height', async () => {
    const net = new FakeNetwork()
      .node('ws://a', { script: (h) => (h === 2n ? { send: tampered('entry data changed') } : undefined) })
      .node('ws://b');
    const { f, failovers } = follower(net, ['ws://a', 'ws://b']);
    const got = await take(f, 4);
    expect(got.heights).toEqual([1n, 2n, 3n, 4n]);
    expect(got.nodes).toEqual(['ws://a', 'ws://b', 'ws://b', 'ws://b']);
    expect(failovers.map((e) => e.kind)).toEqual(['verify']);
    expect(failovers[0]!.message).toMatch(/completeness proof/);
    expect(net.subscriptions.map((s) => s.from)).toEqual([1n, 2n]);
    f.close();
  });

  for (const name of ['one signature forged', 'signatures short of a quorum', 'block hash relabelled', 'proof is garbage']) {
    it(`refuses "${name}" from a node and takes the height from another`, async () => {
      const net = new FakeNetwork()
        .node('ws://a', { script: (h) => (h === 2n ? { send: tampered(name) } : undefined) })
        .node('ws://b');
      const { f, failovers } = follower(net, ['ws://a', 'ws://b']);
      expect((await take(f, 3)).heights).toEqual([1n, 2n, 3n]);
      expect(failovers.map((e) => e.kind)).toEqual(['verify']);
      f.close();
    });
  }

  it('treats a skipped height as a failure (gap)', async () => {
    const net = new FakeNetwork()
      .node('ws://a', { script: (h) => (h === 2n ? { send: vectors.batches.valid.find((v) => v.batch.height === 3n && v.batch.rollupId === 7n)!.batch } : undefined) })
      .node('ws://b');
    const { f, failovers } = follower(net, ['ws://a', 'ws://b']);
    expect((await take(f, 4)).heights).toEqual([1n, 2n, 3n, 4n]);
    expect(failovers.map((e) => e.kind)).toEqual(['gap']);
    expect(failovers[0]!.message).toBe('height 3 received, expected 2');
    f.close();
  });

  it('treats another rollup’s batch as a failure', async () => {
    const net = new FakeNetwork()
      .node('ws://a', { script: (h) => (h === 1n ? { send: vectors.batches.valid.find((v) => v.batch.height === 1n && v.batch.rollupId === 8n)!.batch } : undefined) })
      .node('ws://b');
    const { f, failovers } = follower(net, ['ws://a', 'ws://b']);
    expect((await take(f, 2)).heights).toEqual([1n, 2n]);
    expect(failovers.map((e) => e.kind)).toEqual(['wrongRollup']);
    f.close();
  });

  it('starts on the next node when the first is down', async () => {
    const net = new FakeNetwork().node('ws://b');
    const { f, failovers } = follower(net, ['ws://dead', 'ws://b']);
    const got = await take(f, 2);
    expect(got.heights).toEqual([1n, 2n]);
    expect(got.nodes).toEqual(['ws://b', 'ws://b']);
    expect(failovers.map((e) => e.kind)).toEqual(['connection']);
    f.close();
  });

  it('resumes after the last verified height when its node closes the connection', async () => {
    const net = new FakeNetwork().node('ws://a', { script: (h) => (h === 3n ? { close: true } : undefined) }).node('ws://b');
    const { f, failovers } = follower(net, ['ws://a', 'ws://b']);
    const got = await take(f, 4);
    expect(got.heights).toEqual([1n, 2n, 3n, 4n]);
    expect(got.nodes).toEqual(['ws://a', 'ws://a', 'ws://b', 'ws://b']);
    expect(failovers.map((e) => e.kind)).toEqual(['connection']);
    expect(net.subscriptions.map((s) => s.from)).toEqual([1n, 3n]);
    f.close();
  });

  it('resubscribes after the node ends the subscription with an error (fell behind)', async () => {
    let ended = false;
    const net = new FakeNetwork().node('ws://a', {
      script: (h) => {
        if (h === 3n && !ended) {
          ended = true;
          return { error: 'subscriber fell behind; last height received 2; resubscribe with fromHeight 3' };
        }
        return undefined;
      },
    });
    const { f, failovers } = follower(net, ['ws://a']);
    expect((await take(f, 4)).heights).toEqual([1n, 2n, 3n, 4n]);
    expect(failovers.map((e) => e.kind)).toEqual(['ended']);
    expect(failovers[0]!.message).toMatch(/fell behind/);
    expect(net.subscriptions.map((s) => s.from)).toEqual([1n, 3n]);
    f.close();
  });

  it('gives up after maxFailures consecutive failures', async () => {
    const net = new FakeNetwork();
    const { f, failovers } = follower(net, ['ws://x', 'ws://y'], { maxFailures: 3 });
    const err = await f.next().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FollowError);
    expect((err as FollowError).kind).toBe('exhausted');
    expect(failovers.length).toBe(3);
    expect(net.connections).toEqual(['ws://x', 'ws://y', 'ws://x']);
  });

  it('reports a refused subscription (4007) and tries the next node', async () => {
    const net = new FakeNetwork()
      .node('ws://a', { refuse: { code: 4007, message: 'fromHeight 1 is below the oldest height kept, 50' } })
      .node('ws://b');
    const { f, failovers } = follower(net, ['ws://a', 'ws://b']);
    expect((await take(f, 1)).heights).toEqual([1n]);
    expect(failovers[0]!.kind).toBe('connection');
    expect(failovers[0]!.message).toMatch(/4007/);
    f.close();
  });

  it('loses no notification that arrives with the subscribe response', async () => {
    const net = new FakeNetwork().node('ws://a', { sameTick: true });
    const { f, failovers } = follower(net, ['ws://a']);
    expect((await take(f, 4)).heights).toEqual([1n, 2n, 3n, 4n]);
    expect(failovers).toEqual([]);
    f.close();
  });

  it('ends a subscription whose reader falls behind its buffer, and resumes without a gap', async () => {
    const net = new FakeNetwork().node('ws://a');
    const { f, failovers } = follower(net, ['ws://a'], { maxBufferedNotifications: 1 });
    const first = await f.next();
    expect(first.batch.height).toBe(1n);
    await new Promise((r) => setTimeout(r, 50)); // the node sends 2, 3, 4 meanwhile
    expect((await take(f, 3)).heights).toEqual([2n, 3n, 4n]);
    expect(failovers.length).toBeGreaterThan(0);
    f.close();
  });

  it('without a fromHeight, starts at the node’s next height and then checks heights', async () => {
    const net = new FakeNetwork().node('ws://a', { tip: 1n });
    const { f } = follower(net, ['ws://a'], { fromHeight: undefined });
    expect(f.nextHeight).toBeUndefined();
    expect((await take(f, 3)).heights).toEqual([2n, 3n, 4n]);
    expect(net.subscriptions[0]!.from).toBeNull();
    f.close();
  });

  it('fails an idle subscription when asked to', async () => {
    const net = new FakeNetwork().node('ws://a', { script: (h) => (h >= 2n ? { stop: true } : undefined) });
    const s = await Subscriber.connect('ws://a', 7n, 1n, verifier, { webSocket: net.webSocket, idleTimeoutMs: 50 });
    expect((await s.next()).batch.height).toBe(1n);
    await expect(s.next()).rejects.toMatchObject({ kind: 'connection', message: /no batch for 50 ms/ });
    s.close();
  });

  it('close() ends a pending next()', async () => {
    const net = new FakeNetwork().node('ws://a', { script: () => ({ stop: true }) });
    const { f } = follower(net, ['ws://a']);
    const pending = f.next();
    await new Promise((r) => setTimeout(r, 20));
    f.close();
    await expect(pending).rejects.toMatchObject({ kind: 'ended' });
  });
});
