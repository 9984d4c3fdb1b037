/**
 * A Kamailio (db_mode 0) that restarts while replicated changes wait for it: the reload that puts
 * its state back writes them, and the sink does not write them a second time; what arrives while
 * the reload runs is still the sink's to write; and once Kamailio is back, nothing in the agent's
 * log says that it is down or died.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ClusterStatus } from "../../agent/contract/cluster-status.js";
import { sleep, waitFor } from "../support/agent-process.js";
import { TEST_DOMAIN, startKamailioCluster, type ClusterNode, type KamailioCluster } from "../support/kamailio-cluster.js";
import { sippRegister } from "../support/sipp.js";
import { sippRegisterLoad } from "../support/sipp-call.js";

/** n2's reload writes this many per second: long enough for changes to arrive while it runs. */
const RELOAD_RATE = 25;
/** kamailio.timeoutMs of the cluster's agents (kamailio-cluster.ts). */
const KAMAILIO_TIMEOUT_MS = 2000;
/** What an agent logs once its Kamailio holds the cluster's state and takes REGISTERs. */
const WHOLE = "Kamailio is whole: REGISTERs are let through";

let dir: string;
let cluster: KamailioCluster;
let n1: ClusterNode;
let n2: ClusterNode;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "locmesh-krestart-"));
  cluster = await startKamailioCluster({ baseDir: dir, n: 2, node: (i) => (i === 1 ? { agentKamailio: { reloadRate: RELOAD_RATE } } : {}) });
  [n1, n2] = cluster.nodes as [ClusterNode, ClusterNode];
  // Until then Kamailio answers REGISTER 503.
  for (const n of cluster.nodes) await waitFor(`${n.id} to let REGISTERs through`, async () => readFileSync(n.agent.logPath, "utf8").includes(WHOLE), 20_000, 50);
  // A table for the reloads to put back: 60 phones at n1, in both Kamailios.
  const load = await sippRegisterLoad({ dir, sipPort: n1.kamailio.sipPort, count: 60, rate: 200, domain: TEST_DOMAIN, prefix: "base" });
  expect(load.ok, load.output).toBe(true);
  await waitFor("60 base bindings in n2's Kamailio", async () => (await inN2("base")).length === 60, 20_000, 100);
}, 60_000);

afterAll(async () => {
  await cluster?.close();
  if (!process.env["KEEP"]) rmSync(dir, { recursive: true, force: true });
});

const status = () => n2.agent.call<ClusterStatus>("cluster.status");
/** The AoRs n2's Kamailio holds that start with `prefix`, sorted. */
const inN2 = async (prefix: string) => (await n2.dump()).map((c) => c.aor).filter((a) => a.startsWith(prefix)).sort();
const aors = (prefix: string, from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => `${prefix}${from + i}@${TEST_DOMAIN}`).sort();
/** Writes n2's sink made into its Kamailio (ul.add, ul.rm_contact over jsonrpcs). */
const sinkWrites = () => n2.agent.metric("locmesh_kamailio_writes_total", { route: "rpc" });

/** Stops n2's Kamailio as `how` says; 40 phones register at n1 meanwhile, and n2's sink holds them pending. */
async function downWhileChangesCome(how: "kill9" | "stop", prefix: string): Promise<{ localPort: number }> {
  await (how === "kill9" ? n2.kamailio.kill9() : n2.kamailio.stop());
  await waitFor("n2's Kamailio shown down", async () => !(await status()).kamailio!.up, 10_000, 50);
  const load = await sippRegisterLoad({ dir, sipPort: n1.kamailio.sipPort, count: 40, rate: 200, domain: TEST_DOMAIN, prefix });
  expect(load.ok, load.output).toBe(true);
  await waitFor("40 writes pending on n2", async () => (await status()).kamailio!.pendingWrites >= 40, 20_000, 50);
  return { localPort: load.localPort };
}

