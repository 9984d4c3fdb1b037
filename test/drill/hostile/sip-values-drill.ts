/**
 * The `sip-values` drill: SIP values full of quotes, backslashes, SQL, unicode, RTL marks, `%00`
 * and control characters survive the whole way byte for byte, or are refused at the door.
 *
 * n1 (usrloc db_mode 0) takes them: bindings and aliases through its API, and a REGISTER through
 * sipp (user agent, Call-ID and contact parameters). n2's Kamailio keeps usrloc in SQLite and n3's
 * in PostgreSQL, both db_mode 3 (every lookup reads the table), with the agents' database
 * fallback configured. Phase A goes through jsonrpcs: n2/n3's agents write with ul.add, Kamailio
 * stores the rows. Phase B goes through the fallback: n2/n3's FIFOs are moved away, the agents
 * write the rows themselves, then the FIFOs come back and Kamailio reads those rows. Each value
 * is compared exactly in n2/n3's journals, in Kamailio (ul.lookup), and in the raw table rows.
 * ul.add cannot set a Call-ID or user agent (kamailio-5.6.md §2.1), so those are compared in the
 * journals, and the user agent in the rows the fallback wrote too, not in what phase A's ul.add
 * left. The fallback's rows carry ul.add's Call-ID on purpose (the agent's mark on what it wrote),
 * which is checked instead.
 * Values with a NUL or a lone surrogate, which jsonrpcs would store changed, must be refused.
 */
import { renameSync } from "node:fs";
import { join } from "node:path";
import Database from "better-sqlite3";
import type { Alias, Location } from "../../../agent/contract/records.js";
import { waitFor } from "../../support/agent-process.js";
import { kamailioDbCfg } from "../../support/kamailio-cfg.js";
import type { ClusterNode } from "../../support/kamailio-cluster.js";
import { createKamailioPostgres, createKamailioSqlite } from "../../support/kamailio-schema.js";
import { startPostgres, type PostgresProcess } from "../../support/postgres-process.js";
import { listAll, startDrillCluster, type DrillCluster } from "../drill-cluster.js";
import type { DrillContext, DrillResult } from "../drill.js";
import { checkJournal, checkKamailio, checkRows, convergeOnTables, publish, registerHostile, waitForJournal, type Row, type Tables } from "./sip-values-checks.js";
import { DOMAIN, HOSTILE_TEXTS, Mismatches, UNSTORABLE_TEXTS, aliasesFor, bindingsFor } from "./sip-values.js";

const COLUMNS = "username, domain, contact, path, received, callid, user_agent, instance";

function sqliteTables(path: string): Tables {
  return {
    async rows(table) {
      const db = new Database(path, { readonly: true, fileMustExist: true });
      try {
        return db.prepare(`SELECT ${COLUMNS} FROM ${table}`).all() as Row[];
      } finally {
        db.close();
      }
    },
  };
}

function postgresTables(pg: PostgresProcess): Tables {
  return { rows: (table) => pg.query(`SELECT ${COLUMNS} FROM ${table}`, [], "kamailio") };
}

export async function runSipValuesDrill(ctx: DrillContext): Promise<DrillResult> {
  const pg = await startPostgres();
  let c: DrillCluster | null = null;
  try {
    const pgUrl = await createKamailioPostgres(await pg.createDatabase("kamailio"));
    const sqlitePath = createKamailioSqlite(join(ctx.dir, "n2-kamailio.db"));
    const sqliteUrl = `sqlite://${sqlitePath}`;
    const fallback = (url: string) => ({
      kamailio: { extraCfg: kamailioDbCfg({ url, mode: 3 }) },
      // FIFO only, so moving the FIFO away cuts jsonrpcs off; no periodic reconcile (db_mode 3's
      // ul.dump is always empty, so it would rewrite every binding with ul.add's Call-ID).
      agentKamailio: { dgram: null, db: { url, dbMode: 3 }, timeoutMs: 1000, reconcileIntervalSec: 0 },
    });
    c = await startDrillCluster({ dir: join(ctx.dir, "cluster"), node: (i) => (i === 1 ? fallback(sqliteUrl) : i === 2 ? fallback(pgUrl) : {}) });
    return await drill(c, { n2: sqliteTables(sqlitePath), n3: postgresTables(pg) }, ctx);
  } finally {
    await c?.close();
    await pg.close();
  }
}

