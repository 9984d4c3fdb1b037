/**
 * REGISTER storm: first measure what the 3-node cluster answers when sipp offers more than it can
 * take (closed loop: 200 REGISTERs outstanding per node, each replaced as soon as it is answered),
 * then offer twice that, open loop, for a while, with alias churn on top. Under 2× load Kamailio
 * and sipp drop and time out requests (unanswered: "doubt"); every acknowledged REGISTER must still
 * reach every journal and every Kamailio once the storm is over.
 *
 * Back-pressure, end to end: each agent holds at most kamailio.eventQueue registrar events read
 * and not yet journaled (agent/kamailio/registrar-intake.ts). When that is full it stops reading the
 * evapi socket; Kamailio's evapi dispatcher then blocks in write() and its SIP workers in
 * evapi_relay (after their 200 OK went out), so Kamailio takes REGISTERs at the agent's pace.
 * Journal to peers is window-limited (mesh.window batches of mesh.batchSize, each acknowledged after
 * the peer's fsync) and journal to Kamailio is read from the journal by cursor (kamailio.window
 * writes in flight), so neither queues in memory. The drill shows it: each agent's peak RSS
 * (sampled from /proc) must stay under RSS_LIMIT_MB, its event queue (sampled from its metrics)
 * under the bound plus one socket read, and reading must have paused on at least one agent (else
 * no queue reached the bound and the bound was not tested). The calibration must answer nearly
 * every REGISTER and the storm a floor of them (floor.ts), or there was no storm.
 */
import { join } from "node:path";
import { startDrillCluster, startTraffic, type DrillCluster, type TrafficFigures } from "../drill-cluster.js";
import type { Drill, DrillContext, DrillResult } from "../drill.js";
import { writeFloor } from "../floor.js";
import type { Ledger } from "../ledger.js";
import { rssMb, sampleRss } from "../rss-sampler.js";

/** An agent whose RSS goes past this during the storm fails the drill (unbounded growth). */
const RSS_LIMIT_MB = 300;
/** The storm's phones per node: a re-registration storm of a fixed population. */
const STORM_CONTACTS = 3000;
const CALIBRATE_CONTACTS = 1000;
/** REGISTERs outstanding per node while measuring: enough to keep Kamailio busy, not to flood it. */
const CALIBRATE_OUTSTANDING = 200;
const RECV_TIMEOUT_MS = 4000;
/** The calibration's users ("dkn1u…"), apart from the storm's ("dn1u…"). */
const CALIBRATE_TAG = "dk";
/**
 * Share of the storm's REGISTERs, per node, that must be answered. At twice the capacity from a
 * seventh to a third are (short runs on 2 shared cores); under a tenth means a registrar that
 * stopped answering, not one that is overloaded. Of the alias calls only some, over the cluster,
 * must be: an agent that has fallen behind answers few of them within the 3 s timeout, or none
 * (0 of 48 on one node in a run).
 */
const STORM_FLOOR = { loc: 0.1, alias: 0 };
/**
 * The agents' kamailio.eventQueue: registrar events read and not yet journaled, at most. Below the
 * default so that the storm fills it: with 1,000 an agent that kept up peaked at 167-432 events in
 * one CI run, no reading paused, and the back-pressure went untested (the drill failed).
 */
const EVENT_QUEUE = 250;
/** One 64 KiB socket read is delivered whole: at most this many events (300+ bytes each) past the bound. */
const ONE_READ = 220;

interface Calibration {
  /** REGISTERs/s the whole cluster answered. */
  perSecond: number;
  figures: TrafficFigures;
  seconds: number;
}

/** Closed loop on every node at once; the answered rate over the run is the cluster's capacity. */
async function calibrate(c: DrillCluster, ctx: DrillContext): Promise<Calibration> {
  const perNode = ctx.short ? 3000 : 10_000;
  const tag = CALIBRATE_TAG;
  const traffic = await startTraffic(c, ctx.dir, {
    registerRate: 20_000, seconds: perNode / 20_000, aliasRate: 0, tag,
    sipp: { contacts: CALIBRATE_CONTACTS, limit: CALIBRATE_OUTSTANDING, recvTimeoutMs: RECV_TIMEOUT_MS },
  });
  const figures = await traffic.finish();
  const { acked, seconds } = answeredSpan(c.ledger, (key) => key.startsWith(tag));
  return { perSecond: Math.round(acked / seconds), figures, seconds };
}

