/**
 * kill -9 drills: an agent in the middle of traffic, an agent in the middle of its catch-up, a
 * Kamailio (db_mode 0: it comes back empty and its agent must refill it), and both at once.
 */
import { copyFileSync, existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import type { ClusterStatus } from "../../../agent/contract/cluster-status.js";
import type { VersionVector } from "../../../agent/contract/records.js";
import { sleep, waitFor } from "../../support/agent-process.js";
import type { ClusterNode } from "../../support/kamailio-cluster.js";
import { waitConnected, type DrillCluster, type DrillClusterOptions } from "../drill-cluster.js";
import { runTrafficDrill, type Drill, type FaultReport } from "../drill.js";
import type { Ledger } from "../ledger.js";

const traffic = (short: boolean) => ({ registerRate: short ? 40 : 100, seconds: short ? 12 : 40, aliasRate: short ? 10 : 20 });
const lead = (short: boolean) => (short ? 3 : 10);

/**
 * The 200 OK leaves Kamailio inside save(), before the event reaches the agent. A db_mode 0
 * Kamailio killed in between loses that REGISTER for good (as it would without locmesh): acked
 * writes within this window before the kill are counted as unanswered, and reported.
 */
const KILL_WINDOW_MS = 100;

function killWindow(node: string, killedAtMs: number): (ledger: Ledger) => number {
  // After killedAt only while the SIGKILLs land (a few ms); the window proper is before it.
  return (ledger) => ledger.doubtAckedBetween(node, "loc", killedAtMs - KILL_WINDOW_MS, killedAtMs + 20, `acked as ${node}'s Kamailio was killed`);
}

/** A kill drill: the common traffic and lead, and one fault. */
function killDrill(
  name: string,
  title: string,
  fault: (c: DrillCluster, short: boolean) => Promise<FaultReport>,
  cluster?: Omit<DrillClusterOptions, "dir">,
): Drill {
  return { name, title, run: (ctx) => runTrafficDrill(ctx, { ...(cluster ? { cluster } : {}), traffic, leadSec: lead, fault: (c) => fault(c, ctx.short) }) };
}

/**
 * The catch-up drill's mesh: small batches, and n3's links slowed while it catches up, so that
 * what it missed arrives over a good part of a second rather than in one batch per peer a few
 * milliseconds after it connects; there is then a "middle" to kill it in.
 */
const CATCHUP_BATCH = 20;
const CATCHUP_LINK_DELAY_MS = 150;

/**
 * What a stopped agent's journal holds of each origin, read from a copy of its files (SQLite
 * replays the WAL into the copy; the agent's own files are left as they are for its restart).
 */
function journalVector(n: ClusterNode): VersionVector {
  const data = join(n.agent.spec.dir, "data");
  const copy = mkdtempSync(join(tmpdir(), "locmesh-journal-copy-"));
  try {
    for (const f of ["journal.sqlite", "journal.sqlite-wal"]) if (existsSync(join(data, f))) copyFileSync(join(data, f), join(copy, f));
    const db = new Database(join(copy, "journal.sqlite"), { fileMustExist: true });
    try {
      const rows = db.prepare("SELECT replica, have FROM origins WHERE have > 0").all() as { replica: string; have: number }[];
      return Object.fromEntries(rows.map((r) => [r.replica, r.have]));
    } finally {
      db.close();
    }
  } finally {
    rmSync(copy, { recursive: true, force: true });
  }
}

/** Changes of other origins than `own` that `have` holds beyond `base`, and that it lacks of `want`. */
function progress(have: VersionVector, base: VersionVector, want: VersionVector, own: string): { received: number; behind: number } {
  let received = 0;
  let behind = 0;
  for (const [o, seq] of Object.entries(have)) if (o !== own) received += Math.max(0, seq - (base[o] ?? 0));
  for (const [o, seq] of Object.entries(want)) if (o !== own) behind += Math.max(0, seq - (have[o] ?? 0));
  return { received, behind };
}

const status = (n: ClusterNode) => n.agent.call<ClusterStatus>("cluster.status");

export const KILL_DRILLS: readonly Drill[] = [
  killDrill("kill-agent", "kill -9 of an agent under traffic, restarted after a pause", async (c, short) => {
    const n2 = c.node("n2");
    await n2.agent.kill9();
    await sleep(short ? 2000 : 5000);
    await n2.agent.start();
    await waitConnected(c, 30_000, ["n2"]);
    return { did: [`kill -9 of n2's agent under traffic; restarted after ${short ? 2 : 5} s (its Kamailio kept taking REGISTERs)`] };
  }),
  killDrill("kill-agent-catchup", "kill -9 of an agent in the middle of its catch-up", async (c, short) => {
    const [n3, others] = [c.node("n3"), c.nodes.filter((n) => n.id !== "n3")];
    const own = (await status(n3)).replicaId;
    await n3.agent.kill9();
    const held = journalVector(n3);
    await sleep(short ? 3000 : 8000);
    c.links.delay(["n3"], CATCHUP_LINK_DELAY_MS);
    await n3.agent.start();
    // What n3 has to catch up on: what the others hold now, its own changes aside.
    const want: VersionVector = {};
    for (const n of others) for (const [o, seq] of Object.entries((await status(n)).vv)) want[o] = Math.max(want[o] ?? 0, seq);
    const missed = progress(held, held, want, own).behind;
    // Killed again as soon as some of it has come in (or, too late, once all of it has).
    for (const deadline = Date.now() + 30_000; Date.now() < deadline; await sleep(10)) {
      const p = progress((await status(n3)).vv, held, want, own);
      if (p.received > 0 || p.behind === 0) break;
    }
    await n3.agent.kill9();
    // The journal as the kill left it says whether the kill landed in the catch-up.
    const atKill = progress(journalVector(n3), held, want, own);
    c.links.delay(["n3"], 0);
    await sleep(1000);
    await n3.agent.start();
    await waitConnected(c, 30_000, ["n3"]);
    return {
      did: [
        `kill -9 of n3's agent under traffic; restarted after ${short ? 3 : 8} s, its links slowed by ${CATCHUP_LINK_DELAY_MS} ms each way (batches of ${CATCHUP_BATCH})`,
        `kill -9 again in its catch-up: its journal had taken ${atKill.received} changes from its peers and still lacked ${atKill.behind} of the ${missed} it had missed; restarted 1 s later at full speed`,
      ],
      info: { "changes n3 had missed / journaled of them when killed again": `${missed} / ${missed - atKill.behind}` },
      zeroes: { "kill missed the catch-up (nothing of it journaled yet, or all of it)": atKill.received > 0 && atKill.behind > 0 ? 0 : 1 },
    };
  }, { agentConfig: { mesh: { batchSize: CATCHUP_BATCH } } }),
  killDrill("kill-kamailio", "kill -9 of a Kamailio (db_mode 0: restarts empty) under traffic", async (c, short) => {
    const n2 = c.node("n2");
    const killedAt = Date.now();
    await n2.kamailio.kill9();
    await sleep(short ? 2000 : 5000);
    await n2.kamailio.start();
    // The reload that counts is the one that started after the kill (one ran at startup too).
    const reload = await waitFor("n2's agent to reload its restarted Kamailio", async () => {
      const s = await n2.agent.call<{ kamailio: { reload: { state: string; total: number; rate: number; startedAt: string | null } } | null }>("cluster.status");
      const r = s.kamailio?.reload;
      return r?.state === "done" && r.startedAt !== null && Date.parse(r.startedAt) > killedAt ? r : null;
    }, 60_000, 200);
    return {
      did: [`kill -9 of n2's Kamailio under traffic; started again ${short ? 2 : 5} s later, empty`, `n2's agent put ${reload.total} records back at ${reload.rate}/s`],
      atRisk: killWindow("n2", killedAt),
    };
  }),
  killDrill("kill-both", "kill -9 of a Kamailio and its agent at once, under traffic", async (c, short) => {
    const n1 = c.node("n1");
    const killedAt = Date.now();
    await Promise.all([n1.kamailio.kill9(), n1.agent.kill9()]);
    await sleep(short ? 2000 : 5000);
    await n1.kamailio.start();
    await n1.agent.start();
    await waitConnected(c, 30_000, ["n1"]);
    return {
      did: [`kill -9 of n1's Kamailio and agent together under traffic; both started again ${short ? 2 : 5} s later`],
      atRisk: killWindow("n1", killedAt),
    };
  }),
];