interface LogLine { time: string; level: string; msg: string; err?: string }
const logLines = (fromByte: number): LogLine[] =>
  readFileSync(n2.agent.logPath, "utf8").slice(fromByte).split("\n").filter(Boolean).map((l) => JSON.parse(l) as LogLine);

/**
 * Once n2's agent has noticed the restarted Kamailio, no line of its log says that Kamailio is
 * down or died. Read once the reload is done and a write's time-out has passed since (one under
 * way when Kamailio came back has ended by then).
 */
async function expectNoDownNoticeOnceBack(fromByte: number): Promise<void> {
  // The agent writes its log asynchronously: wait for the lines.
  await waitFor("n2 to say its Kamailio is whole", async () => logLines(fromByte).some((l) => l.msg === WHOLE), 20_000, 50);
  await sleep(KAMAILIO_TIMEOUT_MS + 1500);
  const lines = logLines(fromByte);
  const back = lines.findIndex((l) => l.msg.startsWith("Kamailio restarted"));
  expect(back, "n2 noticed the restart").toBeGreaterThanOrEqual(0);
  const said = lines.slice(back).map((l) => `${l.level} ${l.msg} ${l.err ?? ""}`);
  expect(said.filter((l) => /died|not running|has no reader|does not exist|unreachable|does not answer|writes are pending/i.test(l))).toEqual([]);
}

describe("a Kamailio that restarts while changes wait for it", () => {
  it("gets the waiting changes from the reload, written once; what comes while the reload runs the sink still writes", async () => {
    const waiting = await downWhileChangesCome("kill9", "wait");
    const logFrom = readFileSync(n2.agent.logPath, "utf8").length;
    const written = await sinkWrites();
    await n2.kamailio.start();

    await waitFor("n2's reload to be writing", async () => {
      const r = (await status()).kamailio!.reload;
      return r.state === "running" && r.done > 0;
    }, 10_000, 20);
    // While it runs (100 records at 25 a second), 10 more phones register and 3 waiting ones leave.
    const during = await sippRegisterLoad({ dir, sipPort: n1.kamailio.sipPort, count: 10, rate: 100, domain: TEST_DOMAIN, prefix: "during" });
    expect(during.ok, during.output).toBe(true);
    for (const n of [1, 2, 3]) await sippRegister({ dir, sipPort: n1.kamailio.sipPort, user: `wait${n}`, domain: TEST_DOMAIN, expires: 0, localPort: waiting.localPort });
    await waitFor("n2's journal to hold them", async () => {
      const list = await n2.agent.call<{ total: number }>("location.list", { search: "wait", limit: 1 });
      const more = await n2.agent.call<{ total: number }>("location.list", { search: "during", limit: 1 });
      return list.total === 37 && more.total === 10;
    }, 10_000, 20);
    expect((await status()).kamailio!.reload.state, "the reload ended before the changes that were to come during it").toBe("running");

    await waitFor("n2's reload done", async () => (await status()).kamailio!.reload.state === "done", 20_000, 50);
    await waitFor("nothing pending on n2", async () => (await status()).kamailio!.pendingWrites === 0, 10_000, 50);
    expect(await inN2("base")).toEqual(aors("base", 1, 60));
    expect(await inN2("wait")).toEqual(aors("wait", 4, 40));
    expect(await inN2("during")).toEqual(aors("during", 1, 10));
    // The sink wrote what came during the reload (10 bindings, 3 removals) and none of the 40 that
    // waited: the reload wrote those.
    expect(await sinkWrites() - written).toBe(13);
    await expectNoDownNoticeOnceBack(logFrom);
  });

  it("says nothing of a Kamailio that is down or died once it is back from a clean stop", async () => {
    await downWhileChangesCome("stop", "again");
    const logFrom = readFileSync(n2.agent.logPath, "utf8").length;
    await n2.kamailio.start();
    await expectNoDownNoticeOnceBack(logFrom);
    await waitFor("nothing pending on n2", async () => (await status()).kamailio!.pendingWrites === 0, 10_000, 50);
    expect(await inN2("again")).toEqual(aors("again", 1, 40));
  });
});
