/**
 * Hub mode end to end against a real PostgreSQL 15: two hub processes on one database and four
 * agents that know only the hubs. Changes reach every agent; a hub killed with -9 and a PostgreSQL
 * killed under load lose nothing acknowledged and apply nothing twice; agents keep journaling while
 * no hub is up; an agent that lost its journal gets a snapshot from a hub; a wrong key is refused;
 * `locmesh resync --peer` on an agent names the hub to resync from, not another agent.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ClusterStatus } from "../../agent/contract/cluster-status.js";
import type { Location } from "../../agent/contract/records.js";
import { AgentProcess, ROOT, freePort, sleep, waitFor } from "../support/agent-process.js";
import { aliasCount, dumpAliases, publishAliases } from "../support/aliases.js";
import { cli } from "../support/cli-run.js";
import { changesApplied, changesReceived, makeHubCluster, type HubProcess, stopHubCluster } from "../support/hub-process.js";
import { startPostgres, type PostgresProcess } from "../support/postgres-process.js";

let dir: string;
let pgServer: PostgresProcess;
let pgUrl: string;
let hubs: HubProcess[];
let agents: AgentProcess[];

/** locmesh_replication_delay_seconds: how many changes it observed, and their summed delay. */
async function delays(p: AgentProcess): Promise<{ count: number; sum: number }> {
  const text = await (await fetch(`${p.apiUrl}/metrics?name=locmesh_replication_delay_seconds`)).text();
  const value = (suffix: string) => Number(new RegExp(`^locmesh_replication_delay_seconds_${suffix} (\\S+)$`, "m").exec(text)?.[1]);
  return { count: value("count"), sum: value("sum") };
}
const allAgree = async (expected: number) => (await Promise.all(agents.map(aliasCount))).every((n) => n === expected);

/** A promise, and whether it has settled yet (a kill "under load" must land before the load ends). */
function underWay<T>(promise: Promise<T>): { promise: Promise<T>; done(): boolean } {
  let settled = false;
  void promise.then(() => (settled = true), () => (settled = true));
  return { promise, done: () => settled };
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "locmesh-hub-"));
  pgServer = await startPostgres();
  pgUrl = await pgServer.createDatabase("locmesh");
  // a1, a3 prefer hub1; a2, a4 prefer hub2.
  ({ hubs, agents } = await makeHubCluster(dir, { hubs: 2, agents: 4, pgUrl }));
  await Promise.all(hubs.map((h) => h.start()));
  await Promise.all(agents.map((a) => a.start()));
  await waitFor("every agent on a hub", async () => {
    const st = await Promise.all(agents.map((a) => a.call<ClusterStatus>("cluster.status")));
    return st.every((s) => s.peers.some((p) => p.connected));
  });
});

afterAll(async () => {
  await stopHubCluster({ agents, hubs, closers: [pgServer], dir });
});

