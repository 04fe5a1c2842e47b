/**
 * JSON with exact integers: every integer is read as a `bigint` (u64 values above 2^53 stay
 * exact, protocol §3.1), and `bigint`s are written as JSON numbers.
 */

import { parse, stringify } from 'lossless-json';

const INTEGER = /^-?(0|[1-9][0-9]*)$/;

/** Parses JSON text; integers become `bigint`, other numbers `number`. */
export function parseJson(text: string): unknown {
  return parse(text, null, (s: string) => (INTEGER.test(s) ? BigInt(s) : Number.parseFloat(s)));
}

/** Serialises a value; `bigint`s become JSON numbers. */
export function stringifyJson(value: unknown): string {
  const s = stringify(value);
  if (s === undefined) throw new TypeError('value cannot be written as JSON');
  return s;
}
