/** Which series a node exports: agent-only and Kamailio series appear only once the node says it has them. */
import { describe, expect, it } from "vitest";
import { createMetrics } from "../../agent/ops/metrics.js";
import { AGENT_ONLY_SERIES, KAMAILIO_ONLY_SERIES } from "../support/series-groups.js";

const names = (m: ReturnType<typeof createMetrics>) => m.registry.getMetricsAsArray().map((x) => x.name).sort();

describe("series only some nodes have", () => {
  it("are not exported until the node says it is an agent, or attached to a Kamailio", () => {
    const metrics = createMetrics({ defaults: false });
    const shared = names(metrics);
    for (const name of [...AGENT_ONLY_SERIES, ...KAMAILIO_ONLY_SERIES]) expect(shared).not.toContain(name);
    metrics.exportAgentSeries();
    expect(names(metrics)).toEqual([...shared, ...AGENT_ONLY_SERIES].sort());
    metrics.exportKamailioSeries();
    expect(names(metrics)).toEqual([...shared, ...AGENT_ONLY_SERIES, ...KAMAILIO_ONLY_SERIES].sort());
  });

  it("keep what was counted before they were exported, and may be asked for again", async () => {
    const metrics = createMetrics({ defaults: false });
    metrics.kamailioRestarts.inc();
    metrics.changesCommitted.inc(3);
    for (let i = 0; i < 2; i++) {
      metrics.exportAgentSeries();
      metrics.exportKamailioSeries();
    }
    const text = await metrics.registry.metrics();
    expect(text).toMatch(/^locmesh_kamailio_restarts_total 1$/m);
    expect(text).toMatch(/^locmesh_changes_committed_total 3$/m);
  });

  it("start Kamailio's write failures, learned changes and repairs at 0 for each label, so the first one alerts (increase())", async () => {
    const metrics = createMetrics({ defaults: false });
    metrics.exportKamailioSeries();
    const text = await metrics.registry.metrics();
    expect(text).toMatch(/^locmesh_kamailio_write_failures_total\{reason="rejected"\} 0$/m);
    expect(text).toMatch(/^locmesh_kamailio_write_failures_total\{reason="unavailable"\} 0$/m);
    for (const source of ["event", "reconcile", "api"]) expect(text).toMatch(new RegExp(`^locmesh_kamailio_learned_total\\{source="${source}"\\} 0$`, "m"));
    for (const source of ["reconcile", "reload", "api"]) expect(text).toMatch(new RegExp(`^locmesh_kamailio_repairs_total\\{source="${source}"\\} 0$`, "m"));
  });

  it("export the process and Node.js metrics under the names every Node exporter uses", async () => {
    const text = await createMetrics().registry.metrics();
    for (const name of ["process_cpu_user_seconds_total", "process_resident_memory_bytes", "nodejs_heap_size_used_bytes"]) expect(text).toMatch(new RegExp(`^${name}(\\{| )`, "m"));
    expect(text).not.toContain("locmesh_process_");
  });
});
