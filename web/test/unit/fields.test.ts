// The per-field rules in TypeScript against the Rust ones: every case of
// web/test/vectors/fields.json (computed by protocol/tests/field_vectors.rs,
// which fails when the file is not what the Rust rules give) is recomputed
// here. Plus the lattice laws as fast-check properties, and the cases
// docs/protocol.md spells out.
import { readFileSync } from "node:fs";
import { join as joinPath } from "node:path";
import fc from "fast-check";
import { describe, expect, test } from "vitest";
import {
  DELETE,
  EMPTY,
  FieldReplica,
  changedFields,
  confirmed,
  documentStamp,
  documentValue,
  fromParts,
  holdsPatch,
  join,
  joinWrite,
  merge,
  sameDocument,
  setOp,
  type Change,
  type FieldDocument,
  type FieldEntry,
  type FieldOp,
  type FieldWrite,
  type Floor,
} from "../../src/protocol/fields.js";
import { canonicalJson, type Stamp, type Value } from "../../src/protocol/stamp.js";

type Raw = Record<string, unknown>;

const stampIn = (raw: unknown): Stamp => {
  const s = raw as { clock: string; writer: string };
  return { clock: BigInt(s.clock), writer: s.writer };
};
const stampOut = (s: Stamp | null) => (s === null ? null : { clock: s.clock.toString(), writer: s.writer });

function documentIn(raw: unknown): FieldDocument {
  const d = raw as { floor: { stamp: unknown; deleted: boolean } | null; fields: Raw };
  const floor: Floor | null = d.floor && { stamp: stampIn(d.floor.stamp), deleted: d.floor.deleted };
  const fields = new Map<string, FieldEntry>(
    Object.entries(d.fields).map(([name, e]) => {
      const entry = e as Raw;
      return [name, entry.tombstone === true ? { stamp: stampIn(entry.stamp), tombstone: true } : { stamp: stampIn(entry.stamp), tombstone: false, value: entry.value }];
    }),
  );
  return fromParts(floor, fields);
}

/** A document as the vectors write it, with values in canonical form for comparing. */
function documentOut(document: FieldDocument): unknown {
  return {
    floor: document.floor && { stamp: stampOut(document.floor.stamp), deleted: document.floor.deleted },
    fields: Object.fromEntries(
      [...document.fields].map(([name, e]) => [
        name,
        e.tombstone ? { stamp: stampOut(e.stamp), tombstone: true } : { stamp: stampOut(e.stamp), value: canonicalJson(e.value) },
      ]),
    ),
  };
}

function canonicalDocument(raw: unknown): unknown {
  return documentOut(documentIn(raw));
}

function changeIn(raw: unknown): Change {
  const c = raw as { patch?: Raw; whole?: Value };
  if (c.patch) {
    return {
      patch: new Map<string, FieldOp>(
        Object.entries(c.patch).map(([name, op]) => [name, "set" in (op as Raw) ? setOp((op as Raw).set) : DELETE]),
      ),
    };
  }
  return { whole: c.whole ?? null };
}

function writeIn(raw: unknown): FieldWrite {
  const w = raw as { stamp: unknown; change: unknown };
  return { stamp: stampIn(w.stamp), change: changeIn(w.change) };
}

interface MergeCase {
  a: unknown;
  b: unknown;
  write: unknown;
  maxClockJump: string;
  expect: {
    a: { stamp: unknown; value: unknown; holdsPatch: boolean };
    join: unknown;
    joinWrite: unknown;
    merge: { decision: string; fields: Record<string, string> } | { refused: string };
    confirmedByB: boolean;
    confirmedByJoinWrite: boolean;
  };
}

interface ReplicaCase {
  writer: string;
  steps: {
    step: { edit: unknown } | { observe: unknown; changed: string[] };
    document: unknown;
    clock: string;
    unconfirmed: unknown[];
  }[];
}

const vectors = JSON.parse(readFileSync(joinPath(import.meta.dirname, "../vectors/fields.json"), "utf8")) as {
  merge: MergeCase[];
  replica: ReplicaCase[];
};

