/**
 * The `fuzz` drill: a seeded fuzzer throws malformed, oversized, truncated and type-confused
 * messages at three inputs of running agents (n1's peer port, n2's local API, n3's registrar-event
 * input through a fake evapi), and wrong or replayed credentials at n1 and n2.
 *
 * Legitimate traffic runs before the fuzz, not during it: the cluster converges on what the ledger
 * says was acknowledged, every node's full state (journal and Kamailio) is dumped, the fuzz runs,
 * and the dumps must come out identical. Afterwards every process must still be the same PID, every
 * input must still serve a valid request, and the cluster must still hold exactly the ledger's state.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { ClusterStatus } from "../../../agent/contract/cluster-status.js";
import { freePort, sleep, waitFor } from "../../support/agent-process.js";
import { isAlive } from "../../support/logged-child.js";
import { startDrillCluster, startTraffic, TEST_DOMAIN, type DrillCluster } from "../drill-cluster.js";
import type { DrillContext, DrillResult } from "../drill.js";
import { writeFloor } from "../floor.js";
import { attackCredentials } from "./credentials.js";
import { sendKnownInvalid } from "./known-invalid.js";
import { fuzzEvapi, startEvapiFuzzServer, type EventCounters } from "./evapi-fuzz.js";
import { seededRng } from "./mutate.js";
import { FUZZ_PEER, fuzzApi, fuzzPeerPort, sendLimitBreakers } from "./peer-api-fuzz.js";
import { addFigures, newFigures } from "./rpc-fuzz.js";
import { dumpAll, stateChanges } from "./state-dump.js";

const SEED = 0x10c3e5;
const LIMITS = { mesh: 4 * 1024 * 1024, api: 1024 * 1024 };

function budget(short: boolean) {
  const k = short ? 0.1 : 1;
  return { preAuth: 10_000 * k, authed: 35_000 * k, ws: 25_000 * k, http: 12_000 * k, evapi: 20_000 * k, framing: short ? 4 : 10, credentialRounds: short ? 3 : 10 };
}

const rssMb = (pid: number | undefined): number => {
  if (pid === undefined) return 0;
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return m ? Math.round(Number(m[1]) / 1024) : 0;
};

async function eventCounters(c: DrillCluster): Promise<EventCounters> {
  // One retry: a keep-alive connection the agent closed while we were busy writing fails once.
  const status = () => c.node("n3").agent.call<ClusterStatus>("cluster.status");
  const e = (await status().catch(() => sleep(200).then(status))).kamailio?.events;
  if (!e) throw new Error("n3 reports no event input");
  return { received: e.received, malformed: e.malformed, framingErrors: e.framingErrors };
}

export async function runFuzzDrill(ctx: DrillContext): Promise<DrillResult> {
  const b = budget(ctx.short);
  const evapi = await startEvapiFuzzServer();
  let c: DrillCluster;
  try {
    c = await startDrillCluster({
      dir: join(ctx.dir, "cluster"),
      agentConfig: { mesh: { maxMessageBytes: LIMITS.mesh }, api: { maxMessageBytes: LIMITS.api } },
      node: (i) => (i === 2 ? { agentKamailio: { evapi: `127.0.0.1:${evapi.port}` } } : {}),
    });
  } catch (err) {
    await evapi.close();
    throw err;
  }
  try {
    return await fuzz(c, evapi, b, ctx);
  } finally {
    await c.close();
    await evapi.close();
  }
}

async function fuzz(c: DrillCluster, evapi: Awaited<ReturnType<typeof startEvapiFuzzServer>>, b: ReturnType<typeof budget>, ctx: DrillContext): Promise<DrillResult> {
  const [n1, n2] = [c.node("n1"), c.node("n2")];
  const did: string[] = [];
  const say = (line: string) => {
    did.push(line);
    ctx.log(line);
  };
  // n1 lists the fuzzer's node id (its URL leads nowhere), as an operator lists a real peer.
  n1.agent.reloadPeers([...n1.agent.spec.peers, { id: FUZZ_PEER, url: `ws://127.0.0.1:${await freePort()}` }]);
  await waitFor("n1 to list the fuzz peer", async () => (await n1.agent.call<ClusterStatus>("cluster.status")).peers.some((p) => p.nodeId === FUZZ_PEER));
  const listedGone = () =>
    waitFor("n1 to drop the fuzz peer's last session", async () => !(await n1.agent.call<ClusterStatus>("cluster.status")).peers.some((p) => p.nodeId === FUZZ_PEER && p.connected), 10_000, 20).then(() => undefined);

  const t = { registerRate: ctx.short ? 20 : 50, seconds: ctx.short ? 4 : 8, aliasRate: ctx.short ? 5 : 10, registerNodes: ["n1", "n2"] };
  const traffic = await startTraffic(c, ctx.dir, t);
  const figures = await traffic.finish();
  const settled = await c.converge(60_000);
  // The fuzz is judged against this state: one that was already wrong, or made of refused writes,
  // would tell nothing about what the fuzz did.
  const floor = writeFloor(c.ledger.all, { fault: null });
  if (!settled.verdict.ok || Object.values(floor.zeroes).some((v) => v > 0)) {
    say(`legitimate traffic first: ${figures.registers.acked} REGISTERs and ${figures.aliases.acked} alias calls acknowledged; ${settled.verdict.ok ? "too few acknowledged" : `not converged on the ledger within ${settled.seconds.toFixed(0)} s`}: no fuzz`);
    return { did, traffic: figures, atRisk: 0, verdict: settled.verdict, convergeSec: settled.seconds, zeroes: { "cluster not sound before the fuzz": 1, ...floor.zeroes }, info: floor.info };
  }
  say(`legitimate traffic first: ${figures.registers.acked} REGISTERs and ${figures.aliases.acked} alias calls acknowledged; converged in ${settled.seconds.toFixed(1)} s`);

  const agentPids = c.nodes.map((n) => n.agent.child?.pid);
  const kamailioPids = c.nodes.map((n) => n.kamailio.pid());
  const rssBefore = c.nodes.map((n) => rssMb(n.agent.child?.pid));
  const before = await dumpAll(c.nodes);
  say(`dumped every node's journal, version vector and Kamailio usrloc: ${before.reduce((s, d) => s + d.records.size, 0)} records; no traffic from here on`);

  const t0 = Date.now();
  // Three inputs on three agents at once, each with its own generator so the run stays repeatable.
  // A run that throws (its target stopped answering, e.g. crashed) is counted, and the drill goes on
  // to find out why: the PID check below, then the rest of the checks on a restarted agent.
  const brokeOff: string[] = [];
  const guard = async <T>(what: string, run: () => Promise<T>, none: T): Promise<T> =>
    run().catch((err: unknown) => {
      brokeOff.push(`${what} broke off: ${(err as Error).message}`);
      return none;
    });
  const [peer, api, ev] = await Promise.all([
    guard("peer port fuzz", () => fuzzPeerPort(n1, seededRng(SEED + 1), { preAuth: b.preAuth, authed: b.authed }, listedGone), emptyPeer()),
    guard("API fuzz", () => fuzzApi(n2, seededRng(SEED + 2), { ws: b.ws, http: b.http }), { ws: newFigures(), http: newFigures() }),
    guard("registrar event fuzz", () => fuzzEvapi(evapi, seededRng(SEED + 3), { count: b.evapi, framingCases: b.framing, counters: () => eventCounters(c) }), emptyEvapi()),
  ]);
  const limits = await guard("limit breakers", () => sendLimitBreakers(n1, n2, LIMITS, listedGone), { sent: 0, mustClose: 1, closed: 0, mustRefuse: 0, refused: 0, examples: [] });
  const creds = await guard("credential attacks", () => attackCredentials(
    { meshUrl: n1.agent.meshUrl, secret: n1.agent.spec.secret, listedId: FUZZ_PEER, targetId: "n1", apiUrl: n2.agent.apiUrl, token: n2.agent.spec.token, listedGone },
    b.credentialRounds,
  ), { attempts: {}, accepted: 1, closed: 0, examples: [] });
  // Judged by the contract's stated rules, not by the agent's schemas as the mutants are.
  const invalid = await guard("known-invalid calls", () => sendKnownInvalid((method, params) => n2.agent.call(method, params)), { sent: 0, notRefused: 1, examples: [] });
  const fuzzSec = (Date.now() - t0) / 1000;
  for (const e of brokeOff) say(`  ! ${e}`);
  const rpc = newFigures();
  for (const f of [peer.preAuth, peer.authed, api.ws, api.http]) addFigures(rpc, f);
  const sent = rpc.sent + ev.fig.sent + ev.fig.framingCases + ev.fig.truncated + limits.sent + invalid.sent + Object.values(creds.attempts).reduce((s, n) => s + n, 0);
  say(`fuzzed for ${fuzzSec.toFixed(0)} s (seed ${SEED}): ${sent} hostile messages in all`);
  say(`  n1 peer port: ${peer.preAuth.sent} frames before authenticating (${Math.ceil(b.preAuth / 100)} connections), ${peer.authed.sent} as the authenticated peer "${FUZZ_PEER}"`);
  say(`  n2 API: ${api.ws.sent} WebSocket frames (80% signed in), ${api.http.sent} HTTP POSTs`);
  say(`  n3 registrar events: ${ev.fig.sent} well-framed malformed events (${(ev.fig.bytes / 1e6).toFixed(1)} MB), ${ev.fig.framingCases} broken framings, ${ev.fig.truncated} truncated stream`);
  say(`  limits: ${limits.sent} oversized, invalid-UTF-8 or binary frames; credentials: ${Object.entries(creds.attempts).map(([k, v]) => `${v}× ${k}`).join(", ")}`);
  say(`  n2 API: ${invalid.sent} hand-written calls the contract refuses (known-invalid.ts)`);
  for (const e of [...rpc.examples, ...limits.examples, ...creds.examples, ...invalid.examples]) say(`  ! ${e}`);

  const crashed =
    c.nodes.filter((n, i) => n.agent.child?.exitCode !== null || n.agent.child?.pid !== agentPids[i]).length +
    c.nodes.filter((n, i) => n.kamailio.pid() !== kamailioPids[i] || !isAlive(kamailioPids[i]!)).length;
  for (const n of c.nodes) {
    if (n.agent.child?.exitCode === null) continue;
    say(`  ! ${n.id}'s agent died during the fuzz (exit ${n.agent.child?.exitCode}); restarted to finish the checks, see ${n.agent.logPath}`);
    await n.agent.start();
  }

  // Let a reconcile pass run (every 5 s here), so a change the fuzz left half-done would show.
  await sleep(6000);
  const after = await dumpAll(c.nodes);
  const changed = stateChanges(before, after);
  for (const e of changed.examples) say(`  ! state change: ${e}`);

  const liveness = await stillServing(c, peer.stillServes);
  for (const e of liveness.failures) say(`  ! ${e}`);
  const rssAfter = c.nodes.map((n) => rssMb(n.agent.child?.pid));
  if (crashed === 0 && liveness.failures.length === 0) say(`after the fuzz: same PIDs, /healthz and a valid call answered on every node; n1 served a repl.pull on the fuzzed session; n3 read a valid event after the fuzz`);
  const { verdict, seconds } = await c.converge(60_000);
  return {
    did,
    traffic: figures,
    atRisk: 0,
    verdict,
    convergeSec: seconds,
    zeroes: {
      "crashes (agents and Kamailios)": crashed,
      "state changes (records differing before/after)": changed.changes,
      "non-error answers to malformed requests": rpc.nonErrorToMalformed,
      "malformed requests left unanswered": rpc.unanswered,
      "answers that were not JSON-RPC": rpc.notJsonRpc,
      "malformed events taken as valid": ev.accepted,
      "broken framings not dropped": ev.fig.framingCases - ev.fig.droppedByAgent,
      "limit breakers not refused": limits.mustClose - limits.closed + limits.mustRefuse - limits.refused,
      "wrong or replayed credentials accepted": creds.accepted,
      "known-invalid API calls not refused as invalid params": invalid.notRefused,
      "inputs not serving after the fuzz": liveness.failures.length,
      "fuzz runs cut short": brokeOff.length,
      ...floor.zeroes,
    },
    info: {
      ...floor.info,
      "seed": SEED,
      "messages sent (all inputs)": sent,
      "peer port before auth: sent / errors answered": `${peer.preAuth.sent} / ${peer.preAuth.errors}`,
      "peer port authenticated: sent / errors / results to well-formed reads": `${peer.authed.sent} / ${peer.authed.errors} / ${peer.authed.results}`,
      "API WebSocket: sent / errors / results to well-formed reads": `${api.ws.sent} / ${api.ws.errors} / ${api.ws.results}`,
      "API HTTP: sent / errors / results to well-formed reads": `${api.http.sent} / ${api.http.errors} / ${api.http.results}`,
      "registrar events: sent / refused as malformed (agent's count)": `${ev.fig.sent} / ${ev.refused}`,
      "mutants still valid, not sent (writes, valid events)": rpc.skipped + ev.fig.skipped,
      "connections closed by the agent (limits, credentials, framing)": limits.closed + creds.closed + ev.fig.droppedByAgent,
      "framing errors the agent counted": ev.framingErrors,
      "authenticated peer sessions the agent closed": peer.sessionsClosed,
      "fuzz seconds": Math.round(fuzzSec),
      "agent RSS MB before → after (n1, n2, n3)": `${rssBefore.join("/")} → ${rssAfter.join("/")}`,
    },
  };
}

const emptyPeer = () => ({ preAuth: newFigures(), authed: newFigures(), sessionsClosed: 0, stillServes: false });
const emptyEvapi = () => ({ fig: { sent: 0, skipped: 0, bytes: 0, framingCases: 0, droppedByAgent: 0, truncated: 0 }, accepted: 0, refused: 0, framingErrors: 0 });

/** After the fuzz: /healthz and a valid write on every agent (recorded in the ledger). */
async function stillServing(c: DrillCluster, peerServes: boolean): Promise<{ failures: string[] }> {
  const failures: string[] = [];
  if (!peerServes) failures.push("n1 did not answer a valid repl.pull on the fuzzed peer session");
  for (const n of c.nodes) {
    const health = await fetch(`${n.agent.apiUrl}/healthz`).then((r) => r.ok, () => false);
    if (!health) failures.push(`${n.id} /healthz failed`);
    const alias = `dfzalive-${n.id}@${TEST_DOMAIN}`;
    const target = `sip:alive-${n.id}@${TEST_DOMAIN}`;
    const sentMs = Date.now();
    const ok = await n.agent.call("alias.set", { alias: `sip:${alias}`, target }).then(() => true, () => false);
    c.ledger.add({ kind: "alias", key: alias, sub: "", value: target, node: n.id, sentMs, doneMs: ok ? Date.now() : Infinity, outcome: ok ? "acked" : "doubt" });
    if (!ok) failures.push(`${n.id} refused a valid alias.set`);
  }
  return { failures };
}
