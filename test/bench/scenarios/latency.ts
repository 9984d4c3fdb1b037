/**
 * Propagation latency at a steady rate: single-edit `location.publish` requests paced at
 * `latencyRate`/s into n1 (a timer sends the due number each tick and never waits for replies),
 * while WebSocket subscriptions (`changes.subscribe`) on n2 and n3 report when each change was
 * stored there. Latency = notification arrival at the bench − the moment its publish was sent;
 * both ends are timed by this process's clock.
 */
import { monitorEventLoopDelay } from "node:perf_hooks";
import { ApiMethod, ApiNotification } from "../../../agent/contract/protocol.js";
import type { Change } from "../../../agent/contract/records.js";
import { cpuMeter } from "../bench-cluster.js";
import { percentile, type ScenarioReport } from "../report.js";
import { bindingEdit } from "../workload.js";
import { connectWsRpc, type WsRpcClient } from "../ws-client.js";
import { fmt, type ScenarioContext } from "./scenario.js";

/** Publishes sent in the first second warm up connections and JIT; they are left out of the percentiles. */
const WARMUP_MS = 1000;
const TICK_MS = 1;

export async function runLatency(ctx: ScenarioContext): Promise<ScenarioReport> {
  const { cluster, sizes, log } = ctx;
  const [n1, n2, n3] = cluster.nodes;
  const total = Math.round(sizes.latencyRate * sizes.latencySeconds);
  const nowSec = Math.floor(Date.now() / 1000);
  const prefix = `lat${Date.now() % 100000}x`;
  const keyOf = (i: number) => `${prefix}${String(i).padStart(7, "0")}@voice.example.com`;

  const sentAt: number[] = new Array<number>(total);
  const indexOfKey = new Map<string, number>();
  const arrived = { n2: new Array<number>(total).fill(NaN), n3: new Array<number>(total).fill(NaN) };
  const acked = new Array<number>(total).fill(NaN);
  let ackErrors = 0;

  const clients: WsRpcClient[] = [];
  try {
    const pub = await connectWsRpc(n1.apiUrl, n1.spec.token);
    clients.push(pub);
    for (const [name, node] of [["n2", n2], ["n3", n3]] as const) {
      const sub = await connectWsRpc(node.apiUrl, node.spec.token);
      clients.push(sub);
      const into = arrived[name];
      sub.onNotification((method, params) => {
        if (method !== ApiNotification.ChangesApplied) return;
        const at = performance.now();
        for (const c of (params as { changes: Change[] }).changes) {
          const i = indexOfKey.get(c.key);
          if (i !== undefined && Number.isNaN(into[i]!)) into[i] = at;
        }
      });
      await sub.call(ApiMethod.ChangesSubscribe, {});
    }

    log(`latency: publishing ${fmt(total)} single-edit requests into n1 at ${fmt(sizes.latencyRate)}/s for ${sizes.latencySeconds} s`);
    const cpu = cpuMeter(cluster.nodes);
    // The bench stamps both ends, so its own event-loop stalls would show up as latency; record them.
    const benchLoop = monitorEventLoopDelay({ resolution: 1 });
    benchLoop.enable();
    let sent = 0;
    const t0 = performance.now();
    await new Promise<void>((resolve) => {
      let lastPrint = t0;
      const timer = setInterval(() => {
        const now = performance.now();
        const due = Math.min(total, Math.floor(((now - t0) / 1000) * sizes.latencyRate));
        while (sent < due) {
          const i = sent++;
          indexOfKey.set(keyOf(i), i);
          const params = JSON.stringify({ edits: [bindingEdit(prefix, i, nowSec)] });
          sentAt[i] = performance.now();
          pub.sendJson(ApiMethod.LocationPublish, params, (err) => {
            if (err) ackErrors++;
            acked[i] = performance.now();
          });
        }
        if (now - lastPrint >= 2000) {
          lastPrint = now;
          const got = (a: number[]) => a.reduce((s, v) => s + (Number.isNaN(v) ? 0 : 1), 0);
          log(`  … sent ${fmt(sent)}, n1 in flight ${pub.inFlight()}, n2 has ${fmt(got(arrived.n2))}, n3 has ${fmt(got(arrived.n3))}`);
        }
        if (sent >= total) {
          clearInterval(timer);
          resolve();
        }
      }, TICK_MS);
    });
    const sendSeconds = (performance.now() - t0) / 1000;
    const cpuUse = cpu();
    benchLoop.disable();
    const benchLoopMs = { p50: benchLoop.percentile(50) / 1e6, p99: benchLoop.percentile(99) / 1e6, max: benchLoop.max / 1e6 };

    // Let the tail arrive: every change should reach both peers.
    const until = performance.now() + 20_000;
    const complete = () => arrived.n2.every((v) => !Number.isNaN(v)) && arrived.n3.every((v) => !Number.isNaN(v));
    while (!complete() && performance.now() < until) await new Promise((r) => setTimeout(r, 50));
    const missing = arrived.n2.filter(Number.isNaN).length + arrived.n3.filter(Number.isNaN).length;

    const warm = (i: number) => sentAt[i]! - t0 >= WARMUP_MS;
    const lat = (a: number[]) => a.flatMap((v, i) => (warm(i) && !Number.isNaN(v) ? [v - sentAt[i]!] : []));
    const both = [...lat(arrived.n2), ...lat(arrived.n3)].sort((a, b) => a - b);
    const per = (a: number[]) => {
      const s = lat(a).sort((x, y) => x - y);
      return { p50: percentile(s, 50), p99: percentile(s, 99), max: s.at(-1) ?? NaN };
    };
    const acks = lat(acked).sort((a, b) => a - b);
    const achieved = total / sendSeconds;
    const p50 = percentile(both, 50);
    const p99 = percentile(both, 99);
    const max = both.at(-1) ?? NaN;
    log(`latency: p50 ${fmt(p50, 2)} ms, p99 ${fmt(p99, 2)} ms, max ${fmt(max, 2)} ms over ${fmt(both.length)} arrivals; ` +
      `n1 ack p50 ${fmt(percentile(acks, 50), 2)} ms, p99 ${fmt(percentile(acks, 99), 2)} ms; achieved ${fmt(achieved)}/s; missing ${missing}`);
    log(`latency: CPU-seconds per second: ${JSON.stringify(cpuUse)}; bench event-loop delay p99 ${fmt(benchLoopMs.p99, 2)} ms, max ${fmt(benchLoopMs.max, 2)} ms`);
    if (ackErrors > 0) throw new Error(`${ackErrors} publishes failed`);

    const note =
      `${fmt(total)} single-edit publishes paced at ${fmt(sizes.latencyRate)}/s; first ${WARMUP_MS} ms left out; n2 and n3 pooled; ` +
      `per peer p99 n2 ${fmt(per(arrived.n2).p99, 2)} ms, n3 ${fmt(per(arrived.n3).p99, 2)} ms; bench's own event-loop delay p99 ${fmt(benchLoopMs.p99, 2)} ms; ` +
      `CPU-s/s ${JSON.stringify(cpuUse)}`;
    return {
      name: "latency",
      figures: [
        { id: "latency.p50", metric: "Latency n1 → n2/n3 p50", value: p50, unit: "ms", digits: 2, target: null },
        { id: "latency.p99", metric: "Latency n1 → n2/n3 p99", value: p99, unit: "ms", digits: 2, target: { kind: "max", value: 10 }, note },
        { id: "latency.max", metric: "Latency n1 → n2/n3 max", value: max, unit: "ms", digits: 2, target: null },
        { id: "latency.ack.p99", metric: "  n1 publish ack p99", value: percentile(acks, 99), unit: "ms", digits: 2, target: null },
        {
          id: "latency.rate",
          metric: "Latency run achieved rate",
          value: achieved,
          unit: "changes/s",
          target: null,
          note: `paced at ${fmt(sizes.latencyRate)}/s${missing > 0 ? `; ${missing} notifications never arrived` : ""}`,
        },
      ],
      details: {
        publishes: total,
        sendSeconds,
        achievedPerSecond: achieved,
        missingNotifications: missing,
        n2: per(arrived.n2),
        n3: per(arrived.n3),
        pooled: { p50, p90: percentile(both, 90), p99, p999: percentile(both, 99.9), max, samples: both.length },
        n1Ack: { p50: percentile(acks, 50), p99: percentile(acks, 99), max: acks.at(-1) ?? NaN },
        cpuSecondsPerSecond: cpuUse,
        benchEventLoopDelayMs: benchLoopMs,
      },
    };
  } finally {
    await Promise.all(clients.map((c) => c.close()));
  }
}
