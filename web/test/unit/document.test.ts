// The document's sync loop against an in-process backend that merges like
// the real one (keep the larger stamp). The real server is exercised by the
// Chromium suite; this checks the loop's bookkeeping in isolation.
import { describe, expect, test } from "vitest";
import type { DocumentKey, StoredDocument, SyncReply } from "../../src/client/api.js";
import { SyncedDocument, type DocumentApi } from "../../src/client/document.js";
import { MemoryPersistence } from "../../src/client/storage.js";
import { compareStamps, type Versioned } from "../../src/protocol/stamp.js";

const key: DocumentKey = { tenant: "acme", owner: "alice", name: "alerts" };

class Backend implements DocumentApi {
  stored: Versioned | null = null;
  revision = 0n;
  /** Replies held back until `release`. */
  held: (() => void)[] = [];
  hold = false;

  sync(_key: DocumentKey, write: Versioned): Promise<SyncReply> {
    let decision: SyncReply["decision"];
    if (this.stored === null || compareStamps(write.stamp, this.stored.stamp) > 0) {
      this.stored = write;
      this.revision += 1n;
      decision = "APPLIED";
    } else {
      decision = compareStamps(write.stamp, this.stored.stamp) === 0 ? "UNCHANGED" : "STALE";
    }
    const reply = { document: this.#doc(this.stored), decision };
    if (!this.hold) return Promise.resolve(reply);
    return new Promise((resolve) => this.held.push(() => { resolve(reply); }));
  }

  get(): Promise<StoredDocument | null> {
    return Promise.resolve(this.stored && this.#doc(this.stored));
  }

  #doc(state: Versioned): StoredDocument {
    return { key, state, revision: this.revision };
  }
}

function open(api: DocumentApi, persistence = new MemoryPersistence()) {
  return new SyncedDocument({ api, key, persistence });
}

describe("a synced document", () => {
  test("is loading until the backend answers, then shows what it holds", async () => {
    const backend = new Backend();
    backend.stored = { value: { email: true }, stamp: { clock: 4n, writer: "w-x" } };
    const doc = open(backend);
    expect(doc.status.loading).toBe(true);
    await doc.settled();
    expect(doc.status.loading).toBe(false);
    expect(doc.value).toEqual({ email: true });
    expect(doc.status.acknowledged).toEqual({ clock: 4n, writer: "w-x" });
  });

  test("a double click ends on the second click, and the late first reply changes nothing", async () => {
    const backend = new Backend();
    const doc = open(backend);
    await doc.settled();
    const shown: unknown[] = [];
    doc.subscribe((current) => shown.push(current?.value));
    backend.hold = true;
    doc.edit({ n: 1 });
    doc.edit({ n: 2 });
    expect(doc.status.pending).toBe(true);
    while (doc.status.pending) {
      await Promise.resolve();
      backend.held.shift()?.();
      await new Promise((r) => setTimeout(r, 0));
    }
    expect(shown).toEqual([{ n: 1 }, { n: 2 }]);
    expect(backend.stored?.value).toEqual({ n: 2 });
    expect(doc.status.decision).toBe("APPLIED");
  });

  test("STALE on the page's own edit is surfaced as overtaken, and the newer state shown", async () => {
    const backend = new Backend();
    const doc = open(backend);
    await doc.settled();
    backend.stored = { value: { other: true }, stamp: { clock: 9n, writer: "w-other" } };
    // The page has not seen clock 9, so its edit (clock 1) loses.
    doc.edit({ mine: true });
    await doc.settled();
    expect(doc.status.decision).toBe("STALE");
    expect(doc.status.overtaken).toBe(true);
    expect(doc.value).toEqual({ other: true });
    expect(doc.edit({ again: true }).stamp.clock).toBe(10n);
  });

  test("subscribers hear only real changes", async () => {
    const backend = new Backend();
    const doc = open(backend);
    await doc.settled();
    let calls = 0;
    doc.subscribe(() => calls++);
    const write = doc.edit({ n: 1 });
    await doc.settled();
    doc.observe({ key, state: write, revision: 1n });
    expect(calls).toBe(1);
  });

  test("a reload resends the unacknowledged edit it saved, under a new writer id", async () => {
    const backend = new Backend();
    const saved = new MemoryPersistence();
    const first = new SyncedDocument({ api: backend, key, persistence: saved, autoSync: false });
    first.edit({ n: 1 });
    first.close();
    const reloaded = open(backend, saved);
    expect(reloaded.value).toEqual({ n: 1 });
    expect(reloaded.status.loading).toBe(false);
    expect(reloaded.writer).not.toBe(first.writer);
    await reloaded.settled();
    expect(backend.stored?.stamp.writer).toBe(first.writer);
    expect(reloaded.status.pending).toBe(false);
  });

  test("cleared storage is a new incarnation", async () => {
    const backend = new Backend();
    const saved = new MemoryPersistence();
    const doc = open(backend, saved);
    doc.edit({ n: 1 });
    await doc.settled();
    const writer = doc.writer;
    saved.clear();
    const second = doc.edit({ n: 2 });
    expect(doc.writer).not.toBe(writer);
    // It keeps its clock, so the click follows what the user saw and wins.
    expect(second.stamp.clock).toBe(2n);
    await doc.settled();
    expect(doc.status.decision).toBe("APPLIED");
    expect(saved.load()?.current).toEqual(second);
  });

  test("a reset forgets everything, saved state included", async () => {
    const backend = new Backend();
    const saved = new MemoryPersistence();
    const doc = new SyncedDocument({ api: backend, key, persistence: saved, autoSync: false });
    doc.edit({ n: 1 });
    const writer = doc.writer;
    doc.reset();
    expect(doc.current).toBeNull();
    expect(doc.status.loading).toBe(true);
    expect(saved.load()).toBeUndefined();
    expect(doc.writer).not.toBe(writer);
    await doc.syncOnce();
    expect(doc.status.loading).toBe(false);
  });
});
