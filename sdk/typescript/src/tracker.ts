/** Sending a bundle and waiting for its fate (`lockstep_client::tracker`). */

import { bundleHash } from './bundle.js';
import { type BytesLike, bytesOf, toHex } from './hex.js';
import type { LockstepClient } from './rpc.js';
import type { SignedBundle } from './types.js';

/** What became of a bundle. */
export type Outcome = { status: 'included'; height: bigint; index: number } | { status: 'dropped'; reason: string };

/** The bundle was still pending (or unknown) when the wait ended. */
export class TrackTimeoutError extends Error {
  override name = 'TrackTimeoutError';
  constructor(
    readonly hash: string,
    readonly status: string,
    readonly timeoutMs: number,
  ) {
    super(`bundle ${hash} still ${status} after ${timeoutMs} ms`);
  }
}

export interface WaitOptions {
  /** Default 60 s. */
  timeoutMs?: number;
  /** Time between two status calls (default 50 ms, as the Rust client). */
  pollMs?: number;
}

/** Polls `seq_getBundleStatus` until the bundle is included or dropped. */
export async function waitForBundle(client: LockstepClient, hash: BytesLike, opts: WaitOptions = {}): Promise<Outcome> {
  const h = toHex(bytesOf(hash, 'hash'));
  const timeoutMs = opts.timeoutMs ?? 60_000;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const s = await client.getBundleStatus(h);
    if (s.status === 'included') return { status: 'included', height: s.height ?? 0n, index: s.index ?? 0 };
    if (s.status === 'dropped') return { status: 'dropped', reason: s.reason ?? '' };
    if (Date.now() >= deadline) throw new TrackTimeoutError(h, s.status, timeoutMs);
    await new Promise((r) => setTimeout(r, opts.pollMs ?? 50));
  }
}

/**
 * Sends `bundle` with `seq_sendRawBundle` and waits until it is included or dropped. A
 * rejection throws [`RpcError`] with the protocol's code. The hash the node returned is checked
 * against the bundle's own.
 */
export async function sendAndWait(
  client: LockstepClient,
  bundle: SignedBundle,
  opts: WaitOptions = {},
): Promise<{ hash: string; outcome: Outcome }> {
  const hash = await client.sendRawBundle(bundle);
  const own = toHex(bundleHash(bundle));
  if (hash !== own) throw new Error(`the node returned hash ${hash} for bundle ${own}`);
  return { hash, outcome: await waitForBundle(client, hash, opts) };
}
