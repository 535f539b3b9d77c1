// Typed calls over gRPC-Web (Connect-ES, binary format), with the bearer
// token and a W3C traceparent on every call. Wire messages become protocol
// types here; nothing above this module sees generated code.

import { Code, ConnectError, createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import {
  Decision as WireDecision,
  SettingsSync,
  type Document as WireDocument,
} from "../gen/settingssync/v1/settings_sync_pb.js";
import { isValue, isWriterId, type Versioned } from "../protocol/stamp.js";

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
  };
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
