import { describe, expect, test } from "vitest";
import { decode, encode, type Persisted } from "../../src/client/storage.js";
import { backoffDelay } from "../../src/client/backoff.js";

describe("the saved state", () => {
  test("round-trips, with clocks above 2^53 exact", () => {
    const state: Persisted = {
      clock: 2n ** 62n + 1n,
      current: { value: { airports: ["SEA"], email: true }, stamp: { clock: 2n ** 62n + 1n, writer: "w-1" } },
      acknowledged: { clock: 3n, writer: "w-0" },
    };
    expect(decode(encode(state))).toEqual(state);
    const tombstone: Persisted = { clock: 1n, current: { value: null, stamp: { clock: 1n, writer: "a" } }, acknowledged: null };
    expect(decode(encode(tombstone))).toEqual(tombstone);
  });

  test("anything unreadable is no state, never a guess", () => {
    for (const text of [null, "", "{", "[]", '{"v":2}', '{"v":1,"clock":"-1","current":null,"acknowledged":null}',
      '{"v":1,"clock":"1","current":{"value":[1],"stamp":{"clock":"1","writer":"a"}},"acknowledged":null}',
      '{"v":1,"clock":"1","current":{"value":{},"stamp":{"clock":"1","writer":"a b"}},"acknowledged":null}']) {
      expect(decode(text)).toBeUndefined();
    }
  });
});

describe("backoff", () => {
  test("grows exponentially up to its cap, with full jitter", () => {
    const policy = { baseMs: 100, maxMs: 1_000 };
    expect(backoffDelay(0, policy, () => 0.999)).toBe(99);
    expect(backoffDelay(2, policy, () => 0.999)).toBe(399);
    expect(backoffDelay(10, policy, () => 0.999)).toBe(999);
    expect(backoffDelay(1_000, policy, () => 0.999)).toBe(999);
    expect(backoffDelay(3, policy, () => 0)).toBe(0);
  });
});
