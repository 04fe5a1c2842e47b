/**
 * The JSON-RPC API (protocol §3) over a pluggable transport: typed methods, and errors carried
 * as [`RpcError`]s with the protocol's codes.
 */

import type { RollupBatchJson } from './batch.js';
import { parseRollupBatchJson } from './batch.js';
import { type BundleJson, toBundleJson, toRawHex } from './bundle.js';
import { type BytesLike, bytesOf, fromHexN, toHex } from './hex.js';
import { type U64Like, u32, u64 } from './ints.js';
import { parseJson, stringifyJson } from './json.js';
import type { SignedBundle } from './types.js';

/** The protocol's error codes (protocol §3.5), as `lockstep_client::api::codes`. */
export const ErrorCode = {
  /** The signature does not verify, or another signature of the bundle is pending here. */
  BadSignature: 4001,
  WrongChain: 4002,
  /** `validUntil` below the next height, or beyond latest + `max_ttl`. */
  Expired: 4003,
  /** Above `max_bundle_bytes`, more than `max_legs` legs, or no legs. */
  TooLarge: 4004,
  Undecodable: 4005,
  /** The node is busy: retry later, or at another node. */
  Busy: 4006,
  /** `fromHeight` below the oldest height the node keeps. */
  SubscriptionRefused: 4007,
  /**
   * A validator set update refused: a leg for rollup 0 that is not its bundle's only leg or
   * does not decode as an update, or an update the next block could not carry.
   */
  SetUpdateRefused: 4008,
  ParseError: -32700,
  InvalidRequest: -32600,
  MethodNotFound: -32601,
  InvalidParams: -32602,
  InternalError: -32603,
  TooManySubscriptions: -32006,
  RequestTooLarge: -32007,
  BatchTooLarge: -32010,
  ResponseTooLarge: -32011,
} as const;

/** A JSON-RPC error object the node answered: `code` is the protocol's. */
export class RpcError extends Error {
  override name = 'RpcError';
  constructor(
    readonly method: string,
    readonly code: number,
    /** The node's own message, e.g. `expired: valid_until 1 is below the next height 57`. */
    readonly rpcMessage: string,
    readonly data?: unknown,
  ) {
    super(`${method} failed (${code}): ${rpcMessage}`);
  }

  /** Whether the same call may succeed later or at another node (4006: the node is busy). */
  get retryable(): boolean {
    return this.code === ErrorCode.Busy;
  }
}

/** The call did not get an answer: connection refused or lost, timeout, a reply that is not JSON-RPC. */
export class TransportError extends Error {
  override name = 'TransportError';
  constructor(
    readonly url: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(`${url}: ${message}`, options);
  }
}

/** Carries one JSON-RPC call and returns its result, or throws [`RpcError`] / [`TransportError`]. */
export interface Transport {
  call(method: string, params: unknown[]): Promise<unknown>;
}

/** The result of a JSON-RPC response object, or the error it carries. */
export function resultOf(url: string, method: string, msg: unknown): unknown {
  if (typeof msg !== 'object' || msg === null) throw new TransportError(url, `${method}: the answer is not a JSON-RPC response`);
  const m = msg as Record<string, unknown>;
  if (m.error !== undefined && m.error !== null) {
    const e = m.error as Record<string, unknown>;
    const code = typeof e.code === 'bigint' || typeof e.code === 'number' ? Number(e.code) : NaN;
    if (!Number.isFinite(code)) throw new TransportError(url, `${method}: malformed error object`);
    throw new RpcError(method, code, typeof e.message === 'string' ? e.message : '', e.data);
  }
  if (!('result' in m)) throw new TransportError(url, `${method}: the answer has neither result nor error`);
  return m.result;
}

export interface HttpTransportOptions {
  /** The `fetch` to use (default: the global one, in browsers and Node 18+). */
  fetch?: typeof globalThis.fetch;
  /** Per-call timeout (default 10 s, as the Rust harness's HTTP client). */
  timeoutMs?: number;
}

/** JSON-RPC over HTTP POST with `fetch`: no Node-only APIs. */
export class HttpTransport implements Transport {
  #id = 0;
  readonly #fetch: typeof globalThis.fetch;
  readonly #timeoutMs: number;

  constructor(
    readonly url: string,
    opts: HttpTransportOptions = {},
  ) {
    const f = opts.fetch ?? globalThis.fetch;
    if (typeof f !== 'function') throw new Error('no fetch in this environment; pass one in options.fetch');
    this.#fetch = f.bind(globalThis);
    this.#timeoutMs = opts.timeoutMs ?? 10_000;
  }

