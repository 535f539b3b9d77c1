// The seed post's property test, inside Chromium (see property-page.ts),
// and the planted client bug it must catch.
import { afterAll, beforeAll, expect, test } from "vitest";
import type { Page } from "playwright-core";
import type { PropertyOptions, PropertyResult } from "./property-page.js";
import { startWorld, TENANT, uniqueUser, type World } from "./harness.js";

let world: World;
let page: Page;

beforeAll(async () => {
  world = await startWorld();
  page = await world.browser.newPage();
  await page.goto(`${world.pages.url}/property.html`);
  await page.waitForFunction(() => "runProperty" in window);
});

afterAll(async () => {
  await world.stop();
});

async function run(options: Partial<PropertyOptions> & { runs: number }): Promise<PropertyResult> {
  const owner = uniqueUser("prop");
  const full: PropertyOptions = { server: world.backendUrl, token: world.userToken(owner), tenant: TENANT, owner, ...options };
  return page.evaluate((o) => window.runProperty(o), full);
}

const RUNS = Number(process.env.SETTINGS_SYNC_WEB_PROPERTY_RUNS ?? 1000);

test(`${RUNS} random sequences across 2-3 browser clients all converge without flicker`, async () => {
  const started = Date.now();
  const result = await run({ runs: RUNS });
  console.log(`property: ${result.numRuns} sequences in ${Date.now() - started} ms (seed ${result.seed})`);
  expect(result.error, result.counterexample ?? "").toBeNull();
  expect(result.failed).toBe(false);
  expect(result.numRuns).toBe(RUNS);
});

test("a client that ignores the writer on equal clocks is caught", async () => {
  const result = await run({ runs: 300, seed: 12, planted: true });
  console.log(`planted bug: caught=${result.failed} after shrinking ${result.numShrinks} times\n  counterexample: ${result.counterexample}\n  ${result.error}`);
  expect(result.failed).toBe(true);
  expect(result.error).toMatch(/^P1: after two sync rounds/);
});