/** Acked REGISTERs among `keys`, and the seconds from the first sent to the last answered. */
function answeredSpan(ledger: Ledger, keys: (key: string) => boolean): { acked: number; seconds: number } {
  let first = Infinity;
  let last = -Infinity;
  let acked = 0;
  for (const o of ledger.all) {
    if (o.kind !== "loc" || !keys(o.key)) continue;
    first = Math.min(first, o.sentMs);
    if (o.outcome !== "acked") continue;
    acked++;
    last = Math.max(last, o.doneMs);
  }
  return { acked, seconds: Math.max(0.001, (last - first) / 1000) };
}

interface QueueSamples {
  /** Per agent, the largest queue seen. */
  peak: Record<string, number>;
  /** Per agent, samples taken and samples that could not be read. */
  taken: Record<string, number>;
  failed: Record<string, number>;
}

/**
 * Samples each agent's registrar event queue (its gauge) and keeps the peak. A sample that cannot
 * be read is counted, not taken as an empty queue: it fails exactly when the agent is most loaded,
 * so reading it as 0 would hide the peak the drill is looking for. One round at a time per agent:
 * a slow answer delays the next sample rather than piling requests onto a loaded agent.
 */
function sampleQueues(c: DrillCluster, everyMs = 250): { stop(): Promise<QueueSamples> } {
  const zero = () => Object.fromEntries(c.nodes.map((n) => [n.id, 0])) as Record<string, number>;
  const s: QueueSamples = { peak: zero(), taken: zero(), failed: zero() };
  const busy = new Map<string, Promise<void>>();
  const timer = setInterval(() => {
    for (const n of c.nodes) {
      if (busy.has(n.id)) continue;
      const p = n.agent.metric("locmesh_kamailio_events_queued").then(
        (q) => {
          s.taken[n.id]!++;
          s.peak[n.id] = Math.max(s.peak[n.id]!, q);
        },
        () => {
          s.taken[n.id]!++;
          s.failed[n.id]!++;
        },
      );
      busy.set(n.id, p.finally(() => busy.delete(n.id)));
    }
  }, everyMs);
  return {
    async stop() {
      clearInterval(timer);
      await Promise.all(busy.values());
      return s;
    },
  };
}

const sum = (a: TrafficFigures, b: TrafficFigures): TrafficFigures => ({
  registers: { sent: a.registers.sent + b.registers.sent, acked: a.registers.acked + b.registers.acked, doubt: a.registers.doubt + b.registers.doubt },
  aliases: { calls: a.aliases.calls + b.aliases.calls, acked: a.aliases.acked + b.aliases.acked, failed: a.aliases.failed + b.aliases.failed, doubt: a.aliases.doubt + b.aliases.doubt },
});

