import { describe, expect, test } from "vitest";
import { Replica, adopts } from "../../src/protocol/replica.js";
import { MAX_CLOCK, canonicalJson, compareStamps, freshWriterId, isWriterId, type Versioned } from "../../src/protocol/stamp.js";

const v = (clock: bigint, writer: string, n: number): Versioned => ({ value: { n }, stamp: { clock, writer } });

describe("stamps", () => {
  test("order by clock, then writer bytewise, never by locale", () => {
    expect(compareStamps({ clock: 1n, writer: "b" }, { clock: 2n, writer: "a" })).toBe(-1);
    expect(compareStamps({ clock: 2n, writer: "a" }, { clock: 2n, writer: "b" })).toBe(-1);
    expect(compareStamps({ clock: 2n, writer: "a" }, { clock: 2n, writer: "a" })).toBe(0);
    // "B" < "a" bytewise; a locale order would say the opposite.
    expect(compareStamps({ clock: 1n, writer: "B" }, { clock: 1n, writer: "a" })).toBe(-1);
    expect(compareStamps({ clock: 1n, writer: "a-" }, { clock: 1n, writer: "a." })).toBe(-1);
  });

  test("clocks past 2^53 keep their order: they are bigints", () => {
    const big = 2n ** 53n;
    expect(compareStamps({ clock: big, writer: "a" }, { clock: big + 1n, writer: "a" })).toBe(-1);
  });

  test("every fresh writer id is a valid, different id", () => {
    const ids = new Set(Array.from({ length: 100 }, freshWriterId));
    expect(ids.size).toBe(100);
    for (const id of ids) expect(isWriterId(id)).toBe(true);
    expect(isWriterId("")).toBe(false);
    expect(isWriterId("a b")).toBe(false);
    expect(isWriterId("x".repeat(65))).toBe(false);
  });
});

describe("the replica", () => {
  test("edits tick past everything seen", () => {
    const a = new Replica("a");
    expect(a.edit({ n: 1 }).stamp).toEqual({ clock: 1n, writer: "a" });
    expect(a.observe(v(7n, "b", 2))).toBe(true);
    expect(a.edit({ n: 3 }).stamp.clock).toBe(8n);
  });

  test("a late reply never undoes a newer edit (the double click)", () => {
    const a = new Replica("a");
    const first = a.edit({ n: 1 });
    const second = a.edit({ n: 2 });
    expect(a.observe(first)).toBe(false);
    expect(a.current).toEqual(second);
  });

  test("equal clocks adopt the larger writer", () => {
    const a = new Replica("a");
    a.edit({ n: 1 });
    expect(a.observe(v(1n, "b", 2))).toBe(true);
    expect(a.current?.value).toEqual({ n: 2 });
    expect(a.observe(v(1n, "a", 1))).toBe(false);
  });

  test("a smaller stamp still moves the clock forward", () => {
    const a = new Replica("z");
    a.edit({ n: 1 });
    expect(a.observe(v(1n, "b", 2))).toBe(false);
    expect(a.edit({ n: 3 }).stamp.clock).toBe(2n);
  });

  test("a restored state keeps its clock, and the next edit ticks past it", () => {
    const restored = new Replica("new", 5n, v(9n, "old", 1));
    expect(restored.clock).toBe(9n);
    expect(restored.edit(null).stamp).toEqual({ clock: 10n, writer: "new" });
  });

  test("the clock never passes 2^63 - 1", () => {
    const a = new Replica("a", MAX_CLOCK);
    expect(() => a.edit({})).toThrow(/clock would pass/);
  });

  test("nothing shown adopts anything", () => {
    expect(adopts(null, v(1n, "a", 1))).toBe(true);
  });
});

describe("canonical JSON", () => {
  test("equal values have equal text whatever their key order", () => {
    expect(canonicalJson({ b: 1, a: { d: [{ y: 1, x: 2 }], c: null } })).toBe('{"a":{"c":null,"d":[{"x":2,"y":1}]},"b":1}');
    expect(canonicalJson(null)).toBe("null");
  });
});
