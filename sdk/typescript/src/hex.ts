/**
 * `0x`-prefixed hex, as the protocol writes byte strings (protocol §3.1): lower case out,
 * either case (and a `0X` prefix) in.
 */

/** Why a string is not the hex that was expected. */
export class HexError extends Error {
  override name = 'HexError';
}

const DIGITS = '0123456789abcdef';

/** `0x` + lower-case hex of `bytes`. */
export function toHex(bytes: Uint8Array): string {
  let out = '0x';
  for (const b of bytes) out += DIGITS[b >> 4]! + DIGITS[b & 15]!;
  return out;
}

function digit(code: number): number {
  if (code >= 48 && code <= 57) return code - 48; // 0-9
  if (code >= 97 && code <= 102) return code - 87; // a-f
  if (code >= 65 && code <= 70) return code - 55; // A-F
  return -1;
}

/** Decodes `0x`-prefixed hex (either case); `what` names the field in the error. */
export function fromHex(s: string, what = 'hex'): Uint8Array {
  if (typeof s !== 'string') throw new HexError(`${what}: expected a 0x-prefixed hex string`);
  if (!s.startsWith('0x') && !s.startsWith('0X')) {
    throw new HexError(`${what}: expected a 0x-prefixed hex string`);
  }
  const body = s.length - 2;
  if (body % 2 !== 0) throw new HexError(`${what}: odd number of hex digits`);
  const out = new Uint8Array(body / 2);
  for (let i = 0; i < out.length; i++) {
    const hi = digit(s.charCodeAt(2 + 2 * i));
    const lo = digit(s.charCodeAt(3 + 2 * i));
    if (hi < 0 || lo < 0) throw new HexError(`${what}: invalid hex digit near position ${2 + 2 * i}`);
    out[i] = (hi << 4) | lo;
  }
  return out;
}

/** Decodes `0x`-prefixed hex of exactly `n` bytes. */
export function fromHexN(s: string, n: number, what = 'hex'): Uint8Array {
  const b = fromHex(s, what);
  if (b.length !== n) throw new HexError(`${what}: expected ${n} bytes, got ${b.length}`);
  return b;
}

/** Bytes given as a `Uint8Array` or as `0x` hex. */
export type BytesLike = Uint8Array | string;

/** `Uint8Array` as is, hex decoded. */
export function bytesOf(b: BytesLike, what = 'bytes'): Uint8Array {
  return typeof b === 'string' ? fromHex(b, what) : b;
}

/** Byte-wise equality. */
export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Byte order (as Rust compares `[u8; N]`): negative, zero or positive. */
export function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i]! - b[i]!;
  return a.length - b.length;
}
