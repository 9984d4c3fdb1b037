/**
 * The peer port (`mesh.listen`) of agents in hub mode, with a real hub on a real PostgreSQL 15. With
 * no mesh.peers and mesh.acceptUnlisted off nobody could hold a session there (the agent dials its
 * hub; every node dialing it would be refused at the handshake), so the agent does not open it and
 * says so at start. With mesh.acceptUnlisted, or once a SIGHUP gives it mesh.peers (migrating to or
 * from the mesh), it listens; a SIGHUP that takes the peers away closes it again.
 */
import { mkdtempSync, readFileSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ClusterStatus } from "../../agent/contract/cluster-status.js";
import { type AgentProcess, waitFor } from "../support/agent-process.js";
import { hubOf, makeHubCluster, type HubProcess, stopHubCluster } from "../support/hub-process.js";
import { startPostgres, type PostgresProcess } from "../support/postgres-process.js";

let dir: string;
let pgServer: PostgresProcess;
let hubs: HubProcess[];
let agents: AgentProcess[];

const linesOf = (a: AgentProcess, msg: string) => readFileSync(a.logPath, "utf8").split("\n").filter((l) => l.includes(`"msg":"${msg}`));
const linked = async (a: AgentProcess, peer: string) => (await a.call<ClusterStatus>("cluster.status")).peers.some((p) => p.nodeId === peer && p.connected);

/** What a TCP connect to the port gets: "open", or the error's code (ECONNREFUSED: nothing listens). */
function tcpProbe(port: number): Promise<string> {
  return new Promise((resolve) => {
    const s = connect({ host: "127.0.0.1", port });
    s.once("connect", () => {
      s.destroy();
      resolve("open");
    });
    s.once("error", (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
  });
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "locmesh-hub-peer-port-"));
  pgServer = await startPostgres();
  const pgUrl = await pgServer.createDatabase("locmesh");
  ({ hubs, agents } = await makeHubCluster(dir, { hubs: 1, agents: 3, pgUrl }));
  const a3 = agents[2]!;
  a3.spec.config = { ...a3.spec.config, mesh: { acceptUnlisted: true } };
  await Promise.all(hubs.map((h) => h.start()));
  await Promise.all(agents.map((a) => a.start()));
  await waitFor("every agent on the hub", async () => (await Promise.all(agents.map(hubOf))).every((h) => h === "hub1"));
});

afterAll(async () => {
  await stopHubCluster({ agents, hubs, closers: [pgServer], dir });
});

describe("the peer port of an agent in hub mode", () => {
  it("is not opened with no mesh.peers and mesh.acceptUnlisted off, and the start log says why", async () => {
    for (const a of agents.slice(0, 2)) {
      expect(await tcpProbe(a.spec.meshPort)).toBe("ECONNREFUSED");
      const line = linesOf(a, `peer mesh not listening on 127.0.0.1:${a.spec.meshPort}: `);
      expect(line).toHaveLength(1);
      expect(line[0]).toContain("in hub mode with no mesh.peers and mesh.acceptUnlisted off, no node could hold a session there");
      expect(linesOf(a, "peer mesh listening")).toEqual([]);
    }
  });

  it("is opened with mesh.acceptUnlisted, where a node that lists the agent can dial it", async () => {
    const a3 = agents[2]!;
    expect(await tcpProbe(a3.spec.meshPort)).toBe("open");
    expect(linesOf(a3, "peer mesh listening")[0]).toContain(`"listen":"127.0.0.1:${a3.spec.meshPort}"`);
  });

  it("opens when a SIGHUP adds mesh.peers (the peers connect directly), and closes when one removes them", async () => {
    const [a1, a2] = agents as [AgentProcess, AgentProcess, AgentProcess];
    // Migrating a1 and a2 to the mesh: each lists the other, each listens, they connect.
    a1.reloadPeers([{ id: "a2", url: a2.meshUrl }]);
    a2.reloadPeers([{ id: "a1", url: a1.meshUrl }]);
    await waitFor("a1 and a2 connected directly", async () => (await linked(a1, "a2")) && (await linked(a2, "a1")), 20_000);
    for (const a of [a1, a2]) {
      expect(await tcpProbe(a.spec.meshPort)).toBe("open");
      // The agent writes its log without waiting: the line may come a moment after the port opens.
      await waitFor(`${a.spec.id} logging that it listens`, async () => linesOf(a, "peer mesh listening").length > 0);
      expect(linesOf(a, "peer mesh listening")).toHaveLength(1);
    }

    a1.reloadPeers([]);
    a2.reloadPeers([]);
    await waitFor("a1 and a2 closed their peer ports", async () => (await tcpProbe(a1.spec.meshPort)) === "ECONNREFUSED" && (await tcpProbe(a2.spec.meshPort)) === "ECONNREFUSED", 10_000);
    await waitFor("the direct session gone", async () => !(await linked(a1, "a2")) && !(await linked(a2, "a1")), 10_000);
    for (const a of [a1, a2]) {
      const closedLine = `peer mesh closed its port 127.0.0.1:${a.spec.meshPort}: in hub mode with no mesh.peers`;
      await waitFor(`${a.spec.id} logging that it closed its port`, async () => linesOf(a, closedLine).length > 0);
      expect(linesOf(a, closedLine)).toHaveLength(1);
    }
    // Their hub sessions went on all along.
    for (const a of [a1, a2]) expect(linesOf(a, "peer session ready").filter((l) => l.includes('"peer":"hub1"'))).toHaveLength(1);
  }, 60_000);
});
