// One document as a page uses it: what to show, optimistic edits, and a
// sync loop that retries with backoff until the backend has every edit.
// At most one request per document is in flight; every reply, watch event
// and other tab's state goes through the adopt rule, so nothing older than
// what is shown ever replaces it.

import { Replica } from "../protocol/replica.js";
import {
  compareStamps,
  freshWriterId,
  maxStamp,
  sameStamp,
  type Stamp,
  type Value,
  type Versioned,
} from "../protocol/stamp.js";
import { describe, isRetryable, type Decision, type DocumentKey, type StoredDocument, type SyncReply } from "./api.js";
import { DEFAULT_BACKOFF, backoffDelay, type BackoffPolicy } from "./backoff.js";
import type { Persisted, Persistence } from "./storage.js";

/** The calls a document makes; `SettingsApi` is the real one. */
export interface DocumentApi {
  sync(key: DocumentKey, write: Versioned): Promise<SyncReply>;
  get(key: DocumentKey): Promise<StoredDocument | null>;
}

export interface Status {
  /** Nothing to show yet: neither a saved state nor the backend's answer. */
  readonly loading: boolean;
  /** An edit the backend has not acknowledged yet. */
  readonly pending: boolean;
  /** The largest stamp the backend is known to hold. */
  readonly acknowledged: Stamp | null;
  /** The browser is online and the last call reached the server. */
  readonly online: boolean;
  /** The decision on the last write sent. */
  readonly decision: Decision | null;
  /** The page's last own edit was overtaken by a larger stamp (STALE). */
  readonly overtaken: boolean;
  /** A refusal that retrying cannot fix, as `CODE: message`. */
  readonly error: string | null;
}

export interface DocumentOptions {
  readonly api: DocumentApi;
  readonly key: DocumentKey;
  readonly persistence: Persistence;
  /** Sync by itself after edits and at start (default). Tests drive it by hand. */
  readonly autoSync?: boolean;
  readonly backoff?: BackoffPolicy;
}

export class SyncedDocument {
  readonly key: DocumentKey;
  readonly #api: DocumentApi;
  readonly #persistence: Persistence;
  readonly #autoSync: boolean;
  readonly #backoff: BackoffPolicy;
  #replica: Replica;
  #status: Status;
  /** Bumped by every reset: replies to an older incarnation are dropped. */
  #incarnation = 0;
  /** Whether this page has the record in storage (so its absence means cleared). */
  #stored = false;
  #driving = false;
  #closed = false;
  #wake: (() => void) | null = null;
  readonly #valueListeners = new Set<(current: Versioned | null) => void>();
  readonly #statusListeners = new Set<(status: Status) => void>();
  readonly #cleanup: (() => void)[] = [];

  constructor(options: DocumentOptions) {
    this.key = options.key;
    this.#api = options.api;
    this.#persistence = options.persistence;
    this.#autoSync = options.autoSync ?? true;
    this.#backoff = options.backoff ?? DEFAULT_BACKOFF;
    const saved = this.#persistence.load();
    this.#stored = saved !== undefined;
    // Every page load is a new incarnation with a fresh writer id; a saved
    // state keeps its stamps, so resending a saved edit is a replay.
    this.#replica = this.createReplica(freshWriterId(), saved?.clock ?? 0n, saved?.current ?? null);
    this.#status = {
      loading: saved === undefined,
      pending: false,
      acknowledged: saved?.acknowledged ?? null,
      online: typeof navigator === "undefined" || navigator.onLine,
      decision: null,
      overtaken: false,
      error: null,
    };
    this.#status = { ...this.#status, pending: this.#pendingOf(this.#status) };
    this.#cleanup.push(this.#persistence.watch((state) => { this.#otherTab(state); }));
    if (typeof addEventListener === "function") {
      const online = () => { this.#connectivity(true); };
      const offline = () => { this.#connectivity(false); };
      addEventListener("online", online);
      addEventListener("offline", offline);
      this.#cleanup.push(() => {
        removeEventListener("online", online);
        removeEventListener("offline", offline);
      });
    }
    if (this.#autoSync) void this.#drive();
  }

  /** What to show: null when the document does not exist (or is loading). */
  get current(): Versioned | null {
    return this.#replica.current;
  }

  get value(): Value | undefined {
    return this.#replica.current?.value;
  }

  get writer(): string {
    return this.#replica.writer;
  }

  get status(): Status {
    return this.#status;
  }

