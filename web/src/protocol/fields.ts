// The opt-in per-field mode (docs/protocol.md, "Per-field merge") as pure
// code, exactly as protocol/src/fields/ in Rust: a document is a map of
// top-level fields, each its own last-writer-wins register, under a floor
// set by whole-document writes; every write carries one stamp. The join is
// the pointwise larger stamp, so the per-field adopt rule is the join.
// web/test/vectors/fields.json, generated from the Rust rules, holds both
// implementations to the same answers.
//
// Everything here is plain data (Maps, objects, bigints): it survives
// structured cloning (a BroadcastChannel) and is never mutated.

import { MAX_CLOCK, canonicalJson, compareStamps, type Stamp, type Value } from "./stamp.js";
import { ClockOverflow } from "./replica.js";

/** Any JSON value a field may hold (null included: a value, not a delete). */
export type Json = unknown;

/** What a patch does to one field. */
export type FieldOp = { readonly set: Json } | { readonly delete: true };

/** The fields a patch sets or deletes, by top-level name. */
export type Patch = ReadonlyMap<string, FieldOp>;

/** What one write says: a patch of named fields, or a whole document. */
export type Change = { readonly patch: Patch } | { readonly whole: Value };

/** A write: one change under one stamp. */
export interface FieldWrite {
  readonly stamp: Stamp;
  readonly change: Change;
}

/**
 * One field's register: the stamp of the write that last set or deleted it,
 * and its value; `tombstone` (no value) when that write deleted it.
 */
export type FieldEntry =
  | { readonly stamp: Stamp; readonly tombstone: false; readonly value: Json }
  | { readonly stamp: Stamp; readonly tombstone: true };

/** The last whole-document write: every field it did not set is absent as of its stamp. */
export interface Floor {
  readonly stamp: Stamp;
  /** That write deleted the whole document. */
  readonly deleted: boolean;
}

/**
 * A field-merged document. Every listed entry has a stamp above the floor,
 * or equal to it with a value (set by the floor's own write).
 */
export interface FieldDocument {
  readonly floor: Floor | null;
  readonly fields: ReadonlyMap<string, FieldEntry>;
}

/** Per-field decisions and the one for the write: see docs/protocol.md. */
export type FieldDecision = "APPLIED" | "STALE" | "UNCHANGED";

export interface FieldReport {
  readonly decision: FieldDecision;
  readonly fields: ReadonlyMap<string, FieldDecision>;
}

/** Why the backend refuses a write (changing nothing). */
export type MergeRefusal = { readonly refused: "conflicting-content" } | { readonly refused: "clock-jump" };

/** The document nothing was written to: below every write. */
export const EMPTY: FieldDocument = { floor: null, fields: new Map() };

export function setOp(value: Json): FieldOp {
  return { set: value };
}

export const DELETE: FieldOp = { delete: true };

function entryOf(stamp: Stamp, op: FieldOp): FieldEntry {
  return "set" in op ? { stamp, tombstone: false, value: op.set } : { stamp, tombstone: true };
}

/** The own entries of a whole document's value (an object, or none for a tombstone). */
function objectEntries(value: Value): [string, Json][] {
  return value === null ? [] : Object.entries(value);
}

/** The state that is exactly `write`. */
export function fromWrite(write: FieldWrite): FieldDocument {
  const { stamp, change } = write;
  if ("patch" in change) {
    return { floor: null, fields: new Map([...change.patch].map(([name, op]) => [name, entryOf(stamp, op)])) };
  }
  return {
    floor: { stamp, deleted: change.whole === null },
    fields: new Map(objectEntries(change.whole).map(([name, value]) => [name, { stamp, tombstone: false, value }])),
  };
}

/** A field listed that the floor already covers: not a state the join makes. */
export class NotJoinForm extends Error {
  constructor(readonly field: string) {
    super(`field ${JSON.stringify(field)} is listed at or below the floor without a value of the floor's write`);
    this.name = "NotJoinForm";
  }
}

