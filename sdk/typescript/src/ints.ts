/**
 * Integers of the protocol: `u64`/`i64` are `bigint` (a JavaScript number is exact only below
 * 2^53, and nonces, rollup ids and chain ids may be larger), `u32`/`u8` are numbers.
 */

export const U64_MAX = (1n << 64n) - 1n;
export const I64_MIN = -(1n << 63n);
export const I64_MAX = (1n << 63n) - 1n;
export const U32_MAX = 0xffff_ffff;

/** A u64 given as a bigint, or as a number when it is a safe integer. */
export type U64Like = bigint | number;

/** Checks and converts a u64; `what` names the field in the error. */
export function u64(v: U64Like, what = 'value'): bigint {
  if (typeof v === 'number') {
    if (!Number.isSafeInteger(v)) {
      throw new RangeError(`${what}: ${v} is not a safe integer; give u64 values above 2^53 as bigint`);
    }
    v = BigInt(v);
  }
  if (typeof v !== 'bigint' || v < 0n || v > U64_MAX) {
    throw new RangeError(`${what}: ${String(v)} is not a u64`);
  }
  return v;
}

/** Checks an i64. */
export function i64(v: U64Like, what = 'value'): bigint {
  if (typeof v === 'number') {
    if (!Number.isSafeInteger(v)) throw new RangeError(`${what}: ${v} is not a safe integer`);
    v = BigInt(v);
  }
  if (typeof v !== 'bigint' || v < I64_MIN || v > I64_MAX) {
    throw new RangeError(`${what}: ${String(v)} is not an i64`);
  }
  return v;
}

/** Checks a u32 (given as a number or a bigint) and returns it as a number. */
export function u32(v: U64Like, what = 'value'): number {
  const n = typeof v === 'bigint' ? v : Number.isInteger(v) ? BigInt(v) : -1n;
  if (n < 0n || n > BigInt(U32_MAX)) throw new RangeError(`${what}: ${String(v)} is not a u32`);
  return Number(n);
}
