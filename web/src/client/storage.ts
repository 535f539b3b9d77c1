// Where a document's local state survives a reload: the value shown with
// its stamp, the clock, and the largest stamp the backend acknowledged. An
// edit is saved before it is sent, so a reload loses no unacknowledged
// click. Tabs of one browser share the record; each merges into it by the
// adopt rule, so no tab overwrites a newer state with an older one.

import { type Stamp, type Versioned, isValue, isWriterId } from "../protocol/stamp.js";

export interface Persisted {
  readonly clock: bigint;
  readonly current: Versioned | null;
  /** The largest stamp the backend is known to hold. */
  readonly acknowledged: Stamp | null;
}

export interface Persistence<T = Persisted> {
  load(): T | undefined;
  save(state: T): void;
  /** Forgets the record (a reset). */
  clear(): void;
  /**
   * Calls `changed` when another tab changed the record, with undefined
   * when the record (or all site storage) was cleared.
   */
  watch(changed: (state: T | undefined) => void): () => void;
}

/** Bigints as decimal strings: JSON has no 64-bit integers. */
export function encode(state: Persisted): string {
  const stamp = (s: Stamp | null) => (s === null ? null : { clock: s.clock.toString(), writer: s.writer });
  return JSON.stringify({
    v: 1,
    clock: state.clock.toString(),
    current: state.current === null ? null : { value: state.current.value, stamp: stamp(state.current.stamp) },
    acknowledged: stamp(state.acknowledged),
  });
}

/** The stored state, or undefined for anything unreadable (never a guess). */
export function decode(text: string | null): Persisted | undefined {
  if (text === null) return undefined;
  try {
    const raw = JSON.parse(text) as Record<string, unknown>;
    if (raw.v !== 1) return undefined;
    const clock = decodeClock(raw.clock);
    const acknowledged = raw.acknowledged === null ? null : decodeStamp(raw.acknowledged);
    let current: Versioned | null = null;
    if (raw.current !== null) {
      const c = raw.current as Record<string, unknown>;
      if (!isValue(c.value)) return undefined;
      current = { value: c.value, stamp: decodeStamp(c.stamp) };
    }
    return { clock, current, acknowledged };
  } catch {
    return undefined;
  }
}

function decodeClock(raw: unknown): bigint {
  if (typeof raw !== "string" || !/^[0-9]{1,19}$/.test(raw)) throw new Error("bad clock");
  return BigInt(raw);
}

function decodeStamp(raw: unknown): Stamp {
  const s = raw as Record<string, unknown>;
  if (typeof s.writer !== "string" || !isWriterId(s.writer)) throw new Error("bad writer");
  return { clock: decodeClock(s.clock), writer: s.writer };
}

/** How a record is written as text and read back (undefined: unreadable). */
export interface Codec<T> {
  encode(state: T): string;
  decode(text: string | null): T | undefined;
}

/** A record in `localStorage`, shared by the browser's tabs of one origin. */
export class LocalStorageRecord<T> implements Persistence<T> {
  readonly #key: string;
  readonly #codec: Codec<T>;

  constructor(recordKey: string, codec: Codec<T>) {
    this.#key = recordKey;
    this.#codec = codec;
  }

  load(): T | undefined {
    return this.#codec.decode(localStorage.getItem(this.#key));
  }

  save(state: T): void {
    localStorage.setItem(this.#key, this.#codec.encode(state));
  }

  clear(): void {
    localStorage.removeItem(this.#key);
  }

  watch(changed: (state: T | undefined) => void): () => void {
    const listener = (event: StorageEvent) => {
      if (event.storageArea !== localStorage) return;
      if (event.key === null) changed(undefined);
      else if (event.key === this.#key) changed(this.#codec.decode(event.newValue));
    };
    addEventListener("storage", listener);
    return () => { removeEventListener("storage", listener); };
  }
}

/** The whole-document record in `localStorage`. */
export class LocalStoragePersistence extends LocalStorageRecord<Persisted> {
  constructor(recordKey: string) {
    super(recordKey, { encode, decode });
  }
}

/** A record in memory: for a client that keeps nothing across reloads. */
export class MemoryPersistence<T = Persisted> implements Persistence<T> {
  #state: T | undefined;

  load(): T | undefined {
    return this.#state;
  }

  save(state: T): void {
    this.#state = state;
  }

  clear(): void {
    this.#state = undefined;
  }

  watch(): () => void {
    return () => {};
  }
}
