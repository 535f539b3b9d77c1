// One Watch stream per browser, shared by its tabs: browsers allow six
// HTTP/1.1 connections per origin across all tabs, so a stream per tab
// would starve them. The tab holding a Web Lock leads: it streams and fans
// every change out over a BroadcastChannel. When it closes, the browser
// releases its lock, the next tab takes over and resumes after the last
// revision it saw, so no change between the two streams is missed.

import { Code, ConnectError } from "@connectrpc/connect";
import type { StoredDocument, WatchEvent, WatchFilter } from "./api.js";
import { DEFAULT_BACKOFF, backoffDelay, type BackoffPolicy } from "./backoff.js";

export interface WatchApi {
  watch(filter: WatchFilter, signal?: AbortSignal): AsyncIterable<WatchEvent>;
}

/** What every tab hears. `resync`: history was lost; re-read documents. */
export type SharedEvent =
  | { readonly kind: "change"; readonly document: StoredDocument }
  | { readonly kind: "progress"; readonly revision: bigint }
  | { readonly kind: "resync" };

export interface SharedWatchOptions {
  readonly api: WatchApi;
  readonly filter: Omit<WatchFilter, "afterRevision">;
  /** Names the lock and channel; tabs with the same name share one stream. */
  readonly name?: string;
  readonly backoff?: BackoffPolicy;
}

export class SharedWatch {
  readonly #api: WatchApi;
  readonly #filter: Omit<WatchFilter, "afterRevision">;
  readonly #name: string;
  readonly #backoff: BackoffPolicy;
  readonly #channel: BroadcastChannel;
  readonly #abort = new AbortController();
  readonly #listeners = new Set<(event: SharedEvent) => void>();
  readonly #leaderListeners = new Set<(leader: boolean) => void>();
  #revision: bigint | undefined;
  #leader = false;

  constructor(options: SharedWatchOptions) {
    this.#api = options.api;
    this.#filter = options.filter;
    const { tenant, owner = "", name = "" } = options.filter;
    this.#name = options.name ?? `settings-sync-watch:${tenant}/${owner}/${name}`;
    this.#backoff = options.backoff ?? DEFAULT_BACKOFF;
    this.#channel = new BroadcastChannel(this.#name);
    this.#channel.onmessage = (message: MessageEvent<SharedEvent>) => { this.#heard(message.data); };
    navigator.locks
      .request(this.#name, { signal: this.#abort.signal }, () => this.#lead())
      .catch((error: unknown) => {
        if (!this.#abort.signal.aborted) console.warn("settings-sync: watch leadership failed", error);
      });
  }

  get isLeader(): boolean {
    return this.#leader;
  }

  /** The last revision this tab knows every change up to. */
  get revision(): bigint | undefined {
    return this.#revision;
  }

  /** A revision read elsewhere (a Get): a stream starting here resumes after it. */
  noteRevision(revision: bigint): void {
    if (this.#revision === undefined || revision > this.#revision) this.#revision = revision;
  }

  subscribe(listener: (event: SharedEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  onLeadership(listener: (leader: boolean) => void): () => void {
    this.#leaderListeners.add(listener);
    return () => this.#leaderListeners.delete(listener);
  }

  /** Stops streaming (handing leadership over) and stops listening. */
  close(): void {
    this.#abort.abort();
    this.#channel.close();
  }

  async #lead(): Promise<void> {
    this.#setLeader(true);
    let attempt = 0;
    const signal = this.#abort.signal;
    const stopped = () => signal.aborted;
    try {
      while (!stopped()) {
        try {
          let fresh = this.#revision === undefined;
          const filter = { ...this.#filter, ...(fresh ? {} : { afterRevision: this.#revision }) };
          for await (const event of this.#api.watch(filter, signal)) {
            attempt = 0;
            this.#publish(event);
            // A fresh stream is current at its first progress; whatever
            // changed before it started, tabs re-read once.
            if (fresh && event.kind === "progress") {
              fresh = false;
              this.#publish({ kind: "resync" });
            }
          }
        } catch (error) {
          if (stopped()) return;
          if (ConnectError.from(error).code === Code.OutOfRange) {
            // The history after our revision is gone: start from now and
            // have every tab re-read what it shows.
            this.#revision = undefined;
            this.#publish({ kind: "resync" });
            continue;
          }
          await sleep(backoffDelay(attempt++, this.#backoff), signal);
        }
      }
    } finally {
      this.#setLeader(false);
    }
  }

  #publish(event: SharedEvent): void {
    this.#channel.postMessage(event);
    this.#heard(event);
  }

  #heard(event: SharedEvent): void {
    if (event.kind === "change") this.noteRevision(event.document.revision);
    if (event.kind === "progress") this.noteRevision(event.revision);
    for (const listener of this.#listeners) listener(event);
  }

  #setLeader(leader: boolean): void {
    this.#leader = leader;
    for (const listener of this.#leaderListeners) listener(leader);
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => {
      clearTimeout(timer);
      resolve();
    });
  });
}
