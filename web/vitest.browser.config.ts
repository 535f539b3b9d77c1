import { defineConfig } from "vitest/config";

// Real Chromium against the real server: one file at a time, generous timeouts.
export default defineConfig({
  test: {
    include: ["test/browser/**/*.test.ts"],
    environment: "node",
    fileParallelism: false,
    testTimeout: 240_000,
    hookTimeout: 60_000,
  },
});
