import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { AUTH_FAILURE_REASONS, createMetrics } from "../../agent/ops/metrics.js";

/** Every literal reason the sources count a refused authentication under. */
function reasonsInSources(): Set<string> {
  const found = new Set<string>();
  const walk = (dir: string) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, e.name);
      if (e.isDirectory()) walk(path);
      else if (e.name.endsWith(".ts")) {
        const text = readFileSync(path, "utf8");
        for (const m of text.matchAll(/authFailures\.inc\(\{ reason: ([^}]+) \}\)/g)) for (const lit of m[1]!.matchAll(/"([^"]+)"/g)) found.add(lit[1]!);
        for (const m of text.matchAll(/unauthorized\("([^"]+)"/g)) found.add(m[1]!);
      }
    }
  };
  for (const dir of ["agent", "hub"]) walk(join(import.meta.dirname, "../..", dir));
  return found;
}

describe("locmesh_auth_failures_total", () => {
  it("has a series at 0 for every reason from the start, so increase() sees a first burst", async () => {
    const text = await createMetrics({ defaults: false }).registry.getSingleMetricAsString("locmesh_auth_failures_total");
    for (const reason of AUTH_FAILURE_REASONS) expect(text).toContain(`locmesh_auth_failures_total{reason="${reason}"} 0`);
  });

  it("lists every reason the agent and hub count under", () => {
    const used = reasonsInSources();
    expect(used.size).toBeGreaterThanOrEqual(8);
    for (const reason of used) expect(AUTH_FAILURE_REASONS as readonly string[]).toContain(reason);
  });
});
