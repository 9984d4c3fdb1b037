/**
 * Rotating the cluster key and the API token with SIGHUP only, as README's runbook "Rotating the
 * cluster key and API token" says, with real agent processes on 127.0.0.1: a 3-node mesh (n3 keeps
 * its keys in files, n1 is attached to a real Kamailio whose include was generated with the old
 * key), then a hub on a real PostgreSQL 15 with two agents. Every peer connection goes through a
 * TCP proxy that the test resets after each step, so that every node authenticates again with
 * the keys of that step: each time the sessions come back, a change made on each node reaches
 * every node, and no handshake is refused, until the old key is dropped; then it is refused.
 */
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ErrorCode } from "../../agent/contract/errors.js";
import type { HelloResult } from "../../agent/contract/protocol.js";
import type { ClusterStatus } from "../../agent/contract/cluster-status.js";
import { evapiBulkToken } from "../../agent/kamailio/evapi-bulk.js";
import { serverProof } from "../../agent/mesh/auth.js";
import { keyId } from "../../agent/ops/key-ring.js";
import { AgentProcess, freePort, RpcCallError, waitFor } from "../support/agent-process.js";
import { dumpAliases } from "../support/aliases.js";
import { cli } from "../support/cli-run.js";
import { startFreezableProxy, type FreezableProxy } from "../support/freezable-proxy.js";
import { makeHubCluster, type HubProcess } from "../support/hub-process.js";
import { startKamailio, type KamailioProcess } from "../support/kamailio-process.js";
import { startPostgres, type PostgresProcess } from "../support/postgres-process.js";
import { RpcWire, makeHello } from "../support/rpc-wire.js";

const OLD = "rotation-old-cluster-key-0123456789";
const NEW = "rotation-new-cluster-key-0123456789";
const TOKEN_OLD = "rotation-old-api-token-0123456789";
const TOKEN_NEW = "rotation-new-api-token-0123456789";

let dir: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "locmesh-rotation-"));
});
afterAll(() => {
  if (dir && !process.env["LOCMESH_KEEP_TEST_DIRS"]) rmSync(dir, { recursive: true, force: true });
});

const logOf = (n: AgentProcess) => readFileSync(n.logPath, "utf8");
const occurrences = (n: AgentProcess, text: string) => logOf(n).split(text).length - 1;
const statusOf = (n: AgentProcess) => n.call<ClusterStatus>("cluster.status");

/** Changes the node's config as `edit` says and sends SIGHUP; resolves once the node logged that it applied `what`. */
async function sighup(n: AgentProcess, what: "cluster keys" | "API tokens", edit: () => void): Promise<void> {
  const line = `SIGHUP: ${what} applied`;
  const before = occurrences(n, line);
  edit();
  n.reload();
  await waitFor(`${n.spec.id} to apply the ${what}`, async () => occurrences(n, line) > before, 10_000);
  expect(logOf(n)).not.toContain("config reload failed");
}

/** Every peer of every node connected, in a session that began after `since` (connectedSince). */
async function allReconnected(nodes: readonly AgentProcess[], peersOf: (n: AgentProcess) => string[], since: number): Promise<boolean> {
  for (const n of nodes) {
    const peers = (await statusOf(n)).peers;
    for (const id of peersOf(n)) {
      const p = peers.find((x) => x.nodeId === id);
      if (!p?.connected || p.connectedSince === null || Date.parse(p.connectedSince) < since) return false;
    }
  }
  return true;
}

/** No handshake refused on these nodes: the metric and the log say none. */
async function expectNoRefusals(nodes: readonly AgentProcess[]): Promise<void> {
  for (const n of nodes) {
    expect(await n.metric("locmesh_auth_failures_total", { reason: "wrong key" }), `wrong-key refusals on ${n.spec.id}`).toBe(0);
    expect(await n.metric("locmesh_auth_failures_total", { reason: "server proof" }), `server-proof failures on ${n.spec.id}`).toBe(0);
    expect(logOf(n)).not.toMatch(/refused peer authentication|could not prove|the peer refused us/);
  }
}

let probes = 0;
/**
 * Authenticates on a node's peer port with `key`, as a node "probe-N" would (the node accepts
 * unlisted ids), checks that the answer is a proof made with that same key, and closes. Resolves
 * with "accepted", or the refusal's message.
 */