describe("two hubs, four agents, one PostgreSQL", () => {
  it("a change on any agent reaches every other agent, whichever hub each is on", async () => {
    await Promise.all(agents.map((a, i) => publishAliases(a, 0, 50, `first-a${i + 1}-`)));
    await waitFor("200 aliases everywhere", () => allAgree(200));
    const [a1, a2, a3, a4] = agents as [AgentProcess, AgentProcess, AgentProcess, AgentProcess];
    const binding = { aor: "sip:alice@example.com", contact: "sip:alice@192.0.2.10:5060", expires: Math.floor(Date.now() / 1000) + 3600, callid: "c1" };
    await a2.call("location.publish", { edits: [{ op: "upsert", binding }] });
    for (const a of [a1, a3, a4]) {
      const got = await waitFor(`binding on ${a.spec.id}`, async () => (await a.call<{ bindings: Location[] }>("location.lookup", { aor: "alice@example.com" })).bindings[0]);
      expect(got).toMatchObject({ contact: binding.contact, callid: "c1", owner: "a2" });
    }
    // Every change crossed once: each agent received exactly the other agents' changes.
    for (const a of agents) {
      expect(await changesReceived(a)).toBe(await changesApplied(a));
      expect(await changesApplied(a)).toBe(a === a2 ? 150 : 151);
    }
    // Each change's delay is observed once where it was stored: on the hub that took it into
    // PostgreSQL, and on every agent that applied it.
    for (const a of agents) expect((await delays(a)).count).toBe(await changesApplied(a));
    const atHubs = await Promise.all(hubs.map(delays));
    expect(atHubs.reduce((n, d) => n + d.count, 0)).toBe(201);
    for (const d of [...atHubs, ...(await Promise.all(agents.map(delays)))]) expect(d.sum / Math.max(1, d.count)).toBeLessThan(10);
  });

  it("shows the whole cluster on any hub: every agent, its lag and pending writes", async () => {
    const st = await waitFor("hub1 sees all agents", async () => {
      const s = await hubs[0]!.call<ClusterStatus>("cluster.status");
      const caughtUp = s.peers.filter((p) => p.connected && p.behindChanges === 0 && p.pendingWrites === 0);
      return caughtUp.length === 4 ? s : null;
    });
    expect(st.peers.map((p) => p.nodeId)).toEqual(["a1", "a2", "a3", "a4"]);
    expect(st.peers.filter((p) => p.url?.startsWith("via hub hub2")).map((p) => p.nodeId)).toEqual(["a2", "a4"]);
    await expect(hubs[0]!.call("alias.set", { alias: "x@example.com", target: "sip:y@example.com" })).rejects.toThrow(/hub/);
    const metrics = await (await fetch(`${hubs[0]!.apiUrl}/metrics`)).text();
    // The hub serves the same web UI as agents.
    const page = await fetch(`${hubs[0]!.apiUrl}/`);
    expect(page.status).toBe(200);
    expect(page.headers.get("content-security-policy")).toBeTruthy();
    expect(await page.text()).toContain("<title>");
    expect(metrics).toContain("locmesh_peer_connected");
    // SIGHUP (an init system's "reload") leaves a hub running; it applies only mesh.agents, keys and tokens, and says which other changed settings need a restart.
    hubs[0]!.spec.config = { ...hubs[0]!.spec.config, journal: { retentionHours: 48 } };
    hubs[0]!.reload();
    await waitFor("the SIGHUP warning", async () =>
      /"settings":\["journal\.retentionHours"\].*SIGHUP applies only mesh\.agents, mesh\.tls, the cluster keys and the API tokens on a hub: these changed settings take effect when the hub restarts/.test(readFileSync(hubs[0]!.logPath, "utf8")));
    expect((await hubs[0]!.call<ClusterStatus>("cluster.status")).nodeId).toBe("hub1");
  });

  it("`locmesh resync --peer` on an agent says another agent is no peer of it (agents replicate through their hub) and to resync from the hub", async () => {
    const a1 = agents[0]!;
    const hub = (await a1.call<ClusterStatus>("cluster.status")).peers.find((p) => p.connected)!.nodeId;
    const target = ["--url", a1.apiUrl, "--token", a1.spec.token];
    for (const peer of ["a3", "n9"]) {
      const r = await cli(["resync", "--peer", peer, ...target]);
      expect(r.code, r.stderr).toBe(1);
      expect(r.stderr).toContain(
        `${peer} is not a peer of this node (its peers: hub ${hub}): in hub mode agents replicate through their hub and never connect to each other. ` +
          `Resync from the hub: locmesh resync without --peer, or with --peer ${hub}`,
      );
    }
    // Refused before any pull: the later tests count every change each agent received.
    expect((await a1.call<ClusterStatus>("cluster.status")).resync.state).toBe("idle");
  });

  it("agents fail over when a hub is killed with -9: nothing lost, nothing applied twice", async () => {
    const [a1, a2, a3, a4] = agents as [AgentProcess, AgentProcess, AgentProcess, AgentProcess];
    const before = await Promise.all(agents.map(changesApplied));
    const publishing = underWay(Promise.all([publishAliases(a1, 0, 3000, "failover-a1-"), publishAliases(a2, 0, 3000, "failover-a2-")]));
    // Under load: changes are crossing the hubs (a3 applies a1's through hub1) and more are coming.
    await waitFor("changes crossing the hubs", async () => (await changesApplied(a3)) > before[2]!, 10_000, 20);
    expect(publishing.done(), "publishing finished before the kill").toBe(false);
    await hubs[0]!.kill9();
    await publishing.promise;
    await waitFor("6,200 aliases everywhere", () => allAgree(6200), 30_000);
    const after = await Promise.all(agents.map(changesApplied));
    expect(after.map((n, i) => n - before[i]!)).toEqual([3000, 3000, 6000, 6000]);
    for (const a of [a1, a2, a3, a4]) expect(await changesReceived(a)).toBe(await changesApplied(a));
    expect(await dumpAliases(a3)).toEqual(await dumpAliases(a1));
    await hubs[0]!.start();
  });

  it("loses nothing acknowledged when PostgreSQL is killed and restarted under load", async () => {
    const [a1, a2, a3] = agents as [AgentProcess, AgentProcess, AgentProcess, AgentProcess];
    const a2Before = await changesApplied(a2);
    const publishing = underWay(Promise.all([publishAliases(a1, 0, 3000, "pgcrash-a1-"), publishAliases(a3, 0, 3000, "pgcrash-a3-")]));
    // Under load: changes are going through the hubs and PostgreSQL (a2 applies a1's and a3's)
    // and more are coming.
    await waitFor("changes crossing the hubs", async () => (await changesApplied(a2)) > a2Before, 10_000, 20);
    expect(publishing.done(), "publishing finished before the kill").toBe(false);
    await pgServer.kill();
    await sleep(1000);
    await pgServer.start();
    await publishing.promise;
    await waitFor("12,200 aliases everywhere", () => allAgree(12_200), 45_000);
    const rows = await pgServer.query<{ n: number }>("SELECT count(*)::int AS n FROM records WHERE kind = 1", [], "locmesh");
    expect(rows[0]!.n).toBe(12_200);
    for (const a of agents) expect(await aliasCount(a)).toBe(12_200);
  });

  it("keeps journaling while no hub is reachable, counts what waits for one across a restart, and sends everything when one is back", async () => {
    const [a1, , , a4] = agents as [AgentProcess, AgentProcess, AgentProcess, AgentProcess];
    const before = await Promise.all(agents.map(changesApplied));
    const linkSeries = async () =>
      (await (await fetch(`${a1.apiUrl}/metrics?name=locmesh_peer_connected`)).text()).split("\n").filter((l) => l.startsWith("locmesh_peer_connected{"));
    expect(await linkSeries()).toEqual([expect.stringMatching(/^locmesh_peer_connected\{peer="hub[12]"\} 1$/)]);
    await Promise.all(hubs.map((h) => h.stop()));
    // With no hub reachable, the link still has a series, at 0, for the alert to see.
    await waitFor("a1's hub link shows down", async () => (await linkSeries()).join() === 'locmesh_peer_connected{peer="hub"} 0');
    await Promise.all([publishAliases(a1, 0, 500, "offline-a1-"), publishAliases(a4, 0, 500, "offline-a4-")]);
    expect(await aliasCount(a1)).toBe(12_700);
    // Restarted (kill -9) while no hub answers, a1 still counts the 500 changes no hub has, at once:
    // the journal keeps what a hub last said it held of a1's.
    await a1.kill9();
    await a1.start();
    before[0] = 0; // its counters start again
    expect((await a1.call<ClusterStatus>("cluster.status")).hubUnacknowledged).toBe(500);
    expect(await a1.metric("locmesh_peer_behind_changes", { peer: "hub" })).toBe(500);
    const shown = await cli(["status", "--url", a1.apiUrl, "--token", a1.spec.token]);
    expect(shown.stdout).toMatch(/^unacknowledged by hub +500 changes of this node wait in the journal \(no hub answers; they go when one does\)$/m);
    // Stopped now, it says at warn that they are in its journal alone: removing the node must wait.
    await a1.stop();
    const stopLine = readFileSync(a1.logPath, "utf8").split("\n").find((l) => l.includes("no hub has acknowledged"));
    expect(JSON.parse(stopLine ?? "null")).toMatchObject({ level: "warn", changes: 500, msg: expect.stringContaining("Keep its dataDir") });
    await a1.start();
    await hubs[1]!.start();
    await waitFor("13,200 aliases everywhere", () => allAgree(13_200), 30_000);
    await waitFor("a1's changes all on a hub", async () => (await a1.call<ClusterStatus>("cluster.status")).hubUnacknowledged === 0);
    await hubs[0]!.start();
    const after = await Promise.all(agents.map(changesApplied));
    expect(after.map((n, i) => n - before[i]!)).toEqual([500, 1000, 1000, 500]);
    for (const a of agents) expect(await changesReceived(a)).toBe(await changesApplied(a));
  });

  it("gives an agent that lost its journal a full snapshot from a hub", async () => {
    const a4 = agents[3]!;
    const stoppingAt = Date.now();
    await a4.stop();
    // Both hubs show it down with when it was last up: the one it was on from its session closing,
    // the other from the row that hub kept (once that row is stale).
    for (const h of hubs) {
      const shown = await waitFor(`a4 down on ${h.spec.id}, with when it was last up`, async () =>
        (await h.call<ClusterStatus>("cluster.status")).peers.find((p) => p.nodeId === a4.spec.id && p.connected === false && p.lastSeen !== undefined));
      expect(Date.parse(shown.lastSeen!)).toBeGreaterThan(stoppingAt - 10_000); // rows are written every few seconds
      expect(Date.parse(shown.lastSeen!)).toBeLessThanOrEqual(Date.now());
    }
    rmSync(join(a4.spec.dir, "data"), { recursive: true, force: true });
    await a4.start();
    const expected = await dumpAliases(agents[0]!);
    await waitFor("snapshot complete", async () => (await aliasCount(a4)) === expected.length, 30_000);
    expect(await dumpAliases(a4)).toEqual(expected);
    // Each record once (13,200 aliases and the binding; nothing was removed, so no tombstones).
    expect(await changesReceived(a4)).toBe(expected.length + 1);
  });

  it("refuses an agent with the wrong key, and logs and counts it", async () => {
    const hub2 = hubs[1]!;
    const intruder = new AgentProcess({
      id: "intruder", meshPort: await freePort(), apiPort: await freePort(), dir: join(dir, "intruder"),
      secret: "not-the-cluster-secret-9876543210", token: "intruder-api-token-0123456789", peers: [],
      config: { hub: { urls: [hub2.meshUrl] } },
    });
    const refusedBefore = await hub2.metric("locmesh_auth_failures_total", { reason: "wrong key" });
    await intruder.start();
    try {
      await waitFor("refusal counted", async () => (await hub2.metric("locmesh_auth_failures_total", { reason: "wrong key" })) > refusedBefore);
      const st = await intruder.call<ClusterStatus>("cluster.status");
      expect(st.peers.some((p) => p.connected)).toBe(false);
      expect(st.counts.aliases).toBe(0);
      // No hub has ever answered its journal: how many of its changes wait is unknown, and said so.
      expect(st.hubUnacknowledged).toBeNull();
      const shown = await cli(["status", "--url", intruder.apiUrl, "--token", intruder.spec.token]);
      expect(shown.stdout).toMatch(/^unacknowledged by hub +unknown \(no hub has answered since this node's journal was made\)$/m);
      // A change made now is in its journal alone; stopping, it says so (no hub has answered at all).
      await intruder.call("alias.set", { alias: "sip:lonely@example.com", target: "sip:desk@example.com" });
      await intruder.stop();
      const stopLine = readFileSync(intruder.logPath, "utf8").split("\n").find((l) => l.includes("no hub has acknowledged"));
      expect(JSON.parse(stopLine ?? "null")).toMatchObject({ level: "warn", changes: 1, msg: expect.stringContaining("(no hub has answered this journal yet)") });
    } finally {
      await intruder.stop();
    }
  });

  it("warns when two agents run with one nodeId and keep pushing each other's session off the hub", async () => {
    const a2 = agents[1]!;
    const logged = hubs.map((h) => readFileSync(h.logPath, "utf8").length);
    // A copy of a2's node (a cloned VM): same nodeId, key and hubs, its own journal.
    const twin = new AgentProcess({
      id: a2.spec.id, meshPort: await freePort(), apiPort: await freePort(), dir: join(dir, "twin"),
      secret: a2.spec.secret, token: "twin-api-token-0123456789abcdef", peers: [],
      config: { hub: a2.spec.config?.["hub"] },
    });
    await twin.start();
    try {
      const warned = () => hubs.flatMap((h, i) => readFileSync(h.logPath, "utf8").slice(logged[i]).split("\n")).find((l) => l.includes(`two nodes may run with nodeId ${a2.spec.id}`));
      const line = await waitFor("a hub warning of two nodes with one nodeId", async () => warned(), 30_000);
      expect(JSON.parse(line)).toMatchObject({ level: "warn", peer: a2.spec.id, msg: expect.stringMatching(/opened a second session \d+ times in 10 s \(from .*\)/) });
    } finally {
      await twin.stop();
    }
  });

  it("gets back from the agents what the hubs' database lost (a failover to a replica that was behind), and says so", async () => {
    const a1 = agents[0]!;
    await publishAliases(a1, 0, 20, "lost-");
    const total = await aliasCount(a1);
    await waitFor("the new aliases everywhere", () => allAgree(total));
    const db = new pg.Client({ connectionString: pgUrl });
    await db.connect();
    try {
      const origin = async () => (await db.query<{ id: number; have: string }>(
        "SELECT id, have FROM origins WHERE replica LIKE 'a1~%' ORDER BY have DESC LIMIT 1")).rows[0]!;
      // No false alarm so far: the tests above killed a hub and PostgreSQL itself under load.
      for (const h of hubs) expect(readFileSync(h.logPath, "utf8")).not.toContain("holds fewer changes than this hub had seen");
      const { id, have } = await origin();
      const held = Number(have);
      // What a replica 10 commits behind would hold.
      await db.query("DELETE FROM records WHERE origin = $1 AND seq > $2", [id, held - 10]);
      await db.query("UPDATE origins SET have = $2 WHERE id = $1", [id, held - 10]);
      const logged = hubs.map((h) => readFileSync(h.logPath, "utf8").length);
      // Before, the hubs kept saying they held all of a1's changes: a1 never sent the ten again,
      // and an agent that stood below them would have been told it had them.
      await waitFor("a1's changes back in PostgreSQL", async () => Number((await origin()).have) >= held, 30_000);
      const rows = await db.query<{ n: string }>("SELECT count(*) AS n FROM records WHERE origin = $1 AND seq > $2", [id, held - 10]);
      expect(Number(rows.rows[0]!.n)).toBeGreaterThan(0);
      const said = hubs.flatMap((h, i) => readFileSync(h.logPath, "utf8").slice(logged[i]).split("\n")).find((l) => l.includes("holds fewer changes than this hub had seen committed"));
      expect(said).toContain(`had ${held}, holds ${held - 10}`);
      await waitFor("every agent agrees", () => allAgree(total));
    } finally {
      await db.end();
    }
  }, 60_000);

  it("`locmesh hub migrate` finds the database up to date", () => {
    const res = spawnSync(process.execPath, [join(ROOT, "bin", "locmesh.js"), "hub", "migrate", "--config", hubs[1]!.configPath], { encoding: "utf8" });
    expect(res.stderr).toBe("");
    expect(res.stdout).toContain("up to date");
  });
});
