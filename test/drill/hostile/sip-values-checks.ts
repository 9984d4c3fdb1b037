/**
 * The sip-values drill's writes and read-backs: publishing through n1's API and sipp (each write
 * in the ledger), and reading every value back from a node's journal, its Kamailio (ul.lookup)
 * and the raw rows of Kamailio's database, field by field.
 */
import type { Alias, Location } from "../../../agent/contract/records.js";
import { UL_ADD_CALLID } from "../../../agent/kamailio/registrar-input.js";
import { sleep, waitFor } from "../../support/agent-process.js";
import type { ClusterNode } from "../../support/kamailio-cluster.js";
import { freeUdpPort } from "../../support/ports.js";
import { sippRegister } from "../../support/sipp.js";
import { listAll, type DrillCluster } from "../drill-cluster.js";
import type { DrillContext } from "../drill.js";
import { verify, viewOf, type Verdict, type View } from "../verify.js";
import { DOMAIN, bindingInput, type Mismatches, type PublishedAlias, type PublishedBinding } from "./sip-values.js";

export type Row = Record<string, unknown>;

export interface Tables {
  /** Rows of `table` (location or aliases) as Kamailio's database holds them. */
  rows(table: "location" | "aliases"): Promise<Row[]>;
}

const text = (v: unknown): string => (v === null || v === undefined ? "" : String(v));
const aorOf = (r: Row): string => `${text(r["username"])}@${text(r["domain"])}`;

/** Publishes on n1 through its API; every write goes into the ledger. */
export async function publish(c: DrillCluster, n1: ClusterNode, bindings: readonly PublishedBinding[], aliases: readonly PublishedAlias[]): Promise<void> {
  const sentMs = Date.now();
  await n1.agent.call("location.publish", { edits: bindings.map((b) => ({ op: "upsert", binding: bindingInput(b) })) });
  const doneMs = Date.now();
  for (const b of bindings) c.ledger.add({ kind: "loc", key: b.aor, sub: b.contact, value: "present", node: "n1", sentMs, doneMs, outcome: "acked" });
  for (const a of aliases) {
    const s = Date.now();
    await n1.agent.call("alias.set", { alias: `sip:${a.alias}`, target: a.target });
    c.ledger.add({ kind: "alias", key: a.alias, sub: "", value: a.target, node: "n1", sentMs: s, doneMs: Date.now(), outcome: "acked" });
  }
}

/** One REGISTER to n1's Kamailio with hostile User-Agent, Call-ID and Contact parameters. */
export async function registerHostile(c: DrillCluster, n1: ClusterNode, ctx: DrillContext): Promise<PublishedBinding> {
  const localPort = await freeUdpPort();
  const contact = `sip:dsvreg@127.0.0.1:${localPort};p='x';b=\\;--;e=😀;r=\u200f;n=%00;j={a}`;
  const userAgent = `sipp ' OR 1=1 -- "q" \\ 😀 \u200f %00 é';--`;
  const callid = `dsv'"\\%00-reg@h`;
  const sentMs = Date.now();
  await sippRegister({ dir: ctx.dir, sipPort: n1.kamailio.sipPort, user: "dsvreg", domain: DOMAIN, expires: 3600, callId: callid, userAgent, localPort, contactHeaders: [`<${contact}>`] });
  const b: PublishedBinding = { aor: `dsvreg@${DOMAIN}`, contact, userAgent, callid, path: "", received: "", instance: "" };
  c.ledger.add({ kind: "loc", key: b.aor, sub: b.contact, value: "present", node: "n1", sentMs, doneMs: Date.now(), outcome: "acked" });
  return b;
}

export async function waitForJournal(n: ClusterNode, bindings: readonly PublishedBinding[], aliases: readonly PublishedAlias[]): Promise<void> {
  await waitFor(`${n.id}'s journal to hold every value`, async () => {
    const have = new Set((await listAll<Location>(n.agent, "location.list")).map((l) => `${l.aor} ${l.contact}`));
    const al = new Set((await listAll<Alias>(n.agent, "alias.list")).map((a) => a.alias));
    return bindings.every((b) => have.has(`${b.aor} ${b.contact}`)) && aliases.every((a) => al.has(a.alias));
  }, 30_000, 200);
}

export async function checkJournal(n: ClusterNode, bindings: readonly PublishedBinding[], aliases: readonly PublishedAlias[], m: Mismatches): Promise<void> {
  const locs = new Map((await listAll<Location>(n.agent, "location.list")).map((l) => [`${l.aor} ${l.contact}`, l]));
  for (const b of bindings) {
    const l = locs.get(`${b.aor} ${b.contact}`);
    if (!l) {
      m.missing(`${n.id} journal`, `${b.aor} ${b.contact}`);
      continue;
    }
    for (const f of ["userAgent", "callid", "path", "received", "instance"] as const) m.check(`${n.id} journal ${b.aor}`, f, b[f], l[f]);
  }
  const al = new Map((await listAll<Alias>(n.agent, "alias.list")).map((a) => [a.alias, a.target]));
  for (const a of aliases) m.check(`${n.id} journal alias ${a.alias}`, "target", a.target, al.get(a.alias));
}