async function drill(c: DrillCluster, tables: Record<string, Tables>, ctx: DrillContext): Promise<DrillResult> {
  const [n1, n2, n3] = [c.node("n1"), c.node("n2"), c.node("n3")];
  const copies = ctx.short ? 1 : 3;
  const did: string[] = [];
  const say = (line: string) => {
    did.push(line);
    ctx.log(line);
  };
  const journal = new Mismatches();
  const viaRpc = new Mismatches();
  const rows = { n2: new Mismatches(), n3: new Mismatches() };
  const readBack = new Mismatches();

  // ---- refused at the door ------------------------------------------------------------------
  const refusal = await refuseUnstorable(n1);
  say(`${refusal.tried} values with a NUL or a lone surrogate offered to n1's API: ${refusal.tried - refusal.accepted} refused with "${refusal.message}"`);

  // ---- phase A: through jsonrpcs ------------------------------------------------------------
  const a = { bindings: bindingsFor("a", copies), aliases: aliasesFor("a") };
  await publish(c, n1, a.bindings, a.aliases);
  const reg = await registerHostile(c, n1, ctx);
  say(`phase A: ${a.bindings.length} bindings and ${a.aliases.length} aliases published on n1 with ${HOSTILE_TEXTS.length} hostile strings in user agent, Call-ID, path, received, instance, contact parameters and alias targets; 1 REGISTER through sipp with them in User-Agent, Call-ID and Contact`);
  for (const n of [n2, n3]) {
    await waitForJournal(n, [...a.bindings, reg], a.aliases);
    await checkJournal(n, [...a.bindings, reg], a.aliases, journal);
    await checkKamailio(n, [...a.bindings, reg], a.aliases, viaRpc, { full: false });
    await checkRows(n.id, tables[n.id]!, [...a.bindings, reg], a.aliases, rows[n.id as "n2" | "n3"], { full: false });
  }
  say(`phase A read back from n2's and n3's journals, their Kamailio (ul.lookup over the FIFO) and the rows Kamailio wrote (SQLite on n2, PostgreSQL on n3)`);

  // ---- phase B: through the agents' database fallback ---------------------------------------
  const dbWritesBefore = await Promise.all([n2, n3].map((n) => n.agent.metric("locmesh_kamailio_writes_total", { route: "database" })));
  for (const n of [n2, n3]) renameSync(n.kamailio.fifoPath, `${n.kamailio.fifoPath}.away`);
  const b = { bindings: bindingsFor("b", copies), aliases: aliasesFor("b") };
  await publish(c, n1, b.bindings, b.aliases);
  for (const n of [n2, n3]) {
    await waitFor(`${n.id}'s fallback rows`, async () => (await tables[n.id]!.rows("location")).filter((r) => String(r["username"]).startsWith("dsvb")).length >= b.bindings.length, 30_000, 200);
    await waitFor(`${n.id}'s fallback alias rows`, async () => (await tables[n.id]!.rows("aliases")).filter((r) => String(r["username"]).startsWith("dsvb")).length >= b.aliases.length, 30_000, 200);
  }
  const dbWrites = await Promise.all([n2, n3].map(async (n, i) => (await n.agent.metric("locmesh_kamailio_writes_total", { route: "database" })) - dbWritesBefore[i]!));
  for (const n of [n2, n3]) {
    await checkJournal(n, b.bindings, b.aliases, journal);
    await checkRows(n.id, tables[n.id]!, b.bindings, b.aliases, rows[n.id as "n2" | "n3"], { full: true });
  }
  for (const n of [n2, n3]) renameSync(`${n.kamailio.fifoPath}.away`, n.kamailio.fifoPath);
  // Kamailio (db_mode 3) reads the rows the fallback wrote: every field it keeps comes back exact.
  for (const n of [n2, n3]) await checkKamailio(n, b.bindings, b.aliases, readBack, { full: true });
  say(`phase B: n2's and n3's FIFOs moved away; ${b.bindings.length} bindings and ${b.aliases.length} aliases published on n1 went into SQLite and PostgreSQL through the agents' fallback (${dbWrites.join(" and ")} database writes), then the FIFOs came back and their Kamailio read those rows`);
  for (const e of [...journal.examples, ...viaRpc.examples, ...rows.n2.examples, ...rows.n3.examples, ...readBack.examples, ...refusal.examples]) say(`  ! ${e}`);

  const { verdict, seconds } = await convergeOnTables(c, tables);
  return {
    did,
    traffic: null,
    atRisk: 0,
    verdict,
    convergeSec: seconds,
    zeroes: {
      "values changed in n2/n3 journals": journal.count,
      "values changed through jsonrpcs (ul.lookup)": viaRpc.count,
      "values changed in SQLite rows (n2)": rows.n2.count,
      "values changed in PostgreSQL rows (n3)": rows.n3.count,
      "values changed when Kamailio read the fallback's rows": readBack.count,
      "NUL / lone-surrogate values accepted": refusal.accepted,
      "fallback nodes that did not write through the database": dbWrites.filter((n) => n === 0).length,
    },
    info: {
      "writes acknowledged (bindings / aliases)": `${c.ledger.count("acked", "loc")} / ${c.ledger.count("acked", "alias")}`,
      "hostile strings": HOSTILE_TEXTS.length,
      "fields compared (journal / jsonrpcs / SQLite / PostgreSQL / read back)": `${journal.compared} / ${viaRpc.compared} / ${rows.n2.compared} / ${rows.n3.compared} / ${readBack.compared}`,
    },
  };
}

