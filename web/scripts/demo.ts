// `npm run demo -- --server URL --jwt-secret-file PATH [--tenant T] [--port P]`:
// serves the demo page at http://127.0.0.1:P (default 5173). Start the
// settings-sync server with --cors-allowed-origin http://127.0.0.1:P and
// the same --jwt-secret-file.
import { readFileSync } from "node:fs";
import { dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { startDevServer } from "../server/dev-server.js";
import { readSecret } from "../server/jwt.js";

const { values } = parseArgs({
  options: {
    server: { type: "string", default: "http://127.0.0.1:50051" },
    "jwt-secret-file": { type: "string" },
    tenant: { type: "string", default: "acme" },
    port: { type: "string", default: "5173" },
  },
});
const secretFile = values["jwt-secret-file"];
if (!secretFile) {
  console.error("--jwt-secret-file is required: the file the server was started with");
  process.exit(2);
}
const server = await startDevServer({
  backend: () => values.server,
  secret: readSecret(readFileSync(secretFile, "utf8")),
  tenant: values.tenant,
  root: dirname(fileURLToPath(import.meta.url)),
  port: Number(values.port),
});
console.log(`demo: ${server.url}/?user=alice (another user: ?user=bob)`);
