/**
 * disk-full: the disk under one agent's journal fills up under traffic. n2's data dir is a 16 MiB
 * tmpfs (the drill runs as root); a filler file takes every free byte, later it is deleted.
 *
 * What must hold: the agent keeps running; it refuses new writes with an error that says the disk
 * is full and what to do, and a refused write changes nothing (the ledger counts refusals as
 * "failed", so any trace of one is an "extra"); reads keep working; once space returns it takes
 * writes again by itself, and learns the REGISTERs its Kamailio accepted meanwhile (their events
 * could not be journaled: it looks their AoRs up in Kamailio once the journal takes writes again;
 * n2 runs no periodic ul.dump reconcile here, as above kamailio.reconcileMaxContacts). Afterwards
 * the journal passes SQLite's `PRAGMA integrity_check`.
 */
import { execFileSync } from "node:child_process";
import { closeSync, mkdirSync, openSync, rmSync, writeSync } from "node:fs";
import { join } from "node:path";
import Database from "better-sqlite3";
import type { ClusterStatus } from "../../../agent/contract/cluster-status.js";
import { RpcCallError, sleep } from "../../support/agent-process.js";
import type { ClusterNode } from "../../support/kamailio-cluster.js";
import { TEST_DOMAIN, type DrillCluster } from "../drill-cluster.js";
import { runTrafficDrill, type Drill, type DrillResult, type FaultReport } from "../drill.js";

const NODE = "n2";
const traffic = (short: boolean) => ({ registerRate: short ? 40 : 80, seconds: short ? 16 : 30, aliasRate: short ? 10 : 20 });
const lead = (short: boolean) => (short ? 3 : 8);
/** How long the disk stays full once the agent has refused a write. */
const holdMs = (short: boolean) => (short ? 4000 : 10_000);
/** What the refusal must say: what happened, and what to do. */
const CLEAR_REFUSAL = /disk.*full.*free/i;

function mountTmpfs(dir: string): void {
  mkdirSync(dir, { recursive: true });
  execFileSync("mount", ["-t", "tmpfs", "-o", "size=16m", "tmpfs", dir]);
}

function unmount(dir: string): void {
  try {
    execFileSync("umount", [dir]);
  } catch {
    // Something still holds a file there: detach it now, it goes once released.
    execFileSync("umount", ["-l", dir]);
  }
}

/** Writes zeros until the filesystem says ENOSPC; returns the bytes written. */
function fillDisk(path: string): number {
  const fd = openSync(path, "w");
  let written = 0;
  try {
    for (const size of [1 << 20, 1 << 12, 1]) {
      const chunk = Buffer.alloc(size);
      for (;;) {
        try {
          written += writeSync(fd, chunk);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === "ENOSPC") break;
          throw err;
        }
      }
    }
  } finally {
    closeSync(fd);
  }
  return written;
}

interface Probe {
  ok: boolean;
  code?: number;
  message?: string;
}

/** One alias.set on the node, recorded in the ledger like any other alias write. */
async function probe(c: DrillCluster, n: ClusterNode, i: number): Promise<Probe> {
  const alias = `dxfull${i}@${TEST_DOMAIN}`;
  const target = `sip:dxt${i}@${TEST_DOMAIN}`;
  const sentMs = Date.now();
  try {
    await n.agent.call("alias.set", { alias: `sip:${alias}`, target });
    c.ledger.add({ kind: "alias", key: alias, sub: "", value: target, node: n.id, sentMs, doneMs: Date.now(), outcome: "acked" });
    return { ok: true };
  } catch (err) {
    const definite = err instanceof RpcCallError;
    c.ledger.add({ kind: "alias", key: alias, sub: "", value: target, node: n.id, sentMs, doneMs: definite ? Date.now() : Infinity, outcome: definite ? "failed" : "doubt" });
    return definite ? { ok: false, code: err.code, message: err.message } : { ok: false, message: (err as Error).message };
  }
}

/** Reads the API serves from the journal; returns how many failed. */
async function failedReads(n: ClusterNode): Promise<number> {
  const reads = [
    () => n.agent.call("location.list", { limit: 50 }),
    () => n.agent.call("alias.list", { limit: 50 }),
    () => n.agent.call("location.lookup", { aor: `dn1u0@${TEST_DOMAIN}` }),
    () => n.agent.call("cluster.status"),
  ];
  let failed = 0;
  for (const read of reads) await read().catch(() => failed++);
  return failed;
}

function integrityErrors(journal: string): number {
  const db = new Database(journal, { readonly: true, fileMustExist: true });
  try {
    const rows = db.pragma("integrity_check") as { integrity_check: string }[];
    return rows.length === 1 && rows[0]!.integrity_check === "ok" ? 0 : rows.length;
  } finally {
    db.close();
  }
}

type DiskFullReport = FaultReport & { learning: { learnedBefore: number; fullMs: { from: number; to: number } } };

