// An in-memory stand-in for nodes' WebSocket JSON-RPC, for the follower's tests: each node
// serves rollup batches from the vectors, with faults a test scripts per (node, height).
import { parseJson, stringifyJson, type WebSocketFactory, type WebSocketLike } from '../src/index.js';
import { validBatch } from './fixtures.js';

/** What a node does when it would send `height`. */
export type Step =
  | { send: Record<string, unknown> }
  | { close: true }
  | { error: string }
  /** Nothing more, the connection stays open. */
  | { stop: true };

export interface FakeNodeOptions {
  /** The highest height the node has; the default `fromHeight` is tip + 1. */
  tip?: bigint;
  /** The step at `height` for a subscription to `rollupId` (default: the honest batch, while the vectors have one). */
  script?: (height: bigint, rollupId: bigint) => Step | undefined;
  /** Refuse the subscription with this error object. */
  refuse?: { code: number; message: string };
  /** Send the subscribe response and the first notifications in one go, as one TCP read does. */
  sameTick?: boolean;
}

const LAST_HEIGHT = 4n;

function step(opts: FakeNodeOptions, height: bigint, rollupId: bigint): Step {
  const s = opts.script?.(height, rollupId);
  if (s) return s;
  return height <= LAST_HEIGHT ? { send: validBatch(height, rollupId) } : { stop: true };
}

class FakeSocket implements WebSocketLike {
  onopen: ((event: unknown) => void) | null = null;
  onmessage: ((event: unknown) => void) | null = null;
  onclose: ((event: unknown) => void) | null = null;
  onerror: ((event: unknown) => void) | null = null;
  private closed = false;

  constructor(
    private readonly net: FakeNetwork,
    private readonly opts: FakeNodeOptions | undefined,
  ) {
    setTimeout(() => {
      if (!this.opts) {
        this.onerror?.({ message: 'connect ECONNREFUSED' });
        this.onclose?.({ code: 1006 });
      } else {
        this.onopen?.({});
      }
    }, 0);
  }

  private deliver(msg: unknown): void {
    if (!this.closed) this.onmessage?.({ data: stringifyJson(msg) });
  }

  send(text: string): void {
    const req = parseJson(text) as { id: bigint; method: string; params: unknown[] };
    const opts = this.opts!;
    if (req.method === 'seq_unsubscribeRollup') return this.deliver({ jsonrpc: '2.0', id: req.id, result: true });
    if (req.method !== 'seq_subscribeRollup') {
      return this.deliver({ jsonrpc: '2.0', id: req.id, error: { code: -32601, message: 'Method not found' } });
    }
    if (opts.refuse) return this.deliver({ jsonrpc: '2.0', id: req.id, error: opts.refuse });
    const [rollupId, from] = req.params as [bigint, bigint | null];
    this.net.subscriptions.push({ rollupId, from });
    const sub = 6543210987654321n + BigInt(this.net.subscriptions.length);
    let height = from ?? (opts.tip ?? 0n) + 1n;
    const pump = (): void => {
      if (this.closed) return;
      const s = step(opts, height, rollupId);
      if ('send' in s) {
        this.deliver({ jsonrpc: '2.0', method: 'seq_rollupBatch', params: { subscription: sub, result: s.send } });
        height += 1n;
        setTimeout(pump, 0);
      } else if ('close' in s) {
        this.close();
      } else if ('error' in s) {
        this.deliver({ jsonrpc: '2.0', method: 'seq_rollupBatch', params: { subscription: sub, error: s.error } });
      }
    };
    const respond = () => this.deliver({ jsonrpc: '2.0', id: req.id, result: sub });
    if (opts.sameTick) {
      respond();
      pump();
    } else {
      setTimeout(() => {
        respond();
        setTimeout(pump, 0);
      }, 0);
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    setTimeout(() => this.onclose?.({ code: 1000 }), 0);
  }
}

/** Nodes by URL; a URL with no node refuses connections. */
export class FakeNetwork {
  readonly nodes = new Map<string, FakeNodeOptions>();
  readonly subscriptions: { rollupId: bigint; from: bigint | null }[] = [];
  readonly connections: string[] = [];

  node(url: string, opts: FakeNodeOptions = {}): this {
    this.nodes.set(url, opts);
    return this;
  }

  readonly webSocket: WebSocketFactory = (url) => {
    this.connections.push(url);
    return new FakeSocket(this, this.nodes.get(url));
  };
}
