// HS256 tokens for a server started with --jwt-secret-file: development
// and tests only (a deployment's identity provider signs real ones).
import { createHmac } from "node:crypto";

export interface Claims {
  readonly tenant: string;
  readonly sub: string;
  /** "settings-sync:service" for a backend service; empty for a user. */
  readonly scope?: string;
  /** Lifetime in seconds (default one hour). */
  readonly ttl?: number;
}

export function signToken(secret: Buffer, claims: Claims): string {
  const now = Math.floor(Date.now() / 1000);
  const part = (json: object) => Buffer.from(JSON.stringify(json)).toString("base64url");
  const body = `${part({ alg: "HS256", typ: "JWT" })}.${part({
    tenant: claims.tenant,
    sub: claims.sub,
    scope: claims.scope ?? "",
    iat: now,
    exp: now + (claims.ttl ?? 3600),
  })}`;
  return `${body}.${createHmac("sha256", secret).update(body).digest("base64url")}`;
}

/** The secret as the server reads it: trailing whitespace ignored. */
export function readSecret(text: string): Buffer {
  return Buffer.from(text.trimEnd());
}