async function runStorm(ctx: DrillContext): Promise<DrillResult> {
  // 256 MB of shared memory: 3 nodes' contacts plus evapi events waiting while the agent is slow.
  // A queue smaller than the default (5000) makes the back-pressure engage on a fast machine too.
  const c = await startDrillCluster({ dir: join(ctx.dir, "cluster"), kamailio: { shmMb: 256 }, agentKamailio: { eventQueue: EVENT_QUEUE } });
  try {
    const cal = await calibrate(c, ctx);
    ctx.log(`calibration: the cluster answered ${cal.perSecond} REGISTER/s in all (${cal.figures.registers.acked}/${cal.figures.registers.sent} in ${cal.seconds.toFixed(1)} s, ${CALIBRATE_OUTSTANDING} outstanding per node)`);
    // Closed loop, nothing wrong: nearly every REGISTER is answered (all of them in most runs, 89%
    // on one node of a busy machine). A cluster that answered none (0/s) would offer a storm of
    // nothing and pass every check after it.
    const calFloor = writeFloor(c.ledger.all.filter((o) => o.key.startsWith(CALIBRATE_TAG)), { fault: null, share: { loc: 0.5 }, label: { loc: "calibration REGISTERs" } });
    if (Object.values(calFloor.zeroes).some((v) => v > 0)) {
      ctx.log("calibration below the floor: no storm");
      const { verdict, seconds: convergeSec } = await c.converge(30_000);
      return { did: [`calibration: ${cal.perSecond} REGISTER/s answered; no storm`], traffic: cal.figures, atRisk: 0, verdict, convergeSec, zeroes: calFloor.zeroes, info: calFloor.info };
    }
    const seconds = ctx.short ? 8 : 30;
    const perNode = Math.round((2 * cal.perSecond) / c.nodes.length);
    const before = Object.fromEntries(c.nodes.map((n) => [n.id, rssMb(n.agent.child?.pid ?? -1) ?? 0]));
    const rss = sampleRss(() => Object.fromEntries(c.nodes.map((n) => [n.id, n.agent.child?.pid])));
    const queues = sampleQueues(c);
    ctx.log(`storm: ${perNode} REGISTER/s per node (${perNode * c.nodes.length}/s, 2× the measured rate) for ${seconds} s over ${STORM_CONTACTS} phones per node, 20 alias calls/s`);
    const stormStart = Date.now();
    const traffic = await startTraffic(c, ctx.dir, {
      registerRate: perNode, seconds, aliasRate: 20,
      sipp: { contacts: STORM_CONTACTS, limit: Math.ceil(perNode * (RECV_TIMEOUT_MS / 1000 + 2)), recvTimeoutMs: RECV_TIMEOUT_MS },
    });
    const storm = await traffic.finish();
    const answered = answeredSpan(c.ledger, (key) => key.startsWith("dn"));
    ctx.log(`storm done after ${((Date.now() - stormStart) / 1000).toFixed(0)} s: ${storm.registers.acked}/${storm.registers.sent} REGISTERs answered (${Math.round(answered.acked / answered.seconds)}/s), ${storm.registers.doubt} unanswered`);
    const { verdict, seconds: convergeSec } = await c.converge(ctx.short ? 120_000 : 180_000);
    const peaks = rss.stop();
    const queueSamples = await queues.stop();
    const queuePeaks = queueSamples.peak;
    const pauses = await Promise.all(c.nodes.map(async (n) => ({ id: n.id, n: await n.agent.metric("locmesh_kamailio_event_pauses_total") })));
    const over = Object.values(peaks).filter((mb) => mb > RSS_LIMIT_MB).length;
    const overQueue = Object.values(queuePeaks).filter((q) => q > EVENT_QUEUE + ONE_READ).length;
    const stormFloor = writeFloor(c.ledger.all.filter((o) => o.kind === "alias" || !o.key.startsWith(CALIBRATE_TAG)), {
      fault: null, share: STORM_FLOOR, cluster: ["alias"], label: { loc: "storm REGISTERs", alias: "storm alias.set calls" },
    });
    return {
      did: [
        `calibration: ${cal.perSecond} REGISTER/s answered by the 3 nodes together`,
        `storm: ${perNode * c.nodes.length} REGISTER/s offered for ${seconds} s, ${Math.round(answered.acked / answered.seconds)}/s answered`,
      ],
      traffic: sum(cal.figures, storm),
      atRisk: 0,
      verdict,
      convergeSec,
      zeroes: {
        [`agents over ${RSS_LIMIT_MB} MB RSS`]: over,
        [`agents with over ${EVENT_QUEUE + ONE_READ} events queued`]: overQueue,
        // The queue's bound holds trivially for an agent that kept up; the back-pressure is shown
        // only where the queue filled and reading paused. Which agents fall behind varies from run
        // to run (all three, or one of them, on 2 shared cores), so one is asked for, not each.
        "runs where no agent's evapi reading paused (back-pressure not exercised)": pauses.some((p) => p.n > 0) ? 0 : 1,
        "registrar event queue samples that could not be read": Object.values(queueSamples.failed).reduce((a, b) => a + b, 0),
        ...calFloor.zeroes,
        ...stormFloor.zeroes,
      },
      info: {
        "cluster capacity (REGISTER/s)": cal.perSecond,
        "storm offered (REGISTER/s)": perNode * c.nodes.length,
        "storm answered (REGISTER/s)": Math.round(answered.acked / answered.seconds),
        "agent RSS before the storm (MB)": Object.entries(before).map(([id, mb]) => `${id} ${mb}`).join(", "),
        "peak agent RSS (MB)": Object.entries(peaks).map(([id, mb]) => `${id} ${mb}`).join(", "),
        [`peak registrar events queued (sampled; bound ${EVENT_QUEUE})`]: Object.entries(queuePeaks).map(([id, q]) => `${id} ${q}`).join(", "),
        "evapi reading paused (times)": pauses.map((p) => `${p.id} ${p.n}`).join(", "),
        "registrar event queue samples taken": Object.entries(queueSamples.taken).map(([id, n]) => `${id} ${n}`).join(", "),
        ...calFloor.info,
        ...stormFloor.info,
      },
    };
  } finally {
    await c.close();
  }
}

export const STORM_DRILLS: readonly Drill[] = [
  { name: "register-storm", title: "REGISTER storm at twice the rate the cluster answers, with alias churn", run: runStorm },
];