describe("the shared vectors (computed by the Rust rules)", () => {
  test("there are enough of them to mean something", () => {
    expect(vectors.merge.length).toBeGreaterThanOrEqual(100);
    expect(vectors.replica.length).toBeGreaterThanOrEqual(30);
  });

  test.each(vectors.merge.map((c, i) => [i, c] as const))("merge case %i", (_i, c) => {
    const a = documentIn(c.a);
    const b = documentIn(c.b);
    const write = writeIn(c.write);
    expect({ stamp: stampOut(documentStamp(a)), value: canonicalJson(documentValue(a)), holdsPatch: holdsPatch(a) }).toEqual({
      ...c.expect.a,
      value: canonicalJson(c.expect.a.value),
    });
    expect(documentOut(join(a, b))).toEqual(canonicalDocument(c.expect.join));
    expect(documentOut(joinWrite(a, write))).toEqual(canonicalDocument(c.expect.joinWrite));
    const outcome = merge(a, write, BigInt(c.maxClockJump));
    expect("refused" in outcome ? outcome : { decision: outcome.decision, fields: Object.fromEntries(outcome.fields) }).toEqual(c.expect.merge);
    expect(confirmed(write, b)).toBe(c.expect.confirmedByB);
    expect(confirmed(write, joinWrite(a, write))).toBe(c.expect.confirmedByJoinWrite);
  });

  test.each(vectors.replica.map((c, i) => [i, c] as const))("replica case %i", (_i, c) => {
    const replica = new FieldReplica(c.writer);
    for (const s of c.steps) {
      if ("edit" in s.step) {
        replica.edit(changeIn(s.step.edit));
      } else {
        expect(replica.observe(documentIn(s.step.observe))).toEqual(s.step.changed);
      }
      expect(documentOut(replica.document)).toEqual(canonicalDocument(s.document));
      expect(replica.clock.toString()).toBe(s.clock);
      expect(replica.unconfirmed.map((w) => stampOut(w.stamp))).toEqual(s.unconfirmed);
    }
  });
});

// Properties over small random writes (distinct stamps: one stamp, one write).
const NAMES = ["x", "y", "__proto__"];
const opArb: fc.Arbitrary<FieldOp> = fc.oneof(fc.constant(DELETE), fc.oneof(fc.integer({ min: 0, max: 2 }), fc.constant(null), fc.boolean()).map(setOp));
const changeArb: fc.Arbitrary<Change> = fc.oneof(
  fc.dictionary(fc.constantFrom(...NAMES), opArb).map((d) => ({ patch: new Map(Object.entries(d)) })),
  fc.oneof(fc.constant(null), fc.dictionary(fc.constantFrom(...NAMES), fc.integer({ min: 0, max: 2 }))).map((whole) => ({ whole })),
);
const writesArb: fc.Arbitrary<FieldWrite[]> = fc
  .uniqueArray(fc.tuple(fc.integer({ min: 1, max: 8 }), fc.constantFrom("a", "b", "B")), { selector: ([c, w]) => `${c}:${w}`, maxLength: 8 })
  .chain((stamps) => fc.tuple(...stamps.map(() => changeArb)).map((changes) =>
    stamps.map(([clock, writer], i) => ({ stamp: { clock: BigInt(clock), writer }, change: changes[i] ?? { whole: null } })),
  ));
const docsArb = writesArb.chain((writes) =>
  fc.tuple(...[0, 1, 2].map(() => fc.subarray(writes))).map((subsets) => subsets.map((ws) => ws.reduce(joinWrite, EMPTY))),
);

describe("the join", () => {
  test("is commutative, associative and idempotent", () => {
    fc.assert(
      fc.property(docsArb, ([a = EMPTY, b = EMPTY, c = EMPTY]) => {
        expect(sameDocument(join(a, b), join(b, a))).toBe(true);
        expect(sameDocument(join(join(a, b), c), join(a, join(b, c)))).toBe(true);
        expect(sameDocument(join(a, a), a)).toBe(true);
      }),
      { numRuns: 500 },
    );
  });

  test("every field shows the value of the largest stamp that speaks of it, whatever the order", () => {
    fc.assert(
      fc.property(writesArb, fc.infiniteStream(fc.nat()), (writes, seeds) => {
        const shuffled = [...writes].sort(() => (seeds.next().value % 3) - 1);
        expect(sameDocument(writes.reduce(joinWrite, EMPTY), shuffled.reduce(joinWrite, EMPTY))).toBe(true);
      }),
      { numRuns: 300 },
    );
  });
});

