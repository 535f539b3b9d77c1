// The seed post's App in miniature: a dispatcher's alert settings, synced
// live across tabs and browsers. The root element carries what is shown
// (data-stamp, data-value) and the status, for people and tests alike.
import { SettingsApi } from "../src/client/api.js";
import { SyncedDocument, type Status } from "../src/client/document.js";
import { LocalStoragePersistence } from "../src/client/storage.js";
import { SharedWatch } from "../src/client/watch.js";
import { canonicalJson } from "../src/protocol/stamp.js";

const AIRPORTS = ["SEA", "LAX", "JFK", "ORD", "BOS"];

interface Alerts {
  airports: string[];
  email: boolean;
}

interface Config {
  server: string;
  tenant: string;
  owner: string;
  token: string;
}

function element(id: string): HTMLElement {
  const found = document.getElementById(id);
  if (!found) throw new Error(`#${id} is missing`);
  return found;
}

function alertsOf(value: unknown): Alerts {
  const v = (value ?? {}) as Partial<Alerts>;
  return { airports: Array.isArray(v.airports) ? v.airports : [], email: v.email === true };
}

async function main(): Promise<void> {
  const params = new URLSearchParams(location.search);
  const config = (await (await fetch(`config.json?user=${encodeURIComponent(params.get("user") ?? "alice")}`)).json()) as Config;
  const api = new SettingsApi({ baseUrl: config.server, token: () => config.token });
  const key = { tenant: config.tenant, owner: config.owner, name: "alerts" };
  const doc = new SyncedDocument({
    api,
    key,
    persistence: new LocalStoragePersistence(`settings-sync:${key.tenant}/${key.owner}/${key.name}`),
  });
  const watch = new SharedWatch({ api, filter: key });
  watch.subscribe((event) => {
    if (event.kind === "change" && event.document.key.name === key.name && event.document.key.owner === key.owner) {
      doc.observe(event.document);
      void refreshSea();
    } else if (event.kind === "resync") {
      doc.syncOnce().catch(() => undefined);
    }
  });

  const app = element("app");
  element("who").textContent = `Signed in as ${config.owner} (tenant ${config.tenant})`;
  const fieldset = element("airports");
  const boxes = AIRPORTS.map((code) => {
    const label = document.createElement("label");
    const box = document.createElement("input");
    box.type = "checkbox";
    box.id = `airport-${code}`;
    label.append(box, ` ${code} `);
    fieldset.append(label);
    box.addEventListener("click", (event) => {
      event.preventDefault();
      const now = alertsOf(doc.value);
      const airports = now.airports.includes(code) ? now.airports.filter((a) => a !== code) : [...now.airports, code].sort();
      doc.edit({ ...now, airports });
    });
    return { code, box };
  });
  const email = element("email") as HTMLInputElement;
  email.addEventListener("click", (event) => {
    event.preventDefault();
    const now = alertsOf(doc.value);
    doc.edit({ ...now, email: !now.email });
  });
  element("delete").addEventListener("click", () => doc.edit(null));

  function render(): void {
    const status: Status = doc.status;
    const shown = doc.current;
    const alerts = alertsOf(shown?.value);
    for (const { code, box } of boxes) {
      box.checked = alerts.airports.includes(code);
      box.disabled = status.loading;
    }
    email.checked = alerts.email;
    email.disabled = status.loading;
    app.dataset.loading = String(status.loading);
    app.dataset.pending = String(status.pending);
    app.dataset.online = String(status.online);
    app.dataset.leader = String(watch.isLeader);
    app.dataset.stamp = shown ? `${shown.stamp.clock}:${shown.stamp.writer}` : "";
    app.dataset.value = shown ? canonicalJson(shown.value) : "";
    const acknowledged = status.acknowledged ? `(${status.acknowledged.clock}, ${status.acknowledged.writer})` : "none";
    const statusLine = element("status");
    statusLine.className = status.overtaken ? "overtaken" : "";
    statusLine.textContent = status.loading
      ? "Loading…"
      : [
          status.online ? "online" : "offline",
          status.pending ? "saving…" : "saved",
          `last acknowledged ${acknowledged}`,
          status.overtaken ? "your change was overtaken by a newer one" : "",
          status.error ? `refused: ${status.error}` : "",
          watch.isLeader ? "this tab watches for the browser" : "",
        ]
          .filter(Boolean)
          .join(" · ");
  }

  async function refreshSea(): Promise<void> {
    try {
      const who = (await (await fetch("api/alerts?airport=SEA")).json()) as { owner: string; email: boolean }[];
      element("sea").replaceChildren(
        ...who.map((w) => {
          const li = document.createElement("li");
          li.textContent = `${w.owner}${w.email ? " (email)" : ""}`;
          return li;
        }),
      );
    } catch (error) {
      console.warn("who gets SEA alerts:", error);
    }
  }

  doc.subscribe(render);
  doc.subscribeStatus(render);
  watch.onLeadership(render);
  doc.subscribeStatus((status) => {
    if (!status.pending) void refreshSea();
  });
  render();
  void refreshSea();
}

void main();