async function fault(c: DrillCluster, dataDir: string, short: boolean, alive: () => boolean): Promise<DiskFullReport> {
  const n = c.node(NODE);
  const filler = join(dataDir, "filler");
  const learnedBefore = await learnedFromKamailio(n);
  const filled = fillDisk(filler);
  const fullAt = Date.now();
  let i = 0;
  let refusal: Probe | null = null;
  let acceptedWhileFull = 0;
  while (refusal === null && Date.now() - fullAt < 60_000) {
    const p = await probe(c, n, i++);
    if (p.ok) acceptedWhileFull++;
    else refusal = p;
    if (refusal === null) await sleep(100);
  }
  if (refusal === null) throw new Error(`${NODE}'s agent took every write for 60 s on a full disk; the fault did not bite`);
  const refusedAfterMs = Date.now() - fullAt;
  // The refused probe must have left no trace.
  const trace = (await n.agent.call<{ items: unknown[] }>("alias.list", { search: `dxfull${i - 1}@`, limit: 10 })).items.length;
  let readFailures = await failedReads(n);
  let refusals = 1;
  let unclear = CLEAR_REFUSAL.test(refusal.message ?? "") && refusal.code === -32001 ? 0 : 1;
  const holdUntil = Date.now() + holdMs(short);
  while (Date.now() < holdUntil) {
    await sleep(500);
    const p = await probe(c, n, i++);
    if (!p.ok) {
      refusals++;
      if (!(CLEAR_REFUSAL.test(p.message ?? "") && p.code === -32001)) unclear++;
    }
    readFailures += await failedReads(n);
  }
  rmSync(filler);
  const freedAt = Date.now();
  let resumed = false;
  while (!resumed && Date.now() - freedAt < 30_000) {
    resumed = (await probe(c, n, i++)).ok;
    if (!resumed) await sleep(200);
  }
  const fullMs = { from: fullAt + refusedAfterMs, to: freedAt };
  return {
    did: [
      `filled ${NODE}'s journal disk (16 MiB tmpfs, ${(filled / 2 ** 20).toFixed(1)} MiB of filler) under traffic; the agent refused its first write ${(refusedAfterMs / 1000).toFixed(1)} s later (${acceptedWhileFull} taken before), with: ${refusal.code} ${refusal.message}`,
      `kept the disk full ${holdMs(short) / 1000} s more: ${refusals} probe writes refused in all, reads answered throughout`,
      resumed ? `deleted the filler; writes resumed after ${((Date.now() - freedAt) / 1000).toFixed(1)} s` : "deleted the filler; writes did NOT resume within 30 s",
    ],
    info: { "probe writes refused while full": refusals },
    zeroes: {
      "agent exits": alive() ? 0 : 1,
      "refusals without a clear disk-full error": unclear,
      "refused writes that left a trace": trace,
      "failed reads while full": readFailures,
      "writes still refused after space returned": resumed ? 0 : 1,
    },
    learning: { learnedBefore, fullMs },
  };
}

/**
 * Bindings the agent learned by looking up, in its Kamailio, the AoRs of the events it could not
 * journal, once the journal took writes again (source "retry"). n2 runs no periodic reconcile in
 * this drill, so nothing else learns them.
 */
const learnedFromKamailio = (n: ClusterNode): Promise<number> => n.agent.metric("locmesh_kamailio_learned_total", { source: "retry" });

/**
 * Once every view matched: how many REGISTERs the node's Kamailio acknowledged while its journal
 * refused writes, how many registrar events the agent could not journal, and how many bindings it
 * learned from its Kamailio. The check above already proved every acknowledged REGISTER is in
 * every journal; these say the learning path was really taken.
 */
async function learnedFigures(c: DrillCluster, l: { learnedBefore: number; fullMs: { from: number; to: number } }): Promise<{ info: Record<string, number>; untested: number }> {
  const n = c.node(NODE);
  const s = await n.agent.call<ClusterStatus>("cluster.status");
  const learned = (await learnedFromKamailio(n)) - l.learnedBefore;
  const ackedWhileFull = c.ledger.all.filter((o) => o.node === NODE && o.kind === "loc" && o.outcome === "acked" && o.doneMs >= l.fullMs.from && o.doneMs <= l.fullMs.to).length;
  const failedEvents = s.kamailio?.events?.failed ?? 0;
  return {
    info: { "REGISTERs acknowledged by its Kamailio while the journal was full": ackedWhileFull, "registrar events it could not journal": failedEvents, "bindings it learned by looking up the failed events' AoRs in its Kamailio": learned },
    untested: failedEvents > 0 && learned > 0 ? 0 : 1,
  };
}

export const DISK_FULL_DRILLS: readonly Drill[] = [
  {
    name: "disk-full",
    title: "an agent's journal disk fills up under traffic, then space returns",
    async run(ctx): Promise<DrillResult> {
      const dataDir = join(ctx.dir, `${NODE}-data`);
      mountTmpfs(dataDir);
      ctx.log(`${NODE}'s data dir is a 16 MiB tmpfs at ${dataDir}`);
      try {
        let alive = true;
        const zeroes: Record<string, number> = {};
        const info: Record<string, string | number> = {};
        let learning: DiskFullReport["learning"] | null = null;
        const result = await runTrafficDrill(ctx, {
          // No periodic ul.dump reconcile on n2: what its Kamailio took meanwhile must come back
          // through the failed events' AoRs, as in a table above kamailio.reconcileMaxContacts.
          cluster: { node: (i) => (i === 1 ? { agentConfig: { dataDir }, agentKamailio: { reconcileIntervalSec: 0 } } : {}) },
          traffic,
          leadSec: lead,
          async fault(c) {
            void c.node(NODE).agent.exited.then(() => (alive = false));
            const f = await fault(c, dataDir, ctx.short, () => alive);
            learning = f.learning;
            return { ...f, zeroes: Object.assign(zeroes, f.zeroes), info: Object.assign(info, f.info) };
          },
          // The same objects the report holds: the agent must also have survived the catch-up.
          async cleanup(c) {
            zeroes["agent exits"] = alive ? 0 : 1;
            const l = await learnedFigures(c, learning!);
            Object.assign(info, l.info);
            zeroes["fault without effect (no registrar event refused, or none learned back)"] = l.untested;
          },
        });
        // The cluster is closed now: the journal is at rest.
        zeroes["journal integrity_check errors"] = integrityErrors(join(dataDir, "journal.sqlite"));
        // The result's own figures too (the write floor is added there).
        return { ...result, zeroes: { ...result.zeroes, ...zeroes } };
      } finally {
        unmount(dataDir);
      }
    },
  },
];
