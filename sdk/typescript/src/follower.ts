/**
 * Following one rollup: subscribe, verify every batch, yield every height once, in order —
 * `lockstep_client::follower`. [`Subscriber`] is one subscription on one node; [`Follower`]
 * knows several nodes, and when its node disconnects, ends the subscription, sends a batch that
 * does not verify or skips a height, it moves to the next node and resumes from the height
 * after the last one it verified.
 */

import { type BatchVerifier, parseRollupBatchJson, type RollupBatch, type RollupBatchJson, VerifyError } from './batch.js';
import { type U64Like, u64 } from './ints.js';
import { WsConnection, type WsOptions, type WsSubscription, SubscriptionEndedError } from './ws.js';

export type FollowErrorKind = 'connection' | 'ended' | 'gap' | 'wrongRollup' | 'verify' | 'exhausted';

/** Why a subscription (or, with `exhausted`, the whole follower) stopped. */
export class FollowError extends Error {
  override name = 'FollowError';
  constructor(
    readonly kind: FollowErrorKind,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** A verified batch, with the JSON it came in. */
export interface Verified {
  batch: RollupBatch;
  json: RollupBatchJson;
}

const why = (e: unknown): string => (e instanceof Error ? e.message : String(e));

export interface SubscriberOptions extends WsOptions {
  /** Fail the subscription when no batch arrives for this long (default: wait as long as the connection lives, as the Rust client). */
  idleTimeoutMs?: number;
}

/** A subscription to one rollup on one node whose every batch is verified. */
export class Subscriber {
  private constructor(
    private readonly conn: WsConnection,
    private readonly sub: WsSubscription,
    private readonly verifier: BatchVerifier,
    readonly rollupId: bigint,
    private nextHeight: bigint | undefined,
    private readonly idleTimeoutMs: number | undefined,
  ) {}

  /** Subscribes to `rollupId` from `fromHeight` (default: the node's next height). */
  static async connect(
    url: string,
    rollupId: U64Like,
    fromHeight: U64Like | undefined,
    verifier: BatchVerifier,
    opts: SubscriberOptions = {},
  ): Promise<Subscriber> {
    const rollup = u64(rollupId, 'rollupId');
    const from = fromHeight === undefined ? undefined : u64(fromHeight, 'fromHeight');
    let conn: WsConnection;
    try {
      conn = await WsConnection.connect(url, opts);
    } catch (e) {
      throw new FollowError('connection', `${url}: ${why(e)}`, { cause: e });
    }
    try {
      const sub = await conn.subscribe('seq_subscribeRollup', [rollup, from ?? null], 'seq_unsubscribeRollup');
      return new Subscriber(conn, sub, verifier, rollup, from, opts.idleTimeoutMs);
    } catch (e) {
      conn.close();
      throw new FollowError('connection', `${url}: ${why(e)}`, { cause: e });
    }
  }

  private async raw(): Promise<unknown> {
    if (this.idleTimeoutMs === undefined) return this.sub.next();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const idle = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new FollowError('connection', `${this.conn.url}: no batch for ${this.idleTimeoutMs} ms`)),
        this.idleTimeoutMs,
      );
    });
    try {
      return await Promise.race([this.sub.next(), idle]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** The next height's verified batch; heights are strictly consecutive. */
  async next(): Promise<Verified> {
    let raw: unknown;
    try {
      raw = await this.raw();
    } catch (e) {
      if (e instanceof FollowError) throw e;
      if (e instanceof SubscriptionEndedError && e.byNode) {
        throw new FollowError('ended', `subscription ended by the node: ${e.message}`, { cause: e });
      }
      throw new FollowError('connection', `${this.conn.url}: ${why(e)}`, { cause: e });
    }
    let json: RollupBatchJson;
    try {
      json = parseRollupBatchJson(raw);
    } catch (e) {
      throw new FollowError('verify', why(e), { cause: e });
    }
    if (json.rollupId !== this.rollupId) {
      throw new FollowError('wrongRollup', `batch for rollup ${json.rollupId}, expected ${this.rollupId}`);
    }
    if (this.nextHeight !== undefined && json.height !== this.nextHeight) {
      throw new FollowError('gap', `height ${json.height} received, expected ${this.nextHeight}`);
    }
    let batch: RollupBatch;
    try {
      batch = this.verifier.verify(json);
    } catch (e) {
      if (e instanceof VerifyError) throw new FollowError('verify', e.message, { cause: e });
      throw e;
    }
    this.nextHeight = json.height + 1n;
    return { batch, json };
  }

  /** Closes the connection. */
  close(): void {
    this.conn.close();
  }
}

/** Time between attempts when every node failed once in a row (as the Rust client). */
export const RETRY_PAUSE_MS = 500;
/** Consecutive failed attempts, without a verified batch between them, before giving up. */
export const DEFAULT_MAX_FAILURES = 10;

export interface FollowerOptions extends SubscriberOptions {
  /** The nodes' WebSocket URLs, tried in turn. */
  urls: string[];
  rollupId: U64Like;
  /** The first height wanted (default: the first node's next height). */
  fromHeight?: U64Like;
  verifier: BatchVerifier;
  /** Give up after this many consecutive failed attempts (default [`DEFAULT_MAX_FAILURES`]). */
  maxFailures?: number;
  /** Told of each failure before the follower moves to the next node. */
  onFailover?: (info: { url: string; error: FollowError }) => void;
}

/**
 * A rollup's view of the sequencer: verified batches, every height exactly once, in order,
 * across node failures. `await follower.next()`, or `for await (const v of follower)`.
 */
export class Follower implements AsyncIterable<Verified> {
  private readonly urls: string[];
  private current = 0;
  private readonly rollupId: bigint;
  private next_: bigint | undefined;
  private sub: Subscriber | null = null;
  private failures = 0;
  private readonly maxFailures: number;
  private stopped = false;

  constructor(private readonly opts: FollowerOptions) {
    this.urls = [...opts.urls];
    this.rollupId = u64(opts.rollupId, 'rollupId');
    this.next_ = opts.fromHeight === undefined ? undefined : u64(opts.fromHeight, 'fromHeight');
    this.maxFailures = Math.max(1, opts.maxFailures ?? DEFAULT_MAX_FAILURES);
  }

  /** The height the next batch will have, once known. */
  get nextHeight(): bigint | undefined {
    return this.next_;
  }

  /** The URL of the node currently followed. */
  get node(): string {
    return this.urls[this.current] ?? '';
  }

  private fail(e: unknown): void {
    const err = e instanceof FollowError ? e : new FollowError('connection', why(e), { cause: e });
    this.opts.onFailover?.({ url: this.node, error: err });
    this.sub?.close();
    this.sub = null;
    this.current = (this.current + 1) % this.urls.length;
    this.failures += 1;
    if (this.failures >= this.maxFailures) {
      throw new FollowError('exhausted', `no node could serve the rollup: ${err.message}`, { cause: err });
    }
  }

  /** The next verified batch. */
  async next(): Promise<Verified> {
    if (this.urls.length === 0) throw new FollowError('exhausted', 'no node could serve the rollup: no nodes given');
    for (;;) {
      if (this.stopped) throw new FollowError('ended', 'the follower was closed');
      if (!this.sub) {
        if (this.failures > 0 && this.failures % this.urls.length === 0) {
          await new Promise((r) => setTimeout(r, RETRY_PAUSE_MS));
        }
        try {
          this.sub = await Subscriber.connect(this.node, this.rollupId, this.next_, this.opts.verifier, this.opts);
        } catch (e) {
          this.fail(e);
          continue;
        }
        if (this.stopped) this.sub.close();
      }
      try {
        const v = await this.sub.next();
        this.failures = 0;
        this.next_ = v.batch.height + 1n;
        return v;
      } catch (e) {
        if (this.stopped) throw new FollowError('ended', 'the follower was closed');
        this.fail(e);
      }
    }
  }

  /** Stops following: closes the current connection; a pending `next()` rejects with `ended`. */
  close(): void {
    this.stopped = true;
    this.sub?.close();
    this.sub = null;
  }

  async *[Symbol.asyncIterator](): AsyncIterator<Verified> {
    try {
      for (;;) yield await this.next();
    } finally {
      this.close();
    }
  }
}
