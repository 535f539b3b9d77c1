// Typed calls over gRPC-Web (Connect-ES, binary format), with the bearer
// token and a W3C traceparent on every call. Wire messages become protocol
// types here; nothing above this module sees generated code.

import { Code, ConnectError, createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import {
  Decision as WireDecision,
  SettingsSync,
  type Document as WireDocument,
  type FieldRegisters as WireRegisters,
  type Stamp as WireStamp,
} from "../gen/settingssync/v1/settings_sync_pb.js";
import {
  fromParts,
  fromWrite,
  type FieldDocument,
  type FieldEntry,
  type FieldWrite,
  type Floor,
} from "../protocol/fields.js";
import { canonicalJson, isValue, isWriterId, type Stamp, type Versioned } from "../protocol/stamp.js";

export interface DocumentKey {
  readonly tenant: string;
  readonly owner: string;
  readonly name: string;
}

/** What happened to a write: see docs/protocol.md. */
export type Decision = "APPLIED" | "STALE" | "UNCHANGED";

export interface StoredDocument {
  readonly key: DocumentKey;
  readonly state: Versioned;
  readonly revision: bigint;
  /**
   * The per-field registers behind `state`, only while the document holds
   * a patch (docs/protocol.md, "Per-field merge"); absent, every field is
   * at `state.stamp`. Plain data, so it crosses a BroadcastChannel.
   */
  readonly fields?: Registers;
}

/** A field-merged document's registers as the wire carries them. */
export interface Registers {
  readonly floor: Floor | null;
  /** Every listed field's stamp; a name missing from the value is a field tombstone. */
  readonly stamps: ReadonlyMap<string, Stamp>;
}

/** The answer to a per-field write. */
export interface FieldSyncReply {
  readonly document: StoredDocument;
  readonly decision: Decision;
  /** The decision for every field the write spoke of. */
  readonly fieldDecisions: ReadonlyMap<string, Decision>;
}

export interface SyncReply {
  readonly document: StoredDocument;
  readonly decision: Decision;
}

export type WatchEvent =
  | { readonly kind: "change"; readonly document: StoredDocument }
  | { readonly kind: "progress"; readonly revision: bigint };

export interface WatchFilter {
  readonly tenant: string;
  readonly owner?: string;
  readonly name?: string;
  /** Resume after this revision; absent: only changes from now on. */
  readonly afterRevision?: bigint;
}

/** The server answered something this client cannot use. */
export class InvalidResponse extends Error {
  constructor(what: string) {
    super(`the server sent an invalid response: ${what}`);
    this.name = "InvalidResponse";
  }
}

export interface ApiOptions {
  /** The server's origin, e.g. `http://127.0.0.1:50051`. */
  readonly baseUrl: string;
  /** The bearer token for each call (a refreshed one whenever it changes). */
  readonly token?: () => string | undefined;
  readonly timeoutMs?: number;
  readonly fetch?: typeof globalThis.fetch;
}

export class SettingsApi {
  readonly #client: Client<typeof SettingsSync>;

  constructor(options: ApiOptions) {
    const interceptors: Interceptor[] = [withTraceparent];
    const token = options.token;
    if (token) interceptors.push(withToken(token));
    const transport = createGrpcWebTransport({
      baseUrl: options.baseUrl,
      useBinaryFormat: true,
      interceptors,
      defaultTimeoutMs: options.timeoutMs ?? 10_000,
      ...(options.fetch ? { fetch: options.fetch } : {}),
    });
    this.#client = createClient(SettingsSync, transport);
  }

  async sync(key: DocumentKey, write: Versioned, signal?: AbortSignal): Promise<SyncReply> {
    const reply = await this.#client.sync(
      { key, valueJson: JSON.stringify(write.value), stamp: write.stamp },
      { signal },
    );
    return { document: toDocument(reply.document), decision: toDecision(reply.decision) };
  }

  /**
   * A per-field client's write: a patch (`SyncRequest.patch`), or a whole
   * document with `per_field` set. Answered field by field.
   */
  async syncFields(key: DocumentKey, write: FieldWrite, signal?: AbortSignal): Promise<FieldSyncReply> {
    const change = write.change;
    const request =
      "patch" in change
        ? {
            key,
            stamp: write.stamp,
            perField: true,
            patch: {
              edits: [...change.patch].map(([field, op]) => ({
                field,
                op: "set" in op
                  ? { case: "setJson" as const, value: JSON.stringify(op.set) }
                  : { case: "delete" as const, value: true },
              })),
            },
          }
        : { key, stamp: write.stamp, perField: true, valueJson: canonicalJson(change.whole) };
    const reply = await this.#client.sync(request, { signal });
    const fieldDecisions = new Map(
      Object.entries(reply.fieldDecisions).map(([name, decision]) => [name, toDecision(decision)] as const),
    );
    return { document: toDocument(reply.document), decision: toDecision(reply.decision), fieldDecisions };
  }

  /** The stored document, or null if it was never written. */
  async get(key: DocumentKey, signal?: AbortSignal): Promise<StoredDocument | null> {
    try {
      const reply = await this.#client.get({ key }, { signal });
      return toDocument(reply.document);
    } catch (error) {
      if (ConnectError.from(error).code === Code.NotFound) return null;
      throw error;
    }
  }

  /** Live documents of a tenant and name whose value contains `contains`. */
  async query(
    tenant: string,
    name: string,
    contains: Record<string, unknown>,
    signal?: AbortSignal,
  ): Promise<StoredDocument[]> {
    const documents: StoredDocument[] = [];
    let pageToken = "";
    do {
      const page = await this.#client.query(
        { tenant, name, containsJson: JSON.stringify(contains), pageToken },
        { signal },
      );
      documents.push(...page.documents.map(toDocument));
      pageToken = page.nextPageToken;
    } while (pageToken !== "");
    return documents;
  }

  async *watch(filter: WatchFilter, signal?: AbortSignal): AsyncGenerator<WatchEvent> {
    const request = {
      tenant: filter.tenant,
      owner: filter.owner ?? "",
      name: filter.name ?? "",
      ...(filter.afterRevision !== undefined ? { afterRevision: filter.afterRevision } : {}),
    };
    // A stream has no deadline: it lives until the page or the server ends it.
    for await (const event of this.#client.watch(request, { signal, timeoutMs: 0 })) {
      switch (event.event.case) {
        case "change":
          yield { kind: "change", document: toDocument(event.event.value) };
          break;
        case "progress":
          yield { kind: "progress", revision: event.event.value.revision };
          break;
        default:
          throw new InvalidResponse("a watch event with neither change nor progress");
      }
    }
  }
}

