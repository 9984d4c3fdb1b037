import { defineConfig } from "vitest/config";

// Unit and property tests run in parallel; integration tests start real processes and ports, so
// they run one file at a time (see `npm test`).
export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    reporters: ["default"],
  },
});
