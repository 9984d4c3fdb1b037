/**
 * Mesh propagation latency at a steady rate: paced single-edit publishes into n1, notifications
 * from n2 and n3 (see latency-probe.ts for how it is measured).
 */
import { measureLatency, WARMUP_MS } from "../latency-probe.js";
import type { ScenarioReport } from "../report.js";
import { fmt, type ScenarioContext } from "./scenario.js";

export async function runLatency(ctx: ScenarioContext): Promise<ScenarioReport> {
  const { cluster, sizes, log } = ctx;
  const [n1, n2, n3] = cluster.nodes;
  const r = await measureLatency({ publisher: n1, receivers: [n2, n3], meter: cluster.nodes, rate: sizes.latencyRate, seconds: sizes.latencySeconds, log });
  if (r.ackErrors > 0) throw new Error(`${r.ackErrors} publishes failed`);
  const per = r.perReceiver;
  const note =
    `${fmt(r.total)} single-edit publishes paced at ${fmt(sizes.latencyRate)}/s; first ${WARMUP_MS} ms left out; n2 and n3 pooled; ` +
    `per peer p99 n2 ${fmt(per["n2"]!.p99, 2)} ms, n3 ${fmt(per["n3"]!.p99, 2)} ms; bench's own event-loop delay p99 ${fmt(r.benchEventLoopDelayMs.p99, 2)} ms; ` +
    `CPU-s/s ${JSON.stringify(r.cpuSecondsPerSecond)}`;
  return {
    name: "latency",
    figures: [
      { id: "latency.p50", metric: "Latency n1 → n2/n3 p50", value: r.pooled.p50, unit: "ms", digits: 2, target: null },
      { id: "latency.p99", metric: "Latency n1 → n2/n3 p99", value: r.pooled.p99, unit: "ms", digits: 2, target: { kind: "max", value: 10 }, note },
      { id: "latency.max", metric: "Latency n1 → n2/n3 max", value: r.pooled.max, unit: "ms", digits: 2, target: null },
      { id: "latency.ack.p99", metric: "  n1 publish ack p99", value: r.ack.p99, unit: "ms", digits: 2, target: null },
      {
        id: "latency.rate",
        metric: "Latency run achieved rate",
        value: r.achieved,
        unit: "changes/s",
        target: null,
        note: `paced at ${fmt(sizes.latencyRate)}/s${r.missing > 0 ? `; ${r.missing} notifications never arrived` : ""}`,
      },
    ],
    details: {
      publishes: r.total, sendSeconds: r.sendSeconds, achievedPerSecond: r.achieved, missingNotifications: r.missing,
      n2: per["n2"], n3: per["n3"], pooled: r.pooled, n1Ack: r.ack,
      cpuSecondsPerSecond: r.cpuSecondsPerSecond, benchEventLoopDelayMs: r.benchEventLoopDelayMs,
    },
  };
}