/** Errors worth retrying: the server or the network may answer later. */
export function isRetryable(error: unknown): boolean {
  if (error instanceof InvalidResponse) return false;
  const code = ConnectError.from(error).code;
  return [
    Code.Unavailable,
    Code.Unknown,
    Code.DeadlineExceeded,
    Code.Aborted,
    Code.ResourceExhausted,
    Code.Internal,
  ].includes(code);
}

export function describe(error: unknown): string {
  const e = ConnectError.from(error);
  return `${Code[e.code]}: ${e.rawMessage}`;
}

function toDecision(decision: WireDecision): Decision {
  switch (decision) {
    case WireDecision.APPLIED:
      return "APPLIED";
    case WireDecision.STALE:
      return "STALE";
    case WireDecision.UNCHANGED:
      return "UNCHANGED";
    default:
      throw new InvalidResponse(`decision ${decision}`);
  }
}

export function toDocument(document: WireDocument | undefined): StoredDocument {
  if (!document?.key || !document.stamp) throw new InvalidResponse("a document without key or stamp");
  const { clock, writer } = document.stamp;
  if (clock < 1n || !isWriterId(writer)) throw new InvalidResponse(`stamp (${clock}, ${writer})`);
  let value: unknown;
  try {
    value = JSON.parse(document.valueJson);
  } catch {
    throw new InvalidResponse("a value that is not JSON");
  }
  if (!isValue(value)) throw new InvalidResponse("a value that is neither an object nor null");
  const { tenant, owner, name } = document.key;
  return {
    key: { tenant, owner, name },
    state: { value, stamp: { clock, writer } },
    revision: document.revision,
    ...(document.fields ? { fields: toRegisters(document.fields) } : {}),
  };
}

function toRegisters(registers: WireRegisters): Registers {
  const stamp = (s: WireStamp | undefined): Stamp => {
    if (!s || !isWriterId(s.writer)) throw new InvalidResponse("a field register without a valid stamp");
    return { clock: s.clock, writer: s.writer };
  };
  const floor = registers.floor ? { stamp: stamp(registers.floor.stamp), deleted: registers.floor.deleted } : null;
  return { floor, stamps: new Map(Object.entries(registers.stamps).map(([field, s]) => [field, stamp(s)] as const)) };
}

/**
 * A stored document as the per-field merge sees it: its registers, each
 * listed field's value taken from the merged value (missing there: a field
 * tombstone); without registers, exactly its one whole-document write.
 */
export function fieldDocumentOf(document: StoredDocument): FieldDocument {
  const { state, fields } = document;
  if (!fields) return fromWrite({ stamp: state.stamp, change: { whole: state.value } });
  const value = state.value;
  const entries = new Map<string, FieldEntry>();
  for (const [field, stamp] of fields.stamps) {
    entries.set(
      field,
      value !== null && Object.hasOwn(value, field)
        ? { stamp, tombstone: false, value: value[field] }
        : { stamp, tombstone: true },
    );
  }
  try {
    return fromParts(fields.floor, entries);
  } catch (error) {
    throw new InvalidResponse(error instanceof Error ? error.message : String(error));
  }
}

function withToken(token: () => string | undefined): Interceptor {
  return (next) => (request) => {
    const value = token();
    if (value) request.header.set("authorization", `Bearer ${value}`);
    return next(request);
  };
}

/** Each call starts a trace the server's span continues (W3C trace context). */
const withTraceparent: Interceptor = (next) => (request) => {
  if (!request.header.has("traceparent")) {
    request.header.set("traceparent", `00-${randomHex(16)}-${randomHex(8)}-01`);
  }
  return next(request);
};

function randomHex(bytes: number): string {
  const buffer = new Uint8Array(bytes);
  crypto.getRandomValues(buffer);
  return Array.from(buffer, (b) => b.toString(16).padStart(2, "0")).join("");
}
