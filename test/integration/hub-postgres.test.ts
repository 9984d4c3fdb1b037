/**
 * A hub whose PostgreSQL fails it, against real processes: `locmesh hub` and `locmesh hub migrate`
 * with no PostgreSQL at the configured address, or behind a path that takes TCP and never answers
 * (test/support/freezable-proxy.ts, frozen); and two hubs on one real PostgreSQL 15, one of them
 * reaching it through a path that freezes as a partition does, with agents that know both hubs,
 * and the frozen hub's status and `locmesh_hub_postgres_up`; and a hub whose PostgreSQL stopped,
 * whose status says, before it releases its agent, that it fails to store that agent's batches.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ClusterStatus } from "../../agent/contract/cluster-status.js";
import { ROOT, freePort, sleep, waitFor, type AgentProcess } from "../support/agent-process.js";
import { aliasCount, dumpAliases, publishAliases } from "../support/aliases.js";
import { startFreezableProxy, type FreezableProxy } from "../support/freezable-proxy.js";
import { SECRET, TOKEN, changesApplied, changesReceived, hubOf, makeHubCluster, type HubProcess, stopHubCluster } from "../support/hub-process.js";
import { startPostgres, type PostgresProcess } from "../support/postgres-process.js";

const BIN = join(ROOT, "bin", "locmesh.js");
/** Put in every postgres.url here: it must show in no output. */
const PASSWORD = "pg-password-never-shown";
let dir: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "locmesh-hub-pg-"));
});

afterAll(() => {
  if (dir && !process.env["LOCMESH_KEEP_TEST_DIRS"]) rmSync(dir, { recursive: true, force: true });
});

/** A hub config file for PostgreSQL at `pgPort`, with `postgres` settings merged in. */
async function hubConfig(name: string, pgPort: number, postgres: Record<string, unknown> = {}): Promise<string> {
  const path = join(dir, `${name}.json`);
  const config = {
    nodeId: name,
    mesh: { listen: `127.0.0.1:${await freePort()}`, secret: SECRET, acceptUnlisted: true },
    api: { listen: `127.0.0.1:${await freePort()}`, token: TOKEN },
    postgres: { url: `postgres://locmesh:${PASSWORD}@127.0.0.1:${pgPort}/locmesh`, ...postgres },
  };
  writeFileSync(path, JSON.stringify(config), { mode: 0o600 });
  return path;
}

interface Exit {
  code: number | null;
  output: string;
  ms: number;
}

/**
 * Runs `locmesh <args>` without blocking this process (a proxy in it may have to keep answering);
 * SIGKILLed after `limitMs`, which shows as code null.
 */