/**
 * ul.lookup on the node's Kamailio. `full`: also the fields ul.add cannot set (user agent,
 * instance), for rows the fallback wrote, and their Call-ID, which is ul.add's mark (UL_ADD_CALLID),
 * not the phone's: that is how the agent knows a row it wrote from a phone that registered there.
 */
export async function checkKamailio(n: ClusterNode, bindings: readonly PublishedBinding[], aliases: readonly PublishedAlias[], m: Mismatches, o: { full: boolean }): Promise<void> {
  for (const b of bindings) {
    const got = (await n.lookup(b.aor)).find((x) => x.contact === b.contact);
    if (!got) {
      m.missing(`${n.id} kamailio`, `${b.aor} ${b.contact}`);
      continue;
    }
    const fields = o.full ? (["path", "received", "userAgent", "instance"] as const) : (["path", "received"] as const);
    for (const f of fields) m.check(`${n.id} kamailio ${b.aor}`, f, b[f], got[f]);
    if (o.full) m.check(`${n.id} kamailio ${b.aor}`, "callid", UL_ADD_CALLID, got.callid);
  }
  for (const a of aliases) {
    const got = await n.lookup(a.alias, "aliases");
    m.check(`${n.id} kamailio alias ${a.alias}`, "target", a.target, got.map((x) => x.contact).join(" | "));
  }
}

/** The raw rows. `full`: also user agent, instance and ul.add's Call-ID (rows the agent's fallback wrote). */
export async function checkRows(where: string, t: Tables, bindings: readonly PublishedBinding[], aliases: readonly PublishedAlias[], m: Mismatches, o: { full: boolean }): Promise<void> {
  const locs = new Map((await t.rows("location")).map((r) => [`${aorOf(r)} ${text(r["contact"])}`, r]));
  for (const b of bindings) {
    const r = locs.get(`${b.aor} ${b.contact}`);
    if (!r) {
      m.missing(`${where} row`, `${b.aor} ${b.contact}`);
      continue;
    }
    m.check(`${where} row ${b.aor}`, "path", b.path, text(r["path"]));
    m.check(`${where} row ${b.aor}`, "received", b.received, text(r["received"]));
    if (!o.full) continue;
    m.check(`${where} row ${b.aor}`, "callid", UL_ADD_CALLID, text(r["callid"]));
    m.check(`${where} row ${b.aor}`, "user_agent", b.userAgent, text(r["user_agent"]));
    m.check(`${where} row ${b.aor}`, "instance", b.instance, text(r["instance"]));
  }
  const al = new Map<string, string[]>();
  for (const r of await t.rows("aliases")) al.set(aorOf(r), [...(al.get(aorOf(r)) ?? []), text(r["contact"])]);
  for (const a of aliases) m.check(`${where} alias row ${a.alias}`, "target", a.target, (al.get(a.alias) ?? []).join(" | "));
}

/**
 * The ledger check: every node's journal, and n2's and n3's Kamailio as their tables hold it
 * (db_mode 3 has no ul.dump). n1's Kamailio is left out: bindings published through an agent's
 * own API are its registrar's, and never written back into its own Kamailio.
 */
export async function convergeOnTables(c: DrillCluster, tables: Record<string, Tables>, timeoutMs = 30_000): Promise<{ verdict: Verdict; seconds: number }> {
  const start = Date.now();
  const keep = (k: string) => k.startsWith("dsv");
  for (;;) {
    const views: View[] = [];
    for (const n of c.nodes) {
      views.push(viewOf(`${n.id} journal`, await listAll<Location>(n.agent, "location.list"), await listAll<Alias>(n.agent, "alias.list"), keep));
      const t = tables[n.id];
      if (!t) continue;
      const locs = (await t.rows("location")).map((r) => ({ aor: aorOf(r), contact: text(r["contact"]) }));
      const aliases = (await t.rows("aliases")).map((r) => ({ alias: aorOf(r), target: text(r["contact"]) }));
      views.push(viewOf(`${n.id} kamailio db`, locs, aliases, keep));
    }
    const verdict = verify(c.ledger, views);
    if (verdict.ok || Date.now() - start > timeoutMs) return { verdict, seconds: (Date.now() - start) / 1000 };
    await sleep(500);
  }
}
