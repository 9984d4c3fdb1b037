import { defineConfig } from "vitest/config";

// Unit and property tests run in parallel; integration tests start real processes and ports, so
// they run one file at a time (see `npm test`).
export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // expect.poll's own default (1 s) is too short for a browser or a process on a loaded 2-core box.
    expect: { poll: { timeout: 10_000 } },
    reporters: ["default"],
  },
});
