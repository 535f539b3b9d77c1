// One document in the opt-in per-field mode (docs/protocol.md, "Per-field
// merge"), as a page uses it: the per-field counterpart of SyncedDocument
// and of the Rust client's LocalFieldDocument. Edits of named fields, each
// under one fresh stamp, shown at once and saved before they are sent; a
// sync loop that sends every own write not yet held by the backend, oldest
// first, each under its own stamp (never re-stamped), with retries and
// backoff; every reply, watch event and other tab's state adopted field by
// field (the join), so a field with a newer local edit is never overwritten
// by an older remote value, and an edit of another field is never lost.

import {
  DELETE,
  EMPTY,
  FieldReplica,
  documentStamp,
  documentValue,
  join,
  sameDocument,
  setOp,
  valueOf,
  type Change,
  type FieldDocument,
  type FieldOp,
  type FieldWrite,
  type Json,
} from "../protocol/fields.js";
import { freshWriterId, sameStamp, type Value, type Versioned } from "../protocol/stamp.js";
import {
  describe,
  fieldDocumentOf,
  isRetryable,
  type Decision,
  type DocumentKey,
  type FieldSyncReply,
  type StoredDocument,
} from "./api.js";
import { DEFAULT_BACKOFF, backoffDelay, type BackoffPolicy } from "./backoff.js";
import type { FieldPersisted } from "./field-storage.js";
import type { Status } from "./document.js";
import type { Persistence } from "./storage.js";

/** The calls a per-field document makes; `SettingsApi` is the real one. */
export interface FieldDocumentApi {
  syncFields(key: DocumentKey, write: FieldWrite): Promise<FieldSyncReply>;
  get(key: DocumentKey): Promise<StoredDocument | null>;
}

/** `Status`, with the decision on every field of the last write sent. */
export interface FieldStatus extends Status {
  readonly fieldDecisions: ReadonlyMap<string, Decision>;
}

export interface FieldDocumentOptions {
  readonly api: FieldDocumentApi;
  readonly key: DocumentKey;
  readonly persistence: Persistence<FieldPersisted>;
  /** Sync by itself after edits and at start (default). Tests drive it by hand. */
  readonly autoSync?: boolean;
  readonly backoff?: BackoffPolicy;
}

const NO_DECISIONS: ReadonlyMap<string, Decision> = new Map();

export class SyncedFieldDocument {
  readonly key: DocumentKey;
  readonly #api: FieldDocumentApi;
  readonly #persistence: Persistence<FieldPersisted>;
  readonly #autoSync: boolean;
  readonly #backoff: BackoffPolicy;
  #replica: FieldReplica;
  /** The join of every document the backend answered. */
  #acknowledged: FieldDocument;
  #status: FieldStatus;
  /** Bumped by every reset: replies to an older incarnation are dropped. */
  #incarnation = 0;
  /** Whether this page has the record in storage (so its absence means cleared). */
  #stored = false;
  #driving = false;
  #closed = false;
  #wake: (() => void) | null = null;
  readonly #valueListeners = new Set<(document: FieldDocument) => void>();
  readonly #statusListeners = new Set<(status: FieldStatus) => void>();
  readonly #cleanup: (() => void)[] = [];

