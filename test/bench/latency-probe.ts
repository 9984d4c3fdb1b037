/**
 * Propagation latency at a steady rate: single-edit `location.publish` requests paced at `rate`/s
 * into one publisher (a timer sends the due number each tick and never waits for replies), while
 * WebSocket subscriptions (`changes.subscribe`) on the receivers report when each change was
 * stored there. Latency = notification arrival at the bench − the moment its publish was sent;
 * both ends are timed by this process's clock. Used by the mesh and the hub latency scenarios.
 *
 * The receivers may instead be sink agents (sink-agents.ts), which note arrivals themselves, on
 * the same wall clock (performance.timeOrigin + performance.now() in both processes).
 */
import { monitorEventLoopDelay } from "node:perf_hooks";
import { ApiMethod, ApiNotification } from "../../agent/contract/api-protocol.js";
import type { Change } from "../../agent/contract/records.js";
import type { AgentProcess } from "../support/agent-process.js";
import { cpuMeter } from "./bench-cluster.js";
import { percentile } from "./report.js";
import type { SinkAgents } from "./sink-agents.js";
import { bindingEdit } from "./workload.js";
import { connectWsRpc, type WsRpcClient } from "./ws-client.js";
import { fmt } from "./scenarios/scenario.js";

/** Publishes sent in the first second warm up connections and JIT; they are left out of the percentiles. */
export const WARMUP_MS = 1000;
const TICK_MS = 1;

export interface Percentiles {
  p50: number;
  p99: number;
  max: number;
}

export interface LatencyOutcome {
  total: number;
  sendSeconds: number;
  achieved: number;
  missing: number;
  ackErrors: number;
  /** Every receiver's arrivals pooled. */
  pooled: Percentiles & { p90: number; p999: number; samples: number };
  perReceiver: Record<string, Percentiles>;
  ack: Percentiles;
  cpuSecondsPerSecond: Record<string, number>;
  benchEventLoopDelayMs: Percentiles;
}

/** Where the probe learns when each change reached each receiver. */
interface ArrivalSource {
  /** The fewest of the tracked changes that any receiver has. */
  least(): Promise<number>;
  /** Per receiver, when each tracked change arrived (this process's performance.now()), NaN if never. */
  collect(): Promise<Map<string, number[]>>;
  close(): Promise<void>;
}