  async call(method: string, params: unknown[]): Promise<unknown> {
    const body = stringifyJson({ jsonrpc: '2.0', id: ++this.#id, method, params });
    const ctrl = new AbortController();
    const timer = setTimeout(() => ctrl.abort(), this.#timeoutMs);
    let status = 0;
    let text: string;
    try {
      const res = await this.#fetch(this.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body,
        signal: ctrl.signal,
      });
      status = res.status;
      text = await res.text();
    } catch (e) {
      const why = ctrl.signal.aborted ? `timed out after ${this.#timeoutMs} ms` : e instanceof Error ? e.message : String(e);
      throw new TransportError(this.url, `${method}: ${why}`, { cause: e });
    } finally {
      clearTimeout(timer);
    }
    let msg: unknown;
    try {
      msg = parseJson(text);
    } catch (e) {
      throw new TransportError(this.url, `${method}: HTTP ${status}, not JSON: ${text.slice(0, 200)}`, { cause: e });
    }
    return resultOf(this.url, method, msg);
  }
}

/** `seq_getBundleStatus`'s answer. */
export interface BundleStatus {
  status: 'pending' | 'included' | 'dropped' | 'unknown';
  /** For `included`: the height of the block. */
  height?: bigint;
  /** For `included`: the position in the block (0-based). */
  index?: number;
  /** For `dropped`: why. */
  reason?: string;
}

/** `seq_getBlock`'s answer. */
export interface BlockInfo {
  height: bigint;
  hash: string;
  parentHash: string;
  timestamp: bigint;
  proposer: string;
  /** The bundle hashes, in block order. */
  bundles: string[];
}

/** `seq_health`'s answer. */
export interface Health {
  height: bigint;
  peers: bigint;
  syncing: boolean;
  validator: boolean;
  lastDecidedAt: bigint | null;
  stalled: boolean;
}

/** One entry of `seq_validators`. */
export interface ValidatorInfo {
  address: string;
  publicKey: string;
  votingPower: bigint;
}

/**
 * One validator set of `seq_getValidatorSets`, as the serving node says: check it against the
 * update it names (the rollup-0 batch of height `includedAt`), never trust it as it is.
 */
export interface ValidatorSetInfo {
  /** 0 for genesis; each update adds one. */
  version: bigint;
  /** The first height this set decides. */
  fromHeight: bigint;
  /** The height of the block that included the update making this set (0 for genesis). */
  includedAt: bigint;
  /** The set's hash, as the headers of the heights it decides carry it. */
  validatorsHash: string;
  /** In address order. */
  validators: ValidatorInfo[];
}

const asObj = (v: unknown, what: string): Record<string, unknown> => {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new TypeError(`${what}: expected an object`);
  return v as Record<string, unknown>;
};
const asInt = (v: unknown, what: string): bigint => {
  if (typeof v !== 'bigint' && typeof v !== 'number') throw new TypeError(`${what}: expected an integer`);
  return u64(v, what);
};
const asHash = (v: unknown, what: string, n = 32): string => toHex(fromHexN(v as string, n, what));
const validatorsOf = (r: unknown, what: string): ValidatorInfo[] => {
  if (!Array.isArray(r)) throw new TypeError(`${what}: expected an array`);
  return r.map((v: unknown, i: number) => {
    const o = asObj(v, `${what}[${i}]`);
    return {
      address: asHash(o.address, 'address', 20),
      publicKey: asHash(o.publicKey, 'publicKey'),
      votingPower: asInt(o.votingPower, 'votingPower'),
    };
  });
};

/** A client of one node's JSON-RPC API (`seq_*`), over HTTP or any [`Transport`]. */
export class LockstepClient {
  readonly transport: Transport;

  /** `http(s)://…` for HTTP, or a transport (e.g. a [`WsConnection`]). */
  constructor(transport: Transport | string, opts?: HttpTransportOptions) {
    this.transport = typeof transport === 'string' ? new HttpTransport(transport, opts) : transport;
  }

  /** Any method, with its raw (bigint-exact) result. */
  call(method: string, params: unknown[] = []): Promise<unknown> {
    return this.transport.call(method, params);
  }

  async chainId(): Promise<bigint> {
    return asInt(await this.call('seq_chainId'), 'seq_chainId');
  }

  /** The latest decided height (0 before the first block). */
  async blockNumber(): Promise<bigint> {
    return asInt(await this.call('seq_blockNumber'), 'seq_blockNumber');
  }

  /** Submits `borsh(SignedBundle)` (a bundle, its bytes, or `0x` hex); returns its hash, durable on this node. */
  async sendRawBundle(bundle: SignedBundle | BytesLike): Promise<string> {
    const raw =
      typeof bundle === 'string' ? bundle : bundle instanceof Uint8Array ? toHex(bundle) : toRawHex(bundle);
    return asHash(await this.call('seq_sendRawBundle', [raw]), 'seq_sendRawBundle');
  }

