/**
 * SIGHUP with a changed hub.urls, against two real hubs on a real PostgreSQL 15: agent a1 lists
 * [hub1], a2 [hub1, hub2], a3 [hub2]. An agent whose hub is dropped from its list moves to the new
 * one; one whose hub stays listed keeps its session; a reordered list moves the agent to its new
 * first hub at once; an emptied list is refused (leaving hub mode needs a restart). Changes made
 * before, during and after every move reach every agent exactly once.
 */
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ClusterStatus } from "../../agent/contract/cluster-status.js";
import { type AgentProcess, waitFor } from "../support/agent-process.js";
import { aliasLedger } from "../support/alias-ledger.js";
import { changesApplied, hubOf, makeHubCluster, type HubProcess, stopHubCluster } from "../support/hub-process.js";
import { startPostgres, type PostgresProcess } from "../support/postgres-process.js";

let dir: string;
let pgServer: PostgresProcess;
let hubs: HubProcess[];
let agents: AgentProcess[];
const { publish, expectEachChangeOnce } = aliasLedger(() => agents);

const logOf = (a: AgentProcess) => readFileSync(a.logPath, "utf8");
const linesOf = (a: AgentProcess, msg: string) => logOf(a).split("\n").filter((l) => l.includes(`"msg":"${msg}`));
/** Lines that say a session with `hub` became ready. */
const sessionsWith = (a: AgentProcess, hub: string) => linesOf(a, "peer session ready").filter((l) => l.includes(`"peer":"${hub}"`)).length;
const hubLink = async (a: AgentProcess) => (await a.call<ClusterStatus>("cluster.status")).peers.find((p) => p.connected);

/** Sends SIGHUP (through `reload`) and waits until the agent has handled it: its "checked the preferred hub" line. */
async function sighup(a: AgentProcess, reload: () => void): Promise<string> {
  const before = linesOf(a, "SIGHUP: checked the preferred hub").length;
  reload();
  const line = await waitFor("the SIGHUP handled", async () => linesOf(a, "SIGHUP: checked the preferred hub")[before], 10_000);
  return line;
}

/** Publishes rounds of changes through every agent until `done`, so that some cross what happens meanwhile. */
async function publishUntil(what: string, done: () => Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (let round = 0; !(await done()); round++) {
    if (Date.now() > until) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await Promise.all(agents.map((_, i) => publish(i, 20, `${what.replace(/\W+/g, "-")}${round}`)));
  }
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "locmesh-hub-reload-"));
  pgServer = await startPostgres();
  const pgUrl = await pgServer.createDatabase("locmesh");
  const order = [[0], [0, 1], [1]];
  ({ hubs, agents } = await makeHubCluster(dir, { hubs: 2, agents: 3, pgUrl, hubOrder: (a) => order[a]! }));
  await Promise.all(hubs.map((h) => h.start()));
  await Promise.all(agents.map((a) => a.start()));
  await waitFor("every agent on its first hub", async () => (await Promise.all(agents.map(hubOf))).join() === "hub1,hub1,hub2");
});

afterAll(async () => {
  await stopHubCluster({ agents, hubs, closers: [pgServer], dir });
});

