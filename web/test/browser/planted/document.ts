// Test-only: bundled into dist/planted/demo.js in place of
// src/client/document.ts (see scripts/build.mjs), never shipped. A
// document that adopts every state it hears, whatever its stamp (the seed
// post's client rule, so a late reply flicks the page back), and that
// reads nothing back from storage (otherwise re-merging the saved newer
// edit would hide the flicker within the same task).
import { SyncedDocument as RealDocument, type DocumentOptions } from "../../../src/client/document.js";
import { Replica } from "../../../src/protocol/replica.js";
import type { Versioned } from "../../../src/protocol/stamp.js";

export * from "../../../src/client/document.js";

class AdoptsEverything extends Replica {
  protected override adopts(): boolean {
    return true;
  }
}

export class SyncedDocument extends RealDocument {
  constructor(options: DocumentOptions) {
    const real = options.persistence;
    super({
      ...options,
      persistence: {
        load: () => undefined,
        save: (state) => {
          real.save(state);
        },
        clear: () => {
          real.clear();
        },
        watch: () => () => undefined,
      },
    });
  }

  protected override createReplica(writer: string, clock: bigint, current: Versioned | null): Replica {
    return new AdoptsEverything(writer, clock, current);
  }
}