  /** A local edit, shown at once and saved before it is sent. */
  edit(value: Value): Versioned {
    this.#mergeStored();
    const write = this.#replica.edit(value);
    this.#save();
    this.#update({ error: null, overtaken: false });
    this.#notifyValue();
    if (this.#autoSync) void this.#drive();
    return write;
  }

  /** A state the backend holds, from a watch event. */
  observe(document: StoredDocument): void {
    this.#receive(document.state);
  }

  /**
   * One request: sends what is shown (a replay if the backend has it), or
   * reads the document when nothing is shown yet. Returns the decision of
   * the write sent, if any. Throws what the call threw.
   */
  async syncOnce(): Promise<Decision | null> {
    const incarnation = this.#incarnation;
    const write = this.#replica.current;
    if (write === null) {
      const document = await this.#api.get(this.key);
      if (incarnation !== this.#incarnation) return null;
      if (document !== null) this.#receive(document.state);
      this.#update({ loading: false, online: true });
      return null;
    }
    const reply = await this.#api.sync(this.key, write);
    if (incarnation !== this.#incarnation) return null;
    // STALE on the page's own latest edit: the user's change was overtaken.
    const overtaken = reply.decision === "STALE" && sameStamp(this.#replica.current?.stamp, write.stamp);
    this.#receive(reply.document.state);
    this.#update({ loading: false, online: true, decision: reply.decision, overtaken });
    return reply.decision;
  }

  /** Resolves once nothing is pending or loading (or a refusal stopped it). */
  async settled(): Promise<void> {
    if (this.#settled()) return;
    await new Promise<void>((resolve) => {
      const stop = this.subscribeStatus(() => {
        if (this.#settled()) {
          stop();
          resolve();
        }
      });
    });
  }

  /**
   * Forgets everything and starts a new incarnation with a fresh writer id,
   * as a browser does when it restarts with its storage gone. Unacknowledged
   * edits are gone with it.
   */
  reset(): void {
    this.#incarnation += 1;
    this.#persistence.clear();
    this.#stored = false;
    this.#replica = this.createReplica(freshWriterId(), 0n, null);
    this.#update({ loading: true, acknowledged: null, decision: null, overtaken: false, error: null });
    this.#notifyValue();
    if (this.#autoSync) void this.#drive();
  }

  /** Calls `listener` whenever what is shown changes, and only then. */
  subscribe(listener: (current: Versioned | null) => void): () => void {
    this.#valueListeners.add(listener);
    return () => this.#valueListeners.delete(listener);
  }

  /** Calls `listener` whenever a status field changes, and only then. */
  subscribeStatus(listener: (status: Status) => void): () => void {
    this.#statusListeners.add(listener);
    return () => this.#statusListeners.delete(listener);
  }

  close(): void {
    this.#closed = true;
    this.#wake?.();
    for (const stop of this.#cleanup) stop();
  }

  /** A new replica; protected only so tests can plant a broken adopt rule. */
  protected createReplica(writer: string, clock: bigint, current: Versioned | null): Replica {
    return new Replica(writer, clock, current);
  }

  #settled(): boolean {
    return this.#closed || this.#status.error !== null || (!this.#status.pending && !this.#status.loading);
  }

  #receive(state: Versioned): void {
    const changed = this.#replica.observe(state);
    this.#update({ acknowledged: maxStamp(this.#status.acknowledged, state.stamp) });
    this.#save();
    if (changed) this.#notifyValue();
  }

  /** Takes in what other tabs saved, so saving never drops their edits. */
  #mergeStored(): void {
    const stored = this.#persistence.load();
    if (stored === undefined) {
      if (this.#stored) this.#storageCleared();
      return;
    }
    this.#adoptStored(stored);
  }

  #adoptStored(stored: Persisted): void {
    const changed = stored.current !== null && this.#replica.observe(stored.current);
    this.#replica.witness(stored.clock);
    if (stored.acknowledged !== null) {
      this.#update({ acknowledged: maxStamp(this.#status.acknowledged, stored.acknowledged) });
    }
    if (changed) this.#notifyValue();
  }

  #save(): void {
    const stored = this.#persistence.load();
    if (stored === undefined && this.#stored) this.#storageCleared();
    if (stored !== undefined) this.#adoptStored(stored);
    this.#persistence.save({
      clock: this.#replica.clock,
      current: this.#replica.current,
      acknowledged: this.#status.acknowledged,
    });
    this.#stored = true;
  }

  #otherTab(state: Persisted | undefined): void {
    if (state === undefined) {
      this.#storageCleared();
      this.#save();
      return;
    }
    this.#adoptStored(state);
    this.#update({});
    if (this.#autoSync) void this.#drive();
  }

  /**
   * Site storage was cleared under this page: a new incarnation (fresh
   * writer id). The page keeps what it shows and its clock, so the user's
   * next click still follows what they saw, and saves it all again.
   */
  #storageCleared(): void {
    this.#stored = false;
    this.#replica = this.createReplica(freshWriterId(), this.#replica.clock, this.#replica.current);
  }

  #connectivity(online: boolean): void {
    this.#update({ online });
    if (online) this.#wake?.();
  }

  async #drive(): Promise<void> {
    if (this.#driving) return;
    this.#driving = true;
    let attempt = 0;
    try {
      while (!this.#closed && this.#status.error === null && (this.#status.pending || this.#status.loading)) {
        try {
          await this.syncOnce();
          attempt = 0;
        } catch (error) {
          if (!isRetryable(error)) {
            console.warn("settings-sync: refused", describe(error));
            this.#update({ error: describe(error), loading: false });
            break;
          }
          this.#update({ online: false });
          await this.#sleep(backoffDelay(attempt++, this.#backoff));
        }
      }
    } finally {
      this.#driving = false;
    }
  }

  /** Waits `ms`, or less if the browser comes back online. */
  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.#wake = () => {
        this.#wake = null;
        done();
      };
    });
  }

  #update(patch: Partial<Status>): void {
    const next: Status = { ...this.#status, ...patch };
    const status: Status = { ...next, pending: this.#pendingOf(next) };
    const before = this.#status;
    this.#status = status;
    const changed = (Object.keys(status) as (keyof Status)[]).some((k) =>
      k === "acknowledged" ? !sameStamp(before.acknowledged, status.acknowledged) : before[k] !== status[k],
    );
    if (changed) for (const listener of this.#statusListeners) listener(status);
  }

  #pendingOf(status: Status): boolean {
    const current = this.#replica.current;
    return current !== null && (status.acknowledged === null || compareStamps(current.stamp, status.acknowledged) > 0);
  }

  #notifyValue(): void {
    const current = this.#replica.current;
    for (const listener of this.#valueListeners) listener(current);
  }
}
