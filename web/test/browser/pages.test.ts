// The demo page in real Chromium against the real server: racing clicks,
// tabs and browsers at once, offline, reloads, cleared storage, and the
// Watch leader tab closing. Every page's shown states are recorded; none
// may go back to an older stamp (P3) and all must converge (P1).
import type { BrowserContext, CDPSession, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { assertNoFlicker, openDemo, startWorld, uniqueUser, waitConverged, type DemoPage, type World } from "./harness.js";

let world: World;

beforeAll(async () => {
  world = await startWorld();
});

afterAll(async () => {
  await world.stop();
});

async function context(): Promise<BrowserContext> {
  return world.browser.newContext();
}

/** Clicks checkboxes in one task: faster than any reply can come back. */
async function clickAtOnce(page: Page, ids: string[]): Promise<void> {
  await page.evaluate((ids) => {
    for (const id of ids) document.getElementById(id)?.click();
  }, ids);
}

function airports(value: string): string[] {
  return (JSON.parse(value) as { airports?: string[] } | null)?.airports ?? [];
}

function checkAll(pages: DemoPage[]): void {
  pages.forEach((p, i) => {
    assertNoFlicker(`page ${i}`, p.shown);
  });
}

describe("in Chromium", () => {
  test("a double click at full speed keeps both clicks", async () => {
    const user = uniqueUser("double");
    const ctx = await context();
    const tab = await openDemo(ctx, world, user);
    await clickAtOnce(tab.page, ["airport-SEA", "airport-LAX"]);
    const stored = await waitConverged(world, user, [tab.page]);
    expect(stored.state.value).toEqual({ airports: ["LAX", "SEA"], email: false });
    // Both clicks ran in one task, so the page painted only the second.
    expect(tab.shown.map((s) => airports(s.value)).at(-1)).toEqual(["LAX", "SEA"]);
    checkAll([tab]);
    await ctx.close();
  });

  test("a double click on a throttled network keeps both clicks and never flickers", async () => {
    const user = uniqueUser("slow");
    const ctx = await context();
    const tab = await openDemo(ctx, world, user);
    const cdp: CDPSession = await ctx.newCDPSession(tab.page);
    await cdp.send("Network.emulateNetworkConditions", { offline: false, latency: 400, downloadThroughput: 50_000, uploadThroughput: 50_000 });
    await clickAtOnce(tab.page, ["airport-JFK", "email"]);
    await clickAtOnce(tab.page, ["airport-ORD"]);
    expect(await tab.page.getAttribute("#app", "data-pending")).toBe("true");
    const stored = await waitConverged(world, user, [tab.page]);
    expect(stored.state.value).toEqual({ airports: ["JFK", "ORD"], email: true });
    checkAll([tab]);
    await ctx.close();
  });

  test("the flicker check catches a page that adopts every reply (a planted bug)", async () => {
    const user = uniqueUser("planted");
    const ctx = await context();
    const tab = await openDemo(ctx, world, user, "/planted/");
    const cdp: CDPSession = await ctx.newCDPSession(tab.page);
    await cdp.send("Network.emulateNetworkConditions", { offline: false, latency: 400, downloadThroughput: 50_000, uploadThroughput: 50_000 });
    await clickAtOnce(tab.page, ["airport-JFK", "email"]);
    await clickAtOnce(tab.page, ["airport-ORD"]);
    await waitConverged(world, user, [tab.page]);
    let caught = "";
    try {
      assertNoFlicker("the planted page", tab.shown);
    } catch (error) {
      caught = (error as Error).message.split("\n")[0] ?? "";
    }
    console.log(`planted page: ${caught}`);
    expect(caught).toMatch(/^P3: the planted page showed/);
    await ctx.close();
  });

  test("two tabs and two browsers editing at once converge without flicker", async () => {
    const user = uniqueUser("race");
    const first = await context();
    const second = await context();
    const tabs = [await openDemo(first, world, user), await openDemo(first, world, user), await openDemo(second, world, user)];
    for (let round = 0; round < 3; round++) {
      await Promise.all(tabs.map((t, i) => clickAtOnce(t.page, [["airport-SEA", "airport-LAX", "email"][i] ?? "email"])));
    }
    await waitConverged(world, user, tabs.map((t) => t.page));
    checkAll(tabs);
    await first.close();
    await second.close();
  });

  test("edits made offline are sent when the browser is back online", async () => {
    const user = uniqueUser("offline");
    const ctx = await context();
    const tab = await openDemo(ctx, world, user);
    await ctx.setOffline(true);
    await clickAtOnce(tab.page, ["airport-BOS"]);
    await clickAtOnce(tab.page, ["airport-SEA"]);
    await tab.page.waitForSelector('#app[data-online="false"][data-pending="true"]');
    expect(await world.get(user)).toBeNull();
    await ctx.setOffline(false);
    const stored = await waitConverged(world, user, [tab.page]);
    expect(stored.state.value).toEqual({ airports: ["BOS", "SEA"], email: false });
    await tab.page.waitForSelector('#app[data-online="true"]');
    checkAll([tab]);
    await ctx.close();
  });

  test("a reload loses no unacknowledged click", async () => {
    const user = uniqueUser("reload");
    const ctx = await context();
    const tab = await openDemo(ctx, world, user);
    const blocked = `${world.backendUrl}/**`;
    await ctx.route(blocked, (route) => route.abort());
    await clickAtOnce(tab.page, ["airport-LAX"]);
    await tab.page.waitForSelector('#app[data-pending="true"]');
    await tab.page.reload();
    // Shown at once from storage, never empty, still pending.
    await tab.page.waitForSelector('#app[data-loading="false"][data-pending="true"]');
    expect(airports((await tab.page.getAttribute("#app", "data-value")) ?? "null")).toEqual(["LAX"]);
    expect(await world.get(user)).toBeNull();
    await ctx.unroute(blocked);
    const stored = await waitConverged(world, user, [tab.page]);
    expect(stored.state.value).toEqual({ airports: ["LAX"], email: false });
    checkAll([tab]);
    await ctx.close();
  });

  test("storage cleared mid-session starts a new incarnation that loses nothing shown", async () => {
    const user = uniqueUser("cleared");
    const ctx = await context();
    const tabs = [await openDemo(ctx, world, user), await openDemo(ctx, world, user)];
    const [one, two] = tabs.map((t) => t.page) as [Page, Page];
    await clickAtOnce(one, ["airport-SEA"]);
    await waitConverged(world, user, [one, two]);
    await one.evaluate(() => {
      localStorage.clear();
    });
    await clickAtOnce(one, ["airport-LAX"]);
    await waitConverged(world, user, [one, two]);
    await clickAtOnce(two, ["airport-JFK"]);
    const stored = await waitConverged(world, user, [one, two]);
    // Every click built on the one before: none was overtaken or lost.
    expect(stored.state.value).toEqual({ airports: ["JFK", "LAX", "SEA"], email: false });
    expect(await one.textContent("#status")).not.toContain("overtaken");
    // The state was saved again: a reload shows it at once.
    await two.reload();
    await two.waitForSelector('#app[data-loading="false"]');
    expect(airports((await two.getAttribute("#app", "data-value")) ?? "null")).toEqual(["JFK", "LAX", "SEA"]);
    checkAll(tabs);
    await ctx.close();
  });

  test("when the Watch leader tab closes another tab takes over and keeps receiving changes", async () => {
    const user = uniqueUser("leader");
    const browserA = await context();
    const browserB = await context();
    const leader = await openDemo(browserA, world, user);
    await leader.page.waitForSelector('#app[data-leader="true"]');
    const follower = await openDemo(browserA, world, user);
    const other = await openDemo(browserB, world, user);
    expect(await follower.page.getAttribute("#app", "data-leader")).toBe("false");
    await other.page.waitForSelector('#app[data-leader="true"]');

    await clickAtOnce(other.page, ["airport-SEA"]);
    await waitConverged(world, user, [leader.page, follower.page, other.page]);

    await leader.page.close();
    await follower.page.waitForSelector('#app[data-leader="true"]');
    await clickAtOnce(other.page, ["airport-BOS"]);
    // The follower has nothing to send: only the Watch can bring it this.
    const stored = await waitConverged(world, user, [follower.page, other.page]);
    expect(stored.state.value).toEqual({ airports: ["BOS", "SEA"], email: false });
    checkAll([leader, follower, other]);
    await browserA.close();
    await browserB.close();
  });
});
