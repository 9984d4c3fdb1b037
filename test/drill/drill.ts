/**
 * What a drill is, and the common shape most of them share: start the cluster, start traffic,
 * inject a fault while it flows, heal it, let the traffic end, then compare every node's full
 * dump with the ledger.
 */
import { join } from "node:path";
import { sleep } from "../support/agent-process.js";
import { startDrillCluster, startTraffic, type DrillCluster, type DrillClusterOptions, type TrafficFigures, type TrafficOptions } from "./drill-cluster.js";
import { writeFloor } from "./floor.js";
import { recordId, type Ledger } from "./ledger.js";
import type { Verdict } from "./verify.js";

export interface DrillContext {
  /** A fresh directory for this drill's processes and logs. */
  dir: string;
  /** CI's short version: less traffic, shorter faults; the same checks. */
  short: boolean;
  /** One line of what the drill is doing, for the report. */
  log(line: string): void;
}

export interface DrillResult {
  /** What was done, step by step. */
  did: string[];
  traffic: TrafficFigures | null;
  /** Acked writes the drill moved to "doubt" because a fault could physically lose them. */
  atRisk: number;
  verdict: Verdict;
  /** From the end of traffic until every view matched. */
  convergeSec: number;
  /** Further figures that must be zero (e.g. crashes, state changes under fuzzing). */
  zeroes?: Record<string, number>;
  /** Figures reported for information (rates, memory). */
  info?: Record<string, string | number>;
}

export interface Drill {
  name: string;
  /** One line for the README table. */
  title: string;
  run(ctx: DrillContext): Promise<DrillResult>;
}

export const passed = (r: DrillResult): boolean => r.verdict.ok && Object.values(r.zeroes ?? {}).every((v) => v === 0);

export interface TrafficDrillSpec {
  cluster?: Omit<DrillClusterOptions, "dir">;
  traffic: (short: boolean) => TrafficOptions;
  /** Seconds of traffic before the fault. */
  leadSec: (short: boolean) => number;
  /** Injects the fault and heals it; returns what it did. */
  fault(c: DrillCluster, ctx: DrillContext): Promise<FaultReport>;
  /** Runs after the check (before the cluster closes), e.g. to restore the machine. */
  cleanup?(c: DrillCluster): Promise<void>;
  /**
   * Runs after the check on the settled cluster, with no traffic flowing (e.g. a probe that would
   * disturb the ledger's traffic); its steps and figures join the result.
   */
  afterCheck?(c: DrillCluster, ctx: DrillContext): Promise<Omit<FaultReport, "atRisk">>;
  convergeTimeoutMs?: number;
}

export interface FaultReport {
  did: string[];
  /**
   * Runs once the traffic is in the ledger: moves acked writes a fault could physically lose to
   * "doubt" (see Ledger.doubtAckedBetween) and returns how many it moved.
   */
  atRisk?: (ledger: Ledger) => number;
  info?: Record<string, string | number>;
  zeroes?: Record<string, number>;
}

export async function runTrafficDrill(ctx: DrillContext, spec: TrafficDrillSpec): Promise<DrillResult> {
  const c = await startDrillCluster({ ...spec.cluster, dir: join(ctx.dir, "cluster") });
  try {
    const t = spec.traffic(ctx.short);
    ctx.log(`traffic: ${t.registerRate} REGISTER/s per node for ${t.seconds} s, ${t.aliasRate} alias calls/s`);
    const traffic = await startTraffic(c, ctx.dir, t);
    await sleep(spec.leadSec(ctx.short) * 1000);
    const fault = { fromMs: Date.now(), toMs: 0 };
    const f = await spec.fault(c, ctx);
    fault.toMs = Date.now();
    for (const line of f.did) ctx.log(line);
    const figures = await traffic.finish();
    const atRisk = f.atRisk?.(c.ledger) ?? 0;
    // Before the check: a drill whose writes were refused has nothing to check.
    const floor = writeFloor(c.ledger.all, { fault });
    ctx.log(`traffic done: ${figures.registers.acked}/${figures.registers.sent} REGISTERs acked, ${figures.aliases.acked}/${figures.aliases.calls} alias calls acked`);
    const { verdict, seconds, views } = await c.converge(spec.convergeTimeoutMs ?? 90_000);
    if (atRisk > 0) {
      // How many of the writes a fault could have lost are there all the same (in every view).
      const kept = c.ledger.all.filter((o) => o.doubtReason !== undefined && views.every((v) => (v.records.get(recordId(o.kind, o.key, o.sub)) ?? null) === o.value)).length;
      ctx.log(`${kept} of the ${atRisk} writes acknowledged in the fault's instant were kept`);
      f.info = { ...f.info, "at-risk writes kept": `${kept} of ${atRisk}` };
    }
    const after = (await spec.afterCheck?.(c, ctx)) ?? { did: [] };
    for (const line of after.did) ctx.log(line);
    await spec.cleanup?.(c);
    const info = { ...f.info, ...after.info, ...floor.info };
    const zeroes = { ...f.zeroes, ...after.zeroes, ...floor.zeroes };
    return {
      did: [...f.did, ...after.did],
      traffic: figures,
      atRisk,
      verdict,
      convergeSec: seconds,
      ...(Object.keys(info).length > 0 ? { info } : {}),
      ...(Object.keys(zeroes).length > 0 ? { zeroes } : {}),
    };
  } finally {
    await c.close();
  }
}