/** Receivers that are agents: subscribe to each one's change notifications. */
async function subscribe(receivers: readonly AgentProcess[], total: number, indexOfKey: Map<string, number>): Promise<ArrivalSource> {
  const arrived = new Map(receivers.map((r) => [r.spec.id, new Array<number>(total).fill(NaN)]));
  const clients: WsRpcClient[] = [];
  try {
    for (const node of receivers) {
      const sub = await connectWsRpc(node.apiUrl, node.spec.token);
      clients.push(sub);
      const into = arrived.get(node.spec.id)!;
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
  } catch (err) {
    await Promise.all(clients.map((c) => c.close()));
    throw err;
  }
  const got = (a: number[]) => a.reduce((s, v) => s + (Number.isNaN(v) ? 0 : 1), 0);
  return {
    least: () => Promise.resolve(Math.min(...[...arrived.values()].map(got))),
    collect: () => Promise.resolve(arrived),
    close: async () => {
      await Promise.all(clients.map((c) => c.close()));
    },
  };
}

/** Receivers that are sink agents: they note arrivals themselves, on the wall clock. */
async function fromSinks(sinks: SinkAgents, prefix: string, total: number): Promise<ArrivalSource> {
  await sinks.track(prefix, total);
  return {
    least: async () => Math.min(...Object.values((await sinks.counts()).tracked)),
    collect: async () => new Map(Object.entries(await sinks.arrivals()).map(([id, a]) => [id, a.map((v) => (v === null ? NaN : v - performance.timeOrigin))])),
    close: () => Promise.resolve(),
  };
}

export async function measureLatency(o: {
  publisher: AgentProcess;
  /**
   * Several publishing agents instead (`publisher` is then the first): change i goes to
   * publishers[i mod n], and its arrival at its own publisher (the local commit) is left out.
   */
  publishers?: readonly AgentProcess[];
  /** Agents to subscribe to, or sink agents. */
  receivers: readonly AgentProcess[] | SinkAgents;
  /** Processes whose CPU use is reported (agents, hubs), and others by pid (sink processes). */
  meter: readonly AgentProcess[];
  meterOthers?: readonly { id: string; pid: number }[];
  rate: number;
  seconds: number;
  log(line: string): void;
}): Promise<LatencyOutcome> {
  const total = Math.round(o.rate * o.seconds);
  const nowSec = Math.floor(Date.now() / 1000);
  const prefix = `lat${Date.now() % 100000}x`;
  const keyOf = (i: number) => `${prefix}${String(i).padStart(7, "0")}@voice.example.com`;
  const sentAt: number[] = new Array<number>(total);
  const indexOfKey = new Map<string, number>();
  const acked = new Array<number>(total).fill(NaN);
  let ackErrors = 0;

  const publishers = o.publishers && o.publishers.length > 0 ? o.publishers : [o.publisher];
  const ownPublisher = (i: number) => publishers[i % publishers.length]!.spec.id;
  const receivers = Array.isArray(o.receivers) ? await subscribe(o.receivers as readonly AgentProcess[], total, indexOfKey) : await fromSinks(o.receivers as SinkAgents, prefix, total);
  const pubs: WsRpcClient[] = [];
  try {
    for (const p of publishers) pubs.push(await connectWsRpc(p.apiUrl, p.spec.token));
    const into = publishers.length === 1 ? publishers[0]!.spec.id : `${publishers.length} agents in turn`;
    o.log(`latency: publishing ${fmt(total)} single-edit requests into ${into} at ${fmt(o.rate)}/s for ${o.seconds} s`);
    const cpu = cpuMeter(o.meter, o.meterOthers);
    // The bench stamps both ends, so its own event-loop stalls would show up as latency; record them.
    const benchLoop = monitorEventLoopDelay({ resolution: 1 });
    benchLoop.enable();
    let sent = 0;
    const t0 = performance.now();
    await new Promise<void>((resolve) => {
      let lastPrint = t0;
      const timer = setInterval(() => {
        const now = performance.now();
        const due = Math.min(total, Math.floor(((now - t0) / 1000) * o.rate));
        while (sent < due) {
          const i = sent++;
          indexOfKey.set(keyOf(i), i);
          const params = JSON.stringify({ edits: [bindingEdit(prefix, i, nowSec)] });
          sentAt[i] = performance.now();
          pubs[i % pubs.length]!.sendJson(ApiMethod.LocationPublish, params, (err) => {
            if (err) ackErrors++;
            acked[i] = performance.now();
          });
        }
        if (now - lastPrint >= 2000) {
          lastPrint = now;
          const inFlight = pubs.reduce((n, p) => n + p.inFlight(), 0);
          void receivers.least().then((least) => o.log(`  … sent ${fmt(sent)}, in flight ${inFlight}, the slowest receiver has ${fmt(least)}`));
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

    // Let the tail arrive: every change should reach every receiver.
    const until = performance.now() + 20_000;
    while ((await receivers.least()) < total && performance.now() < until) await new Promise((r) => setTimeout(r, 50));
    const arrived = await receivers.collect();
    // A change's arrival at its own publisher is its local commit, not a delivery: left out.
    const counted = (id: string, i: number) => publishers.length === 1 || ownPublisher(i) !== id;
    const missing = [...arrived.entries()].reduce((n, [id, a]) => n + a.filter((v, i) => Number.isNaN(v) && counted(id, i)).length, 0);

    const warm = (i: number) => sentAt[i]! - t0 >= WARMUP_MS;
    const lat = (id: string, a: number[]) => a.flatMap((v, i) => (warm(i) && counted(id, i) && !Number.isNaN(v) ? [v - sentAt[i]!] : []));
    const stats = (id: string, a: number[]): Percentiles => {
      const s = lat(id, a).sort((x, y) => x - y);
      return { p50: percentile(s, 50), p99: percentile(s, 99), max: s.at(-1) ?? NaN };
    };
    const all = [...arrived.entries()].flatMap(([id, a]) => lat(id, a)).sort((a, b) => a - b);
    const outcome: LatencyOutcome = {
      total, sendSeconds, achieved: total / sendSeconds, missing, ackErrors,
      pooled: {
        p50: percentile(all, 50), p90: percentile(all, 90), p99: percentile(all, 99), p999: percentile(all, 99.9),
        max: all.at(-1) ?? NaN, samples: all.length,
      },
      perReceiver: Object.fromEntries([...arrived.entries()].map(([id, a]) => [id, stats(id, a)])),
      ack: stats("", acked),
      cpuSecondsPerSecond: cpuUse,
      benchEventLoopDelayMs: benchLoopMs,
    };
    o.log(`latency: p50 ${fmt(outcome.pooled.p50, 2)} ms, p99 ${fmt(outcome.pooled.p99, 2)} ms, max ${fmt(outcome.pooled.max, 2)} ms over ` +
      `${fmt(all.length)} arrivals; publish ack p50 ${fmt(outcome.ack.p50, 2)} ms, p99 ${fmt(outcome.ack.p99, 2)} ms; ` +
      `achieved ${fmt(outcome.achieved)}/s; missing ${missing}`);
    o.log(`latency: CPU-seconds per second: ${JSON.stringify(cpuUse)}; bench event-loop delay p99 ${fmt(benchLoopMs.p99, 2)} ms, max ${fmt(benchLoopMs.max, 2)} ms`);
    return outcome;
  } finally {
    await Promise.all(pubs.map((p) => p.close()));
    await receivers.close();
  }
}
