// The demo's server: static files, a development token per user, and a
// small backend-for-frontend for the routing query. Browsers get user
// tokens only; the service token that may Query every owner's settings
// stays here. Development only: it hands any visitor a token for any user.
import { readFile } from "node:fs/promises";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { extname, join, normalize } from "node:path";
import { SettingsApi } from "../src/client/api.js";
import { signToken } from "./jwt.js";

export interface DevServerOptions {
  /** The settings-sync server's URL, e.g. http://127.0.0.1:50051 (asked per request: tests start it second). */
  readonly backend: () => string;
  readonly secret: Buffer;
  readonly tenant: string;
  /** Directory served as /: the built pages (dist/). */
  readonly root: string;
  readonly host?: string;
  readonly port?: number;
}

export interface DevServer {
  readonly url: string;
  close(): Promise<void>;
}

const TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".map": "application/json",
  ".css": "text/css; charset=utf-8",
};

const USER = /^[A-Za-z0-9._:@-]{1,128}$/;

export async function startDevServer(options: DevServerOptions): Promise<DevServer> {
  let service: SettingsApi | undefined;
  const bff = () =>
    (service ??= new SettingsApi({
      baseUrl: options.backend(),
      token: () => signToken(options.secret, { tenant: options.tenant, sub: "demo-bff", scope: "settings-sync:service", ttl: 300 }),
    }));

  async function handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const url = new URL(request.url ?? "/", "http://localhost");
    if (url.pathname.endsWith("/config.json")) {
      const user = url.searchParams.get("user") ?? "alice";
      if (!USER.test(user)) { send(response, 400, "text/plain", "bad user"); return; }
      const token = signToken(options.secret, { tenant: options.tenant, sub: user });
      send(response, 200, "application/json", JSON.stringify({ server: options.backend(), tenant: options.tenant, owner: user, token })); return;
    }
    if (url.pathname.endsWith("/api/alerts")) {
      const airport = url.searchParams.get("airport") ?? "SEA";
      const documents = await bff().query(options.tenant, "alerts", { airports: [airport] });
      const who = documents.map((d) => ({ owner: d.key.owner, email: (d.state.value as { email?: unknown } | null)?.email === true }));
      send(response, 200, "application/json", JSON.stringify(who)); return;
    }
    const path = normalize(url.pathname.endsWith("/") ? `${url.pathname}index.html` : url.pathname);
    if (path.includes("..")) { send(response, 400, "text/plain", "bad path"); return; }
    try {
      const body = await readFile(join(options.root, path));
      send(response, 200, TYPES[extname(path)] ?? "application/octet-stream", body);
    } catch {
      send(response, 404, "text/plain", "not found");
    }
  }

  const server = createServer((request, response) => {
    handle(request, response).catch((error: unknown) => {
      console.error("dev server:", error);
      send(response, 502, "text/plain", String(error));
    });
  });
  await new Promise<void>((resolve) => server.listen(options.port ?? 0, options.host ?? "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://${options.host ?? "127.0.0.1"}:${port}`,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => {
          resolve();
        });
      }),
  };
}

function send(response: ServerResponse, status: number, type: string, body: string | Buffer): void {
  response.writeHead(status, { "content-type": type, "cache-control": "no-store" });
  response.end(body);
}
