/**
 * An agent's SIGHUP must not cut it off from its peers (review findings): a change whose other part
 * waits for a restart (mesh.acceptUnlisted turned on, hub mode entered) keeps the peers it drops
 * until then, and a config whose mesh.peers names the running node (another node's config) is not
 * applied. And a peer URL's password stays out of the log and cluster.status. Three real agents on
 * 127.0.0.1, and a plain HTTP server that answers 401.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { ClusterStatus } from "../../agent/contract/cluster-status.js";
import { AgentProcess, makeCluster, sleep, waitFor } from "../support/agent-process.js";
import { hasAlias } from "../support/aliases.js";

let dir: string;
let nodes: AgentProcess[];
let n1: AgentProcess;
let original: { id: string; url: string }[];
/** n1's refusals of "unknown node id" before the last SIGHUP: each test counts its own. */
let refusedBefore = 0;

const status = (a: AgentProcess) => a.call<ClusterStatus>("cluster.status");
const allConnected = async () => (await Promise.all(nodes.map(status))).every((s) => s.peers.every((p) => p.connected));
const linesOf = (a: AgentProcess, text: string) => readFileSync(a.logPath, "utf8").split("\n").filter((l) => l.includes(text));

/** Rewrites n1's config with `config` and `peers`, sends SIGHUP and waits until it applied a peer list. */
async function sighup(config: Record<string, unknown>, peers: { id: string; url: string }[]): Promise<void> {
  const updates = linesOf(n1, "peer list updated").length;
  refusedBefore = await n1.metric("locmesh_auth_failures_total", { reason: "unknown node id" });
  n1.spec.config = config;
  n1.reloadPeers(peers);
  await waitFor("n1 applying the SIGHUP", async () => linesOf(n1, "peer list updated").length > updates, 10_000);
}

/** n1 still holds its sessions a while later, refused nobody, and a change made on n3 reaches it. */
async function stillMeshed(tag: string): Promise<void> {
  await sleep(1500);
  expect(await n1.metric("locmesh_auth_failures_total", { reason: "unknown node id" })).toBe(refusedBefore);
  expect((await status(n1)).peers.filter((p) => p.connected).map((p) => p.nodeId).sort()).toEqual(["n2", "n3"]);
  await nodes[2]!.call("alias.set", { alias: `sip:${tag}@example.com`, target: "sip:desk@example.com" });
  await waitFor(`n3's alias on n1 (${tag})`, () => hasAlias(n1, `${tag}@example.com`));
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "locmesh-agent-reload-"));
  nodes = await makeCluster(dir, 3);
  n1 = nodes[0]!;
  original = [...n1.spec.peers];
  await Promise.all(nodes.map((n) => n.start()));
  await waitFor("all peers connected", allConnected);
});

afterEach(async () => {
  // Back to n1's own config; the sessions are whole again before the next test.
  await sighup({}, original);
  await waitFor("all peers connected", allConnected);
});

afterAll(async () => {
  await Promise.all((nodes ?? []).map((n) => n.stop()));
  if (dir && !process.env["LOCMESH_KEEP_TEST_DIRS"]) rmSync(dir, { recursive: true, force: true });
});

describe("agent SIGHUP and mesh.peers", () => {
  it("keeps a peer dropped in the change that turns on mesh.acceptUnlisted (a restart's), and says to restart", async () => {
    await sighup({ mesh: { acceptUnlisted: true } }, original.filter((p) => p.id !== "n3"));
    const [line] = linesOf(n1, "SIGHUP: keeping the peers this change drops from mesh.peers");
    expect(JSON.parse(line ?? "{}")).toMatchObject({ level: "error", kept: ["n3"], configured: ["n2"] });
    expect(line).toMatch(/mesh\.acceptUnlisted was turned on in the same change.*Restart the agent \(systemctl restart\)/);
    await stillMeshed("accept-unlisted");
  });

  it("keeps the peers dropped in the change that sets hub.urls (entering hub mode is a restart's): the agent goes on over them", async () => {
    const kept = linesOf(n1, "SIGHUP: keeping the peers").length;
    await sighup({ hub: { urls: ["ws://127.0.0.1:9/"] } }, []);
    expect(linesOf(n1, "SIGHUP: keeping the peers").slice(kept).join()).toMatch(/"kept":\["n2","n3"\].*because hub\.urls was set in the same change/);
    expect(linesOf(n1, "SIGHUP: hub.urls now lists hubs").join()).toMatch(/keeps replicating over mesh\.peers alone/);
    await stillMeshed("hub-urls-set");
  });

  it("refuses a peer list that names the running node (another node's config, whose nodeId waits for a restart), keeping the running list", async () => {
    // n2's view of the cluster, with nodeId n2, SIGHUPed into n1 by mistake.
    await sighup({ nodeId: "n2" }, [{ id: "n1", url: n1.meshUrl }, original.find((p) => p.id === "n3")!]);
    expect(linesOf(n1, "SIGHUP: not applying mesh.peers: it lists n1, the id this agent runs as").length).toBe(1);
    expect(linesOf(n1, "these changed settings take effect when the agent restarts").at(-1)).toContain('"settings":["nodeId"]');
    await stillMeshed("other-node-config");
    expect((await status(n1)).peers.map((p) => p.nodeId).sort()).toEqual(["n2", "n3"]);
  });
});

describe("a peer URL with a password", () => {
  let server: Server;
  afterEach(() => new Promise<void>((r) => (server ? server.close(() => r()) : r())));

  it("is named without its password in cluster.status's lastError and the log when the peer answers HTTP 401", async () => {
    server = createServer((_req, res) => res.writeHead(401, { "www-authenticate": "Basic" }).end());
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const url = `ws://locmesh:S3cretPw@127.0.0.1:${(server.address() as AddressInfo).port}`;
    await sighup({}, [...original, { id: "n9", url }]);
    const lastError = await waitFor("n9's lastError", async () => (await status(n1)).peers.find((p) => p.nodeId === "n9")?.lastError);
    expect(lastError).toMatch(/HTTP 401 from ws:\/\/locmesh:redacted@127\.0\.0\.1:\d+/);
    expect(lastError).not.toContain("S3cretPw");
    await waitFor("the dialer's warning", async () => linesOf(n1, "cannot reach peer; retrying").some((l) => l.includes("HTTP 401")));
    expect(readFileSync(n1.logPath, "utf8")).not.toContain("S3cretPw");
  });
});
