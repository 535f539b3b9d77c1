// The demo's alert settings in the opt-in per-field mode: "email" and
// "airports" are two top-level fields, each its own register, so one
// browser turning email alerts on while another adds an airport keeps
// both. The root element carries what is shown for people and tests:
// data-stamp and data-value (the merged document), data-registers (every
// field's stamp and value), data-writer and the status.
import { SettingsApi } from "../src/client/api.js";
import { LocalStorageFieldPersistence } from "../src/client/field-storage.js";
import { SyncedFieldDocument } from "../src/client/fields.js";
import { SharedWatch } from "../src/client/watch.js";
import { documentStamp, stampOf, valueOf } from "../src/protocol/fields.js";
import { canonicalJson, type Stamp } from "../src/protocol/stamp.js";

const AIRPORTS = ["SEA", "LAX", "JFK", "ORD", "BOS"];

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

const stampText = (s: Stamp | null) => (s ? `${s.clock}:${s.writer}` : "");

async function main(): Promise<void> {
  const params = new URLSearchParams(location.search);
  const config = (await (await fetch(`config.json?user=${encodeURIComponent(params.get("user") ?? "alice")}`)).json()) as Config;
  const api = new SettingsApi({ baseUrl: config.server, token: () => config.token });
  const key = { tenant: config.tenant, owner: config.owner, name: params.get("doc") ?? "alerts-fields" };
  const doc = new SyncedFieldDocument({
    api,
    key,
    persistence: new LocalStorageFieldPersistence(`settings-sync-fields:${key.tenant}/${key.owner}/${key.name}`),
  });
  const watch = new SharedWatch({ api, filter: key });
  watch.subscribe((event) => {
    if (event.kind === "change" && event.document.key.name === key.name && event.document.key.owner === key.owner) {
      doc.observe(event.document);
    } else if (event.kind === "resync") {
      doc.syncOnce().catch(() => undefined);
    }
  });

  const airportsShown = (): string[] => {
    const airports = doc.field("airports");
    return Array.isArray(airports) ? airports.filter((a): a is string => typeof a === "string") : [];
  };
  const app = element("app");
  element("who").textContent = `Signed in as ${config.owner} (tenant ${config.tenant})`;
  const boxes = AIRPORTS.map((code) => {
    const label = document.createElement("label");
    const box = document.createElement("input");
    box.type = "checkbox";
    box.id = `airport-${code}`;
    label.append(box, ` ${code} `);
    element("airports").append(label);
    box.addEventListener("click", (event) => {
      event.preventDefault();
      const now = airportsShown();
      doc.setField("airports", now.includes(code) ? now.filter((a) => a !== code) : [...now, code].sort());
    });
    return { code, box };
  });
  const email = element("email") as HTMLInputElement;
  email.addEventListener("click", (event) => {
    event.preventDefault();
    doc.setField("email", doc.field("email") !== true);
  });
  element("reset").addEventListener("click", () => doc.replace({ airports: [], email: false }));

  function render(): void {
    const status = doc.status;
    const shown = doc.document;
    for (const { code, box } of boxes) {
      box.checked = airportsShown().includes(code);
      box.disabled = status.loading;
    }
    email.checked = doc.field("email") === true;
    email.disabled = status.loading;
    app.dataset.loading = String(status.loading);
    app.dataset.pending = String(status.pending);
    app.dataset.online = String(status.online);
    app.dataset.leader = String(watch.isLeader);
    app.dataset.writer = doc.writer;
    app.dataset.stamp = stampText(documentStamp(shown));
    app.dataset.value = doc.current ? canonicalJson(doc.current.value) : "";
    const names = [...new Set(["airports", "email", ...shown.fields.keys()])].sort();
    app.dataset.registers = JSON.stringify(
      Object.fromEntries(
        names.map((name) => {
          const value = valueOf(shown, name);
          return [name, { stamp: stampText(stampOf(shown, name)), value: value ? canonicalJson(value.value) : null }];
        }),
      ),
    );
    const statusLine = element("status");
    statusLine.className = status.overtaken ? "overtaken" : "";
    statusLine.textContent = status.loading
      ? "Loading…"
      : [
          status.online ? "online" : "offline",
          status.pending ? "saving…" : "saved",
          `last acknowledged ${status.acknowledged ? `(${status.acknowledged.clock}, ${status.acknowledged.writer})` : "none"}`,
          status.overtaken ? "your change was overtaken by a newer one" : "",
          status.error ? `refused: ${status.error}` : "",
          watch.isLeader ? "this tab watches for the browser" : "",
        ]
          .filter(Boolean)
          .join(" · ");
  }

  doc.subscribe(render);
  doc.subscribeStatus(render);
  watch.onLeadership(render);
  render();
}

void main();