/** A document from its parts (the wire's registers); refused unless in join form. */
export function fromParts(floor: Floor | null, fields: ReadonlyMap<string, FieldEntry>): FieldDocument {
  for (const [name, entry] of fields) if (covered(floor, entry)) throw new NotJoinForm(name);
  return { floor, fields };
}

/** Whether any field holds a write other than the last whole-document one. */
export function holdsPatch(document: FieldDocument): boolean {
  const floor = document.floor?.stamp ?? null;
  for (const entry of document.fields.values()) if (floor === null || compareStamps(entry.stamp, floor) !== 0) return true;
  return false;
}

/** The stamp that governs `name`: its own entry's, else the floor's; null if nothing spoke of it. */
export function stampOf(document: FieldDocument, name: string): Stamp | null {
  return document.fields.get(name)?.stamp ?? document.floor?.stamp ?? null;
}

/** Whether field `name` has a value, and which. */
export function valueOf(document: FieldDocument, name: string): { readonly value: Json } | undefined {
  const entry = document.fields.get(name);
  return entry && !entry.tombstone ? { value: entry.value } : undefined;
}

/** The document's stamp: the largest of its floor's and its fields'. */
export function documentStamp(document: FieldDocument): Stamp | null {
  let stamp = document.floor?.stamp ?? null;
  for (const entry of document.fields.values()) if (stamp === null || compareStamps(entry.stamp, stamp) > 0) stamp = entry.stamp;
  return stamp;
}

/**
 * The merged value: the object of the fields that have a value, or a
 * tombstone (null) if there is none and the last whole-document write was
 * a delete, or there was none.
 */
export function documentValue(document: FieldDocument): Value {
  const live: [string, Json][] = [];
  for (const [name, entry] of document.fields) if (!entry.tombstone) live.push([name, entry.value]);
  if (live.length === 0 && (document.floor === null || document.floor.deleted)) return null;
  // Sorted bytewise by name, as the server's canonical form; fromEntries
  // defines own properties, so even a field named "__proto__" is data.
  return Object.fromEntries(live.sort(([a], [b]) => compareNames(a, b)));
}

/** The lattice join: the larger floor, and per name the larger stamp, unless the floor covers it. */
export function join(self: FieldDocument, other: FieldDocument): FieldDocument {
  const floor =
    self.floor !== null && other.floor !== null
      ? compareStamps(other.floor.stamp, self.floor.stamp) > 0 ? other.floor : self.floor
      : (self.floor ?? other.floor);
  const fields = new Map(self.fields);
  for (const [name, entry] of other.fields) {
    const kept = fields.get(name);
    // Equal stamps are one write: the side kept does not matter (self's, as in Rust).
    if (kept === undefined || compareStamps(kept.stamp, entry.stamp) < 0) fields.set(name, entry);
  }
  for (const [name, entry] of fields) if (covered(floor, entry)) fields.delete(name);
  return { floor, fields };
}

/** The state after `write` is merged in. */
export function joinWrite(document: FieldDocument, write: FieldWrite): FieldDocument {
  return join(document, fromWrite(write));
}

/** The per-field adopt rule: every field (and the floor) takes the remote register iff its stamp is larger. */
export function adopt(local: FieldDocument, remote: FieldDocument): FieldDocument {
  return join(local, remote);
}

/** Whether `remote` (a backend's document) holds `write` or something newer in every register it speaks of. */
export function confirmed(write: FieldWrite, remote: FieldDocument): boolean {
  const atLeast = (stamp: Stamp | null) => stamp !== null && compareStamps(stamp, write.stamp) >= 0;
  if ("patch" in write.change) {
    for (const name of write.change.patch.keys()) if (!atLeast(stampOf(remote, name))) return false;
    return true;
  }
  return atLeast(remote.floor?.stamp ?? null);
}

