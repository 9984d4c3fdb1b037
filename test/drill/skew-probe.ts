/**
 * For the clock-skew drill: proof that the skew is really in effect (a drill whose libfaketime
 * silently did nothing must fail), and a probe of what last-writer-wins does with two edits of
 * one alias made a second apart on nodes whose clocks are 10 s apart.
 */
import { sleep, waitFor } from "../support/agent-process.js";
import type { ClusterNode } from "../support/kamailio-cluster.js";
import { UL_ADD_CALLID } from "../../agent/kamailio/registrar-input.js";
import { TEST_DOMAIN, type DrillCluster } from "./drill-cluster.js";

/** Clock offset of node n1, n2, n3 in seconds. */
export const SKEW_SEC: readonly number[] = [5, 0, -5];

/** Seconds the agent's clock is ahead of ours, from its HTTP Date header (whole seconds). */
async function agentOffset(n: ClusterNode): Promise<number> {
  const t0 = Date.now();
  const res = await fetch(`${n.agent.apiUrl}/healthz`);
  const t1 = Date.now();
  const date = res.headers.get("date");
  if (date === null) throw new Error(`${n.id}'s agent sent no Date header`);
  return Date.parse(date) / 1000 - Math.floor((t0 + t1) / 2000);
}

/**
 * Seconds the Kamailio's clock is ahead of ours: the newest Last-Modified (Kamailio's time(0) at
 * save()) among this node's own registrations, taken while REGISTERs arrive every few ms.
 */
async function kamailioOffset(n: ClusterNode): Promise<number> {
  const nowSec = Math.floor(Date.now() / 1000);
  const own = (await n.dump()).filter((k) => k.table === "location" && k.aor.startsWith(`d${n.id}u`) && k.callid !== UL_ADD_CALLID);
  if (own.length === 0) throw new Error(`${n.id}'s Kamailio holds none of the drill's registrations yet`);
  return Math.max(...own.map((k) => k.lastModified)) - nowSec;
}

/** Checks every agent's and Kamailio's clock offset against SKEW_SEC (±2 s: whole seconds, latency). */
export async function checkSkew(c: DrillCluster): Promise<{ info: Record<string, string>; zeroes: Record<string, number> }> {
  const info: Record<string, string> = {};
  let wrong = 0;
  for (const [i, n] of c.nodes.entries()) {
    const want = SKEW_SEC[i] ?? 0;
    const [agent, kamailio] = [await agentOffset(n), await kamailioOffset(n)];
    info[`${n.id} clock offset measured (agent, Kamailio; wanted ${want > 0 ? "+" : ""}${want} s)`] = `${agent} s, ${kamailio} s`;
    for (const got of [agent, kamailio]) if (Math.abs(got - want) > 2) wrong++;
  }
  return { info, zeroes: { "processes whose clock was not skewed as configured": wrong } };
}

const PROBE_ALIAS = `sip:skewprobe@${TEST_DOMAIN}`;

async function setProbe(n: ClusterNode, target: string): Promise<void> {
  await n.agent.call("alias.set", { alias: PROBE_ALIAS, target });
}

/** The probe alias's target in node n's journal (null: none). */
async function probeOn(n: ClusterNode): Promise<string | null> {
  return (await n.agent.call<{ items: { alias: string; target: string }[] }>("alias.list", { search: "skewprobe" })).items[0]?.target ?? null;
}

/** Waits until every node's journal holds one target for the probe alias, and returns it. */
async function settledProbe(c: DrillCluster): Promise<string> {
  return waitFor("every node to agree on the probe alias", async () => {
    const seen = await Promise.all(c.nodes.map(probeOn));
    return seen.every((t) => t !== null && t === seen[0]) ? seen[0]! : null;
  }, 60_000, 200);
}

/**
 * Two edits of one alias a second apart, first on n1 (+5 s), then on n3 (−5 s), once with n3
 * connected and once with n3 cut off. Connected, n3 has seen n1's stamp before it stamps its own
 * edit (the probe waits until n3 holds n1's edit), so the later edit wins (the hybrid logical
 * clock's promise; a zero figure). Cut off, n3 stamps by its own clock, 10 s behind n1's: the
 * earlier edit wins (reported, and documented).
 * The probe alias is outside the drill's key space, so the ledger check does not see it.
 */
export async function skewProbe(c: DrillCluster): Promise<{ did: string[]; info: Record<string, string>; zeroes: Record<string, number> }> {
  const [n1, n3] = [c.node("n1"), c.node("n3")];
  const round = async (tag: string, cut: boolean): Promise<"earlier" | "later"> => {
    if (cut) {
      c.links.cut(["n3"]);
      await waitFor("n3 to notice the cut", async () => (await n3.agent.call<{ peers: { connected: boolean }[] }>("cluster.status")).peers.every((p) => !p.connected), 30_000, 100);
    }
    const first = `sip:${tag}-n1@${TEST_DOMAIN}`;
    const t0 = Date.now();
    await setProbe(n1, first);
    // Connected, n3 must have seen n1's edit (and so its stamp) before it makes its own; a fixed
    // pause only assumed it. Either way the edits are at least a second apart.
    if (!cut) await waitFor("n1's probe edit to reach n3", async () => (await probeOn(n3)) === first, 30_000, 50);
    await sleep(Math.max(0, 1000 - (Date.now() - t0)));
    await setProbe(n3, `sip:${tag}-n3@${TEST_DOMAIN}`);
    if (cut) c.links.heal();
    return (await settledProbe(c)) === `sip:${tag}-n3@${TEST_DOMAIN}` ? "later" : "earlier";
  };
  const connected = await round("connected", false);
  const partitioned = await round("partitioned", true);
  const says = (w: string) => (w === "later" ? "the later edit (n3's)" : "the earlier edit (n1's)");
  return {
    did: ["probe: alias.set on n1, then at least 1 s later on n3 (connected: once n3 held n1's edit), with n3 connected and again with n3 cut off"],
    info: {
      "probe, n3 connected: every node kept": says(connected),
      "probe, n3 cut off (no stamp of n1's seen): every node kept": says(partitioned),
    },
    zeroes: { "probe edits made after seeing the other's that lost": connected === "later" ? 0 : 1 },
  };
}
