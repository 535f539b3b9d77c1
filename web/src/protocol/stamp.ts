// Stamps, values and their order: the pure rules of docs/protocol.md.
// Clocks are bigint everywhere: a JS number loses integers above 2^53.

/** A JSON object, or null for a tombstone (a deleted document). */
export type Value = { readonly [key: string]: unknown } | null;

/** The stamp of a write: a Lamport clock and the writer incarnation's id. */
export interface Stamp {
  readonly clock: bigint;
  readonly writer: string;
}

/** A value with the stamp of the write that made it. */
export interface Versioned {
  readonly value: Value;
  readonly stamp: Stamp;
}

/** The largest clock the wire accepts (it must fit a signed 64-bit column). */
export const MAX_CLOCK = (1n << 63n) - 1n;

const WRITER_ID = /^[A-Za-z0-9._:-]{1,64}$/;

export function isWriterId(id: string): boolean {
  return WRITER_ID.test(id);
}

/**
 * Orders stamps by clock, then writer bytewise. Writer ids are ASCII, so
 * comparing UTF-16 code units is comparing bytes (never localeCompare).
 */
export function compareStamps(a: Stamp, b: Stamp): -1 | 0 | 1 {
  if (a.clock !== b.clock) return a.clock < b.clock ? -1 : 1;
  if (a.writer === b.writer) return 0;
  return a.writer < b.writer ? -1 : 1;
}

export function maxStamp(a: Stamp | null, b: Stamp): Stamp {
  return a !== null && compareStamps(a, b) >= 0 ? a : b;
}

export function sameStamp(a: Stamp | null | undefined, b: Stamp | null | undefined): boolean {
  if (a == null || b == null) return a == b;
  return compareStamps(a, b) === 0;
}

/** A fresh random writer id for a new incarnation: `w-` and 128 random bits. */
export function freshWriterId(): string {
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes);
  return "w-" + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Whether a parsed JSON value may be stored: an object, or null. */
export function isValue(json: unknown): json is Value {
  return json === null || (typeof json === "object" && !Array.isArray(json));
}

/**
 * JSON text with object keys sorted, so equal values have equal text
 * whatever order their keys were written in (the server sorts them).
 */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    v !== null && typeof v === "object" && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : v,
  );
}
