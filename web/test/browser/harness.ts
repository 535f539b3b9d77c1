// Real parts for the browser suite: the settings-sync server binary on
// loopback with authentication on and this page origin allowed, the dev
// server for the pages, and Debian's Chromium driven by playwright-core.
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { chromium, type Browser, type Page } from "playwright-core";
import { SettingsApi, type StoredDocument } from "../../src/client/api.js";
import { canonicalJson, compareStamps, type Stamp } from "../../src/protocol/stamp.js";
import { startDevServer, type DevServer } from "../../server/dev-server.js";
import { signToken } from "../../server/jwt.js";

export const TENANT = "acme";

export interface World {
  readonly pages: DevServer;
  readonly backendUrl: string;
  readonly secret: Buffer;
  readonly browser: Browser;
  /** Reads a document as a backend service would, over gRPC-Web. */
  get(owner: string, name?: string): Promise<StoredDocument | null>;
  userToken(owner: string): string;
  stop(): Promise<void>;
}

export async function startWorld(): Promise<World> {
  const bin = process.env.SETTINGS_SYNC_SERVER_BIN;
  if (!bin) throw new Error("set SETTINGS_SYNC_SERVER_BIN to a built settings-sync binary (see scripts/web-test.sh)");
  const dir = mkdtempSync(join(tmpdir(), "settings-sync-web-"));
  const secret = Buffer.from(randomBytes(24).toString("hex"));
  writeFileSync(join(dir, "jwt-secret"), `${secret.toString()}\n`);
  let backendUrl = "";
  const pages = await startDevServer({ backend: () => backendUrl, secret, tenant: TENANT, root: join(import.meta.dirname, "../../dist") });
  const server = spawn(
    bin,
    ["serve", "--listen", "127.0.0.1:0", "--database-url", `sqlite://${join(dir, "settings.db")}`,
      "--jwt-secret-file", join(dir, "jwt-secret"), "--watch-progress-ms", "500"],
    { env: { ...process.env, SETTINGS_SYNC_CORS_ALLOWED_ORIGINS: pages.url, RUST_LOG: "info" }, stdio: ["ignore", "ignore", "pipe"] },
  );
  backendUrl = await servingAddress(server);
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM_BIN ?? "/usr/bin/chromium",
    // As root, Chromium refuses to start with its sandbox.
    args: process.getuid?.() === 0 ? ["--no-sandbox"] : [],
  });
  const service = new SettingsApi({
    baseUrl: backendUrl,
    token: () => signToken(secret, { tenant: TENANT, sub: "test", scope: "settings-sync:service" }),
  });
  return {
    pages,
    backendUrl,
    secret,
    browser,
    get: (owner, name = "alerts") => service.get({ tenant: TENANT, owner, name }),
    userToken: (owner) => signToken(secret, { tenant: TENANT, sub: owner }),
    async stop() {
      await browser.close();
      server.kill("SIGTERM");
      await new Promise((resolve) => server.once("exit", resolve));
      await pages.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function servingAddress(server: ChildProcess): Promise<string> {
  if (!server.stderr) throw new Error("the server's stderr is not piped");
  const lines = createInterface({ input: server.stderr });
  const log: string[] = [];
  return new Promise((resolve, reject) => {
    server.once("exit", (code) => {
      reject(new Error(`the server exited (${code}) before serving:\n${log.join("\n")}`));
    });
    lines.on("line", (line) => {
      if (log.length < 200) log.push(line);
      const match = /serving address=(\S+)/.exec(line);
      if (match?.[1]) resolve(`http://${match[1]}`);
    });
  });
}

/** What one page showed, in order: its stamp and value, across reloads. */
export interface Shown {
  readonly stamp: string;
  readonly value: string;
  /** The per-field page's `data-registers`: every field's stamp and value ("" elsewhere). */
  readonly registers: string;
}

export interface DemoPage {
  readonly page: Page;
  readonly shown: Shown[];
}

/**
 * Opens the demo for `user` and records every state its root element shows
 * (a MutationObserver installed before the page's own script runs).
 */
export async function openDemo(
  context: import("playwright-core").BrowserContext,
  world: World,
  user: string,
  path = "/",
): Promise<DemoPage> {
  const page = await context.newPage();
  const shown: Shown[] = [];
  await page.exposeBinding("__recordShown", (_source, stamp: string, value: string, registers: string) => {
    const last = shown.at(-1);
    if (stamp && (last?.stamp !== stamp || last.value !== value || last.registers !== registers)) shown.push({ stamp, value, registers });
  });
  await page.addInitScript(() => {
    const record = (window as unknown as { __recordShown: (s: string, v: string, r: string) => void }).__recordShown;
    document.addEventListener("DOMContentLoaded", () => {
      const app = document.getElementById("app");
      if (!app) return;
      new MutationObserver(() => {
        record(app.dataset.stamp ?? "", app.dataset.value ?? "", app.dataset.registers ?? "");
      }).observe(app, { attributes: true, attributeFilter: ["data-stamp", "data-value", "data-registers"] });
    });
  });
  page.on("pageerror", (error) => {
    console.error(`page error (${user}):`, error);
  });
  await page.goto(`${world.pages.url}${path}?user=${user}`);
  await page.waitForSelector('#app[data-loading="false"]');
  return { page, shown };
}

export function parseStamp(text: string): Stamp {
  const at = text.indexOf(":");
  return { clock: BigInt(text.slice(0, at)), writer: text.slice(at + 1) };
}

/**
 * P3: a page never shows a stamp smaller than one it showed (a state in
 * the causal past of another has a smaller Lamport stamp), and one stamp
 * always with one value.
 */
export function assertNoFlicker(label: string, shown: Shown[]): void {
  for (let i = 1; i < shown.length; i++) {
    const before = shown[i - 1];
    const after = shown[i];
    if (!before || !after) continue;
    const order = compareStamps(parseStamp(after.stamp), parseStamp(before.stamp));
    if (order < 0 || (order === 0 && after.value !== before.value)) {
      throw new Error(`P3: ${label} showed ${before.stamp} ${before.value} and then ${after.stamp} ${after.value}\nall: ${JSON.stringify(shown)}`);
    }
  }
}

/**
 * The per-field P3: no page ever shows a field's older value after a newer
 * one. Per field, the stamp that governs it (its own, else the floor's)
 * never decreases, and one stamp always comes with one value.
 */
export function assertNoFieldFlicker(label: string, shown: Shown[]): void {
  const last = new Map<string, { stamp: string; value: string | null }>();
  for (const state of shown) {
    if (!state.registers) continue;
    const registers = JSON.parse(state.registers) as Record<string, { stamp: string; value: string | null }>;
    for (const [name, before] of last) {
      const after = registers[name] ?? { stamp: "", value: null };
      const order = after.stamp === "" ? (before.stamp === "" ? 0 : -1) : before.stamp === "" ? 1 : compareStamps(parseStamp(after.stamp), parseStamp(before.stamp));
      if (order < 0 || (order === 0 && after.value !== before.value)) {
        throw new Error(
          `P3: ${label} showed field ${name} at ${before.stamp || "nothing"} = ${before.value} and then at ${after.stamp || "nothing"} = ${after.value}\nall: ${JSON.stringify(shown.map((s) => s.registers))}`,
        );
      }
    }
    for (const [name, register] of Object.entries(registers)) last.set(name, register);
  }
}

/** P1: every page shows the backend's stamp and value, nothing pending. */
export async function waitConverged(world: World, owner: string, pages: Page[], timeoutMs = 30_000, name = "alerts"): Promise<StoredDocument> {
  const deadline = Date.now() + timeoutMs;
  let seen = "";
  for (;;) {
    const stored = await world.get(owner, name);
    const states = await Promise.all(
      pages.map((p) =>
        p.evaluate(() => {
          const app = document.getElementById("app");
          return { stamp: app?.dataset.stamp ?? "", value: app?.dataset.value ?? "", pending: app?.dataset.pending ?? "" };
        }),
      ),
    );
    const expected = stored ? `${stored.state.stamp.clock}:${stored.state.stamp.writer}` : "";
    const expectedValue = stored ? canonicalJson(stored.state.value) : "";
    if (states.every((s) => s.stamp === expected && s.value === expectedValue && s.pending === "false") && stored) return stored;
    seen = `backend ${expected} ${expectedValue}; pages ${JSON.stringify(states)}`;
    if (Date.now() > deadline) throw new Error(`P1: the pages did not converge: ${seen}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

export function uniqueUser(prefix: string): string {
  return `${prefix}-${randomBytes(4).toString("hex")}`;
}
