// The client half of the protocol for one document, as pure state:
// - edit: clock = max(own clock, every clock seen) + 1, stamp (clock, me);
// - observe the backend's state: adopt it only if its stamp is larger than
//   the stamp of what is shown; the clock becomes the larger of the two.
// A reset is a new Replica with a fresh writer id.

import { MAX_CLOCK, compareStamps, isWriterId, type Value, type Versioned } from "./stamp.js";

export class ClockOverflow extends Error {
  constructor() {
    super(`the clock would pass ${MAX_CLOCK}`);
    this.name = "ClockOverflow";
  }
}

export class Replica {
  readonly writer: string;
  #clock: bigint;
  #current: Versioned | null;

  /** `clock` and `current` restore a persisted state (a reload). */
  constructor(writer: string, clock = 0n, current: Versioned | null = null) {
    if (!isWriterId(writer)) throw new Error(`invalid writer id ${JSON.stringify(writer)}`);
    this.writer = writer;
    this.#current = current;
    this.#clock = current !== null && current.stamp.clock > clock ? current.stamp.clock : clock;
  }

  /** The largest clock made or seen; the next edit ticks past it. */
  get clock(): bigint {
    return this.#clock;
  }

  /** What the user sees, with the stamp of the write that made it. */
  get current(): Versioned | null {
    return this.#current;
  }

  /** A local edit, shown at once (optimistic). Returns the write to send. */
  edit(value: Value): Versioned {
    if (this.#clock >= MAX_CLOCK) throw new ClockOverflow();
    this.#clock += 1n;
    this.#current = { value, stamp: { clock: this.#clock, writer: this.writer } };
    return this.#current;
  }

  /**
   * Applies a state the backend holds (a reply, a watch event, another
   * tab's write). Returns whether what is shown changed. A late reply to
   * an earlier request has a smaller stamp than a newer edit: ignored.
   */
  observe(remote: Versioned): boolean {
    this.witness(remote.stamp.clock);
    if (!this.adopts(remote)) return false;
    this.#current = remote;
    return true;
  }

  /** A clock seen elsewhere (another tab's state): the next edit ticks past it. */
  witness(clock: bigint): void {
    if (clock > this.#clock) this.#clock = clock;
  }

  /** The adopt rule; protected only so tests can plant a broken one. */
  protected adopts(remote: Versioned): boolean {
    return adopts(this.#current, remote);
  }
}

/** The adopt rule: take the remote state iff its stamp is larger. */
export function adopts(local: Versioned | null, remote: Versioned): boolean {
  return local === null || compareStamps(remote.stamp, local.stamp) > 0;
}
