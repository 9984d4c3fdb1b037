/**
 * A Kamailio whose usrloc keys AoRs without their domain (use_domain 0, Kamailio's default),
 * with real Kamailio 5.6 processes, the include and sipp. The operator's dry run: with such a
 * Kamailio, the agent's reconcile tombstoned the journal's alice@example.com, journaled `alice`,
 * and both peers refused every later batch of that node (4004), an alias set there included.
 * Now the agent refuses to attach to it (usrloc-keys.ts), says why and what to set, journals
 * nothing of it, keeps replicating the rest, and attaches once Kamailio runs with use_domain 1.
 * An include generated now stops such a Kamailio as it starts (cfg-include.ts startCheck), and one
 * whose registrar keeps AoRs' case (case_sensitive 1).
 */
import { readFileSync, writeFileSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ListResult, PublishResult } from "../../agent/contract/api-protocol.js";
import type { CheckReport } from "../../agent/check/check-result.js";
import type { ClusterStatus } from "../../agent/contract/cluster-status.js";
import type { Alias, Location } from "../../agent/contract/records.js";
import { UL_ADD_CALLID } from "../../agent/kamailio/registrar-input.js";
import { RpcCallError, logTail, sleep, waitFor } from "../support/agent-process.js";
import { TEST_DOMAIN, startKamailioCluster, type ClusterNode, type KamailioCluster } from "../support/kamailio-cluster.js";
import { startKamailio } from "../support/kamailio-process.js";
import { cli } from "../support/cli-run.js";
import { sippRegister } from "../support/sipp.js";

const USE_DOMAIN_0 = 'modparam("usrloc", "use_domain", 0)';
const FIX = 'set modparam("usrloc", "use_domain", 1) in kamailio.cfg and restart Kamailio';
/** An include from before its start check: the route that runs it is the operator's, who does not call it. */
const INCLUDE_WITHOUT_CHECK = "#!define LOCMESH_OWN_WORKER_INIT_ROUTE";

let dir: string;
let cluster: KamailioCluster;
let n1: ClusterNode;
let n2: ClusterNode;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "locmesh-usedomain-"));
  cluster = await startKamailioCluster({
    baseDir: dir,
    n: 2,
    // n1's Kamailio runs with Kamailio's default, use_domain 0, with an include that does not stop
    // it, and lets REGISTERs through after 1 s (its agent never opens the REGISTER gate while it
    // refuses to attach).
    node: (i) => (i === 0 ? { kamailio: { extraCfg: `${USE_DOMAIN_0}\n${INCLUDE_WITHOUT_CHECK}\n#!define LOCMESH_READY_GRACE 1` }, registerGate: false } : {}),
  });
  [n1, n2] = cluster.nodes as [ClusterNode, ClusterNode];
  // The grace compares whole seconds ($TV(s) - $Tb < 1): a REGISTER in the second n1's Kamailio
  // started in gets 503. The agents may be up within it; a second after that, it is surely over.
  await sleep(1000);
}, 90_000);