const s = (clock: number, writer: string): Stamp => ({ clock: BigInt(clock), writer });
const patch = (stamp: Stamp, ops: Record<string, FieldOp>): FieldWrite => ({ stamp, change: { patch: new Map(Object.entries(ops)) } });

describe("the cases docs/protocol.md spells out", () => {
  test("concurrent edits of different fields both survive, in either order", () => {
    const email = patch(s(2, "a"), { email: setOp(true) });
    const airports = patch(s(2, "b"), { airports: setOp(["SEA"]) });
    const base = joinWrite(EMPTY, { stamp: s(1, "a"), change: { whole: { email: false, airports: [] } } });
    for (const order of [[email, airports], [airports, email]]) {
      expect(documentValue(order.reduce(joinWrite, base))).toEqual({ email: true, airports: ["SEA"] });
    }
  });

  test("a partly stale patch applies the fields that win and is STALE as a whole", () => {
    const stored = joinWrite(EMPTY, patch(s(5, "b"), { x: setOp(1) }));
    const report = merge(stored, patch(s(3, "a"), { x: setOp(2), y: setOp(3) }), 1_000_000n);
    expect(report).toEqual({ decision: "STALE", fields: new Map([["x", "STALE"], ["y", "APPLIED"]]) });
  });

  test("a whole-document delete keeps later field writes; a field write to a deleted document comes back alone", () => {
    let doc = joinWrite(EMPTY, patch(s(5, "a"), { x: setOp(1) }));
    doc = joinWrite(doc, { stamp: s(4, "b"), change: { whole: null } });
    expect(documentValue(doc)).toEqual({ x: 1 });
    doc = joinWrite(EMPTY, { stamp: s(4, "b"), change: { whole: { y: 2 } } });
    doc = joinWrite(doc, { stamp: s(5, "b"), change: { whole: null } });
    doc = joinWrite(doc, patch(s(6, "a"), { x: setOp(1) }));
    expect(documentValue(doc)).toEqual({ x: 1 });
  });

  test("a field tombstone is kept until the floor passes it", () => {
    let doc = joinWrite(EMPTY, patch(s(2, "a"), { x: DELETE }));
    expect(doc.fields.get("x")).toEqual({ stamp: s(2, "a"), tombstone: true });
    expect(documentValue(doc)).toBeNull();
    doc = joinWrite(doc, patch(s(1, "b"), { x: setOp(9) }));
    expect(documentValue(doc)).toBeNull();
    doc = joinWrite(doc, { stamp: s(3, "b"), change: { whole: {} } });
    expect(doc.fields.size).toBe(0);
    expect(documentValue(doc)).toEqual({});
  });

  test("the per-field adopt rule: a late reply never undoes a newer edit of one field, and brings another field", () => {
    const r = new FieldReplica("me");
    r.edit({ patch: new Map([["email", setOp(true)]]) });
    const second = r.edit({ patch: new Map([["email", setOp(false)]]) });
    // The reply to the first edit, with another page's airports in it.
    const reply = [patch(s(1, "me"), { email: setOp(true) }), patch(s(1, "other"), { airports: setOp(["SEA"]) })].reduce(joinWrite, EMPTY);
    expect(r.observe(reply)).toEqual(["airports"]);
    expect(documentValue(r.document)).toEqual({ email: false, airports: ["SEA"] });
    expect(r.unconfirmed).toEqual([second]);
    expect(changedFields(r.document, r.document)).toEqual([]);
  });

  test("from parts refuses what the join never makes", () => {
    expect(() => fromParts({ stamp: s(3, "a"), deleted: false }, new Map([["x", { stamp: s(2, "a"), tombstone: false, value: 1 }]]))).toThrow(/floor/);
  });
});
