/**
 * A small Borsh encoder and decoder for the protocol's types (protocol §0): little-endian
 * integers, `[u8; N]` as the bytes, `Vec<T>` as a u32 count then the items, `Option<T>` and
 * enums as a one-byte tag. The decoder accepts exactly what Borsh accepts: a tag out of range
 * or bytes left over are errors.
 */

import { I64_MAX, I64_MIN, U32_MAX, U64_MAX } from './ints.js';

/** Why bytes do not decode. */
export class BorshError extends Error {
  override name = 'BorshError';
}

/** Appends Borsh values to a growing buffer. */
export class Writer {
  private buf: Uint8Array;
  private view: DataView;
  private len = 0;

  constructor(capacity = 256) {
    this.buf = new Uint8Array(capacity);
    this.view = new DataView(this.buf.buffer);
  }

  /** Room for `n` more bytes; returns where they start. (Call it before reading `buf`/`view`: it may replace them.) */
  private reserve(n: number): number {
    if (this.len + n > this.buf.length) {
      const next = new Uint8Array(Math.max(this.buf.length * 2, this.len + n));
      next.set(this.buf.subarray(0, this.len));
      this.buf = next;
      this.view = new DataView(next.buffer);
    }
    const at = this.len;
    this.len += n;
    return at;
  }

  u8(v: number): this {
    if (!Number.isInteger(v) || v < 0 || v > 255) throw new RangeError(`${v} is not a u8`);
    const at = this.reserve(1);
    this.buf[at] = v;
    return this;
  }

  u32(v: number): this {
    if (!Number.isInteger(v) || v < 0 || v > U32_MAX) throw new RangeError(`${v} is not a u32`);
    const at = this.reserve(4);
    this.view.setUint32(at, v, true);
    return this;
  }

  u64(v: bigint): this {
    if (typeof v !== 'bigint' || v < 0n || v > U64_MAX) throw new RangeError(`${String(v)} is not a u64`);
    const at = this.reserve(8);
    this.view.setBigUint64(at, v, true);
    return this;
  }

  i64(v: bigint): this {
    if (typeof v !== 'bigint' || v < I64_MIN || v > I64_MAX) throw new RangeError(`${String(v)} is not an i64`);
    const at = this.reserve(8);
    this.view.setBigInt64(at, v, true);
    return this;
  }

  /** `[u8; N]`: the bytes, no length; `n` checks the length. */
  fixed(bytes: Uint8Array, n: number): this {
    if (bytes.length !== n) throw new RangeError(`expected ${n} bytes, got ${bytes.length}`);
    return this.raw(bytes);
  }

  /** Bytes with no length prefix (a tag's ASCII, or an already encoded value). */
  raw(bytes: Uint8Array): this {
    const at = this.reserve(bytes.length);
    this.buf.set(bytes, at);
    return this;
  }

  /** `Vec<u8>`: u32 length, then the bytes. */
  bytes(bytes: Uint8Array): this {
    return this.u32(bytes.length).raw(bytes);
  }

  /** `Vec<T>`: u32 count, then each item. */
  vec<T>(items: readonly T[], item: (w: Writer, v: T) => void): this {
    this.u32(items.length);
    for (const v of items) item(this, v);
    return this;
  }

  /** `Option<T>`. */
  option<T>(v: T | null | undefined, item: (w: Writer, v: T) => void): this {
    if (v === null || v === undefined) return this.u8(0);
    this.u8(1);
    item(this, v);
    return this;
  }

  /** The bytes written so far. */
  finish(): Uint8Array {
    return this.buf.slice(0, this.len);
  }
}

/** Reads Borsh values front to back; [`Reader.end`] checks nothing is left over. */
export class Reader {
  private at = 0;
  private readonly view: DataView;

  constructor(private readonly buf: Uint8Array) {
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  }

  /** Bytes not read yet. */
  get left(): number {
    return this.buf.length - this.at;
  }

  /** The offset of the next byte. */
  get offset(): number {
    return this.at;
  }

  error(what: string): BorshError {
    return new BorshError(`${what} (at byte ${this.at} of ${this.buf.length})`);
  }

  private take(n: number): number {
    if (n > this.left) throw this.error(`input ends ${n - this.left} bytes short`);
    this.at += n;
    return this.at - n;
  }

  u8(): number {
    return this.buf[this.take(1)]!;
  }

  u32(): number {
    return this.view.getUint32(this.take(4), true);
  }

  u64(): bigint {
    return this.view.getBigUint64(this.take(8), true);
  }

  i64(): bigint {
    return this.view.getBigInt64(this.take(8), true);
  }

  /** `[u8; N]` (a copy). */
  fixed(n: number): Uint8Array {
    const at = this.take(n);
    return this.buf.slice(at, at + n);
  }

  /** `Vec<u8>` (a copy). */
  bytes(): Uint8Array {
    return this.fixed(this.u32());
  }

  /** `Vec<T>`; `minItemBytes` (> 0) refuses a count that cannot fit before reading items. */
  vec<T>(item: (r: Reader) => T, minItemBytes: number): T[] {
    const count = this.u32();
    if (count > Math.floor(this.left / minItemBytes)) throw this.error(`${count} items cannot fit`);
    const out: T[] = [];
    for (let i = 0; i < count; i++) out.push(item(this));
    return out;
  }

  /** `Option<T>`. */
  option<T>(item: (r: Reader) => T): T | null {
    const tag = this.u8();
    if (tag === 0) return null;
    if (tag === 1) return item(this);
    this.at -= 1;
    throw this.error(`option tag ${tag} is neither 0 nor 1`);
  }

  /** An enum's variant index, below `variants`. */
  tag(variants: number, what: string): number {
    const t = this.u8();
    if (t >= variants) {
      this.at -= 1;
      throw this.error(`${what}: variant ${t} does not exist`);
    }
    return t;
  }

  /** Fails unless every byte was read. */
  end(): void {
    if (this.left > 0) throw this.error(`${this.left} bytes left over`);
  }
}

/** Decodes all of `bytes` with `read`. */
export function decodeAll<T>(bytes: Uint8Array, read: (r: Reader) => T): T {
  const r = new Reader(bytes);
  const v = read(r);
  r.end();
  return v;
}
