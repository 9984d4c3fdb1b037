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
import { unstorable } from "../../../agent/contract/sip-uri.js";
import { waitFor } from "../../support/agent-process.js";
import { kamailioDbCfg } from "../../support/kamailio-cfg.js";
import type { ClusterNode } from "../../support/kamailio-cluster.js";
import { createKamailioPostgres, createKamailioSqlite } from "../../support/kamailio-schema.js";
import { startPostgres, type PostgresProcess } from "../../support/postgres-process.js";
import { listAll, startDrillCluster, type DrillCluster } from "../drill-cluster.js";
import type { DrillContext, DrillResult } from "../drill.js";
import { checkJournal, checkKamailio, checkRows, convergeOnTables, publish, registerHostile, waitForJournal, type Row, type Tables } from "./sip-values-checks.js";
import { DOMAIN, HOSTILE_TEXTS, Mismatches, UNSTORABLE_TEXTS, aliasesFor, bindingsFor, uriSafe } from "./sip-values.js";

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
  const refusal = await refuseUnstorable(c, n1);
  say(`${refusal.tried} values with a NUL or a lone surrogate offered to n1's API, each after the same call with the value made storable (${refusal.tried - refusal.controlsRefused} of those taken): ${refusal.tried - refusal.accepted} refused, ${refusal.unclear} of them without naming the field and the reason; e.g. "${refusal.message}"`);

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
      "NUL / lone-surrogate refusals not naming the field and the reason": refusal.unclear,
      "storable twins of those calls refused (the call was wrong, not the value)": refusal.controlsRefused,
      "fallback nodes that did not write through the database": dbWrites.filter((n) => n === 0).length,
    },
    info: {
      "writes acknowledged (bindings / aliases)": `${c.ledger.count("acked", "loc")} / ${c.ledger.count("acked", "alias")}`,
      "hostile strings": HOSTILE_TEXTS.length,
      "fields compared (journal / jsonrpcs / SQLite / PostgreSQL / read back)": `${journal.compared} / ${viaRpc.compared} / ${rows.n2.compared} / ${rows.n3.compared} / ${readBack.compared}`,
    },
  };
}

/** `t` without what Kamailio cannot store (NUL, lone surrogates): the storable twin of a value. */
const storable = (t: string): string => t.split("\u0000").join("").replace(/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g, "");

/** What a refusal of `t` must say (sip-uri.ts unstorable()). */
const reason = (t: string): RegExp => (t.includes("\u0000") ? /contains a NUL character/ : /contains a lone UTF-16 surrogate/);

interface Refusals {
  tried: number;
  accepted: number;
  /** Refusals that did not name the field, or did not say it was the NUL or the surrogate. */
  unclear: number;
  /** The same calls with the value made storable that were refused: the call itself was wrong. */
  controlsRefused: number;
  message: string;
  examples: string[];
}

/**
 * Each unstorable value goes in one field of an otherwise good call, and the same call with the
 * value made storable goes first: it must be taken (it is recorded in the ledger), so the refusal
 * that follows can only be the value's doing, and the refusal must say so, naming the field. Any
 * error at all counted as a refusal before, a call refused for something else included.
 */
async function refuseUnstorable(c: DrillCluster, n1: ClusterNode): Promise<Refusals> {
  const r: Refusals = { tried: 0, accepted: 0, unclear: 0, controlsRefused: 0, message: "", examples: [] };
  const note = (e: string) => {
    if (r.examples.length < 6) r.examples.push(e);
  };
  const attempt = async (o: { method: string; field: string; what: string; t: string; params: (v: string) => unknown; record: (v: string, sentMs: number) => void }) => {
    const clean = storable(o.t);
    const sentMs = Date.now();
    const control = await n1.agent.call(o.method, o.params(clean)).then(() => null, (e: Error) => e);
    if (control === null) o.record(clean, sentMs);
    else {
      r.controlsRefused++;
      note(`refused the storable ${o.what} ${JSON.stringify(clean)}: ${control.message}`);
    }
    r.tried++;
    const err = await n1.agent.call(o.method, o.params(o.t)).then(() => null, (e: Error) => e);
    if (err === null) {
      r.accepted++;
      note(`accepted ${o.what} ${JSON.stringify(o.t)}`);
      return;
    }
    r.message ||= err.message;
    if (!err.message.includes(`${o.field}: `) || !reason(o.t).test(err.message)) {
      r.unclear++;
      note(`refused ${o.what} ${JSON.stringify(o.t)} with ${JSON.stringify(err.message.slice(0, 200))}`);
    }
  };
  for (const [i, t] of UNSTORABLE_TEXTS.entries()) {
    const aor = `dsvnul${i}@${DOMAIN}`;
    const base = { aor: `sip:${aor}`, contact: `sip:dsvnul${i}@192.0.2.99`, expires: 0 };
    const binding = (contact: string) => (_v: string, sentMs: number) =>
      c.ledger.add({ kind: "loc", key: aor, sub: contact, value: "present", node: n1.id, sentMs, doneMs: Date.now(), outcome: "acked" });
    const publish = (b: Record<string, unknown>) => ({ edits: [{ op: "upsert", binding: { ...base, ...b } }] });
    // A Path or received must hold a URI (sip-uri.ts checkPath, checkReceived): the value goes into one.
    const within: Record<string, (v: string) => string> = {
      path: (v) => `<sip:edge.example.net;lr;x=${uriSafe(v)}>`, received: (v) => `sip:198.51.100.7:5060;x=${uriSafe(v)}`,
    };
    for (const field of ["userAgent", "callid", "path", "received", "instance"] as const) {
      const value = within[field] ?? ((v: string) => v);
      await attempt({ method: "location.publish", field, what: field, t, params: (v) => publish({ [field]: value(v) }), record: binding(base.contact) });
    }
    // URIs hold no spaces or quotes: those go, or the call would be refused for them.
    const param = uriSafe(t);
    await attempt({
      method: "location.publish", field: "contact", what: "contact parameter", t: param,
      params: (v) => publish({ contact: `sip:dsvnul${i}@h;x=ok${v}` }),
      record: (v, sentMs) => binding(`sip:dsvnul${i}@h;x=ok${v}`)(v, sentMs),
    });
    await attempt({
      method: "alias.set", field: "target", what: "alias target", t: param,
      params: (v) => ({ alias: `sip:${aor}`, target: `sip:t@${DOMAIN};x=ok${v}` }),
      record: (v, sentMs) => c.ledger.add({ kind: "alias", key: aor, sub: "", value: `sip:t@${DOMAIN};x=ok${v}`, node: n1.id, sentMs, doneMs: Date.now(), outcome: "acked" }),
    });
  }
  // Nothing unstorable may have been stored anywhere (the storable twins are).
  const locs = (await listAll<Location>(n1.agent, "location.list")).filter((l) => l.aor.startsWith("dsvnul"));
  const aliases = (await listAll<Alias>(n1.agent, "alias.list")).filter((a) => a.alias.startsWith("dsvnul"));
  const stored = locs.filter((l) => [l.contact, l.userAgent, l.callid, l.path, l.received, l.instance].some((v) => unstorable(v) !== null)).length + aliases.filter((a) => unstorable(a.target) !== null).length;
  r.accepted = Math.max(r.accepted, stored);
  r.message = r.message.slice(0, 140);
  return r;
}
