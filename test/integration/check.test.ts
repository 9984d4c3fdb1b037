/**
 * `locmesh check` as an operator runs it, against real Kamailio 5.6 processes with the include and
 * real agents (agent/check/run-checks.ts): everything passes beside a running agent and beside a
 * stopped one (which then starts and attaches as before: the check changed nothing), and a config
 * that is wrong in several places gets one FAIL per place, each saying what to do, and exit 1.
 */
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ClusterStatus } from "../../agent/contract/cluster-status.js";
import { freePort, waitFor } from "../support/agent-process.js";
import type { CheckReport } from "../../agent/check/check-result.js";
import { openSqliteStore } from "../../agent/journal/sqlite-store.js";
import { bySubject, checkRun, cli, folderNotWritableToCli } from "../support/cli-run.js";
import { startKamailioCluster, type ClusterNode, type KamailioCluster } from "../support/kamailio-cluster.js";
import { startKamailio, type KamailioProcess } from "../support/kamailio-process.js";
import { createKamailioSqlite } from "../support/kamailio-schema.js";

let dir: string;
let cluster: KamailioCluster;
let n1: ClusterNode;
let n2: ClusterNode;
let plain: KamailioProcess;
/** A port where something takes TCP connections and says nothing: no Kamailio's evapi. */
let held: Server;
let heldPort: number;

beforeAll(async () => {
  held = createServer();
  heldPort = await freePort();
  await new Promise<void>((r) => held.listen(heldPort, "127.0.0.1", r));
  dir = mkdtempSync(join(tmpdir(), "locmesh-check-"));
  cluster = await startKamailioCluster({ baseDir: dir, n: 2 });
  [n1, n2] = cluster.nodes as [ClusterNode, ClusterNode];
  // A Kamailio as an operator has it before step 2 of "Attach to your Kamailio": no include.
  plain = await startKamailio({});
}, 90_000);

