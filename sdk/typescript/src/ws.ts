/**
 * JSON-RPC over WebSocket with subscriptions. The socket is pluggable: anything shaped like
 * the browser's `WebSocket` (the global one in browsers and Node 22+, or the `ws` package's,
 * see `@lockstep/sdk/node`), made by a [`WebSocketFactory`].
 */

import { parseJson, stringifyJson } from './json.js';
import { resultOf, type Transport, TransportError } from './rpc.js';

/** The part of the browser `WebSocket` interface this SDK uses. */
export interface WebSocketLike {
  send(data: string): void;
  close(code?: number, reason?: string): void;
  // `any`: the browser's and `ws`'s event types differ; both fit.
  onopen: ((event: any) => void) | null;
  onmessage: ((event: any) => void) | null;
  onclose: ((event: any) => void) | null;
  onerror: ((event: any) => void) | null;
}

/** Opens a WebSocket to `url`. */
export type WebSocketFactory = (url: string) => WebSocketLike;

/** Time allowed to open a connection (as the Rust client's 5 s). */
export const CONNECT_TIMEOUT_MS = 5_000;
/**
 * Notifications kept for a subscription whose reader has not taken them. Past it the
 * subscription ends with an error (the reader fell behind) and the connection is closed; a
 * follower then resumes from the height after the last one it verified.
 */
export const MAX_BUFFERED_NOTIFICATIONS = 4_096;

/** The global `WebSocket` (browsers, Node 22+), if there is one. */
export function globalWebSocket(): WebSocketFactory | undefined {
  const W = (globalThis as { WebSocket?: new (url: string) => WebSocketLike }).WebSocket;
  return W ? (url) => new W(url) : undefined;
}

export interface WsOptions {
  /** How to open a socket (default: the global `WebSocket`; in Node 20 pass `nodeWebSocket`). */
  webSocket?: WebSocketFactory;
  connectTimeoutMs?: number;
  maxBufferedNotifications?: number;
}

/** A subscription's notifications stopped: the node sent an error, or the connection closed. */
export class SubscriptionEndedError extends Error {
  override name = 'SubscriptionEndedError';
  constructor(
    message: string,
    /** Whether the node ended it with an error notification (else the connection closed). */
    readonly byNode: boolean,
  ) {
    super(message);
  }
}

type Pending = {
  method: string;
  resolve: (v: unknown) => void;
  reject: (e: unknown) => void;
  /** Runs synchronously on the response, before any later message is handled. */
  onResult?: (v: unknown) => unknown;
};

/** One subscription's notifications, in order. */
export class WsSubscription {
  readonly #queue: unknown[] = [];
  #waiter: { resolve: (v: unknown) => void; reject: (e: unknown) => void } | null = null;
  #ended: Error | null = null;

  /** @internal */
  constructor(
    readonly id: bigint | number | string,
    private readonly conn: WsConnection,
    private readonly unsubscribeMethod: string,
    private readonly max: number,
  ) {}