/**
 * The backend's decision on `incoming` against `stored` (what the server
 * answers; the state after it is `joinWrite(stored, incoming)`), or its
 * refusal: a field stored under the same stamp with other content, or a
 * clock more than `maxClockJump` past the document's when anything applies.
 */
export function merge(stored: FieldDocument, incoming: FieldWrite, maxClockJump: bigint): FieldReport | MergeRefusal {
  const fields = new Map<string, FieldDecision>();
  for (const [name, value] of spokenOf(stored, incoming.change)) {
    const storedStamp = stampOf(stored, name);
    const order = storedStamp === null ? 1 : compareStamps(incoming.stamp, storedStamp);
    if (order > 0) fields.set(name, "APPLIED");
    else if (order < 0) fields.set(name, "STALE");
    else if (sameValue(valueOf(stored, name), value)) fields.set(name, "UNCHANGED");
    else return { refused: "conflicting-content" };
  }
  let decision: FieldDecision;
  if ("patch" in incoming.change) {
    const all = [...fields.values()];
    decision = all.includes("STALE") ? "STALE" : all.includes("APPLIED") ? "APPLIED" : "UNCHANGED";
  } else {
    const stamp = documentStamp(stored);
    const order = stamp === null ? 1 : compareStamps(incoming.stamp, stamp);
    if (order > 0) decision = "APPLIED";
    else if (order < 0) decision = "STALE";
    else if (sameDocument(stored, fromWrite(incoming))) decision = "UNCHANGED";
    else return { refused: "conflicting-content" };
  }
  const applies = decision === "APPLIED" || [...fields.values()].includes("APPLIED");
  const documentClock = documentStamp(stored)?.clock ?? 0n;
  const ceiling = documentClock + maxClockJump < MAX_CLOCK ? documentClock + maxClockJump : MAX_CLOCK;
  if (applies && incoming.stamp.clock > ceiling) return { refused: "clock-jump" };
  return { decision, fields };
}

/** The fields a change speaks of, with the value it gives each (undefined: absent). */
function spokenOf(stored: FieldDocument, change: Change): Map<string, { readonly value: Json } | undefined> {
  if ("patch" in change) {
    return new Map([...change.patch].map(([name, op]) => [name, "set" in op ? { value: op.set } : undefined]));
  }
  const spoken = new Map<string, { readonly value: Json } | undefined>();
  for (const name of stored.fields.keys()) spoken.set(name, undefined);
  // Set last: a field the write sets overrides its removal.
  for (const [name, value] of objectEntries(change.whole)) spoken.set(name, { value });
  return spoken;
}

function sameValue(a: { readonly value: Json } | undefined, b: { readonly value: Json } | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  return canonicalJson(a.value) === canonicalJson(b.value);
}

/** Structural equality of two documents (registers and values). */
export function sameDocument(a: FieldDocument, b: FieldDocument): boolean {
  const sameStamp = (x: Stamp, y: Stamp) => compareStamps(x, y) === 0;
  if ((a.floor === null) !== (b.floor === null)) return false;
  if (a.floor && b.floor && (!sameStamp(a.floor.stamp, b.floor.stamp) || a.floor.deleted !== b.floor.deleted)) return false;
  if (a.fields.size !== b.fields.size) return false;
  for (const [name, x] of a.fields) {
    const y = b.fields.get(name);
    if (!y || !sameStamp(x.stamp, y.stamp) || !sameValue(valueOf(a, name), valueOf(b, name))) return false;
  }
  return true;
}

/** The names whose shown value differs between two documents, sorted. */
export function changedFields(before: FieldDocument, after: FieldDocument): string[] {
  const names = new Set([...before.fields.keys(), ...after.fields.keys()]);
  return [...names].filter((name) => !sameValue(valueOf(before, name), valueOf(after, name))).sort(compareNames);
}

