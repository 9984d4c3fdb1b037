/**
 * Hub failback against a real PostgreSQL 15: two hubs on one database; agents a1 and a3 list
 * [hub1, hub2], a2 lists [hub2, hub1]. When hub1 is killed, a1 and a3 fail over to hub2; when it
 * is back, a1 (hub.failbackAfterSec: 1) returns to hub1 on its own, and a3 (failback off) stays on
 * hub2 until SIGHUP. While hub1 refuses sessions (its PostgreSQL, behind a path that freezes like
 * a partition, does not answer), a1 checks it, finds it refusing and stays on hub2; it returns once
 * hub1 serves again. Changes made all along, across every move, reach every agent exactly once.
 */
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type AgentProcess, waitFor } from "../support/agent-process.js";
import { startFreezableProxy, type FreezableProxy } from "../support/freezable-proxy.js";
import { aliasLedger } from "../support/alias-ledger.js";
import { changesApplied, hubOf, makeHubCluster, type HubProcess, stopHubCluster } from "../support/hub-process.js";
import { startPostgres, type PostgresProcess } from "../support/postgres-process.js";

let dir: string;
let pgServer: PostgresProcess;
/** hub1's path to PostgreSQL. */
let path: FreezableProxy;
let hubs: HubProcess[];
let agents: AgentProcess[];

const onHubs = async (want: (string | null)[]) => (await Promise.all(agents.map(hubOf))).every((h, i) => want[i] === undefined || h === want[i]);

/** Aliases each agent has set; every agent must end up holding all of them, each applied once. */
const { publish, expectEachChangeOnce } = aliasLedger(() => agents);

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "locmesh-failback-"));
  pgServer = await startPostgres();
  const pgUrl = await pgServer.createDatabase("locmesh");
  path = await startFreezableProxy(pgServer.port);
  // Short, so that hub1 refuses sessions within seconds of its PostgreSQL going silent.
  const timeouts = { connectTimeoutMs: 1000, queryTimeoutMs: 2000, keepAliveIdleMs: 1000, unreachableAfterMs: 1500 };
  ({ hubs, agents } = await makeHubCluster(dir, { hubs: 2, agents: 3, pgUrl, hubOrder: (a) => (a === 1 ? [1, 0] : [0, 1]), hubConfig: { postgres: timeouts } }));
  hubs[0]!.spec.config = { postgres: { ...timeouts, url: pgUrl.replace(/:\d+\//, `:${path.port}/`) } };
  const failbackAfterSec = [1, 120, 0];
  for (const [i, a] of agents.entries()) {
    const hub = a.spec.config!["hub"] as { urls: string[] };
    a.spec.config = { ...a.spec.config, hub: { ...hub, failbackAfterSec: failbackAfterSec[i] }, ...(i === 0 ? { log: { level: "debug" } } : {}) };
  }
  await Promise.all(hubs.map((h) => h.start()));
  await Promise.all(agents.map((a) => a.start()));
  await waitFor("every agent on its preferred hub", () => onHubs(["hub1", "hub2", "hub1"]));
});

afterAll(async () => {
  path?.thaw();
  await stopHubCluster({ agents, hubs, closers: [path, pgServer], dir });
});

describe("failing back to the preferred hub", () => {
  it("an agent returns to its preferred hub once it is back, on its own; nothing lost, nothing applied twice", async () => {
    const [a1, a2] = agents as [AgentProcess, AgentProcess, AgentProcess];
    const a2Before = await changesApplied(a2);
    const load = Promise.all([publish(0, 2000, "kill"), publish(1, 2000, "kill")]);
    await waitFor("a1's changes crossing the hubs", async () => (await changesApplied(a2)) > a2Before, 20_000, 20);
    await hubs[0]!.kill9();
    await load;
    await waitFor("a1 and a3 failed over to hub2", () => onHubs(["hub2", "hub2", "hub2"]));
    await Promise.all([publish(0, 300, "away"), publish(2, 300, "away")]);

    await hubs[0]!.start();
    // Changes keep coming on every agent until a1 is back on hub1, so some cross the move.
    const until = Date.now() + 60_000;
    for (let round = 0; (await hubOf(a1)) !== "hub1"; round++) {
      if (Date.now() > until) throw new Error("a1 did not move back to hub1 within 60 s");
      await Promise.all(agents.map((_, i) => publish(i, 50, `back${round}`)));
    }
    await Promise.all(agents.map((_, i) => publish(i, 50, "after")));
    await waitFor("a1's move in its log", async () => /"msg":"moving back to its preferred hub hub1: it has taken sessions for \d+ s"/.test(readFileSync(a1.logPath, "utf8")), 5000);
    await expectEachChangeOnce();
    // a3 has failback off: it stays where the failover took it.
    expect(await onHubs(["hub1", "hub2", "hub2"])).toBe(true);
  }, 150_000);

  it("SIGHUP moves an agent back to its preferred hub at once, failback on or off", async () => {
    const a3 = agents[2]!;
    a3.child!.kill("SIGHUP");
    await waitFor("a3 back on hub1", () => onHubs(["hub1", "hub2", "hub1"]));
    await waitFor("a3's move in its log", async () => readFileSync(a3.logPath, "utf8").includes('"msg":"moving back to its preferred hub hub1: asked to rebalance"'), 5000);
    await Promise.all(agents.map((_, i) => publish(i, 100, "sighup")));
    await expectEachChangeOnce();
  });

  it("stays on the other hub while its preferred hub refuses sessions, checking it with backoff, and returns once it serves again", async () => {
    const a1 = agents[0]!;
    const a1Log = () => readFileSync(a1.logPath, "utf8");
    const sessionsWithHub1 = () => a1Log().split("\n").filter((l) => l.includes('"peer":"hub1"') && l.includes('"msg":"peer session ready"')).length;
    const refusedChecks = () => a1Log().split("\n").filter((l) => l.includes('"msg":"checked the preferred hub"') && l.includes("4013")).length;
    path.freeze();
    await waitFor("a1 and a3 on hub2", () => onHubs(["hub2", "hub2", "hub2"]), 30_000);
    const sessionsBefore = sessionsWithHub1();
    // a1 checks hub1, which takes the WebSocket and closes it at once (4013): it stays on hub2.
    const checksBefore = refusedChecks();
    for (let round = 0; refusedChecks() < checksBefore + 2; round++) {
      await Promise.all(agents.map((_, i) => publish(i, 20, `refused${round}`)));
    }
    expect(sessionsWithHub1()).toBe(sessionsBefore);
    expect(await onHubs(["hub2", "hub2", "hub2"])).toBe(true);

    path.thaw();
    const until = Date.now() + 60_000;
    for (let round = 0; (await hubOf(a1)) !== "hub1"; round++) {
      if (Date.now() > until) throw new Error("a1 did not move back to hub1 within 60 s of hub1's PostgreSQL answering");
      await Promise.all(agents.map((_, i) => publish(i, 20, `thawed${round}`)));
    }
    // The log line may land a moment after the status shows the session.
    await waitFor("a1's session with hub1 in its log", async () => sessionsWithHub1() > sessionsBefore, 5000);
    expect(sessionsWithHub1()).toBe(sessionsBefore + 1);
    await expectEachChangeOnce();
    expect(await onHubs(["hub1", "hub2", "hub2"])).toBe(true);
  }, 150_000);
});
