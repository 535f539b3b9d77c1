// Test-only: bundled into dist/planted-fields/fields.js in place of
// src/client/fields.ts (see scripts/build.mjs), never shipped. A per-field
// document that adopts a remote document WHOLE when its document stamp is
// larger (whole-document mode's rule) instead of field by field: a pending
// edit of one field is then overwritten by a document that lacks it, and
// an equal-stamp document never brings another page's field.
import { SyncedFieldDocument as RealDocument } from "../../../src/client/fields.js";
import { FieldReplica, documentStamp, type FieldDocument, type FieldWrite } from "../../../src/protocol/fields.js";
import { compareStamps } from "../../../src/protocol/stamp.js";

export * from "../../../src/client/fields.js";

class AdoptsWhole extends FieldReplica {
  protected override adopt(local: FieldDocument, remote: FieldDocument): FieldDocument {
    const mine = documentStamp(local);
    const theirs = documentStamp(remote);
    return theirs !== null && (mine === null || compareStamps(theirs, mine) > 0) ? remote : local;
  }
}

export class SyncedFieldDocument extends RealDocument {
  protected override createReplica(writer: string, clock: bigint, document: FieldDocument, unconfirmed: readonly FieldWrite[]): FieldReplica {
    return new AdoptsWhole(writer, clock, document, unconfirmed);
  }
}