  constructor(options: FieldDocumentOptions) {
    this.key = options.key;
    this.#api = options.api;
    this.#persistence = options.persistence;
    this.#autoSync = options.autoSync ?? true;
    this.#backoff = options.backoff ?? DEFAULT_BACKOFF;
    const saved = this.#persistence.load();
    this.#stored = saved !== undefined;
    this.#acknowledged = saved?.acknowledged ?? EMPTY;
    // A new incarnation per page load; saved writes keep their stamps, so
    // re-sending them is a replay.
    this.#replica = this.createReplica(freshWriterId(), saved?.clock ?? 0n, saved?.document ?? EMPTY, saved?.unconfirmed ?? []);
    this.#replica.confirm(this.#acknowledged);
    this.#status = {
      loading: saved === undefined,
      pending: this.#replica.unconfirmed.length > 0,
      acknowledged: documentStamp(this.#acknowledged),
      online: typeof navigator === "undefined" || navigator.onLine,
      decision: null,
      fieldDecisions: NO_DECISIONS,
      overtaken: false,
      error: null,
    };
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

  /** What is shown, register by register. */
  get document(): FieldDocument {
    return this.#replica.document;
  }

  /** The merged value under the document's stamp, as a whole-document reader sees it; null when nothing is shown. */
  get current(): Versioned | null {
    const stamp = documentStamp(this.#replica.document);
    return stamp === null ? null : { value: documentValue(this.#replica.document), stamp };
  }

  /** The merged value (null: deleted or absent), undefined while nothing is shown. */
  get value(): Value | undefined {
    return this.current?.value;
  }

  /** A field's shown value; undefined when it is absent (never set, or deleted). */
  field(name: string): Json {
    return valueOf(this.#replica.document, name)?.value;
  }

  get writer(): string {
    return this.#replica.writer;
  }

  get status(): FieldStatus {
    return this.#status;
  }

  /** Own writes not yet seen held by the backend, oldest first. */
  get unconfirmed(): readonly FieldWrite[] {
    return this.#replica.unconfirmed;
  }

  /** Sets one top-level field (any JSON value, null included): one write, one fresh stamp. */
  setField(name: string, value: Json): FieldWrite {
    return this.patch(new Map([[name, setOp(value)]]));
  }

  /** Deletes one top-level field (a field tombstone): one write, one fresh stamp. */
  deleteField(name: string): FieldWrite {
    return this.patch(new Map([[name, DELETE]]));
  }

  /** Sets and deletes several fields at once, under one stamp. */
  patch(ops: ReadonlyMap<string, FieldOp>): FieldWrite {
    if (ops.size === 0) throw new Error("an empty patch is not an edit");
    return this.#edit({ patch: new Map(ops) });
  }

  /** Replaces the whole document (every field; null deletes it), under one stamp. */
  replace(value: Value): FieldWrite {
    return this.#edit({ whole: value });
  }

  /** A document the backend holds, from a watch event: adopted field by field. */
  observe(document: StoredDocument): void {
    this.#receive(document);
  }

  /**
   * One request: sends the oldest own write not yet held by the backend (a
   * replay if it is), or reads the document when there is none. Returns the
   * decision on the write sent, if any. Throws what the call threw.
   */
  async syncOnce(): Promise<Decision | null> {
    const incarnation = this.#incarnation;
    const write = this.#replica.unconfirmed[0];
    if (write === undefined) {
      const document = await this.#api.get(this.key);
      if (incarnation !== this.#incarnation) return null;
      if (document !== null) this.#receive(document);
      this.#update({ loading: false, online: true });
      return null;
    }
    const reply = await this.#api.syncFields(this.key, write);
    if (incarnation !== this.#incarnation) return null;
    // STALE on a field of the page's own latest edit: the user's change was overtaken.
    const latest = this.#replica.unconfirmed.at(-1);
    const overtaken = reply.decision === "STALE" && latest !== undefined && sameStamp(latest.stamp, write.stamp);
    this.#receive(reply.document);
    this.#update({ loading: false, online: true, decision: reply.decision, fieldDecisions: reply.fieldDecisions, overtaken });
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

  /** Forgets everything and starts a new incarnation; unacknowledged edits are gone with it. */
  reset(): void {
    this.#incarnation += 1;
    this.#persistence.clear();
    this.#stored = false;
    this.#acknowledged = EMPTY;
    this.#replica = this.createReplica(freshWriterId(), 0n, EMPTY, []);
    this.#update({ loading: true, acknowledged: null, decision: null, fieldDecisions: NO_DECISIONS, overtaken: false, error: null });
    this.#notifyValue();
    if (this.#autoSync) void this.#drive();
  }

  /** Calls `listener` whenever what is shown changes (a value or a stamp), and only then. */
  subscribe(listener: (document: FieldDocument) => void): () => void {
    this.#valueListeners.add(listener);
    return () => this.#valueListeners.delete(listener);
  }

  /** Calls `listener` whenever a status field changes, and only then. */
  subscribeStatus(listener: (status: FieldStatus) => void): () => void {
    this.#statusListeners.add(listener);
    return () => this.#statusListeners.delete(listener);
  }

  close(): void {
    this.#closed = true;
    this.#wake?.();
    for (const stop of this.#cleanup) stop();
  }

  /** A new replica; protected only so tests can plant a broken adopt rule. */
  protected createReplica(writer: string, clock: bigint, document: FieldDocument, unconfirmed: readonly FieldWrite[]): FieldReplica {
    return new FieldReplica(writer, clock, document, unconfirmed);
  }

  #edit(change: Change): FieldWrite {
    this.#mergeStored();
    const before = this.#replica.document;
    const write = this.#replica.edit(change);
    this.#save();
    this.#update({ error: null, overtaken: false });
    this.#notifyIfChanged(before);
    if (this.#autoSync) void this.#drive();
    return write;
  }

  #settled(): boolean {
    return this.#closed || this.#status.error !== null || (!this.#status.pending && !this.#status.loading);
  }

  #receive(stored: StoredDocument): void {
    const remote = fieldDocumentOf(stored);
    const before = this.#replica.document;
    this.#acknowledged = join(this.#acknowledged, remote);
    this.#replica.observe(remote);
    this.#replica.confirm(this.#acknowledged);
    this.#save();
    this.#update({});
    this.#notifyIfChanged(before);
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

  #adoptStored(stored: FieldPersisted): void {
    const before = this.#replica.document;
    this.#acknowledged = join(this.#acknowledged, stored.acknowledged);
    this.#replica.witness(stored.clock);
    this.#replica.absorb(stored.document, stored.unconfirmed);
    this.#replica.confirm(this.#acknowledged);
    this.#notifyIfChanged(before);
  }

  #save(): void {
    const stored = this.#persistence.load();
    if (stored === undefined && this.#stored) this.#storageCleared();
    if (stored !== undefined) this.#adoptStored(stored);
    this.#persistence.save({
      clock: this.#replica.clock,
      document: this.#replica.document,
      unconfirmed: this.#replica.unconfirmed,
      acknowledged: this.#acknowledged,
    });
    this.#stored = true;
  }

  #otherTab(state: FieldPersisted | undefined): void {
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
   * writer id) that keeps what it shows, its clock and its unsent writes
   * (their own stamps), and saves it all again.
   */
  #storageCleared(): void {
    this.#stored = false;
    const r = this.#replica;
    this.#replica = this.createReplica(freshWriterId(), r.clock, r.document, r.unconfirmed);
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

  #update(patch: Partial<FieldStatus>): void {
    const next: FieldStatus = {
      ...this.#status,
      ...patch,
      acknowledged: documentStamp(this.#acknowledged),
      pending: this.#replica.unconfirmed.length > 0,
    };
    const before = this.#status;
    this.#status = next;
    const changed = (Object.keys(next) as (keyof FieldStatus)[]).some((k) =>
      k === "acknowledged"
        ? !sameStamp(before.acknowledged, next.acknowledged)
        : k === "fieldDecisions"
          ? !sameDecisions(before.fieldDecisions, next.fieldDecisions)
          : before[k] !== next[k],
    );
    if (changed) for (const listener of this.#statusListeners) listener(next);
  }

  #notifyIfChanged(before: FieldDocument): void {
    if (!sameDocument(before, this.#replica.document)) this.#notifyValue();
  }

  #notifyValue(): void {
    const document = this.#replica.document;
    for (const listener of this.#valueListeners) listener(document);
  }
}

function sameDecisions(a: ReadonlyMap<string, Decision>, b: ReadonlyMap<string, Decision>): boolean {
  return a.size === b.size && [...a].every(([name, d]) => b.get(name) === d);
}

