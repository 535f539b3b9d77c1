// The per-field example of docs/browser.md, runnable in Node 20 against a
// development server (MemoryPersistence stands in for localStorage):
//   npx esbuild scripts/fields-example.ts --bundle --platform=node --format=esm \
//     --packages=external --outfile=dist/fields-example.mjs
//   SETTINGS_SYNC_URL=http://127.0.0.1:50051 SETTINGS_SYNC_JWT_SECRET_FILE=../dev-secret node dist/fields-example.mjs
import { readFileSync } from "node:fs";
import { SettingsApi } from "../src/client/api.js";
import type { FieldPersisted } from "../src/client/field-storage.js";
import { SyncedFieldDocument } from "../src/client/fields.js";
import { MemoryPersistence } from "../src/client/storage.js";
import { readSecret, signToken } from "../server/jwt.js";

const secret = readSecret(readFileSync(process.env.SETTINGS_SYNC_JWT_SECRET_FILE ?? "dev-secret", "utf8"));
const token = signToken(secret, { tenant: "acme", sub: "alice" });
const api = new SettingsApi({ baseUrl: process.env.SETTINGS_SYNC_URL ?? "http://127.0.0.1:50051", token: () => token });
const key = { tenant: "acme", owner: "alice", name: `alerts-fields-${Date.now()}` };

// --- the example in docs/browser.md ---
// Two clients of one document, e.g. a laptop and a phone (in a page:
// new LocalStorageFieldPersistence(`settings-sync-fields:acme/alice/alerts`)).
const laptop = new SyncedFieldDocument({ api, key, persistence: new MemoryPersistence<FieldPersisted>() });
const phone = new SyncedFieldDocument({ api, key, persistence: new MemoryPersistence<FieldPersisted>() });
await Promise.all([laptop.settled(), phone.settled()]);

// Concurrent edits of different fields: each a patch under its own stamp.
laptop.setField("email", true);
phone.setField("airports", ["SEA"]);
await Promise.all([laptop.settled(), phone.settled()]);
await Promise.all([laptop.syncOnce(), phone.syncOnce()]); // or a Watch: doc.observe(event.document)

console.log(laptop.value, phone.value); // both: { airports: [ 'SEA' ], email: true }
console.log(laptop.status.decision, [...laptop.status.fieldDecisions]); // APPLIED [ [ 'email', 'APPLIED' ] ]
phone.deleteField("airports"); // a field tombstone
await phone.settled();
console.log(phone.value, phone.field("airports")); // { email: true } undefined
// --- end of the example ---
laptop.close();
phone.close();
