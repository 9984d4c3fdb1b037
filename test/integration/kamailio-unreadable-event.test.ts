/**
 * A registrar event the agent cannot read, with real Kamailio 5.6: a REGISTER that leaves an AoR
 * with more contacts than the core's max_while_loops (100) cuts the include's loop short, and the
 * event, whose list is shorter than usrloc's count, is refused (a short list would read as
 * removals). Before, that AoR waited for the periodic ul.dump reconcile, which does not run above
 * kamailio.reconcileMaxContacts; the agent now looks the AoR up in Kamailio (ul.lookup) and learns
 * it from there. This agent runs with no reconcile at all, so nothing else could have.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ClusterStatus } from "../../agent/contract/cluster-status.js";
import { waitFor } from "../support/agent-process.js";
import { startKamailioCluster, type ClusterNode, type KamailioCluster } from "../support/kamailio-cluster.js";
import { sendRawRegister } from "../support/raw-register.js";

let dir: string;
let cluster: KamailioCluster;
let n1: ClusterNode;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "locmesh-unreadable-"));
  cluster = await startKamailioCluster({ baseDir: dir, n: 1, agentKamailio: { reconcileIntervalSec: 0, reconcileMaxContacts: 0 } });
  [n1] = cluster.nodes as [ClusterNode];
}, 60_000);

afterAll(async () => {
  await cluster?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const AOR = "many@example.com";
const many = (from: number, n: number) => (p: number) => Array.from({ length: n }, (_, i) => `<sip:many@127.0.0.1:${p};n=${from + i}>`);
const journaled = async () => (await n1.agent.call<{ bindings: unknown[] }>("location.lookup", { aor: AOR })).bindings.length;

describe("an AoR whose registrar event the agent cannot read", () => {
  it("is looked up in Kamailio and learned from there, with no reconcile", async () => {
    const why = () => n1.kamailio.logTail(20);
    expect((await sendRawRegister(n1.kamailio.sipPort, { user: "many", callId: "many-1", contacts: many(0, 60) }, why)).status).toBe("SIP/2.0 200 OK");
    await waitFor("the first 60 contacts journaled from their event", async () => (await journaled()) === 60, 10_000);
    expect((await sendRawRegister(n1.kamailio.sipPort, { user: "many", callId: "many-2", contacts: many(60, 41) }, why)).status).toBe("SIP/2.0 200 OK");
    // Kamailio holds 101; the event that says so lists 100 and is refused.
    expect(await n1.lookup(AOR)).toHaveLength(101);
    await waitFor("all 101 contacts in the journal", async () => (await journaled()) === 101, 15_000, 100);
    const events = (await n1.agent.call<ClusterStatus>("cluster.status")).kamailio?.events;
    expect(events?.malformed).toBeGreaterThanOrEqual(1);
    expect(events?.unjournaledAors).toBe(0);
    expect(await n1.agent.metric("locmesh_kamailio_learned_total", { source: "retry" })).toBe(41);
    expect(await n1.agent.metric("locmesh_kamailio_learned_total", { source: "reconcile" })).toBe(0);
  });
});
