/**
 * Registrar events that do not say all, with real Kamailio 5.6, and an agent that runs no reconcile
 * at all (so nothing else could bring their AoRs in line): the agent looks their AoRs up in
 * Kamailio (ul.lookup) and reconciles them whole (aor-lookups.ts).
 * - A REGISTER that leaves an AoR with more contacts than the core's max_while_loops (100) cuts the
 *   include's loop short, and the event, whose list is shorter than usrloc's count, is refused (a
 *   short list would read as removals).
 * - A de-registration too big for the include's queue, taken while no agent was connected, reaches
 *   the agent as its AoR alone, with the contacts Kamailio holds then, which does not say what the
 *   request removed.
 * Before, both waited for the periodic ul.dump reconcile, which does not run above
 * kamailio.reconcileMaxContacts.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ClusterStatus } from "../../agent/contract/cluster-status.js";
import { EVENTS_SHV } from "../../agent/kamailio/cfg-include-names.js";
import { createCoreRpc } from "../../agent/kamailio/core-rpc.js";
import { createFifoClient } from "../../agent/kamailio/fifo-client.js";
import { silentLogger } from "../../agent/ops/logger.js";
import { waitFor } from "../support/agent-process.js";
import { startKamailioCluster, type ClusterNode, type KamailioCluster } from "../support/kamailio-cluster.js";
import { sendRawRegister, type RawRegister } from "../support/raw-register.js";

let dir: string;
let cluster: KamailioCluster;
let n1: ClusterNode;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "locmesh-aor-lookups-"));
  cluster = await startKamailioCluster({ baseDir: dir, n: 1, agentKamailio: { reconcileIntervalSec: 0, reconcileMaxContacts: 0 } });
  [n1] = cluster.nodes as [ClusterNode];
}, 60_000);

afterAll(async () => {
  await cluster?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const register = async (r: RawRegister) => expect((await sendRawRegister(n1.kamailio.sipPort, r, () => n1.kamailio.logTail(20))).status).toBe("SIP/2.0 200 OK");
const journaled = async (aor: string) => (await n1.agent.call<{ bindings: unknown[] }>("location.lookup", { aor })).bindings.length;
const learnedByLookup = () => n1.agent.metric("locmesh_kamailio_learned_total", { source: "retry" });

describe("AoRs whose registrar events do not say all", () => {
  it("an AoR whose event the agent cannot read is looked up in Kamailio and learned from there", async () => {
    const AOR = "many@example.com";
    const many = (from: number, n: number) => (p: number) => Array.from({ length: n }, (_, i) => `<sip:many@127.0.0.1:${p};n=${from + i}>`);
    await register({ user: "many", callId: "many-1", contacts: many(0, 60) });
    await waitFor("the first 60 contacts journaled from their event", async () => (await journaled(AOR)) === 60, 10_000);
    const before = await learnedByLookup();
    await register({ user: "many", callId: "many-2", contacts: many(60, 41) });
    // Kamailio holds 101; the event that says so lists 100 and is refused.
    expect(await n1.lookup(AOR)).toHaveLength(101);
    await waitFor("all 101 contacts in the journal", async () => (await journaled(AOR)) === 101, 15_000, 100);
    const events = (await n1.agent.call<ClusterStatus>("cluster.status")).kamailio?.events;
    expect(events?.malformed).toBeGreaterThanOrEqual(1);
    expect(events?.aorsToLookUp).toBe(0);
    // The 41 the refused event left out, by the lookup (the reconcile runs once, at the agent's
    // start, before a table of 60 would stop it, and may have learned the first 60 itself).
    expect((await learnedByLookup()) - before).toBe(41);
  });

  it("a de-registration too big for the include's queue, made while no agent was connected, is carried out in the journal", async () => {
    const AOR = "big@example.com";
    const contact = "sip:big@127.0.0.1:5999";
    await register({ user: "big", callId: "big-1", contacts: () => [`<${contact}>`], headers: ["Expires: 600"] });
    await waitFor("the contact journaled", async () => (await journaled(AOR)) === 1, 10_000);
    await n1.agent.kill9();
    const rpc = createFifoClient({ fifoPath: n1.kamailio.fifoPath, replyDir: n1.kamailio.replyDir, timeoutMs: 5000, log: silentLogger(), maxInFlight: 1, autoResync: false });
    try {
      for (let i = 0; (await createCoreRpc({ rpc }).getShv(EVENTS_SHV)) !== 0; i++) {
        if (i > 100) throw new Error(`Kamailio still counts the killed agent as connected\n${n1.kamailio.logTail(20)}`);
        await sleep(50);
      }
    } finally {
      await rpc.close();
    }
    // A User-Agent of 5,000 bytes puts the request's half of the event past the queue's 8 KB.
    await register({ user: "big", callId: "big-2", contacts: () => [`<${contact}>;expires=0`], headers: [`User-Agent: ${"u".repeat(5000)}`] });
    expect(await n1.lookup(AOR)).toEqual([]);
    await n1.agent.start();
    await waitFor("the de-registration in the journal", async () => (await journaled(AOR)) === 0, 20_000, 100);
    // By the lookup (the restarted agent's counters start at 0): its reconcile is off.
    expect(await learnedByLookup()).toBe(1);
  });
});
