/**
 * Hub mode for the drills' cluster: a real PostgreSQL 15 and `count` hub processes on one database
 * (test/support's hub and PostgreSQL helpers). Agents then know only the hubs (config
 * `hub.urls`, no mesh peers), agent i starting at hub i mod count and failing over round the list.
 */
import { join } from "node:path";
import { makeHubCluster, type HubProcess } from "../support/hub-process.js";
import { startPostgres, type PostgresProcess } from "../support/postgres-process.js";

export interface DrillHubs {
  hubs: HubProcess[];
  postgres: PostgresProcess;
  /** The `hub` config section of agent `index` (from 0). */
  agentConfig(index: number): { hub: { urls: string[] } };
  close(): Promise<void>;
}

export async function startDrillHubs(dir: string, count: number): Promise<DrillHubs> {
  const postgres = await startPostgres();
  let hubs: HubProcess[] = [];
  try {
    const pgUrl = await postgres.createDatabase("locmesh");
    ({ hubs } = await makeHubCluster(join(dir, "hubs"), { hubs: count, agents: 0, pgUrl }));
    await Promise.all(hubs.map((h) => h.start()));
  } catch (err) {
    await Promise.allSettled(hubs.map((h) => h.stop()));
    await postgres.close();
    throw err;
  }
  return {
    hubs,
    postgres,
    agentConfig: (index) => ({ hub: { urls: hubs.map((_, k) => hubs[(index + k) % hubs.length]!.meshUrl) } }),
    async close() {
      await Promise.allSettled(hubs.map((h) => h.stop()));
      await postgres.close();
    },
  };
}