describe("SIGHUP with a changed hub.urls", () => {
  it("moves an agent whose hub was dropped from the list to the new hub; nothing lost, nothing applied twice", async () => {
    const [a1, , a3] = agents as [AgentProcess, AgentProcess, AgentProcess];
    const [hub1, hub2] = hubs as [HubProcess, HubProcess];
    await Promise.all(agents.map((_, i) => publish(i, 200, "before")));
    const a3Before = await changesApplied(a3);
    // Changes keep coming through a1 and a3 while a1 changes hubs, so some cross the move.
    const load = Promise.all([publish(0, 2000, "during"), publish(2, 1000, "during")]);
    await waitFor("a1's changes reaching a3", async () => (await changesApplied(a3)) > a3Before, 20_000, 20);
    await sighup(a1, () => a1.reloadHubs([hub2.meshUrl]));
    // Changes keep coming on every agent until a1 is on hub2.
    await publishUntil("a1 on hub2", async () => (await hubOf(a1)) === "hub2");
    await load;
    await Promise.all(agents.map((_, i) => publish(i, 200, "after")));
    await expectEachChangeOnce();
    const updated = linesOf(a1, "hub list updated");
    expect(updated).toHaveLength(1);
    expect(updated[0]).toContain(`closing the session with ${hub1.meshUrl} (no longer listed); dialing ${hub2.meshUrl} first`);
    expect(logOf(a1)).toMatch(/"peer":"hub1","reason":"1000 hub no longer in hub.urls","msg":"peer session closed"/);
    // Leaving on purpose is no failure: a1 warned of no unreachable hub.
    expect(linesOf(a1, "no hub answers")).toEqual([]);
  }, 120_000);

  it("keeps the session of an agent whose hub stays listed when a hub is added", async () => {
    const a3 = agents[2]!;
    const [hub1, hub2] = hubs as [HubProcess, HubProcess];
    const link = await hubLink(a3);
    expect(link?.nodeId).toBe("hub2");
    const sessions = sessionsWith(a3, "hub2");
    const line = await sighup(a3, () => a3.reloadHubs([hub2.meshUrl, hub1.meshUrl]));
    expect(line).toContain('"outcome":"already on the preferred hub"');
    expect(linesOf(a3, "hub list updated").at(-1)).toContain(`staying on ${hub2.meshUrl}, the first of hub.urls`);
    await Promise.all(agents.map((_, i) => publish(i, 100, "added")));
    await expectEachChangeOnce();
    expect((await hubLink(a3))?.connectedSince).toBe(link!.connectedSince);
    expect(sessionsWith(a3, "hub2")).toBe(sessions);
  }, 60_000);

  it("moves an agent to the new first hub of a reordered list at once, without waiting for failback", async () => {
    const a2 = agents[1]!;
    const [hub1, hub2] = hubs as [HubProcess, HubProcess];
    expect(await hubOf(a2)).toBe("hub1");
    const load = publish(1, 2000, "reorder");
    // failbackAfterSec is 120 (the default): only SIGHUP's immediate check moves it within the wait.
    const line = await sighup(a2, () => a2.reloadHubs([hub2.meshUrl, hub1.meshUrl]));
    expect(line).toContain(`"outcome":"moving to the preferred hub hub2 (${hub2.meshUrl})"`);
    await publishUntil("a2 on hub2", async () => (await hubOf(a2)) === "hub2", 15_000);
    await load;
    await Promise.all(agents.map((_, i) => publish(i, 100, "reordered")));
    await expectEachChangeOnce();
  }, 90_000);

  it("refuses an emptied list (leaving hub mode needs a restart) and keeps the running one", async () => {
    const a3 = agents[2]!;
    const [hub1, hub2] = hubs as [HubProcess, HubProcess];
    const link = await hubLink(a3);
    const updates = linesOf(a3, "hub list updated").length;
    await sighup(a3, () => a3.reloadHubs([]));
    const refused = linesOf(a3, "SIGHUP: hub.urls is now empty");
    expect(refused).toHaveLength(1);
    expect(refused[0]).toContain("taking this agent out of hub mode (to the mesh alone) needs a restart");
    expect(refused[0]).toContain(`"running":["${hub2.meshUrl}","${hub1.meshUrl}"],"configured":[]`);
    // The list that runs is the one the next SIGHUP compares with: the same list again is no change.
    await sighup(a3, () => a3.reloadHubs([hub2.meshUrl, hub1.meshUrl]));
    expect(linesOf(a3, "hub list updated")).toHaveLength(updates);
    expect((await hubLink(a3))?.connectedSince).toBe(link!.connectedSince);
  }, 60_000);

  it("applies a changed hub.failbackAfterSec without a restart", async () => {
    const a3 = agents[2]!;
    const hub2 = hubs[1]!;
    const restartLines = () => linesOf(a3, "SIGHUP applies only").length;
    const before = restartLines();
    await sighup(a3, () => {
      a3.spec.config = { ...a3.spec.config, hub: { ...(a3.spec.config?.["hub"] as object), failbackAfterSec: 30 } };
      a3.reload();
    });
    const applied = linesOf(a3, "SIGHUP: hub.failbackAfterSec applied");
    expect(applied).toHaveLength(1);
    expect(applied[0]).toContain(`"was":120,"failbackAfterSec":30,"outcome":"on ${hub2.meshUrl}, the first of hub.urls; failback applies after the next failover"`);
    expect(restartLines()).toBe(before);
  }, 30_000);

  it("refuses a config that lists one hub twice, as any config that does not load, and keeps the running list", async () => {
    const a3 = agents[2]!;
    const [hub1, hub2] = hubs as [HubProcess, HubProcess];
    const link = await hubLink(a3);
    const updates = linesOf(a3, "hub list updated").length;
    const failed = linesOf(a3, "config reload failed").length;
    // hub2 again, with a trailing slash: the same hub written differently.
    a3.reloadHubs([hub2.meshUrl, hub1.meshUrl, `${hub2.meshUrl}/`]);
    const line = await waitFor("the reload refused", async () => linesOf(a3, "config reload failed; keeping the running config")[failed], 10_000);
    expect(line).toContain(`hub.urls[2]: reaches the same address as hub.urls[0] (${hub2.meshUrl.slice("ws://".length)}, written \\"${hub2.meshUrl}\\" there); list each hub once`);
    expect(linesOf(a3, "hub list updated")).toHaveLength(updates);
    // What runs is what ran before: the running list again is no change, and the session stayed up.
    await sighup(a3, () => a3.reloadHubs([hub2.meshUrl, hub1.meshUrl]));
    expect(linesOf(a3, "hub list updated")).toHaveLength(updates);
    expect((await hubLink(a3))?.connectedSince).toBe(link!.connectedSince);
  }, 60_000);
});