async function refuseUnstorable(n1: ClusterNode): Promise<{ tried: number; accepted: number; message: string; examples: string[] }> {
  let tried = 0;
  let accepted = 0;
  let message = "";
  const examples: string[] = [];
  const attempt = async (method: string, params: unknown, what: string) => {
    tried++;
    const err = await n1.agent.call(method, params).then(() => null, (e: Error) => e);
    if (err === null) {
      accepted++;
      examples.push(`accepted ${what}`);
    } else message ||= err.message;
  };
  for (const [i, t] of UNSTORABLE_TEXTS.entries()) {
    const base = { aor: `sip:dsvnul${i}@${DOMAIN}`, contact: `sip:dsvnul${i}@192.0.2.99`, expires: 0 };
    for (const field of ["userAgent", "callid", "path", "received", "instance"] as const) {
      await attempt("location.publish", { edits: [{ op: "upsert", binding: { ...base, [field]: t } }] }, `${field} ${JSON.stringify(t)}`);
    }
    await attempt("location.publish", { edits: [{ op: "upsert", binding: { ...base, contact: `sip:dsvnul${i}@h;x=${t}` } }] }, `contact parameter ${JSON.stringify(t)}`);
    await attempt("alias.set", { alias: `sip:dsvnul${i}@${DOMAIN}`, target: `sip:t@${DOMAIN};x=${t}` }, `alias target ${JSON.stringify(t)}`);
  }
  // Nothing of it may have been stored anywhere.
  const stored = (await listAll<Location>(n1.agent, "location.list")).filter((l) => l.aor.startsWith("dsvnul")).length + (await listAll<Alias>(n1.agent, "alias.list")).filter((a) => a.alias.startsWith("dsvnul")).length;
  accepted = Math.max(accepted, stored);
  return { tried, accepted, message: message.slice(0, 140), examples };
}
