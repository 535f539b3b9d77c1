// What a per-field document keeps across a reload: what is shown (every
// register), the clock, every own write not yet seen held by the backend,
// exactly as made, and the join of every document the backend answered.
// An edit is saved before it is sent; a reload shows the saved state at
// once and re-sends the saved writes under their own stamps (replays).

import { EMPTY, fromParts, type FieldDocument, type FieldEntry, type FieldOp, type FieldWrite, type Floor } from "../protocol/fields.js";
import { isValue, isWriterId, type Stamp } from "../protocol/stamp.js";
import { LocalStorageRecord, type Codec } from "./storage.js";

export interface FieldPersisted {
  readonly clock: bigint;
  /** What the page shows, register by register. */
  readonly document: FieldDocument;
  /** Own writes not yet seen held by the backend, oldest first. */
  readonly unconfirmed: readonly FieldWrite[];
  /** The join of every document the backend answered: what it is known to hold. */
  readonly acknowledged: FieldDocument;
}

export const EMPTY_FIELD_STATE: FieldPersisted = { clock: 0n, document: EMPTY, unconfirmed: [], acknowledged: EMPTY };

type Raw = Record<string, unknown>;

const stampOut = (s: Stamp) => ({ clock: s.clock.toString(), writer: s.writer });

function documentOut(document: FieldDocument): Raw {
  return {
    floor: document.floor && { stamp: stampOut(document.floor.stamp), deleted: document.floor.deleted },
    // Pairs, not an object: a field may be named "__proto__".
    fields: [...document.fields].map(([name, e]) =>
      e.tombstone ? [name, { stamp: stampOut(e.stamp), tombstone: true }] : [name, { stamp: stampOut(e.stamp), value: e.value }],
    ),
  };
}

function writeOut(write: FieldWrite): Raw {
  const change = write.change;
  return {
    stamp: stampOut(write.stamp),
    change: "patch" in change ? { patch: [...change.patch].map(([name, op]) => [name, op]) } : { whole: change.whole },
  };
}

/** Bigints as decimal strings: JSON has no 64-bit integers. */
export function encodeFields(state: FieldPersisted): string {
  return JSON.stringify({
    v: 1,
    kind: "fields",
    clock: state.clock.toString(),
    document: documentOut(state.document),
    unconfirmed: state.unconfirmed.map(writeOut),
    acknowledged: documentOut(state.acknowledged),
  });
}

/** The stored state, or undefined for anything unreadable (never a guess). */
export function decodeFields(text: string | null): FieldPersisted | undefined {
  if (text === null) return undefined;
  try {
    const raw = JSON.parse(text) as Raw;
    if (raw.v !== 1 || raw.kind !== "fields" || !Array.isArray(raw.unconfirmed)) return undefined;
    return {
      clock: clockIn(raw.clock),
      document: documentIn(raw.document),
      unconfirmed: raw.unconfirmed.map(writeIn),
      acknowledged: documentIn(raw.acknowledged),
    };
  } catch {
    return undefined;
  }
}

function clockIn(raw: unknown): bigint {
  if (typeof raw !== "string" || !/^[0-9]{1,19}$/.test(raw)) throw new Error("bad clock");
  return BigInt(raw);
}

function stampIn(raw: unknown): Stamp {
  const s = raw as Raw;
  if (typeof s.writer !== "string" || !isWriterId(s.writer)) throw new Error("bad writer");
  return { clock: clockIn(s.clock), writer: s.writer };
}

function pairs(raw: unknown): [string, Raw][] {
  if (!Array.isArray(raw)) throw new Error("bad pairs");
  return raw.map((pair: unknown) => {
    if (!Array.isArray(pair) || typeof pair[0] !== "string" || typeof pair[1] !== "object" || pair[1] === null) {
      throw new Error("bad pair");
    }
    return [pair[0], pair[1] as Raw];
  });
}

function documentIn(raw: unknown): FieldDocument {
  const d = raw as Raw;
  const f = d.floor as Raw | null;
  const floor: Floor | null = f === null ? null : { stamp: stampIn(f.stamp), deleted: f.deleted === true };
  const fields = new Map<string, FieldEntry>(
    pairs(d.fields).map(([name, e]) => [
      name,
      e.tombstone === true ? { stamp: stampIn(e.stamp), tombstone: true } : { stamp: stampIn(e.stamp), tombstone: false, value: e.value },
    ]),
  );
  return fromParts(floor, fields);
}

function writeIn(raw: unknown): FieldWrite {
  const w = raw as Raw;
  const change = w.change as Raw;
  const stamp = stampIn(w.stamp);
  if ("patch" in change) {
    const patch = new Map<string, FieldOp>(
      pairs(change.patch).map(([name, op]) => [name, "set" in op ? { set: op.set } : { delete: true }]),
    );
    return { stamp, change: { patch } };
  }
  if (!isValue(change.whole)) throw new Error("bad whole value");
  return { stamp, change: { whole: change.whole } };
}

export const FIELD_CODEC: Codec<FieldPersisted> = { encode: encodeFields, decode: decodeFields };

/** The per-field record in `localStorage`, shared by the browser's tabs of one origin. */
export class LocalStorageFieldPersistence extends LocalStorageRecord<FieldPersisted> {
  constructor(recordKey: string) {
    super(recordKey, FIELD_CODEC);
  }
}