/** Field names in byte order (UTF-8), as Rust's BTreeMap keeps them. */
export function compareNames(a: string, b: string): number {
  if (a === b) return 0;
  const x = new TextEncoder().encode(a);
  const y = new TextEncoder().encode(b);
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    const d = (x[i] ?? 0) - (y[i] ?? 0);
    if (d !== 0) return d;
  }
  return x.length - y.length;
}

function covered(floor: Floor | null, entry: FieldEntry): boolean {
  if (floor === null) return false;
  const order = compareStamps(entry.stamp, floor.stamp);
  return order < 0 || (order === 0 && entry.tombstone);
}

/**
 * The client half: edits under one stamp each (clock = max(clock, seen) + 1),
 * the per-field adopt rule on every document observed, and every own write
 * kept exactly as made until a backend document shows it merged.
 */
export class FieldReplica {
  readonly writer: string;
  #clock: bigint;
  #document: FieldDocument;
  #unconfirmed: FieldWrite[];

  /** `clock`, `document` and `unconfirmed` restore a persisted state (a reload). */
  constructor(writer: string, clock = 0n, document: FieldDocument = EMPTY, unconfirmed: readonly FieldWrite[] = []) {
    this.writer = writer;
    this.#document = document;
    this.#unconfirmed = [...unconfirmed];
    const seen = [documentStamp(document)?.clock ?? 0n, ...unconfirmed.map((w) => w.stamp.clock)];
    this.#clock = seen.reduce((a, b) => (b > a ? b : a), clock);
  }

  get clock(): bigint {
    return this.#clock;
  }

  /** What the user sees now, field by field. */
  get document(): FieldDocument {
    return this.#document;
  }

  /** Own writes not yet seen held by the backend, oldest first. */
  get unconfirmed(): readonly FieldWrite[] {
    return this.#unconfirmed;
  }

  /** A local edit, shown at once. Returns the write to send. */
  edit(change: Change): FieldWrite {
    if (this.#clock >= MAX_CLOCK) throw new ClockOverflow();
    this.#clock += 1n;
    const write: FieldWrite = { stamp: { clock: this.#clock, writer: this.writer }, change };
    this.#document = joinWrite(this.#document, write);
    this.#unconfirmed.push(write);
    return write;
  }

  /**
   * Applies a backend's document by the per-field adopt rule; returns the
   * names of the fields whose shown value changed. Confirms the own writes
   * it holds.
   */
  observe(remote: FieldDocument): string[] {
    this.witness(documentStamp(remote)?.clock ?? 0n);
    const before = this.#document;
    this.#document = this.adopt(before, remote);
    this.#unconfirmed = this.#unconfirmed.filter((write) => !confirmed(write, remote));
    return changedFields(before, this.#document);
  }

  /** Takes in state another tab holds (not the backend's): shown, never confirming. */
  absorb(document: FieldDocument, unconfirmed: readonly FieldWrite[]): string[] {
    this.witness(documentStamp(document)?.clock ?? 0n);
    const before = this.#document;
    this.#document = this.adopt(before, document);
    for (const write of unconfirmed) {
      this.witness(write.stamp.clock);
      if (!this.#unconfirmed.some((w) => compareStamps(w.stamp, write.stamp) === 0)) this.#unconfirmed.push(write);
    }
    this.#unconfirmed.sort((a, b) => compareStamps(a.stamp, b.stamp));
    return changedFields(before, this.#document);
  }

  /** Drops own writes a backend document (e.g. the largest acknowledged) holds. */
  confirm(remote: FieldDocument): void {
    this.#unconfirmed = this.#unconfirmed.filter((write) => !confirmed(write, remote));
  }

  /** A clock seen elsewhere: the next edit ticks past it. */
  witness(clock: bigint): void {
    if (clock > this.#clock) this.#clock = clock;
  }

  /** The per-field adopt rule; protected only so tests can plant a broken one. */
  protected adopt(local: FieldDocument, remote: FieldDocument): FieldDocument {
    return adopt(local, remote);
  }
}
