// The browser half of settings-sync.
// - protocol/: stamps, their order and the adopt rule, as pure code;
//   protocol/fields: the per-field mode's registers, join and adopt rule.
// - client/api: typed gRPC-Web calls; client/document: one document a page
//   shows, edits and syncs; client/storage: what survives a reload;
//   client/watch: one Watch stream per browser, shared by its tabs;
//   client/fields (+ field-storage): a per-field document (opt-in mode).

export * from "./protocol/stamp.js";
export { Replica, adopts, ClockOverflow } from "./protocol/replica.js";
export * as fields from "./protocol/fields.js";
export { FieldReplica, type FieldDocument, type FieldWrite, type FieldOp, type Change } from "./protocol/fields.js";
export * from "./client/api.js";
export * from "./client/backoff.js";
export * from "./client/storage.js";
export * from "./client/document.js";
export * from "./client/watch.js";
export * from "./client/fields.js";
export * from "./client/field-storage.js";