afterAll(async () => {
  held?.close();
  await cluster?.close();
  await plain?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const check = (configPath: string) => checkRun(["check"], configPath);

/** A config as an operator edits it: any key, any value. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type EditableConfig = Record<string, any>;

/** n1's config with `change` applied, written beside it (0600, as the agent wants its secrets). */
function variant(name: string, change: (c: EditableConfig) => void): string {
  const config = JSON.parse(readFileSync(n1.agent.configPath, "utf8")) as EditableConfig;
  change(config);
  const path = join(dir, `${name}.json`);
  writeFileSync(path, JSON.stringify(config), { mode: 0o600 });
  return path;
}

describe("locmesh check", () => {
  it("passes everything beside a running agent, asking it where it holds things", async () => {
    const { code, report, text } = await check(n1.agent.configPath);
    expect(code).toBe(0);
    expect(report.running).toBe(true);
    const c = bySubject(report);
    expect(c["journal"]).toMatchObject({ state: "ok", detail: expect.stringContaining("in use by the running agent") });
    expect(c["api port"]).toMatchObject({ state: "ok", detail: `the running agent answers at ${n1.agent.apiUrl}` });
    expect(c["peer port"]).toMatchObject({ state: "ok", detail: `the running agent answers at ${n1.agent.meshUrl}` });
    expect(c["peer n2"]).toMatchObject({ state: "ok", detail: `answers at ${n2.agent.meshUrl}` });
    expect(c["kamailio fifo"]).toMatchObject({ state: "ok", detail: expect.stringMatching(/^kamailio 5\.6\.\d+ .*, up \S+ \(main process \d+\), answers over the jsonrpcs FIFO /) });
    expect(c["kamailio dgram"]).toMatchObject({ state: "ok" });
    expect(c["kamailio include"]).toMatchObject({ state: "ok", detail: expect.stringContaining("its REGISTER gate is open") });
    expect(c["kamailio sip peers"]).toMatchObject({ state: "ok", detail: "Kamailio lets 127.0.0.1 relay calls to its phones, as mesh.peers says" });
    expect(c["kamailio usrloc"]).toMatchObject({ state: "ok", detail: expect.stringMatching(/^keys AoRs user@domain \(use_domain 1\); its location table holds \d+ contacts?$/) });
    // The running agent's evapi connection is left alone.
    expect(c["kamailio evapi"]).toMatchObject({ state: "skip" });
    expect(report.checks.filter((x) => x.state === "fail" || x.state === "warn")).toEqual([]);
    expect(text).toMatch(/^locmesh check: node n1, config .*, its agent is running\n/);
    expect(text).toMatch(/\n\d+ checks passed\.\n$/);

    // The same node with another dataDir (what the service may get from its environment): its
    // API answers, so it runs, and the journal this config names is not the one it holds.
    const elsewhere = await check(variant("other-datadir", (x) => {
      x["dataDir"] = join(dir, "elsewhere");
    }));
    expect(elsewhere.report.running).toBe(true);
    expect(elsewhere.report.checks.filter((x) => x.subject === "journal")).toEqual([
      { subject: "journal", state: "ok", detail: expect.stringMatching(/^none yet at /) },
      { subject: "journal", state: "warn", detail: `the agent answering at ${n1.agent.apiUrl} does not hold ${join(dir, "elsewhere", "journal.sqlite")}: it runs with another dataDir than this config gives (LOCMESH_DATA_DIR in its environment, or another config file?)` },
    ]);
    expect(bySubject(elsewhere.report)["kamailio evapi"]).toMatchObject({ state: "skip" });
  }, 30_000);

  it("beside a stopped agent: its ports are free and evapi lets it in; the agent then starts and attaches as before", async () => {
    await n1.agent.stop();
    const { code, report } = await check(n1.agent.configPath);
    expect(code).toBe(0);
    expect(report.running).toBe(false);
    const c = bySubject(report);
    expect(c["journal"]).toMatchObject({ state: "ok", detail: expect.stringContaining("no agent runs on it") });
    expect(c["api port"]).toMatchObject({ state: "ok", detail: expect.stringMatching(/is free for the agent's local API$/) });
    expect(c["peer port"]).toMatchObject({ state: "ok", detail: expect.stringMatching(/is free for the agent's peer mesh$/) });
    expect(c["kamailio evapi"]).toMatchObject({ state: "ok", detail: expect.stringMatching(/^takes the agent's connection at 127\.0\.0\.1:\d+, and the include counts it as the agent's$/) });
    // Something else listening where the config says evapi is: the include never saw the connection.
    const elsewhere = await check(variant("evapi-elsewhere", (x) => {
      x["kamailio"].evapi = `127.0.0.1:${heldPort}`;
    }));
    expect(elsewhere.code).toBe(1);
    expect(bySubject(elsewhere.report)["kamailio evapi"]).toMatchObject({ state: "fail", detail: `something takes connections at 127.0.0.1:${heldPort}, but not this Kamailio's evapi: the include did not see the connection. Set kamailio.evapi to the include's evapi address (the include is made from it: locmesh kamailio-cfg --config)` });
    // Nothing the check did is in the agent's way: it starts, attaches, and replicates.
    await n1.agent.start();
    await waitFor("n1 attached to its Kamailio", async () => {
      const s = await n1.agent.call<ClusterStatus>("cluster.status");
      return s.kamailio?.up === true && s.kamailio.events?.connected === true;
    }, 20_000, 100);
    await n1.agent.call("alias.set", { alias: "check@example.com", target: "sip:alice@example.com" });
    await waitFor("the alias on n2's Kamailio", async () => (await n2.lookup("check@example.com", "aliases")).length > 0, 15_000, 100);
  }, 60_000);

  it("names each wrong thing with what to do, and exits 1", async () => {
    // Kamailio's own schema, as kamdbctl makes it.
    const sqlite = createKamailioSqlite(join(dir, "kamailio.db"), { fixAliases: true });
    {
      const path = variant("wrong", (c) => {
        c["nodeId"] = "n1";
        c["dataDir"] = join(dir, "fresh");
        c["api"].listen = `127.0.0.1:${heldPort}`;
        c["mesh"].listen = `127.0.0.1:${n2.agent.spec.meshPort}`;
        c["mesh"].peers = [{ id: "n3", url: n2.agent.meshUrl }];
        c["kamailio"].fifo = join(dir, "no-such-fifo");
        c["kamailio"].evapi = `127.0.0.1:${heldPort}`;
        c["kamailio"].db = { url: `sqlite://${sqlite}`, dbMode: 1 };
      });
      const { code, report, text } = await check(path);
      expect(code).toBe(1);
      const c = bySubject(report);
      expect(c["journal"]).toMatchObject({ state: "ok", detail: expect.stringMatching(/^none yet at /) });
      expect(c["api port"]).toMatchObject({ state: "fail", detail: `the local API port 127.0.0.1:${heldPort} is already in use (another locmesh, or another program, holds it): stop that, or set api.listen.port to a free port` });
      expect(c["peer port"]).toMatchObject({ state: "fail", detail: expect.stringContaining("set mesh.listen.port to a free port") });
      expect(c["peer n3"]).toMatchObject({ state: "fail", detail: `${n2.agent.meshUrl} answers as node n2, and mesh.peers names it n3: the handshake would refuse it. Fix the id or the URL in mesh.peers` });
      expect(c["kamailio fifo"]).toMatchObject({ state: "fail", detail: `Kamailio FIFO ${join(dir, "no-such-fifo")} does not exist (Kamailio is not running, or fifo_name points elsewhere)` });
      // Without the FIFO, the rest goes over the datagram socket, as the agent's calls fail over.
      expect(c["kamailio dgram"]).toMatchObject({ state: "ok" });
      expect(c["kamailio include"]).toMatchObject({ state: "ok" });
      expect(c["kamailio usrloc"]).toMatchObject({ state: "ok" });
      // n1's agent (another dataDir, as this config sees it) holds the include's agent connection:
      // a connection from here would share its events, so evapi is left alone.
      expect(c["kamailio evapi"]).toMatchObject({ state: "skip", detail: expect.stringMatching(/^not connected to: the include counts another connection as the agent's now \(\$shv\(locmesh_events\) is \d+\); an agent runs against this Kamailio$/) });
      expect(c["kamailio database"]).toMatchObject({ state: "ok", detail: expect.stringContaining("answers (usrloc db_mode 1)") });
      expect(text).toMatch(/\n4 of \d+ checks failed: each FAIL line says what to do\.\n$/);
      expect(text).toMatch(/\n {2}FAIL {2}peer n3 +\S/);
    }
  }, 30_000);

  it("a Kamailio without the include, a location table it does not have, a database without Kamailio's tables, a hub that is down", async () => {
    const empty = join(dir, "empty.db");
    new Database(empty).close();
    const [apiPort, meshPort] = [await freePort(), await freePort()];
    const path = variant("no-include", (c) => {
      c["dataDir"] = join(dir, "fresh2");
      c["api"].listen = `127.0.0.1:${apiPort}`;
      c["mesh"].listen = `127.0.0.1:${meshPort}`;
      c["mesh"].peers = [];
      c["hub"] = { urls: [`ws://127.0.0.1:${n2.agent.spec.apiPort + 0}/nothing-here`] };
      c["kamailio"] = { fifo: plain.fifoPath, replyDir: plain.replyDir, evapi: `127.0.0.1:${heldPort}`, db: { url: `sqlite://${empty}`, dbMode: 1 }, locationTable: "nosuch" };
    });
    const { code, report } = await check(path);
    expect(code).toBe(1);
    const c = bySubject(report);
    expect(c["kamailio fifo"]).toMatchObject({ state: "ok" });
    expect(c["kamailio include"]).toMatchObject({
      state: "fail",
      detail: "the locmesh include is not loaded in this Kamailio: `locmesh kamailio-cfg --config <agent config> -o /etc/kamailio/locmesh.cfg`, then the lines `locmesh kamailio-cfg --instructions` prints, and restart Kamailio",
    });
    expect(c["kamailio evapi"]).toMatchObject({ state: "fail", detail: `something takes connections at 127.0.0.1:${heldPort}, but this Kamailio has no locmesh include to send events there (see kamailio include)` });
    expect(c["kamailio usrloc"]).toMatchObject({ state: "fail", detail: 'usrloc has no domain "nosuch" (Kamailio: "Domain table not found"): kamailio.locationTable must name the table the cfg\'s save() uses ("location" unless it says otherwise); every write into Kamailio would fail' });
    expect(c["kamailio database"]).toMatchObject({
      state: "fail",
      detail: `sqlite://${empty}: Kamailio table "version": the table (or its columns) is missing. Fix: create it with \`kamdbctl create\` or by running /usr/share/kamailio/db_sqlite/standard-create.sql on Kamailio's database. The agent writes there when jsonrpcs fails; until it answers, such writes wait`,
    });
    expect(c["hub 1"]).toMatchObject({ state: "fail", detail: expect.stringMatching(/takes no session now: .*Is the hub running, its PostgreSQL up/) });
    // In hub mode with no mesh.peers the agent opens no peer port, and the check says so.
    expect(c["peer port"]).toMatchObject({ state: "skip", detail: expect.stringMatching(/^not opened: in hub mode with no mesh\.peers/) });
  }, 30_000);

  it("run as a user who may not write dataDir: the journal fails, naming the folder and what to do", async () => {
    const ro = folderNotWritableToCli("locmesh-check-ro-");
    const folder = ro.folder;
    try {
      const config = join(folder, "agent.json");
      writeFileSync(config, JSON.stringify({
        nodeId: "n7", dataDir: join(folder, "data"),
        mesh: { listen: `127.0.0.1:${await freePort()}`, secret: "integration-cluster-secret-0123456789" },
        api: { listen: `127.0.0.1:${await freePort()}`, token: "integration-api-token-0123456789" },
      }), { mode: 0o644 });
      ro.seal();
      const r = await cli(["check", "-c", config, "--json"], {}, ro.as);
      expect(r.code).toBe(1);
      const report = JSON.parse(r.stdout) as CheckReport;
      expect(bySubject(report)["journal"]).toEqual({
        subject: "journal",
        state: "fail",
        detail: `the agent cannot make its journal at ${join(folder, "data", "journal.sqlite")}: ${folder} is not writable for this user. Run the agent as the user that owns dataDir (${join(folder, "data")}), or set dataDir to a folder that user may write`,
      });
      // The secrets every user may read are the loader's warning, shown as such.
      expect(report.checks.filter((c) => c.subject === "config" && c.state === "warn").length).toBeGreaterThan(0);
    } finally {
      ro.remove();
    }
  });

  // Runs the check as other users: needs root, as CI has.
  it.skipIf(process.getuid?.() !== 0)("run as another user than the journal's: reads nothing that would leave it files, and leaves evapi alone when it cannot tell whether an agent runs", async () => {
    const folder = mkdtempSync(join(tmpdir(), "locmesh-check-users-"));
    try {
      chmodSync(folder, 0o755);
      const dataDir = join(folder, "data");
      mkdirSync(dataDir, { mode: 0o777 });
      chmodSync(dataDir, 0o777);
      const journal = join(dataDir, "journal.sqlite");
      const store = openSqliteStore({ path: journal, nodeId: "n7" });
      await store.close();
      // A stopped agent of user 65534 (its WAL's -wal and -shm gone with its clean close).
      for (const f of [journal, `${journal}.lock`]) chownSync(f, 65534, 65534);
      expect(existsSync(`${journal}-wal`) || existsSync(`${journal}-shm`)).toBe(false);
      const config = join(folder, "agent.json");
      writeFileSync(config, JSON.stringify({
        nodeId: "n7", dataDir,
        mesh: { listen: `127.0.0.1:${await freePort()}`, secret: "integration-cluster-secret-0123456789" },
        api: { listen: `127.0.0.1:${await freePort()}`, token: "integration-api-token-0123456789" },
        kamailio: { fifo: plain.fifoPath, replyDir: plain.replyDir, evapi: `127.0.0.1:${heldPort}` },
      }), { mode: 0o644 });

      // A third user who may write dataDir: SQLite would leave it -wal and -shm the agent could not write.
      const third = await cli(["check", "-c", config, "--json"], {}, { uid: 65533, gid: 65533 });
      const c3 = bySubject(JSON.parse(third.stdout) as CheckReport);
      expect(c3["journal"]).toEqual({ subject: "journal", state: "warn", detail: `${journal} is not read: this user (uid 65533) is neither root nor its owner (uid 65534), and reading it would leave files beside it the agent could not write. Run this check as the agent's user (or root)` });
      expect(existsSync(`${journal}-wal`) || existsSync(`${journal}-shm`)).toBe(false);

      // Its lock file unreadable to this user: whether an agent runs cannot be told, and evapi,
      // whose connections the include takes for the agent's, is not connected to.
      chmodSync(`${journal}.lock`, 0o600);
      const blind = await cli(["check", "-c", config, "--json"], {}, { uid: 65533, gid: 65533 });
      expect(blind.code).toBe(1);
      const report = JSON.parse(blind.stdout) as CheckReport;
      expect(report.running).toBeNull();
      expect(bySubject(report)["journal"]).toMatchObject({ state: "fail", detail: expect.stringMatching(/^cannot tell whether an agent holds the journal at .*: .*Run this check as the agent's user \(or root\)$/) });
      expect(bySubject(report)["kamailio evapi"]).toMatchObject({ state: "skip", detail: expect.stringMatching(/^not connected to: whether an agent runs could not be told/) });

      // The owner reads it, and writes it after.
      const own = await cli(["check", "-c", config, "--json"], {}, { uid: 65534, gid: 65534 });
      expect(bySubject(JSON.parse(own.stdout) as CheckReport)["journal"]).toMatchObject({ state: "ok", detail: expect.stringContaining("node n7's, epoch n7~") });
    } finally {
      rmSync(folder, { recursive: true, force: true });
    }
  });

  it("a config error: the loader's message and exit 2, as for the agent", async () => {
    const path = variant("bad", (c) => {
      c["mesh"].listen = "not an address";
    });
    const r = await cli(["check", "-c", path]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/mesh\.listen/);
    expect((await cli(["check", "-c", path, "--timeout", "5"])).code).toBe(2);
  });
});