async function probe(n: AgentProcess, key: string): Promise<string> {
  const wire = await RpcWire.open(`ws://127.0.0.1:${n.spec.meshPort}/peer`);
  try {
    const challenge = await wire.challenge();
    const hello = makeHello(key, `probe-${++probes}`, challenge);
    const res = await wire.request("auth.hello", hello);
    if (res.error) return res.error.message;
    const ids = { clientId: hello.nodeId, serverId: challenge.nodeId, clientNonce: hello.nonce, serverNonce: challenge.nonce };
    expect((res.result as HelloResult).mac).toBe(serverProof(key, ids));
    return "accepted";
  } finally {
    await wire.close();
  }
}

const handshakesWith = async (nodes: readonly AgentProcess[], key: "own" | "accepted") => {
  let sum = 0;
  for (const n of nodes) sum += await n.metric("locmesh_peer_handshakes_total", { key });
  return sum;
};

describe("rotating the cluster key and the API token of a 3-node mesh with SIGHUP only", () => {
  let nodes: AgentProcess[];
  let proxies: FreezableProxy[];
  let kam: KamailioProcess;
  const keyFile = (name: string) => join(dir, "n3-keys", name);
  const mesh = (n: AgentProcess) => n.spec.config!["mesh"] as Record<string, unknown>;
  const peersOf = (n: AgentProcess) => nodes.filter((o) => o !== n).map((o) => o.spec.id);

  /** Ends every peer session, waits until all are back, and sees a change made on each node reach every node. */
  async function reconnectAndReplicate(tag: string): Promise<void> {
    const since = Date.now();
    for (const p of proxies) p.reset();
    await waitFor(`${tag}: every session back`, () => allReconnected(nodes, peersOf, since), 30_000);
    for (const n of nodes) await n.call("alias.set", { alias: `sip:${tag}-${n.spec.id}@example.com`, target: "sip:x@example.com" });
    await waitFor(`${tag}: each node's change on every node`, async () => {
      const seen = await Promise.all(nodes.map(async (n) => (await dumpAliases(n)).filter((a) => a.startsWith(`${tag}-`)).length));
      return seen.every((c) => c === nodes.length);
    }, 30_000);
    await expectNoRefusals(nodes);
  }

  /** n1's Kamailio refilled through a reload the test asks for; resolves with how the writes went in. */
  async function reloadKamailio(n1: AgentProcess): Promise<{ channel: string | null; error: string | null }> {
    const before = (await statusOf(n1)).kamailio!.reload.finishedAt;
    await n1.call("kamailio.reload");
    const r = await waitFor("the reload to end", async () => {
      const s = (await statusOf(n1)).kamailio!.reload;
      return s.state === "done" && s.finishedAt !== before ? s : null;
    }, 30_000);
    return { channel: r.channel, error: r.error };
  }

  beforeAll(async () => {
    kam = await startKamailio({ locmesh: { aliasMode: "usrloc", bulkToken: evapiBulkToken(OLD, "n1") } });
    const ids = ["n1", "n2", "n3"];
    const ports = await Promise.all(ids.map(async () => ({ mesh: await freePort(), api: await freePort() })));
    proxies = await Promise.all(ports.map((p) => startFreezableProxy(p.mesh)));
    nodes = ids.map((id, i) => new AgentProcess({
      id, meshPort: ports[i]!.mesh, apiPort: ports[i]!.api, dir: join(dir, id), secret: OLD, token: TOKEN_OLD,
      peers: ids.filter((o) => o !== id).map((o) => ({ id: o, url: `ws://127.0.0.1:${proxies[ids.indexOf(o)]!.port}` })),
      config: { mesh: { acceptUnlisted: true } },
    }));
    nodes[0]!.spec.config!["kamailio"] = { fifo: kam.fifoPath, replyDir: kam.replyDir, evapi: `127.0.0.1:${kam.evapiPort}`, timeoutMs: 2000, checkIntervalSec: 1 };
    // n3 keeps its key in a file, as an operator would (mode 0600).
    mkdirSync(join(dir, "n3-keys"), { recursive: true });
    writeFileSync(keyFile("old.key"), `${OLD}\n`, { mode: 0o600 });
    Object.assign(mesh(nodes[2]!), { secret: undefined, secretFile: keyFile("old.key") });
    await Promise.all(nodes.map((n) => n.start()));
    await waitFor("the mesh up", () => allReconnected(nodes, peersOf, 0), 30_000);
  }, 60_000);

  afterAll(async () => {
    await Promise.all((nodes ?? []).map((n) => n.stop()));
    await Promise.all((proxies ?? []).map((p) => p.close()));
    await kam?.close();
  });

  it("step 1: every node accepts the new key besides its own; nothing is refused, and the new key is taken everywhere", async () => {
    const [n1, n2, n3] = nodes as [AgentProcess, AgentProcess, AgentProcess];
    await reconnectAndReplicate("before");
    for (const n of [n1, n2]) await sighup(n, "cluster keys", () => (mesh(n)["acceptedSecrets"] = [NEW]));
    // n3's new key file is left readable by everyone at first: the SIGHUP warns as a start does.
    writeFileSync(keyFile("new.key"), `${NEW}\n`, { mode: 0o644 });
    chmodSync(keyFile("new.key"), 0o644);
    await sighup(n3, "cluster keys", () => (mesh(n3)["acceptedSecretFiles"] = [keyFile("new.key")]));
    expect(logOf(n3)).toContain(`mesh.acceptedSecretFiles[0]: ${keyFile("new.key")} can be read by every user on this host (mode 0644)`);
    chmodSync(keyFile("new.key"), 0o600);
    expect(logOf(n1)).toContain(`SIGHUP: cluster keys applied: own ${keyId(OLD)}; also accepts ${keyId(NEW)}`);
    await reconnectAndReplicate("step1");
    for (const n of nodes) {
      expect(await probe(n, NEW)).toBe("accepted");
      expect(await probe(n, OLD)).toBe("accepted");
    }
  }, 90_000);

  it("step 2: the nodes switch to the new key one by one; with old and new own keys mixed, nothing is refused and changes reach every node", async () => {
    const [n1, , n3] = nodes as [AgentProcess, AgentProcess, AgentProcess];
    for (const n of nodes) {
      const accepted = await handshakesWith(nodes, "accepted");
      await sighup(n, "cluster keys", () => {
        if (n === n3) Object.assign(mesh(n), { secretFile: keyFile("new.key"), acceptedSecretFiles: [keyFile("old.key")] });
        else Object.assign(mesh(n), { acceptedSecrets: [OLD] });
        if (n !== n3) n.spec.secret = NEW;
      });
      await reconnectAndReplicate(`step2-${n.spec.id}`);
      // Some node proved itself with a key that was not its peer's own, and that peer took it.
      if (n !== n3) expect(await handshakesWith(nodes, "accepted")).toBeGreaterThan(accepted);
    }
    expect(logOf(n1)).toContain(`SIGHUP: cluster keys applied: own ${keyId(NEW)} (was ${keyId(OLD)}); also accepts ${keyId(OLD)}`);
    expect(nodes.some((n) => logOf(n).includes(`proved itself with accepted cluster key ${keyId(OLD)}, not with this node's own (mesh.secret, ${keyId(NEW)})`)
      || logOf(n).includes(`proved itself with accepted cluster key ${keyId(NEW)}, not with this node's own (mesh.secret, ${keyId(OLD)})`))).toBe(true);

    // n1's Kamailio still runs the include made with the old key: the reload takes that key's token and says so.
    const reload = await reloadKamailio(n1);
    expect(reload).toEqual({ channel: "evapi", error: null });
    expect(logOf(n1)).toContain(`Kamailio took the evapi bulk channel's token of accepted cluster key ${keyId(OLD)}, not that of this node's own (mesh.secret, ${keyId(NEW)})`);
  }, 120_000);

  it("the check before step 3: every node proves with the new key, and no handshake since the switch used the old one", async () => {
    const switchedAt = Date.now();
    const before = { own: await handshakesWith(nodes, "own"), accepted: await handshakesWith(nodes, "accepted") };
    await reconnectAndReplicate("check");
    expect(await handshakesWith(nodes, "own")).toBeGreaterThan(before.own);
    expect(await handshakesWith(nodes, "accepted")).toBe(before.accepted);
    for (const n of nodes) {
      const keys = (await statusOf(n)).credentials!.clusterKeys;
      expect(keys.own).toBe(keyId(NEW));
      expect(keys.accepted.map((k) => k.id)).toEqual([keyId(OLD)]);
      const last = keys.accepted[0]!.lastUsedAt;
      expect(last === null || Date.parse(last) < switchedAt).toBe(true);
    }
    // What the operator reads: `locmesh status` names the keys by id.
    const status = await cli(["status", "-c", nodes[1]!.configPath]);
    expect(status.code).toBe(0);
    expect(status.stdout).toMatch(new RegExp(`^cluster keys\\s+${keyId(NEW)} \\(mesh\\.secret\\); also accepts ${keyId(OLD)} \\((last used by \\S+ .* ago|not used since this node began holding it)`, "m"));
  }, 60_000);

  it("step 3: the old key is dropped everywhere; sessions come back with the new one, and the old one is refused", async () => {
    const [n1, , n3] = nodes as [AgentProcess, AgentProcess, AgentProcess];
    for (const n of nodes) {
      await sighup(n, "cluster keys", () => {
        if (n === n3) mesh(n)["acceptedSecretFiles"] = [];
        else mesh(n)["acceptedSecrets"] = [];
      });
    }
    await reconnectAndReplicate("step3");
    expect(logOf(n1)).toContain(`SIGHUP: cluster keys applied: own ${keyId(NEW)}; accepts no other; no longer accepts ${keyId(OLD)}`);
    for (const n of nodes) {
      expect(await probe(n, NEW)).toBe("accepted");
      // Told no more than a key-less scanner would be (README, Security); the node's metric says which.
      expect(await probe(n, OLD)).toBe(`unauthorized: wrong key or unknown node id; ${n.spec.id}'s log says which`);
      expect(await n.metric("locmesh_auth_failures_total", { reason: "wrong key" })).toBe(1);
      expect((await statusOf(n)).credentials!.clusterKeys).toEqual({ own: keyId(NEW), accepted: [] });
    }
    // The include's key is gone: Kamailio is refilled over jsonrpcs, and the log says to regenerate it.
    expect(await reloadKamailio(n1)).toEqual({ channel: "jsonrpcs", error: null });
    expect(logOf(n1)).toContain(`Kamailio refused the evapi bulk channel's token of this node's cluster key (${keyId(NEW)}): the include was generated for another node or cluster key; regenerate it with`);
  }, 90_000);

  it("the API token: old and new both work during the overlap (requests, sign-in, CLI), the old is refused once dropped", async () => {
    const api = (n: AgentProcess) => n.spec.config!["api"] as Record<string, unknown> | undefined;
    const works = async (n: AgentProcess, token: string) => n.call("cluster.status", {}, token).then(() => true, (e: RpcCallError) => (e.code === ErrorCode.Unauthorized ? false : Promise.reject(e)));
    const signIn = async (n: AgentProcess, token: string) => {
      const ws = await RpcWire.open(`ws://127.0.0.1:${n.spec.apiPort}/rpc`);
      const res = await ws.request("auth.login", { token });
      return { ws, ok: res.error === undefined };
    };
    const [n1] = nodes as [AgentProcess];

    for (const n of nodes) await sighup(n, "API tokens", () => (n.spec.config!["api"] = { acceptedTokens: [TOKEN_NEW] }));
    for (const n of nodes) expect([await works(n, TOKEN_OLD), await works(n, TOKEN_NEW)]).toEqual([true, true]);

    for (const n of nodes) {
      await sighup(n, "API tokens", () => {
        n.spec.token = TOKEN_NEW;
        n.spec.config!["api"] = { acceptedTokens: [TOKEN_OLD] };
      });
    }
    for (const n of nodes) expect([await works(n, TOKEN_OLD), await works(n, TOKEN_NEW)]).toEqual([true, true]);
    // The web UI signs in over a WebSocket; the CLI takes --token or the config's api.token.
    const oldSession = await signIn(n1, TOKEN_OLD);
    const newSession = await signIn(n1, TOKEN_NEW);
    expect([oldSession.ok, newSession.ok]).toEqual([true, true]);
    await newSession.ws.close();
    const url = `http://127.0.0.1:${n1.spec.apiPort}`;
    expect((await cli(["status", "--url", url, "--token", TOKEN_OLD])).code).toBe(0);
    expect((await cli(["status", "-c", n1.configPath])).code).toBe(0);
    expect(logOf(n1)).toMatch(/an API client at \S+ used accepted token \w{8}, not api\.token/);
    const tokens = (await statusOf(n1)).credentials!.apiTokens;
    expect(tokens).toMatchObject({ own: keyId(TOKEN_NEW), accepted: [{ id: keyId(TOKEN_OLD), lastUsedBy: expect.stringContaining("127.0.0.1") as string }] });
    expect(await n1.metric("locmesh_api_authentications_total", { token: "accepted" })).toBeGreaterThan(0);

    for (const n of nodes) await sighup(n, "API tokens", () => (api(n)!["acceptedTokens"] = []));
    for (const n of nodes) expect([await works(n, TOKEN_OLD), await works(n, TOKEN_NEW)]).toEqual([false, true]);
    expect((await cli(["status", "--url", url, "--token", TOKEN_OLD])).code).toBe(4);
    const refused = await signIn(n1, TOKEN_OLD);
    await refused.ws.close();
    expect(refused.ok).toBe(false);
    // A WebSocket signed in with the old token before it was dropped stays signed in (sessions already up stay up).
    expect((await oldSession.ws.request("cluster.status", {})).error).toBeUndefined();
    await oldSession.ws.close();
  }, 90_000);
});