afterAll(async () => {
  await cluster?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const aor = (user: string) => `${user}@${TEST_DOMAIN}`;
const status = (n: ClusterNode) => n.agent.call<ClusterStatus>("cluster.status");
const locations = async (n: ClusterNode) => (await n.agent.call<ListResult<Location>>("location.list", { limit: 1000 })).items;
const aliases = async (n: ClusterNode) => (await n.agent.call<ListResult<Alias>>("alias.list", { limit: 1000 })).items;

/** Own bindings in n1's journal, as a registrar integration publishes them through the API. */
async function publishAtN1(users: string[]): Promise<PublishResult> {
  const expires = Math.floor(Date.now() / 1000) + 3600;
  return n1.agent.call<PublishResult>("location.publish", { edits: users.map((u) => ({ op: "upsert", binding: { aor: aor(u), contact: `sip:${u}@192.0.2.1:5060`, expires } })) });
}

describe("an agent beside a Kamailio with usrloc use_domain 0", () => {
  it("refuses to attach, journals nothing of it, keeps replicating, and loses no binding across a restart", async () => {
    // Journaled, and not written into that Kamailio: the answer says so.
    expect(await publishAtN1(["alice", "carol"])).toEqual({
      accepted: 2, notes: ["this node's Kamailio is not updated now: the agent does not attach to this Kamailio (locmesh status says why): nothing is written into it"],
    });
    await sippRegister({ dir, sipPort: n1.kamailio.sipPort, user: "bob", domain: TEST_DOMAIN });
    await sippRegister({ dir, sipPort: n1.kamailio.sipPort, user: "bob", domain: "example.net" });
    await sippRegister({ dir, sipPort: n2.kamailio.sipPort, user: "dave", domain: TEST_DOMAIN });
    await n1.agent.call("alias.set", { alias: aor("probe2"), target: `sip:${aor("alice")}` });

    // Its alias reaches the peer: no batch of n1's is refused.
    await waitFor("n1's alias on n2", async () => (await aliases(n2)).some((a) => a.alias === aor("probe2")), 15_000, 100);
    await waitFor("dave, registered at n2, in n1's journal", async () => (await locations(n1)).some((l) => l.aor === aor("dave")), 15_000, 100);
    // Past a reconcile interval (5 s): nothing of n1's Kamailio is learned, nothing of the journal taken for gone.
    await sleep(6000);
    const held = await locations(n1);
    expect(held.map((l) => l.aor).sort()).toEqual([aor("alice"), aor("carol"), aor("dave")]);
    expect((await status(n1)).counts.tombstones).toBe(0);
    expect(await n1.agent.metric("locmesh_kamailio_events_total", { outcome: "refused" })).toBeGreaterThanOrEqual(1);
    expect(await n1.agent.metric("locmesh_changes_refused_total")).toBe(0);
    // Nothing written into that Kamailio: dave is not there (under "dave" or otherwise). Both bobs,
    // of example.com and of example.net, are one record "bob" there.
    const table = await n1.dump();
    expect(table.filter((c) => c.table === "location").map((c) => c.aor)).toEqual(["bob", "bob"]);
    expect(table.some((c) => c.callid === UL_ADD_CALLID)).toBe(false);

    const s = await status(n1);
    expect(s.kamailio?.writer).toBe("refused");
    expect(s.kamailio?.lastError).toContain("Kamailio's usrloc keys AoRs without their domain");
    expect(s.kamailio?.lastError).toContain(FIX);
    expect(s.peers.map((p) => p.lastError)).toEqual([null]);
    expect(logTail(n1.agent.logPath, 100_000)).toContain(JSON.stringify(FIX).slice(1, -1));
    const reload = n1.agent.call("kamailio.reload");
    await expect(reload).rejects.toBeInstanceOf(RpcCallError);
    await expect(reload).rejects.toThrow(/not reloading this node's Kamailio: Kamailio's usrloc keys AoRs without their domain/);

    // The operator's step 4: restart n1's agent. Its reconcile would have taken every binding for gone.
    await n1.agent.stop();
    await n1.agent.start();
    await waitFor("n1 refusing again after its restart", async () => (await status(n1)).kamailio?.writer === "refused", 10_000, 100);
    await sleep(6000);
    expect((await locations(n1)).map((l) => l.aor).sort()).toEqual([aor("alice"), aor("carol"), aor("dave")]);
    expect((await status(n1)).counts.tombstones).toBe(0);

    // `locmesh check` names it too, with the same fix, and exits 1.
    const check = await cli(["check", "-c", n1.agent.configPath, "--json"]);
    expect(check.code).toBe(1);
    const usrloc = (JSON.parse(check.stdout) as CheckReport).checks.find((c) => c.subject === "kamailio usrloc");
    expect(usrloc).toEqual({ subject: "kamailio usrloc", state: "fail", detail: expect.stringMatching(/^Kamailio's usrloc keys AoRs without their domain: .*set modparam\("usrloc", "use_domain", 1\) in kamailio\.cfg and restart Kamailio$/) });
  }, 90_000);

  it("attaches once Kamailio runs with use_domain 1, and writes the cluster's bindings into it", async () => {
    const cfg = join(n1.kamailio.dir, "kamailio.cfg");
    writeFileSync(cfg, readFileSync(cfg, "utf8").replace(USE_DOMAIN_0, 'modparam("usrloc", "use_domain", 1)'));
    await n1.kamailio.restart();
    await waitFor("n1 attached", async () => {
      const k = (await status(n1)).kamailio;
      return k?.writer !== "refused" && k?.reload.state === "done";
    }, 20_000, 100);
    const dave = await n1.lookup(aor("dave"));
    expect(dave.map((c) => c.callid)).toEqual([UL_ADD_CALLID]);
  }, 60_000);
});

describe("the include's start check", () => {
  const alive = (pid: number): boolean => {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  };

  /**
   * Starts a Kamailio with the include; its log once it is stopping (the check's drop ends the
   * first worker, and the main process then takes the others down), or null if it runs on for
   * `waitMs`. A stop is waited for longer than a run is watched: on a loaded machine (CI) the drop's
   * log line once took over 3 s to show.
   */
  async function stopsAtStart(extraCfg: string, waitMs = 15_000): Promise<string | null> {
    let kam;
    try {
      kam = await startKamailio({ locmesh: {}, extraCfg });
    } catch (err) {
      return (err as Error).message; // it stopped before its FIFO answered; the message holds its log
    }
    try {
      const stopping = () => kam.logTail(80).includes("exit due to 'drop' in event route") || !alive(kam.pid());
      const stopped = await waitFor("Kamailio to stop", async () => stopping(), waitMs, 50).catch(() => false);
      return stopped ? kam.logTail(80) : null;
    } finally {
      await kam.close();
    }
  }

  it("stops a Kamailio with use_domain 0 as it starts, saying what to set", async () => {
    const log = await stopsAtStart(USE_DOMAIN_0);
    expect(log).toContain("locmesh: Kamailio's usrloc keys AoRs without their domain (use_domain is 0, Kamailio's default)");
    expect(log).toContain(`${FIX}. Kamailio stops now.`);
    expect(log).toContain("exit due to 'drop' in event route");
  }, 60_000);

  it("does so from the operator's own worker-one-init route too, and lets a Kamailio with use_domain 1 run", async () => {
    const own = `#!define LOCMESH_OWN_WORKER_INIT_ROUTE
event_route[core:worker-one-init] {
	xlog("L_NOTICE", "the operator's own worker init\\n");
	route(LOCMESH_CHECK_USRLOC);
}`;
    const log = await stopsAtStart(`${USE_DOMAIN_0}\n${own}`);
    expect(log).toContain("the operator's own worker init");
    expect(log).toContain(FIX);
    expect(await stopsAtStart("", 3000)).toBeNull();
    expect(await stopsAtStart(own, 3000)).toBeNull();
  }, 60_000);

  it("stops a Kamailio whose registrar keeps AoRs' case (case_sensitive 1) as it starts, saying what to set", async () => {
    const log = await stopsAtStart('modparam("registrar", "case_sensitive", 1)');
    expect(log).toContain("locmesh: the registrar's case_sensitive is 1, and locmesh lower-cases AoRs as Kamailio does with 0");
    expect(log).toContain('set modparam("registrar", "case_sensitive", 0) (the default) in kamailio.cfg and restart Kamailio. Kamailio stops now.');
    expect(log).toContain("exit due to 'drop' in event route");
    expect(await stopsAtStart('modparam("registrar", "case_sensitive", 0)', 3000)).toBeNull();
  }, 60_000);
});
