/**
 * Issue 4, hub mode: a removal made while an agent is down for longer than the retention still
 * reaches it. The hub keeps a tombstone until every agent it recorded within
 * journal.holdForAgentsDays holds it (hub_agents.vv, the PURGE statement). Before, it purged by
 * age alone, and the agent that came back kept the removed alias for good.
 *
 * The retention is an hour at least, so the hub runs with its wall clock two hours ahead
 * (libfaketime): every tombstone is past the retention as soon as it is stored, and only what the
 * agents hold keeps it.
 */
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sleep, waitFor, type AgentProcess } from "../support/agent-process.js";
import { dumpAliases } from "../support/aliases.js";
import { skewedClockEnv } from "../support/faketime.js";
import { makeHubCluster, stopHubCluster, type HubProcess } from "../support/hub-process.js";
import { startPostgres, type PostgresProcess } from "../support/postgres-process.js";

/** The hubs' database. */
const DB = "locmesh";
let dir: string;
let pgServer: PostgresProcess;
let hub: HubProcess;
let a1: AgentProcess;
let a2: AgentProcess;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "locmesh-hub-hold-"));
  pgServer = await startPostgres();
  const url = await pgServer.createDatabase(DB);
  const c = await makeHubCluster(dir, { hubs: 1, agents: 2, pgUrl: url, hubConfig: { journal: { retentionHours: 1, purgeIntervalSec: 1, holdForAgentsDays: 1 } } });
  hub = c.hubs[0]!;
  hub.spec.env = skewedClockEnv(2 * 3600);
  [a1, a2] = c.agents as [AgentProcess, AgentProcess];
  await hub.start();
  await Promise.all([a1.start(), a2.start()]);
}, 60_000);

afterAll(async () => {
  await stopHubCluster({ agents: [a1, a2], hubs: [hub], closers: [pgServer], dir });
});

/** The hub's row for an alias: its target, null for a tombstone, undefined once purged. */
async function hubRow(alias: string): Promise<string | null | undefined> {
  const rows = await pgServer.query<{ value: string | null }>("SELECT value FROM records WHERE kind = 1 AND key = $1", [alias], DB);
  return rows.length === 0 ? undefined : rows[0]!.value;
}

describe("hub: tombstones and agents that are away", () => {
  it("keeps a removal for an agent down past the retention until it has it, and purges it then", async () => {
    for (const alias of ["both@example.com", "gone@example.com"]) await a1.call("alias.set", { alias: `sip:${alias}`, target: "sip:carol@example.com" });
    await waitFor("both aliases on a2", async () => (await dumpAliases(a2)).length === 2);

    // Removed while both agents are up: purged as soon as both have it (the clock trick works).
    await a1.call("alias.remove", { alias: "sip:both@example.com" });
    await waitFor("both@ purged at the hub", async () => (await hubRow("both@example.com")) === undefined, 20_000, 200);

    await a2.stop();
    await a1.call("alias.remove", { alias: "sip:gone@example.com" });
    await waitFor("gone@'s tombstone at the hub", async () => (await hubRow("gone@example.com")) === null);
    // Several purges run (one a second), past the retention: a2 lacks it, so it stays.
    await sleep(4000);
    expect(await hubRow("gone@example.com")).toBeNull();

    await a2.start();
    await waitFor("the removal on a2", async () => (await dumpAliases(a2)).length === 0, 20_000, 200);
    // Now that every agent has it, it goes.
    await waitFor("gone@ purged at the hub", async () => (await hubRow("gone@example.com")) === undefined, 20_000, 200);
    const recorded = await pgServer.query<{ node_id: string; vv: Record<string, number> | null }>("SELECT node_id, vv FROM hub_agents ORDER BY node_id", [], DB);
    expect(recorded.map((r) => r.node_id)).toEqual(["a1", "a2"]);
    for (const r of recorded) expect(Object.keys(r.vv ?? {}).length).toBeGreaterThan(0);
  });
});