function locmesh(args: string[], limitMs = 30_000): Promise<Exit> {
  const started = Date.now();
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("LOCMESH_") && !k.startsWith("PG")));
  const child = spawn(process.execPath, [BIN, ...args], { env: { ...env, NO_COLOR: "1" }, stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  for (const s of [child.stdout, child.stderr]) s.on("data", (d: Buffer) => (output += d.toString()));
  const kill = setTimeout(() => child.kill("SIGKILL"), limitMs);
  return new Promise((resolve) =>
    child.once("close", (code) => {
      clearTimeout(kill);
      resolve({ code, output, ms: Date.now() - started });
    }),
  );
}

describe("a hub without its PostgreSQL", () => {
  it("`hub migrate` and `hub` exit 1 naming PostgreSQL, its host:port and what to check, never the password, when nothing listens there", async () => {
    const pgPort = await freePort();
    const config = await hubConfig("hub-refused", pgPort);
    for (const args of [["migrate", "--config", config], ["--config", config]]) {
      const r = await locmesh(["hub", ...args]);
      expect(r.code, r.output).toBe(1);
      expect(r.output).toContain(`cannot reach PostgreSQL at 127.0.0.1:${pgPort}`);
      expect(r.output).toMatch(/Check that PostgreSQL is running/);
      expect(r.output).not.toContain(PASSWORD);
    }
  });

  it("`hub migrate` and `hub` give up within postgres.connectTimeoutMs when PostgreSQL's address takes TCP and never answers", async () => {
    const silent = await startFreezableProxy(await freePort());
    silent.freeze();
    try {
      const config = await hubConfig("hub-silent", silent.port, { connectTimeoutMs: 1000 });
      for (const args of [["migrate", "--config", config], ["--config", config]]) {
        const r = await locmesh(["hub", ...args]);
        expect(r.code, r.output).toBe(1);
        // 1 s, and a generous margin for a busy machine: without the timeout this waits for ever.
        expect(r.ms).toBeLessThan(15_000);
        expect(r.output).toContain(`PostgreSQL at 127.0.0.1:${silent.port} did not answer within 1000 ms (postgres.connectTimeoutMs)`);
        expect(r.output).not.toContain(PASSWORD);
      }
    } finally {
      await silent.close();
    }
  });
});

describe("a hub whose role does not own its database", () => {
  it("`hub migrate` on PostgreSQL 15 says how to create a database the hub's role owns", async () => {
    const server = await startPostgres();
    try {
      await server.query("CREATE ROLE notowner LOGIN");
      await server.createDatabase("notowned");
      const config = join(dir, "hub-notowner.json");
      const url = server.url("notowned").replace("postgres://postgres@", `postgres://notowner:${PASSWORD}@`);
      writeFileSync(config, JSON.stringify({
        nodeId: "hub-notowner", mesh: { listen: "127.0.0.1:0", secret: SECRET, acceptUnlisted: true },
        api: { listen: "127.0.0.1:0", token: TOKEN }, postgres: { url },
      }), { mode: 0o600 });
      const r = await locmesh(["hub", "migrate", "--config", config]);
      expect(r.code, r.output).toBe(1);
      expect(r.output).toMatch(/permission denied for schema public\. .*since PostgreSQL 15 only the database's owner may create tables in schema public/);
      // Named after postgres.url's role and database, so the hint can be pasted as it is.
      expect(r.output).toContain("ALTER DATABASE notowned OWNER TO notowner; ALTER SCHEMA public OWNER TO notowner;");
      expect(r.output).not.toContain(PASSWORD);
    } finally {
      await server.close();
    }
  });
});

describe("two hubs on one PostgreSQL, one of them reaching it through a path that freezes", () => {
  /** Short, so the test runs in seconds; the defaults are in the README. */
  const timeouts = { connectTimeoutMs: 1000, queryTimeoutMs: 2000, keepAliveIdleMs: 1000, unreachableAfterMs: 1500 };
  let pgServer: PostgresProcess;
  let path: FreezableProxy;
  let hubs: HubProcess[];
  let agents: AgentProcess[];
  /** The metric's own text, so that a missing series does not read as 0. */
  const postgresUp = async (h: HubProcess) => {
    const m = /^locmesh_hub_postgres_up (\d)$/m.exec(await (await fetch(`${h.apiUrl}/metrics?name=locmesh_hub_postgres_up`)).text());
    return m ? Number(m[1]) : null;
  };
  const allAgree = async (n: number) => (await Promise.all(agents.map(aliasCount))).every((c) => c === n);
  const storedAliases = async () => (await pgServer.query<{ n: number }>("SELECT count(*)::int AS n FROM records WHERE kind = 1", [], "locmesh"))[0]!.n;

  beforeAll(async () => {
    pgServer = await startPostgres();
    const pgUrl = await pgServer.createDatabase("locmesh");
    path = await startFreezableProxy(pgServer.port);
    // a1, a3 prefer hub1 (behind the freezable path); a2, a4 prefer hub2.
    ({ hubs, agents } = await makeHubCluster(join(dir, "cluster"), { hubs: 2, agents: 4, pgUrl, hubConfig: { postgres: timeouts } }));
    // Trust auth ignores the password; it is there to be kept out of every log line.
    hubs[0]!.spec.config = { postgres: { ...timeouts, url: `postgres://postgres:${PASSWORD}@127.0.0.1:${path.port}/locmesh` } };
    await Promise.all(hubs.map((h) => h.start()));
    await Promise.all(agents.map((a) => a.start()));
    await waitFor("every agent on its first hub", async () => (await Promise.all(agents.map(hubOf))).join() === "hub1,hub2,hub1,hub2");
  });

  afterAll(async () => {
    path?.thaw();
    await stopHubCluster({ agents, hubs, closers: [path, pgServer] });
  });

  it("a hub whose PostgreSQL stops answering lets its agents go to the other hub and refuses new ones: nothing lost, nothing applied twice; it serves again once PostgreSQL answers", async () => {
    const [a1, a2, a3, a4] = agents as [AgentProcess, AgentProcess, AgentProcess, AgentProcess];
    const hub1Log = () => readFileSync(hubs[0]!.logPath, "utf8");
    await Promise.all(agents.map((a, i) => publishAliases(a, 0, 20, `before-a${i + 1}-`)));
    await waitFor("80 aliases everywhere", () => allAgree(80));
    const before = await Promise.all(agents.map(changesApplied));
    // Each hub records its agents every statusIntervalMs and reads the others' rows when asked.
    // Once hub2 reads a1 and a3 on hub1 and hub1 reads a2 and a4 on hub2 (a read completed, not
    // the last rows of a slower one), the rows hub1 falls back on while frozen hold all four.
    const onHub = async (reader: HubProcess, hub: string) =>
      (await reader.call<ClusterStatus>("cluster.status")).peers.filter((p) => p.hub === hub && p.asOf === undefined).map((p) => p.nodeId).join();
    await waitFor("every agent recorded in PostgreSQL and read by both hubs", async () => (await onHub(hubs[1]!, "hub1")) === "a1,a3" && (await onHub(hubs[0]!, "hub2")) === "a2,a4");
    expect((await hubs[0]!.call<ClusterStatus>("cluster.status")).postgres).toMatchObject({ address: `127.0.0.1:${path.port}`, reachable: true, countsAgeSeconds: expect.any(Number) });
    const countedAt = Date.now();
    // Both hubs say their PostgreSQL is up; an agent has none and no such series.
    expect(await Promise.all(hubs.map(postgresUp))).toEqual([1, 1]);
    expect(await (await fetch(`${a1.apiUrl}/metrics`)).text()).not.toContain("locmesh_hub_postgres_up");

    path.freeze();
    const frozenAt = Date.now();
    // Taken by a1's journal at once; its hub cannot store it now.
    await publishAliases(a1, 0, 50, "frozen-a1-");
    await waitFor("a1 and a3 on hub2", async () => (await hubOf(a1)) === "hub2" && (await hubOf(a3)) === "hub2", 30_000);
    // unreachableAfterMs (1.5 s), a check interval and a reconnect; the bound is for a busy machine.
    expect(Date.now() - frozenAt).toBeLessThan(20_000);
    await waitFor("hub1 saying PostgreSQL does not answer", async () => hub1Log().includes(`PostgreSQL at 127.0.0.1:${path.port} has not answered for`), 5000);
    // The alert's series: 0 on the hub whose PostgreSQL is silent (its scrape answers all the same).
    expect(await Promise.all(hubs.map(postgresUp))).toEqual([0, 1]);
    await publishAliases(a3, 0, 50, "moved-a3-");
    await waitFor("180 aliases everywhere", () => allAgree(180), 30_000);
    // Its LISTEN connection only receives; the ping finds it dead (reloadMs 5 s + queryTimeoutMs).
    await waitFor("hub1 remaking its LISTEN connection", async () => hub1Log().includes("the LISTEN connection does not answer"), 30_000);
    // Its status still answers: PostgreSQL unreachable and why, the counts it last had and their
    // age. (Past the 5 s a hub reuses counts for: the status cannot answer from that cache alone.)
    await sleep(countedAt + 6000 - Date.now());
    const st = await hubs[0]!.call<ClusterStatus>("cluster.status");
    expect(st.postgres).toMatchObject({ address: `127.0.0.1:${path.port}`, reachable: false, error: expect.any(String) });
    expect(st.postgres!.countsAgeSeconds).toBeGreaterThanOrEqual(6);
    expect(st.counts.aliases).toBe(80);
    // It cannot read where the agents are now: none shows as connected (on hub2, from rows read
    // before the freeze) or down; each is unknown as of that read.
    expect(st.peers.map((p) => p.nodeId)).toEqual(["a1", "a2", "a3", "a4"]);
    for (const p of st.peers) expect(p).toMatchObject({ connected: null, asOf: expect.any(String), behindChanges: null });
    const shown = await locmesh(["status", "--url", hubs[0]!.apiUrl, "--token", TOKEN]);
    expect(shown.code, shown.output).toBe(0);
    expect(shown.output).toMatch(new RegExp(`^postgresql +UNREACHABLE at 127\\.0\\.0\\.1:${path.port} since `, "m"));
    expect(shown.output).toMatch(/^a2 +- +hub2 as of \d\d:\d\d:\d\d UTC \(unknown now\) /m);
    expect(shown.output).toMatch(/^records +0 locations, 80 aliases, 0 tombstones \(STALE: counted \d+s ago; PostgreSQL does not answer\)$/m);

    // With hub2 gone too, hub1 still refuses agents while its PostgreSQL is silent; they journal on.
    await hubs[1]!.stop();
    const hubRow = async (a: AgentProcess) => (await a.call<ClusterStatus>("cluster.status")).peers.find((p) => p.nodeId === "hub");
    await waitFor("a2 refused by hub1", async () => /^disconnected: 4013 this hub's PostgreSQL does not answer; try another hub, else journal locally until one answers$/.test((await hubRow(a2))?.lastError ?? ""), 30_000);
    await publishAliases(a2, 0, 20, "alone-a2-");
    // No hub takes a2: it says so at warn, and counts what waits for a hub in its journal.
    await waitFor("a2 warning that no hub answers", async () => readFileSync(a2.logPath, "utf8").includes("no hub answers"), 30_000);
    const warned = readFileSync(a2.logPath, "utf8").split("\n").find((l) => l.includes("no hub answers"))!;
    expect(JSON.parse(warned)).toMatchObject({ level: "warn", msg: expect.stringContaining("this node's changes wait in the journal") });
    await waitFor("a2 counting its 20 changes no hub acknowledged", async () => (await a2.call<ClusterStatus>("cluster.status")).hubUnacknowledged === 20, 30_000);
    expect((await hubRow(a2))?.behindChanges).toBe(20);
    expect(await a2.metric("locmesh_peer_behind_changes", { peer: "hub" })).toBe(20);
    const a2Shown = await locmesh(["status", "--url", a2.apiUrl, "--token", TOKEN]);
    expect(a2Shown.output).toMatch(/^unacknowledged by hub +20 changes of this node wait in the journal \(no hub answers; they go when one does\)$/m);

    path.thaw();
    await waitFor("hub1 sees PostgreSQL again", async () => hub1Log().includes(`PostgreSQL at 127.0.0.1:${path.port} answers again`), 30_000);
    expect(await postgresUp(hubs[0]!)).toBe(1);
    await waitFor("every agent on hub1", async () => (await Promise.all(agents.map(hubOf))).every((h) => h === "hub1"), 30_000);
    await waitFor("200 aliases everywhere", () => allAgree(200), 30_000);

    // Each agent applied every other agent's changes once, and received nothing twice.
    const after = await Promise.all(agents.map(changesApplied));
    expect(after.map((n, i) => n - before[i]!)).toEqual([70, 100, 70, 120]);
    for (const a of agents) expect(await changesReceived(a)).toBe(await changesApplied(a));
    expect(await storedAliases()).toBe(200);
    expect(await dumpAliases(a4)).toEqual(await dumpAliases(a1));
    expect(hub1Log()).not.toContain(PASSWORD);
  }, 120_000);
});

describe("a hub whose PostgreSQL stopped, before it counts it as unreachable", () => {
  /**
   * The hub checks PostgreSQL every 10 s and releases its agents after 30 s without an answer: the
   * test looks in between, the NOT ANSWERING phase, while the hub still holds its agent's session.
   */
  const timeouts = { connectTimeoutMs: 1000, queryTimeoutMs: 2000, unreachableAfterMs: 30_000 };
  let pgServer: PostgresProcess;
  let hubs: HubProcess[];
  let agents: AgentProcess[];
  const a1Row = async () => (await hubs[0]!.call<ClusterStatus>("cluster.status")).peers.find((p) => p.nodeId === "a1");
  const storedAliases = async () => (await pgServer.query<{ n: number }>("SELECT count(*)::int AS n FROM records WHERE kind = 1", [], "locmesh"))[0]!.n;

  beforeAll(async () => {
    pgServer = await startPostgres();
    const pgUrl = await pgServer.createDatabase("locmesh");
    ({ hubs, agents } = await makeHubCluster(join(dir, "stopped"), { hubs: 1, agents: 1, pgUrl, hubConfig: { postgres: timeouts } }));
    await hubs[0]!.start();
    await agents[0]!.start();
    await waitFor("a1 on hub1", async () => (await hubOf(agents[0]!)) === "hub1");
  });

  afterAll(async () => {
    await stopHubCluster({ agents, hubs, closers: [pgServer] });
  });

  it("shows, in cluster.status and `locmesh status`, that it fails to store its agent's batches: how many, since when and why; cleared once one is stored", async () => {
    const a1 = agents[0]!;
    await publishAliases(a1, 0, 5, "before-");
    await waitFor("5 aliases in PostgreSQL", async () => (await storedAliases()) === 5);
    expect((await a1Row())?.batchesNotStored).toBeNull();

    await pgServer.stop();
    const stoppedAt = Date.now();
    await publishAliases(a1, 0, 5, "stopped-");
    // The agent resends the batch (retry.maxMs 1 s); each failure counts.
    await waitFor("hub1 counting a1's batches it fails to store", async () => ((await a1Row())?.batchesNotStored?.count ?? 0) >= 2, 15_000);
    await waitFor("hub1's check finding PostgreSQL silent", async () => (await hubs[0]!.call<ClusterStatus>("cluster.status")).postgres?.error != null, 15_000);
    const st = await hubs[0]!.call<ClusterStatus>("cluster.status");
    // The NOT ANSWERING phase: the hub holds a1, which shows connected and behind by nothing.
    expect(Date.now() - stoppedAt).toBeLessThan(timeouts.unreachableAfterMs);
    expect(st.postgres).toMatchObject({ reachable: true, failingForSeconds: expect.any(Number) });
    const row = st.peers.find((p) => p.nodeId === "a1")!;
    expect(row).toMatchObject({ connected: true, behindChanges: 0, batchesNotStored: { reason: expect.stringMatching(/PostgreSQL/) } });
    expect(Date.parse(row.batchesNotStored!.since)).toBeGreaterThanOrEqual(stoppedAt - 1000);
    const shown = await locmesh(["status", "--url", hubs[0]!.apiUrl, "--token", TOKEN]);
    expect(shown.code, shown.output).toBe(0);
    expect(shown.output).toMatch(/^postgresql +NOT ANSWERING at /m);
    expect(shown.output).toMatch(
      new RegExp(`^a1 +yes +hub1 \\(this hub\\) +inbound +0 .*NOT STORING ITS BATCHES: \\d+ failed since ${row.batchesNotStored!.since.slice(11, 19)} UTC \\(the last: .*PostgreSQL.*\\); it resends them until one is stored`, "m"),
    );

    await pgServer.start();
    await waitFor("a1's batches stored again", async () => (await storedAliases()) === 10, 30_000);
    await waitFor("hub1 no longer saying it fails to store them", async () => (await a1Row())?.batchesNotStored === null, 10_000);
  }, 90_000);
});