  /** @internal */
  push(result: unknown): void {
    if (this.#ended) return;
    if (this.#waiter) {
      const w = this.#waiter;
      this.#waiter = null;
      w.resolve(result);
      return;
    }
    this.#queue.push(result);
    if (this.#queue.length > this.max) {
      this.end(new SubscriptionEndedError(`reader fell behind: more than ${this.max} notifications buffered`, false));
      this.conn.close();
    }
  }

  /** @internal */
  end(e: Error): void {
    if (this.#ended) return;
    this.#ended = e;
    if (this.#waiter) {
      const w = this.#waiter;
      this.#waiter = null;
      w.reject(e);
    }
  }

  /** The next notification's `result`; rejects once the subscription has ended (after the buffered ones). */
  next(): Promise<unknown> {
    if (this.#queue.length > 0) return Promise.resolve(this.#queue.shift());
    if (this.#ended) return Promise.reject(this.#ended);
    if (this.#waiter) return Promise.reject(new Error('next() called again before the previous call settled'));
    return new Promise((resolve, reject) => {
      this.#waiter = { resolve, reject };
    });
  }

  /** Ends the subscription on the node. */
  async unsubscribe(): Promise<boolean> {
    this.end(new SubscriptionEndedError('unsubscribed', false));
    return (await this.conn.call(this.unsubscribeMethod, [this.id])) === true;
  }
}

/** One WebSocket connection carrying calls and subscriptions. */
export class WsConnection implements Transport {
  #id = 0;
  readonly #pending = new Map<number, Pending>();
  readonly #subs = new Map<string, WsSubscription>();
  #closed: Error | null = null;

  private constructor(
    readonly url: string,
    private readonly socket: WebSocketLike,
    private readonly maxBuffered: number,
  ) {}

  /** Opens a connection; rejects with [`TransportError`] if it is not open within the timeout. */
  static connect(url: string, opts: WsOptions = {}): Promise<WsConnection> {
    const factory = opts.webSocket ?? globalWebSocket();
    if (!factory) {
      return Promise.reject(
        new Error('no global WebSocket here (Node 20): pass options.webSocket, e.g. nodeWebSocket from @lockstep/sdk/node'),
      );
    }
    const timeoutMs = opts.connectTimeoutMs ?? CONNECT_TIMEOUT_MS;
    return new Promise((resolve, reject) => {
      let socket: WebSocketLike;
      try {
        socket = factory(url);
      } catch (e) {
        reject(new TransportError(url, `cannot open: ${e instanceof Error ? e.message : String(e)}`, { cause: e }));
        return;
      }
      const conn = new WsConnection(url, socket, opts.maxBufferedNotifications ?? MAX_BUFFERED_NOTIFICATIONS);
      let opened = false;
      const timer = setTimeout(() => {
        if (opened) return;
        conn.fail(new TransportError(url, `not open after ${timeoutMs} ms`));
        reject(new TransportError(url, `not open after ${timeoutMs} ms`));
      }, timeoutMs);
      socket.onopen = () => {
        opened = true;
        clearTimeout(timer);
        resolve(conn);
      };
      socket.onerror = (ev: { message?: string; error?: unknown }) => {
        const why = ev?.message ?? (ev?.error instanceof Error ? ev.error.message : 'connection error');
        if (!opened) {
          clearTimeout(timer);
          reject(new TransportError(url, why));
        }
        conn.fail(new TransportError(url, why));
      };
      socket.onclose = (ev: { code?: number; reason?: string }) => {
        const why = `connection closed (${ev?.code ?? '?'}${ev?.reason ? `: ${ev.reason}` : ''})`;
        if (!opened) {
          clearTimeout(timer);
          reject(new TransportError(url, why));
        }
        conn.fail(new TransportError(url, why), false);
      };
      socket.onmessage = (ev: { data: unknown }) => conn.receive(ev.data);
    });
  }

  /** Whether the connection has closed (or failed). */
  get closed(): boolean {
    return this.#closed !== null;
  }

  call(method: string, params: unknown[]): Promise<unknown> {
    return this.request(method, params);
  }

  private request(method: string, params: unknown[], onResult?: (v: unknown) => unknown): Promise<unknown> {
    if (this.#closed) return Promise.reject(this.#closed);
    const id = ++this.#id;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { method, resolve, reject, onResult });
      try {
        this.socket.send(stringifyJson({ jsonrpc: '2.0', id, method, params }));
      } catch (e) {
        this.#pending.delete(id);
        reject(new TransportError(this.url, `${method}: cannot send: ${e instanceof Error ? e.message : String(e)}`));
      }
    });
  }

  /**
   * Subscribes with `method(params)`; the notifications are `{subscription, result}` (or
   * `{subscription, error}`, which ends it). `unsubscribeMethod` ends it on the node.
   */
  async subscribe(method: string, params: unknown[], unsubscribeMethod: string): Promise<WsSubscription> {
    const sub = await this.request(method, params, (id) => {
      if (typeof id !== 'bigint' && typeof id !== 'number' && typeof id !== 'string') {
        throw new TransportError(this.url, `${method}: the subscription id is not a number or string`);
      }
      const s = new WsSubscription(id, this, unsubscribeMethod, this.maxBuffered);
      this.#subs.set(String(id), s);
      return s;
    });
    return sub as WsSubscription;
  }

  /** Closes the connection; pending calls and subscriptions end. */
  close(): void {
    this.fail(new TransportError(this.url, 'connection closed by the client'));
  }

  private fail(e: Error, closeSocket = true): void {
    if (this.#closed) return;
    this.#closed = e;
    for (const p of this.#pending.values()) p.reject(e);
    this.#pending.clear();
    for (const s of this.#subs.values()) s.end(new SubscriptionEndedError(e.message, false));
    this.#subs.clear();
    if (closeSocket) {
      try {
        this.socket.close();
      } catch {
        // Already closing.
      }
    }
  }

  private receive(data: unknown): void {
    if (this.#closed) return;
    let text: string;
    if (typeof data === 'string') text = data;
    else if (data instanceof ArrayBuffer) text = new TextDecoder().decode(data);
    else if (ArrayBuffer.isView(data)) text = new TextDecoder().decode(data as Uint8Array);
    else return; // Blobs and the like: the node sends text frames only.
    let msg: unknown;
    try {
      msg = parseJson(text);
    } catch {
      this.fail(new TransportError(this.url, `the node sent a message that is not JSON: ${text.slice(0, 200)}`));
      return;
    }
    if (typeof msg !== 'object' || msg === null || Array.isArray(msg)) return;
    const m = msg as Record<string, unknown>;
    if (m.id !== undefined && m.id !== null && ('result' in m || 'error' in m)) {
      const id = Number(m.id);
      const p = this.#pending.get(id);
      if (!p) return;
      this.#pending.delete(id);
      try {
        const r = resultOf(this.url, p.method, m);
        p.resolve(p.onResult ? p.onResult(r) : r);
      } catch (e) {
        p.reject(e);
      }
      return;
    }
    if (typeof m.method === 'string' && typeof m.params === 'object' && m.params !== null) {
      const params = m.params as Record<string, unknown>;
      const key = String(params.subscription);
      const s = this.#subs.get(key);
      if (!s) return;
      if (params.error !== undefined) {
        this.#subs.delete(key);
        s.end(new SubscriptionEndedError(`ended by the node: ${typeof params.error === 'string' ? params.error : stringifyJson(params.error)}`, true));
      } else {
        s.push(params.result);
      }
    }
  }
}