describe("rotating the cluster key of a hub and its agents with SIGHUP only", () => {
  let pg: PostgresProcess;
  let hub: HubProcess;
  let agents: AgentProcess[];
  let path: FreezableProxy;
  const mesh = (n: AgentProcess) => ((n.spec.config ??= {})["mesh"] ??= {}) as Record<string, unknown>;
  const all = () => [hub, ...agents];

  /** Ends the agents' hub sessions, waits until both are back, and sees a change of each agent reach the other. */
  async function reconnectAndReplicate(tag: string): Promise<void> {
    const since = Date.now();
    path.reset();
    await waitFor(`${tag}: both agents back on the hub`, () => allReconnected(agents, () => ["hub1"], since), 30_000);
    for (const a of agents) await a.call("alias.set", { alias: `sip:${tag}-${a.spec.id}@example.com`, target: "sip:x@example.com" });
    await waitFor(`${tag}: each agent's change on the other`, async () => {
      const seen = await Promise.all(agents.map(async (a) => (await dumpAliases(a)).filter((x) => x.startsWith(`${tag}-`)).length));
      return seen.every((c) => c === agents.length);
    }, 30_000);
    await expectNoRefusals(all());
  }

  beforeAll(async () => {
    pg = await startPostgres();
    const pgUrl = await pg.createDatabase("locmesh");
    const cluster = await makeHubCluster(join(dir, "hub"), { hubs: 1, agents: 2, pgUrl });
    hub = cluster.hubs[0]!;
    agents = cluster.agents;
    for (const n of all()) n.spec.secret = OLD;
    path = await startFreezableProxy(hub.spec.meshPort);
    for (const a of agents) a.spec.config = { ...a.spec.config, hub: { urls: [`ws://127.0.0.1:${path.port}`] } };
    await hub.start();
    await Promise.all(agents.map((a) => a.start()));
    await waitFor("both agents on the hub", () => allReconnected(agents, () => ["hub1"], 0), 30_000);
  }, 60_000);

  afterAll(async () => {
    await Promise.all([...(agents ?? []), ...(hub ? [hub] : [])].map((p) => p.stop()));
    await path?.close();
    await pg?.close();
  });

  it("adds the new key everywhere, switches agent, hub and agent in turn, drops the old key: nothing refused until then, and the old key refused after", async () => {
    const [a1, a2] = agents as [AgentProcess, AgentProcess];
    // Step 1: the new key accepted everywhere (the hub handles SIGHUP too).
    for (const n of all()) await sighup(n, "cluster keys", () => (mesh(n)["acceptedSecrets"] = [NEW]));
    await reconnectAndReplicate("hub-step1");
    expect(await probe(hub, NEW)).toBe("accepted");

    // Step 2: a1 first (the hub still proves with the old key), then the hub, then a2.
    for (const n of [a1, hub, a2]) {
      await sighup(n, "cluster keys", () => {
        n.spec.secret = NEW;
        mesh(n)["acceptedSecrets"] = [OLD];
      });
      await reconnectAndReplicate(`hub-step2-${n.spec.id}`);
    }
    // The agents still on the old key were taken with it as an accepted key once the hub switched.
    expect(await hub.metric("locmesh_peer_handshakes_total", { key: "accepted" })).toBeGreaterThan(0);
    expect((await statusOf(hub)).credentials!.clusterKeys).toMatchObject({ own: keyId(NEW), accepted: [{ id: keyId(OLD) }] });

    // Step 3: the old key dropped everywhere.
    for (const n of all()) await sighup(n, "cluster keys", () => (mesh(n)["acceptedSecrets"] = []));
    await reconnectAndReplicate("hub-step3");
    expect(await probe(hub, OLD)).toBe(`unauthorized: wrong key or unknown node id; ${hub.spec.id}'s log says which`);
    expect(await probe(hub, NEW)).toBe("accepted");
  }, 180_000);

  it("a hub takes a further API token after SIGHUP and refuses it once dropped", async () => {
    const works = (token: string) => hub.call("cluster.status", {}, token).then(() => true, (e: RpcCallError) => (e.code === ErrorCode.Unauthorized ? false : Promise.reject(e)));
    expect(await works(TOKEN_NEW)).toBe(false);
    await sighup(hub, "API tokens", () => (hub.spec.config = { ...hub.spec.config, api: { acceptedTokens: [TOKEN_NEW] } }));
    expect([await works(hub.spec.token), await works(TOKEN_NEW)]).toEqual([true, true]);
    await sighup(hub, "API tokens", () => (hub.spec.config = { ...hub.spec.config, api: { acceptedTokens: [] } }));
    expect(await works(TOKEN_NEW)).toBe(false);
  }, 30_000);
});
