// The seed post's property test, run inside the browser with fast-check:
// random sequences of edit / edit-not-sent / sync / reset across 2–3
// clients (the real SyncedDocument over gRPC-Web) against the real server;
// after two clean sync rounds every client holds what the backend holds
// (P1), and no client ever shows a stamp smaller than one it showed before
// (P3: causal precedence implies a smaller Lamport stamp).
import fc from "fast-check";
import { SettingsApi, type DocumentKey } from "../../src/client/api.js";
import { SyncedDocument, type DocumentOptions } from "../../src/client/document.js";
import { MemoryPersistence } from "../../src/client/storage.js";
import { Replica } from "../../src/protocol/replica.js";
import { canonicalJson, compareStamps, type Stamp, type Versioned } from "../../src/protocol/stamp.js";

type Step =
  | { readonly kind: "edit"; readonly client: number; readonly send: boolean; readonly tombstone: boolean }
  | { readonly kind: "sync"; readonly client: number }
  | { readonly kind: "reset"; readonly client: number };

export interface PropertyOptions {
  readonly server: string;
  readonly token: string;
  readonly tenant: string;
  readonly owner: string;
  readonly runs: number;
  readonly seed?: number;
  /** Plant the seed's bug: equal clocks never adopt, whatever the writer. */
  readonly planted?: boolean;
}

export interface PropertyResult {
  readonly failed: boolean;
  readonly numRuns: number;
  readonly numShrinks: number;
  readonly seed: number;
  readonly counterexample: string | null;
  readonly error: string | null;
}

/** The planted client bug, through the test-only seam (a subclass). */
class IgnoresWriterReplica extends Replica {
  protected override adopts(remote: Versioned): boolean {
    const local = this.current;
    return local === null || remote.stamp.clock > local.stamp.clock;
  }
}

class PlantedDocument extends SyncedDocument {
  protected override createReplica(writer: string, clock: bigint, current: Versioned | null): Replica {
    return new IgnoresWriterReplica(writer, clock, current);
  }
}

const show = (v: Versioned | null | undefined) =>
  v ? `(${v.stamp.clock}, ${v.stamp.writer}) ${JSON.stringify(v.value)}` : "nothing";

function stepsOf(clients: number): fc.Arbitrary<Step> {
  const client = fc.nat(clients - 1);
  return fc.oneof(
    fc.record({ kind: fc.constant("edit" as const), client, send: fc.boolean(), tombstone: fc.nat(6).map((n) => n === 0) }),
    fc.record({ kind: fc.constant("sync" as const), client }),
    fc.record({ kind: fc.constant("reset" as const), client }),
  );
}

let documents = 0;

async function runSequence(options: PropertyOptions, api: SettingsApi, clients: number, steps: Step[]): Promise<void> {
  const key: DocumentKey = { tenant: options.tenant, owner: options.owner, name: `prop-${Date.now()}-${documents++}` };
  const Doc = options.planted ? PlantedDocument : SyncedDocument;
  const init: DocumentOptions = { api, key, persistence: new MemoryPersistence(), autoSync: false };
  const docs = Array.from({ length: clients }, () => new Doc({ ...init, persistence: new MemoryPersistence() }));
  const failures: string[] = [];
  const last: (Stamp | null)[] = docs.map(() => null);
  docs.forEach((doc, i) =>
    doc.subscribe((current) => {
      // null only after a reset: a new incarnation, not a change.
      const previous = last[i] ?? null;
      if (current && previous && compareStamps(current.stamp, previous) <= 0) {
        failures.push(`P3: client ${i} showed (${previous.clock}, ${previous.writer}) and then ${show(current)}`);
      }
      last[i] = current?.stamp ?? null;
    }),
  );
  let edit = 0;
  try {
    for (const step of steps) {
      const doc = docs[step.client];
      if (!doc) throw new Error(`no client ${step.client}`);
      if (step.kind === "edit") {
        doc.edit(step.tombstone ? null : { edit: edit++, by: step.client });
        if (step.send) await doc.syncOnce();
      } else if (step.kind === "sync") {
        await doc.syncOnce();
      } else {
        doc.reset();
      }
      if (failures.length) throw new Error(failures.join("; "));
    }
    for (let round = 0; round < 2; round++) for (const doc of docs) await doc.syncOnce();
    if (failures.length) throw new Error(failures.join("; "));
    const stored = await api.get(key);
    docs.forEach((doc, i) => {
      const shown = doc.current;
      const same =
        stored !== null &&
        shown !== null &&
        compareStamps(shown.stamp, stored.state.stamp) === 0 &&
        canonicalJson(shown.value) === canonicalJson(stored.state.value);
      if (!same && !(stored === null && shown === null)) {
        throw new Error(`P1: after two sync rounds client ${i} shows ${show(shown)} but the backend holds ${show(stored?.state)}`);
      }
    });
  } finally {
    for (const doc of docs) doc.close();
  }
}

async function runProperty(options: PropertyOptions): Promise<PropertyResult> {
  const api = new SettingsApi({ baseUrl: options.server, token: () => options.token });
  const property = fc.asyncProperty(
    fc.integer({ min: 2, max: 3 }).chain((clients) =>
      fc.tuple(fc.constant(clients), fc.array(stepsOf(clients), { maxLength: 16 })),
    ),
    async ([clients, steps]) => {
      await runSequence(options, api, clients, steps);
    },
  );
  const seed = options.seed ?? Date.now() % 2 ** 31;
  const details = await fc.check(property, { numRuns: options.runs, seed });
  return {
    failed: details.failed,
    numRuns: details.numRuns,
    numShrinks: details.numShrinks,
    seed,
    counterexample: details.counterexample ? JSON.stringify(details.counterexample) : null,
    error: details.errorInstance instanceof Error ? details.errorInstance.message : null,
  };
}

declare global {
  interface Window {
    runProperty: typeof runProperty;
  }
}
window.runProperty = runProperty;
