// The per-field document's sync loop against an in-process backend that
// merges with the pure rules (the real server is the Chromium suite's),
// and its saved record.
import { describe, expect, test } from "vitest";
import type { DocumentKey, FieldSyncReply, StoredDocument } from "../../src/client/api.js";
import { decodeFields, encodeFields, type FieldPersisted } from "../../src/client/field-storage.js";
import { SyncedFieldDocument, type FieldDocumentApi } from "../../src/client/fields.js";
import { MemoryPersistence } from "../../src/client/storage.js";
import {
  DELETE,
  EMPTY,
  documentStamp,
  documentValue,
  holdsPatch,
  joinWrite,
  merge,
  setOp,
  type FieldDocument,
  type FieldWrite,
} from "../../src/protocol/fields.js";

const key: DocumentKey = { tenant: "acme", owner: "alice", name: "alerts" };

class Backend implements FieldDocumentApi {
  stored: FieldDocument = EMPTY;
  revision = 0n;
  held: (() => void)[] = [];
  hold = false;
  sent: FieldWrite[] = [];

  syncFields(_key: DocumentKey, write: FieldWrite): Promise<FieldSyncReply> {
    this.sent.push(write);
    const report = merge(this.stored, write, 1_000_000n);
    if ("refused" in report) return Promise.reject(new Error(report.refused));
    this.stored = joinWrite(this.stored, write);
    this.revision += 1n;
    const reply: FieldSyncReply = { document: this.document(), decision: report.decision, fieldDecisions: report.fields };
    if (!this.hold) return Promise.resolve(reply);
    return new Promise((resolve) => this.held.push(() => { resolve(reply); }));
  }

  get(): Promise<StoredDocument | null> {
    return Promise.resolve(documentStamp(this.stored) ? this.document() : null);
  }

  /** As the server answers: registers only while the document holds a patch. */
  document(): StoredDocument {
    const stamp = documentStamp(this.stored);
    if (!stamp) throw new Error("nothing stored");
    const registers = {
      floor: this.stored.floor,
      stamps: new Map([...this.stored.fields].map(([name, e]) => [name, e.stamp] as const)),
    };
    return {
      key,
      state: { value: documentValue(this.stored), stamp },
      revision: this.revision,
      ...(holdsPatch(this.stored) ? { fields: registers } : {}),
    };
  }
}

async function drain(backend: Backend, doc: SyncedFieldDocument): Promise<void> {
  while (doc.status.pending || backend.held.length) {
    await Promise.resolve();
    backend.held.shift()?.();
    await new Promise((r) => setTimeout(r, 0));
  }
}

describe("a per-field document", () => {
  test("two clients editing different fields at once both keep their edit", async () => {
    const backend = new Backend();
    const one = new SyncedFieldDocument({ api: backend, key, persistence: new MemoryPersistence<FieldPersisted>() });
    const two = new SyncedFieldDocument({ api: backend, key, persistence: new MemoryPersistence<FieldPersisted>() });
    await one.settled();
    await two.settled();
    one.setField("email", true);
    two.setField("airports", ["SEA"]);
    await one.settled();
    await two.settled();
    // Nothing pending: a sync reads.
    await one.syncOnce();
    await two.syncOnce();
    expect(one.value).toEqual({ email: true, airports: ["SEA"] });
    expect(two.value).toEqual(one.value);
    expect(documentValue(backend.stored)).toEqual({ email: true, airports: ["SEA"] });
  });

  test("a late reply never undoes a newer edit of the same field, nor drops a pending one", async () => {
    const backend = new Backend();
    const doc = new SyncedFieldDocument({ api: backend, key, persistence: new MemoryPersistence<FieldPersisted>() });
    await doc.settled();
    const shown: unknown[] = [];
    doc.subscribe(() => shown.push(doc.field("email")));
    backend.hold = true;
    doc.setField("email", true);
    doc.setField("email", false);
    doc.deleteField("sms");
    await drain(backend, doc);
    expect(shown).toEqual([true, false, false]);
    expect(backend.sent.map((w) => w.stamp.clock)).toEqual([1n, 2n, 3n]);
    expect(documentValue(backend.stored)).toEqual({ email: false });
    expect(doc.status.pending).toBe(false);
    expect(doc.status.fieldDecisions).toEqual(new Map([["sms", "APPLIED"]]));
  });

  test("a watch event older in a field keeps the pending local edit of that field, and takes another field", () => {
    const backend = new Backend();
    const doc = new SyncedFieldDocument({ api: backend, key, persistence: new MemoryPersistence<FieldPersisted>(), autoSync: false });
    doc.setField("email", true);
    const other: FieldWrite = { stamp: { clock: 1n, writer: "0-other" }, change: { patch: new Map([["email", setOp(false)], ["airports", setOp(["SEA"])]]) } };
    backend.stored = joinWrite(EMPTY, other);
    doc.observe(backend.document());
    // (1, 0-other) < (1, w-…): the page's own email edit stays.
    expect(doc.value).toEqual({ email: true, airports: ["SEA"] });
    expect(doc.status.pending).toBe(true);
  });

  test("pending edits survive a reload and are re-sent under their own stamps", async () => {
    const backend = new Backend();
    const persistence = new MemoryPersistence<FieldPersisted>();
    const first = new SyncedFieldDocument({ api: backend, key, persistence, autoSync: false });
    const write = first.setField("airports", ["LAX"]);
    first.close();
    const second = new SyncedFieldDocument({ api: backend, key, persistence });
    expect(second.value).toEqual({ airports: ["LAX"] });
    expect(second.status.loading).toBe(false);
    expect(second.status.pending).toBe(true);
    await second.settled();
    expect(backend.sent).toEqual([write]);
    expect(second.writer).not.toBe(first.writer);
    expect(second.setField("email", true).stamp.clock).toBe(2n);
  });
});

describe("the saved per-field record", () => {
  test("round-trips registers, tombstones, pending writes and big clocks", () => {
    const big = 2n ** 62n + 1n;
    const whole: FieldWrite = { stamp: { clock: 3n, writer: "w-1" }, change: { whole: { email: true } } };
    const patch: FieldWrite = { stamp: { clock: big, writer: "w-1" }, change: { patch: new Map([["__proto__", setOp({ a: 1 })], ["x", DELETE]]) } };
    const document = joinWrite(joinWrite(EMPTY, whole), patch);
    const state: FieldPersisted = { clock: big, document, unconfirmed: [patch], acknowledged: joinWrite(EMPTY, whole) };
    const back = decodeFields(encodeFields(state));
    expect(back).toEqual(state);
    expect(back && documentValue(back.document)).toEqual(documentValue(document));
  });

  test("anything unreadable is no state", () => {
    for (const text of [null, "", "{", '{"v":1}', '{"v":1,"kind":"fields","clock":"1","document":{"floor":null,"fields":[["x",{"stamp":{"clock":"1","writer":"a b"},"value":1}]]},"unconfirmed":[],"acknowledged":{"floor":null,"fields":[]}}']) {
      expect(decodeFields(text)).toBeUndefined();
    }
  });
});
