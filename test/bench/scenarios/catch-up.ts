/**
 * Catch-up after a crash: kill -9 n3, publish `catchupChanges` bindings into n1, restart n3 and
 * time until it holds them all, (a) from its process spawn and (b) from its peer session with n1
 * becoming ready. The agent's own log lines split the time from spawn into phases. Repeated
 * `sizes.repeat` times; the median run (by time from spawn) is the figure.
 *
 * Reference: Kamailio dmq_usrloc's full sync put about 57,000 contacts into a restarted node within
 * 1.3 s of its start on this class of 2-core machine, ≈ 45,000 contacts/s.
 */
import type { ClusterStatus } from "../../../agent/contract/cluster-status.js";
import { cpuMeter, logLinesSince, logSize, pollUntil, vvEntry, waitConverged, type LogLine } from "../bench-cluster.js";
import { publishBulk, publishFrames } from "../publisher.js";
import type { ScenarioReport } from "../report.js";
import { connectWsRpc } from "../ws-client.js";
import { fmt, median, type ScenarioContext } from "./scenario.js";

const DMQ_CONTACTS_PER_SECOND = 45_000;

interface CatchUpRun {
  fromSpawnSeconds: number;
  fromSessionReadySeconds: number;
  fromHealthzSeconds: number;
  sessionReadyAfterSpawnMs: number;
  received: number;
  receivedFrom: { n1: number; n2: number };
  phasesMs: Record<string, number>;
  cpuSecondsPerSecond: Record<string, number>;
}

export async function runCatchUp(ctx: ScenarioContext): Promise<ScenarioReport> {
  const { sizes, log } = ctx;
  const n = sizes.catchupChanges;
  const runs: CatchUpRun[] = [];
  for (let rep = 1; rep <= sizes.repeat; rep++) {
    log(`catch-up run ${rep}/${sizes.repeat}`);
    runs.push(await catchUpOnce(ctx, `cu${rep}x`));
  }
  const times = runs.map((r) => r.fromSpawnSeconds);
  const mid = runs[times.indexOf(median(times))]!;
  const readyTimes = runs.map((r) => r.fromSessionReadySeconds);
  const worstReceived = Math.max(...runs.map((r) => r.received));
  const list = (xs: number[]) => xs.map((x) => fmt(x, 2)).join(", ");
  return {
    name: "catchup",
    figures: [
      {
        id: "catchup.fromSpawn",
        metric: `Catch-up ${fmt(n)} from n3 spawn`,
        value: mid.fromSpawnSeconds,
        unit: "s",
        digits: 2,
        target: { kind: "max", value: 2 },
        note:
          `median of ${runs.length} runs (${list(times)} s); kill -9 n3, ${fmt(n)} bindings into n1, restart n3; ` +
          `phases after spawn in the median run (ms): ${JSON.stringify(mid.phasesMs)}`,
      },
      {
        id: "catchup.fromReady",
        metric: "Catch-up from n1 session ready",
        value: median(readyTimes),
        unit: "s",
        digits: 2,
        target: { kind: "max", value: 2 },
        note: `median of ${list(readyTimes)} s`,
      },
      {
        id: "catchup.rate",
        metric: "Catch-up rate (from spawn)",
        value: n / mid.fromSpawnSeconds,
        unit: "contacts/s",
        target: null,
        reference: { value: DMQ_CONTACTS_PER_SECOND, unit: "contacts/s", source: "dmq_usrloc full sync" },
      },
      {
        id: "catchup.rateFromReady",
        metric: "  catch-up rate (from session ready)",
        value: n / median(readyTimes),
        unit: "contacts/s",
        target: null,
        reference: { value: DMQ_CONTACTS_PER_SECOND, unit: "contacts/s", source: "dmq_usrloc full sync" },
      },
      {
        id: "catchup.received",
        metric: "Changes n3 received (worst run)",
        value: worstReceived,
        unit: "changes",
        // Only what it missed: anything above n means the same changes crossed the wire twice.
        target: { kind: "atMost", value: n },
        note: `missed ${fmt(n)} per run; received per run: ${runs.map((r) => `${fmt(r.received)} (n1 ${fmt(r.receivedFrom.n1)}, n2 ${fmt(r.receivedFrom.n2)})`).join("; ")}`,
      },
    ],
    details: { changesPerRun: n, runs },
  };
}