  /** Submits the bundle as a JSON object; returns its hash. */
  async sendBundle(bundle: SignedBundle | BundleJson): Promise<string> {
    const j = 'body' in bundle ? toBundleJson(bundle) : bundle;
    return asHash(await this.call('seq_sendBundle', [j]), 'seq_sendBundle');
  }

  /** What this node knows of a bundle. */
  async getBundleStatus(hash: BytesLike): Promise<BundleStatus> {
    const o = asObj(await this.call('seq_getBundleStatus', [toHex(bytesOf(hash, 'hash'))]), 'seq_getBundleStatus');
    const status = o.status;
    if (status !== 'pending' && status !== 'included' && status !== 'dropped' && status !== 'unknown') {
      throw new TypeError(`seq_getBundleStatus: unknown status ${String(status)}`);
    }
    const s: BundleStatus = { status };
    if (o.height !== undefined && o.height !== null) s.height = asInt(o.height, 'height');
    if (o.index !== undefined && o.index !== null) s.index = u32(asInt(o.index, 'index'), 'index');
    if (typeof o.reason === 'string') s.reason = o.reason;
    return s;
  }

  /** The decided block at `height`, or `null` if not decided here (or pruned). */
  async getBlock(height: U64Like): Promise<BlockInfo | null> {
    const r = await this.call('seq_getBlock', [u64(height, 'height')]);
    if (r === null) return null;
    const o = asObj(r, 'seq_getBlock');
    if (!Array.isArray(o.bundles)) throw new TypeError('seq_getBlock: bundles: expected an array');
    return {
      height: asInt(o.height, 'height'),
      hash: asHash(o.hash, 'hash'),
      parentHash: asHash(o.parentHash, 'parentHash'),
      timestamp: asInt(o.timestamp, 'timestamp'),
      proposer: asHash(o.proposer, 'proposer', 20),
      bundles: o.bundles.map((h: unknown, i: number) => asHash(h, `bundles[${i}]`)),
    };
  }

  /** A rollup's batch at `height` (not verified: see [`BatchVerifier`]), or `null`. */
  async getRollupBatch(rollupId: U64Like, height: U64Like): Promise<RollupBatchJson | null> {
    const r = await this.call('seq_getRollupBatch', [u64(rollupId, 'rollupId'), u64(height, 'height')]);
    return r === null ? null : parseRollupBatchJson(r);
  }

  async health(): Promise<Health> {
    const o = asObj(await this.call('seq_health'), 'seq_health');
    return {
      height: asInt(o.height, 'height'),
      peers: asInt(o.peers, 'peers'),
      syncing: o.syncing === true,
      validator: o.validator === true,
      lastDecidedAt: o.lastDecidedAt === null || o.lastDecidedAt === undefined ? null : asInt(o.lastDecidedAt, 'lastDecidedAt'),
      stalled: o.stalled === true,
    };
  }

  /**
   * The validator set deciding `height` (default: the next height) in address order, as the
   * node reports it (exact up to its latest height plus the update delay; trust genesis.json
   * and verified updates, not this). The node refuses height 0 (-32602).
   */
  async validators(height?: U64Like): Promise<ValidatorInfo[]> {
    const params = height === undefined ? [] : [u64(height, 'height')];
    return validatorsOf(await this.call('seq_validators', params), 'seq_validators');
  }

  /**
   * Every validator set from version `fromVersion` (default 0, genesis) on, oldest first, at
   * most 256 a call: those in force and the one scheduled, if any. What the node says: check
   * each against its update before trusting it.
   */
  async getValidatorSets(fromVersion?: U64Like): Promise<ValidatorSetInfo[]> {
    const params = fromVersion === undefined ? [] : [u64(fromVersion, 'fromVersion')];
    const r = await this.call('seq_getValidatorSets', params);
    if (!Array.isArray(r)) throw new TypeError('seq_getValidatorSets: expected an array');
    return r.map((s: unknown, i: number) => {
      const what = `seq_getValidatorSets[${i}]`;
      const o = asObj(s, what);
      return {
        version: asInt(o.version, `${what}.version`),
        fromHeight: asInt(o.fromHeight, `${what}.fromHeight`),
        includedAt: asInt(o.includedAt, `${what}.includedAt`),
        validatorsHash: asHash(o.validatorsHash, `${what}.validatorsHash`),
        validators: validatorsOf(o.validators, `${what}.validators`),
      };
    });
  }

  /** The equivocations this node has seen, as the node writes them. */
  async getEvidence(): Promise<unknown[]> {
    const r = await this.call('seq_getEvidence');
    if (!Array.isArray(r)) throw new TypeError('seq_getEvidence: expected an array');
    return r;
  }
}
