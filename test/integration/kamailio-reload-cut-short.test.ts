/**
 * A reload into a real Kamailio 5.6 cut short by `kill -9` of its agent, slowed down through
 * kamailio.reloadRate so that the kill lands in the middle: the restarted agent says that the
 * previous reload never finished (log, cluster.status, `locmesh status`) and reloads Kamailio
 * again, until it holds every binding. Both ways a reload starts: `locmesh resync --kamailio`
 * (kamailio.reload) into a Kamailio the agent had made whole, and the automatic one after Kamailio
 * restarted.
 *
 * The bindings are another node's (owner "far") in a node with no peers, published through the
 * API, which writes them into Kamailio at once; the test then takes them out of Kamailio with
 * ul.rm, so that only a reload writes them back (the sink leaves this node's own commits alone),
 * and the reconcile, which would write them back too, is off (kamailio.reconcileMaxContacts 0).
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ClusterStatus } from "../../agent/contract/cluster-status.js";
import type { KamailioReloadStatus } from "../../agent/contract/kamailio-status.js";
import { createFifoClient } from "../../agent/kamailio/fifo-client.js";
import { silentLogger } from "../../agent/ops/logger.js";
import { waitFor } from "../support/agent-process.js";
import { cli } from "../support/cli-run.js";
import { TEST_DOMAIN, startKamailioCluster, type ClusterNode, type KamailioCluster } from "../support/kamailio-cluster.js";

/** Writes per second: 1,500 bindings take 6 s to reload. */
const RATE = 250;
const N = 1500;

let dir: string;
let cluster: KamailioCluster;
let node: ClusterNode;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "locmesh-cutshort-"));
  cluster = await startKamailioCluster({ baseDir: dir, n: 1, agentKamailio: { reloadRate: RATE, reconcileMaxContacts: 0, reconcileIntervalSec: 0 } });
  node = cluster.nodes[0]!;
  const expires = Math.floor(Date.now() / 1000) + 3600;
  await node.agent.call("location.publish", {
    edits: Array.from({ length: N }, (_, i) => ({ op: "upsert", binding: { aor: `sip:cut${i}@${TEST_DOMAIN}`, contact: `sip:cut${i}@192.0.2.20:5060`, expires, owner: "far" } })),
  });
  const fifo = createFifoClient({ fifoPath: node.kamailio.fifoPath, replyDir: node.kamailio.replyDir, timeoutMs: 2000, log: silentLogger(), maxInFlight: 1, autoResync: false });
  try {
    for (let i = 0; i < N; i++) await fifo.call("ul.rm", ["location", `cut${i}@${TEST_DOMAIN}`]);
  } finally {
    await fifo.close();
  }
}, 60_000);

afterAll(async () => {
  await cluster?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const reloadStatus = async (): Promise<KamailioReloadStatus> => (await node.agent.call<ClusterStatus>("cluster.status")).kamailio!.reload;
const held = async (): Promise<number> => (await node.dump()).filter((c) => c.aor.startsWith("cut")).length;

/** Kills the agent with -9 once its reload has written some, checks it was cut short, and starts the agent again. */
async function killMidReload(): Promise<void> {
  await waitFor("the reload under way", async () => {
    const r = await reloadStatus();
    return r.state === "running" && r.done >= 300;
  }, 20_000, 25);
  await node.agent.kill9();
  expect(await held()).toBeLessThan(N);
  await node.agent.start();
}

/** What the restarted agent says about the cut-short reload, and that it puts every binding in. */
async function expectRedone(reason: string, whole: boolean): Promise<void> {
  const status = await node.agent.call<ClusterStatus>("cluster.status");
  const interrupted = status.kamailio!.reload.interrupted!;
  expect(interrupted, JSON.stringify(status.kamailio)).toMatchObject({ reason, error: null, whole });
  // Progress is saved about once a second: what it says went in, at least, is short of the whole.
  expect(interrupted.done).toBeLessThan(N);
  // Not a Kamailio restart: the same Kamailio, half written.
  expect(status.kamailio!.restarts).toBe(0);
  const said = new RegExp(`the last reload into Kamailio \\(started ${interrupted.startedAt}, ${reason}\\) did not finish: the agent stopped in the middle of it`);
  await waitFor("the cut-short reload in the agent's log", async () => said.test(readFileSync(node.agent.logPath, "utf8")), 5000);

  const shown = await cli(["status", "--url", node.agent.apiUrl, "--token", node.agent.spec.token]);
  expect(shown.stdout).toMatch(/^previous reload\s+CUT SHORT by the agent stopping \(restart, kill or crash\) after at least \d+ of \d+ writes; it started /m);

  const done = await waitFor("the redo to finish", async () => {
    const r = await reloadStatus();
    return r.state === "done" ? r : null;
  }, 60_000, 100);
  expect(done.reason).toBe("redo: the agent's last run left a reload unfinished");
  // A cut-short resync --kamailio is redone whole (with a preloading Kamailio, not by difference).
  expect(done.whole).toBe(whole);
  expect(await held()).toBe(N);
}

describe("a reload into Kamailio cut short by kill -9 of the agent", () => {
  it("locmesh resync --kamailio: the restarted agent says so and reloads again, until Kamailio holds every binding", async () => {
    // The agent made this Kamailio whole at its first contact (while the journal was empty).
    await waitFor("first contact's reload", async () => (await reloadStatus()).state === "done", 20_000, 100);
    expect(await held()).toBe(0);
    const started = await node.agent.call<{ started: boolean }>("kamailio.reload");
    expect(started.started).toBe(true);
    await killMidReload();
    await expectRedone("requested through the API", true);
  });

  it("the automatic reload after a Kamailio restart: the same", async () => {
    await node.kamailio.restart();
    await killMidReload();
    await expectRedone("kamailio restarted", false);
    // Once redone, the next start finds nothing unfinished.
    await node.agent.stop();
    await node.agent.start();
    expect((await reloadStatus()).interrupted).toBeNull();
  });
});