async function catchUpOnce(ctx: ScenarioContext, prefix: string): Promise<CatchUpRun> {
  const { cluster, sizes, log } = ctx;
  const [n1, n2, n3] = cluster.nodes;
  const n = sizes.catchupChanges;
  const r1 = await cluster.replicaOf(n1);
  // n3 must be level with the others, so that what it misses is exactly this run's changes.
  await waitConverged(cluster.nodes, 120_000, log);

  log(`  kill -9 n3; publishing ${fmt(n)} bindings into n1 while it is down`);
  await n3.kill9();
  const client = await connectWsRpc(n1.apiUrl, n1.spec.token);
  try {
    const frames = publishFrames({ prefix, count: n, batchSize: sizes.publishBatch, nowSec: Math.floor(Date.now() / 1000) });
    const out = await publishBulk(client, frames, { inFlight: sizes.publishInFlight });
    if (out.accepted !== n) throw new Error(`n1 accepted ${out.accepted} of ${n}`);
  } finally {
    await client.close();
  }
  const want = await vvEntry(n1, r1);
  await waitConverged([n1, n2], 120_000, log);

  log("  restarting n3");
  const logFrom = logSize(n3);
  const spawnWall = Date.now();
  const t0 = performance.now();
  let healthyAt = NaN;
  let startError: Error | null = null;
  const started = n3.start().then(
    () => void (healthyAt = performance.now()),
    (err: Error) => void (startError = err),
  );
  const cpu = cpuMeter([n1, n2]);
  const doneAt = await pollUntil("n3 holds", () => n3.metric("locmesh_changes_applied_total"), n, {
    timeoutMs: 120_000,
    log,
    abortIf: () => startError,
  });
  await started;
  if (startError) throw startError;
  const cpuUse = cpu();
  const have = await vvEntry(n3, r1);
  if (have < want) throw new Error(`n3 holds ${r1} up to ${have}, expected ${want}`);

  const phases = phasesFromLog(logLinesSince(n3, logFrom), spawnWall);
  // The first time the session with n1 was ready (the log), else the current session's start.
  const status = await n3.call<ClusterStatus>("cluster.status");
  const since = status.peers.find((p) => p.nodeId === "n1")?.connectedSince;
  const readyMs = Number.isFinite(phases["n1SessionReady"]) ? phases["n1SessionReady"]! : since ? Date.parse(since) - spawnWall : NaN;
  const fromSpawn = (doneAt - t0) / 1000;
  const run: CatchUpRun = {
    fromSpawnSeconds: fromSpawn,
    fromSessionReadySeconds: fromSpawn - readyMs / 1000,
    fromHealthzSeconds: (doneAt - healthyAt) / 1000,
    sessionReadyAfterSpawnMs: readyMs,
    received: await n3.metric("locmesh_changes_received_total"),
    receivedFrom: {
      n1: await n3.metric("locmesh_changes_received_total", { peer: "n1" }),
      n2: await n3.metric("locmesh_changes_received_total", { peer: "n2" }),
    },
    phasesMs: phases,
    cpuSecondsPerSecond: cpuUse,
  };
  log(
    `  n3 held all ${fmt(n)} ${fmt(fromSpawn, 3)} s after spawn, ${fmt(run.fromSessionReadySeconds, 3)} s after its session with n1 ` +
      `was ready (${fmt(run.fromHealthzSeconds, 3)} s after /healthz answered); received ${fmt(run.received)} ` +
      `(n1 ${fmt(run.receivedFrom.n1)}, n2 ${fmt(run.receivedFrom.n2)}); phases after spawn (ms) ${JSON.stringify(phases)}`,
  );
  return run;
}

/** Milliseconds after spawn at which the restarted agent logged each step of its start. */
function phasesFromLog(lines: LogLine[], spawnWall: number): Record<string, number> {
  const at = (pred: (l: LogLine) => boolean) => {
    const l = lines.find(pred);
    return l ? Date.parse(l.time) - spawnWall : NaN;
  };
  return {
    configLoaded: at((l) => l.msg === "starting locmesh agent"),
    journalOpen: at((l) => l.msg === "journal open"),
    apiListening: at((l) => l.msg === "local API listening"),
    n1SessionReady: at((l) => l.msg === "peer session ready" && l["peer"] === "n1"),
    n2SessionReady: at((l) => l.msg === "peer session ready" && l["peer"] === "n2"),
  };
}
