/**
 * Writer drills: the ways from an agent into its Kamailio fail under traffic. Node n2's Kamailio
 * keeps usrloc in a real PostgreSQL and its agent has the database fallback (kamailio-db-node.ts).
 *
 * - fifo-removed (db_mode 3): the jsonrpcs FIFO disappears; the agent must write straight into
 *   Kamailio's tables, which a db_mode 3 Kamailio routes with at once; then the FIFO is back.
 * - db-stopped (db_mode 1): PostgreSQL stops while the FIFO works. Kamailio's own write-through
 *   fails, so `ul.add` answers 500 "Can't insert contact" and the agent's database path is down
 *   too: the writes must stay pending, not be skipped, and go in once PostgreSQL is back.
 * - fifo-and-db (db_mode 1): both at once.
 * A Kamailio answers REGISTERs that add a contact with 500 while its database is down: sipp
 * records them as not acknowledged, so any outcome is allowed as long as every node agrees.
 *
 * Why not db_mode 3 while the database is down: Kamailio 5.6 itself loses acknowledged writes
 * there, whatever the agent does (seen in this drill, README "Attach to your Kamailio"): it answers
 * 200 to a de-registration it cannot carry out, and a REGISTER whose AoR could not be loaded and
 * whose insert failed can make registrar's error path delete the whole AoR from the table
 * (insert_contacts → delete_urecord) once the database answers again.
 */
import { renameSync } from "node:fs";
import type { ClusterStatus } from "../../../agent/contract/cluster-status.js";
import { sleep, waitFor } from "../../support/agent-process.js";
import type { DrillCluster } from "../drill-cluster.js";
import { runTrafficDrill, type Drill, type DrillContext, type DrillResult, type FaultReport } from "../drill.js";
import { DB_NODE, startKamailioDbNode, watchWriter, type KamailioDbNode } from "../kamailio-db-node.js";

const traffic = (short: boolean) => ({ registerRate: short ? 40 : 80, seconds: short ? 14 : 30, aliasRate: short ? 10 : 20 });
const lead = (short: boolean) => (short ? 3 : 8);
const faultMs = (short: boolean) => (short ? 6000 : 12_000);

const brief = (s: string | null): string => (s === null ? "none" : s.length > 200 ? `${s.slice(0, 200)}…` : s);
const status = (c: DrillCluster, id: string) => c.node(id).agent.call<ClusterStatus>("cluster.status");

function removeFifo(c: DrillCluster): () => void {
  const fifo = c.node(DB_NODE).kamailio.fifoPath;
  renameSync(fifo, `${fifo}.away`);
  return () => renameSync(`${fifo}.away`, fifo);
}

/**
 * Figures read once every view matched: writes Kamailio refused outright (the agent skips those,
 * so a fault must never produce one) and writes still pending anywhere.
 */
async function endFigures(c: DrillCluster, zeroes: Record<string, number>): Promise<void> {
  let rejected = 0;
  let pending = 0;
  for (const n of c.nodes) {
    const s = await status(c, n.id);
    rejected += s.kamailio?.rejected ?? 0;
    pending += s.pendingWrites;
  }
  zeroes["Kamailio writes refused and skipped"] = rejected;
  zeroes["Kamailio writes still pending at the end"] = pending;
}

/** Runs a drill on a cluster whose n2 sits on its own PostgreSQL; PostgreSQL goes last. */
async function withDbNode(ctx: DrillContext, mode: 1 | 3, fault: (c: DrillCluster, db: KamailioDbNode) => Promise<FaultReport>): Promise<DrillResult> {
  const db = await startKamailioDbNode(mode);
  ctx.log(`${DB_NODE}'s Kamailio keeps usrloc in PostgreSQL (db_mode ${mode}); its agent writes over the FIFO only (no datagram socket), with the database fallback`);
  const zeroes: Record<string, number> = {};
  try {
    return await runTrafficDrill(ctx, {
      cluster: db.cluster,
      traffic,
      leadSec: lead,
      async fault(c) {
        const f = await fault(c, db);
        // The same object is filled with the end figures in cleanup(), after the check.
        return { ...f, zeroes: Object.assign(zeroes, f.zeroes) };
      },
      cleanup: (c) => endFigures(c, zeroes),
    });
  } finally {
    // The agent and Kamailio are stopped by now; restart PostgreSQL if a failed drill left it down.
    await db.close();
  }
}

export const WRITER_DRILLS: readonly Drill[] = [
  {
    name: "fifo-removed",
    title: "a Kamailio's jsonrpcs FIFO disappears: its agent writes into Kamailio's tables (db_mode 3)",
    run: (ctx) =>
      withDbNode(ctx, 3, async (c) => {
        const n2 = c.node(DB_NODE);
        const viaDbBefore = await n2.agent.metric("locmesh_kamailio_writes_total", { route: "database" });
        const watch = watchWriter(n2);
        const restore = removeFifo(c);
        await sleep(faultMs(ctx.short));
        restore();
        const viaDb = (await n2.agent.metric("locmesh_kamailio_writes_total", { route: "database" })) - viaDbBefore;
        await waitFor(`${DB_NODE}'s agent to see its Kamailio again`, async () => (await status(c, DB_NODE)).kamailio?.up, 30_000, 200);
        const seen = await watch.stop();
        return {
          did: [
            `removed ${DB_NODE}'s jsonrpcs FIFO under traffic for ${faultMs(ctx.short) / 1000} s, then put it back`,
            `${DB_NODE}'s agent wrote ${viaDb} changes straight into Kamailio's PostgreSQL tables meanwhile`,
          ],
          info: { "writes through the database during the fault": viaDb },
          zeroes: { "fault without effect (no write went to the database)": viaDb > 0 && seen.sawDatabase ? 0 : 1 },
        };
      }),
  },
  {
    name: "db-stopped",
    title: "a Kamailio's PostgreSQL stops (db_mode 1, FIFO working): writes wait, then go in",
    run: (ctx) =>
      withDbNode(ctx, 1, async (c, db) => {
        const watch = watchWriter(c.node(DB_NODE));
        await db.pg.stop();
        await sleep(faultMs(ctx.short));
        await db.pg.start();
        const seen = await watch.stop();
        return {
          did: [
            `stopped ${DB_NODE}'s PostgreSQL under traffic for ${faultMs(ctx.short) / 1000} s, then started it again`,
            `${DB_NODE}'s agent held up to ${seen.maxPending} writes pending (last error: ${brief(seen.lastError)})`,
          ],
          info: { "most writes pending during the fault": seen.maxPending },
          zeroes: { "fault without effect (writer never pending)": seen.sawPending ? 0 : 1 },
        };
      }),
  },
  {
    name: "fifo-and-db",
    title: "a Kamailio's FIFO and its PostgreSQL both gone (db_mode 1): writes wait, then go in",
    run: (ctx) =>
      withDbNode(ctx, 1, async (c, db) => {
        const watch = watchWriter(c.node(DB_NODE));
        const restore = removeFifo(c);
        await db.pg.stop();
        await sleep(faultMs(ctx.short));
        await db.pg.start();
        restore();
        const seen = await watch.stop();
        return {
          did: [
            `removed ${DB_NODE}'s FIFO and stopped its PostgreSQL under traffic for ${faultMs(ctx.short) / 1000} s, then restored both`,
            `${DB_NODE}'s agent held up to ${seen.maxPending} writes pending (last error: ${brief(seen.lastError)})`,
          ],
          info: { "most writes pending during the fault": seen.maxPending },
          zeroes: { "fault without effect (writer never pending)": seen.sawPending ? 0 : 1 },
        };
      }),
  },
];
