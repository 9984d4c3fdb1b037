/**
 * The peer port under attack, with real agents on 127.0.0.1: TLS between peers, admission of node
 * ids nobody listed, replay of a recorded handshake, and hostile frames from raw WebSocket clients
 * before and after they authenticate.
 */
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ErrorCode } from "../../agent/contract/errors.js";
import type { HelloResult } from "../../agent/contract/protocol.js";
import type { ListResult } from "../../agent/contract/api-protocol.js";
import type { ClusterStatus } from "../../agent/contract/cluster-status.js";
import type { Alias, Location } from "../../agent/contract/records.js";
import { serverProof } from "../../agent/mesh/auth.js";
import { AgentProcess, freePort, makeCluster, waitFor } from "../support/agent-process.js";
import { RpcWire, authenticatedWire, makeHello, servedNodeId, type WireMessage } from "../support/rpc-wire.js";
import { makeTestPki, type TestPki } from "../support/test-pki.js";

const SECRET = "peer-security-secret-0123456789";
const RAW = "raw";
const TOKEN = "peer-security-api-token-0123456789";
let dir: string;
const agents: AgentProcess[] = [];

async function agent(id: string, meshPort: number, peers: { id: string; url: string }[], config?: Record<string, unknown>) {
  const a = new AgentProcess({ id, meshPort, apiPort: await freePort(), dir: join(dir, id), secret: SECRET, token: TOKEN, peers, config });
  agents.push(a);
  return a;
}

const aliasNames = async (a: AgentProcess) => (await a.call<ListResult<Alias>>("alias.list", { limit: 1000 })).items.map((i) => i.alias);
const peerConnected = async (a: AgentProcess, id: string) =>
  (await a.call<ClusterStatus>("cluster.status")).peers.some((p) => p.nodeId === id && p.connected);

/** Everything a hostile frame must not change. */
async function snapshot(a: AgentProcess) {
  // nowSec is the agent's clock at the answer, not stored state: a second may tick between two snapshots.
  const { nowSec: _aliasesAt, ...aliases } = await a.call<ListResult<Alias>>("alias.list", { limit: 1000 });
  const { nowSec: _locationsAt, ...locations } = await a.call<ListResult<Location>>("location.list", { limit: 1000 });
  const { vv, counts } = await a.call<ClusterStatus>("cluster.status");
  return { aliases, locations, vv, counts };
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "locmesh-peer-security-"));
});

afterAll(async () => {
  await Promise.all(agents.map((a) => a.stop()));
  if (dir && !process.env["LOCMESH_KEEP_TEST_DIRS"]) rmSync(dir, { recursive: true, force: true });
});

describe("TLS between peers", () => {
  let nodes: AgentProcess[];
  let pki: TestPki;

  beforeAll(async () => {
    pki = makeTestPki(join(dir, "pki"));
    nodes = await makeCluster(join(dir, "tls"), 2, { secret: SECRET, scheme: "wss", config: { mesh: { tls: pki } } });
    agents.push(...nodes);
    await Promise.all(nodes.map((n) => n.start()));
  });

  it("peers dialing wss:// URLs with mesh.tls connect and replicate a change", async () => {
    const [n1, n2] = nodes as [AgentProcess, AgentProcess];
    expect(n1.spec.peers[0]!.url).toMatch(/^wss:\/\//);
    await waitFor("TLS peers connected", async () => (await peerConnected(n1, "n2")) && (await peerConnected(n2, "n1")));
    await n1.call("alias.set", { alias: "sip:tls@example.com", target: "sip:secure@example.com" });
    await waitFor("alias on n2", async () => (await aliasNames(n2)).includes("tls@example.com"));
  });

  it("the TLS port does not speak plain ws://, only wss:// with the cluster CA", async () => {
    const [n1] = nodes as [AgentProcess];
    const port = n1.spec.meshPort;
    await expect(RpcWire.open(`ws://127.0.0.1:${port}/peer`)).rejects.toThrow();
    const secure = await RpcWire.open(`wss://127.0.0.1:${port}/peer`, { ca: readFileSync(pki.ca) });
    try {
      expect((await secure.challenge()).nodeId).toBe("n1");
    } finally {
      await secure.close();
    }
  });
});

describe("TLS files renewed while running (SIGHUP)", () => {
  it("serves a renewed certificate and dials with a renewed CA from the next handshake; files that cannot be used leave the running ones", async () => {
    const a = makeTestPki(join(dir, "renew-a"));
    const b = makeTestPki(join(dir, "renew-b"));
    /** Each node's own copies of the files, at the paths its config names, as an operator's renewal job would replace them. */
    const filesOf = (id: string) => {
      const d = join(dir, "renew", id, "tls");
      mkdirSync(d, { recursive: true });
      const f = { cert: join(d, "node.crt"), key: join(d, "node.key"), ca: join(d, "ca.crt") };
      for (const k of ["cert", "key", "ca"] as const) copyFileSync(a[k], f[k]);
      return f;
    };
    const f1 = filesOf("r1");
    const f2 = filesOf("r2");
    // Only r2 dials (r1 takes it unlisted): r2's CA alone decides whether the session comes up.
    const r1 = await agent("r1", await freePort(), [], { mesh: { tls: f1, acceptUnlisted: true } });
    const r2 = await agent("r2", await freePort(), [], { mesh: { tls: f2 } });
    r2.spec.peers = [{ id: "r1", url: `wss://127.0.0.1:${r1.spec.meshPort}` }];
    await Promise.all([r1.start(), r2.start()]);
    await waitFor("r2 connected to r1 over TLS", () => peerConnected(r2, "r1"));
    const served = (ca: string) => servedNodeId(r1.spec.meshPort, ca);
    const logged = (n: AgentProcess, text: string) => readFileSync(n.logPath, "utf8").split("\n").filter((l) => l.includes(text)).length;

    // r1's certificate renewed (by another CA, so that which one is served shows).
    copyFileSync(b.cert, f1.cert);
    copyFileSync(b.key, f1.key);
    r1.reload();
    await waitFor("r1 read mesh.tls again", async () => logged(r1, "mesh.tls read again") === 1);
    expect(readFileSync(r1.logPath, "utf8")).toMatch(/"outcome":"certificate valid until [A-Z][a-z]{2} .*GMT".*mesh\.tls read again/);
    expect(await served(b.ca)).toBe("r1");
    await expect(served(a.ca)).rejects.toThrow();
    // The session up before stays.
    expect(await peerConnected(r2, "r1")).toBe(true);

    // A restarted r1 serves the new certificate, which r2's old CA refuses: r2 cannot get back in...
    await r1.stop();
    await r1.start();
    await waitFor("r2's dial refused by its CA", async () => /"peer":"r1".*(self[- ]signed|unable to verify|certificate)/i.test(readFileSync(r2.logPath, "utf8")) || /(self[- ]signed|unable to verify|certificate).*"peer":"r1"/i.test(readFileSync(r2.logPath, "utf8")));
    expect(await peerConnected(r2, "r1")).toBe(false);
    // ...until its CA is renewed too and it is sent SIGHUP: its next dial checks against the new one.
    copyFileSync(b.ca, f2.ca);
    r2.reload();
    await waitFor("r2 back on r1 with the renewed CA", () => peerConnected(r2, "r1"));

    // A renewal gone wrong (a key that is not the certificate's) is logged, and the running files stay.
    writeFileSync(f1.key, readFileSync(a.key));
    r1.reload();
    await waitFor("r1 refused the bad files", async () => logged(r1, "mesh.tls could not be read again") === 1);
    expect(readFileSync(r1.logPath, "utf8")).toMatch(new RegExp(`mesh\\.tls\\.key: ${f1.key.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")} is not the key of`));
    expect(await served(b.ca)).toBe("r1");
    expect(r1.child?.exitCode).toBeNull();
  });
});

describe("mesh.tls of an agent in hub mode whose peer port stays closed", () => {
  it("a CA that is not PEM refuses the start naming the file; one gone bad later is refused by SIGHUP without claiming a peer port serves", async () => {
    const pki = makeTestPki(join(dir, "closed-port-pki"));
    const d = join(dir, "closed-port", "tls");
    mkdirSync(d, { recursive: true });
    const files = { cert: join(d, "node.crt"), key: join(d, "node.key"), ca: join(d, "ca.crt") };
    copyFileSync(pki.cert, files.cert);
    copyFileSync(pki.key, files.key);
    writeFileSync(files.ca, "not a certificate\n");
    // No mesh.peers, mesh.acceptUnlisted off: the port stays closed, mesh.tls is there for the hubs' CA. Nothing answers at the hub URL.
    const h = await agent("hm1", await freePort(), [], { mesh: { tls: files }, hub: { urls: [`wss://127.0.0.1:${await freePort()}`] } });
    const escaped = files.ca.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

    await expect(h.start()).rejects.toThrow(/exited with 1/);
    expect(h.child?.exitCode).toBe(1);
    expect(readFileSync(h.logPath, "utf8")).toMatch(new RegExp(`locmesh agent failed to start: mesh\\.tls\\.ca: ${escaped} is not a PEM certificate`));

    // With the CA fixed it starts, its port closed; the CA gone bad again is refused at SIGHUP, the running one kept.
    copyFileSync(pki.ca, files.ca);
    await h.start();
    expect(readFileSync(h.logPath, "utf8")).toContain(`peer mesh not listening on 127.0.0.1:${h.spec.meshPort}`);
    writeFileSync(files.ca, "not a certificate\n");
    h.reload();
    const refusedLines = () => readFileSync(h.logPath, "utf8").split("\n").filter((l) => l.includes("mesh.tls could not be read again"));
    await waitFor("the agent refused the bad CA", async () => refusedLines().length === 1);
    expect(refusedLines()[0]).toMatch(new RegExp(`mesh\\.tls\\.ca: ${escaped} is not a PEM certificate`));
    expect(refusedLines()[0]).toContain("dials keep checking peers and hubs against the running CA (this node has no peer port open");
    expect(refusedLines()[0]).not.toContain("peer port keeps serving");
    expect(h.child?.exitCode).toBeNull();
  });
});

describe("admission of node ids", () => {
  it("refuses an unlisted node that has the right key, and counts it; acceptUnlisted lets it in", async () => {
    const gate = await agent("gate", await freePort(), []);
    const open = await agent("open", await freePort(), [], { mesh: { acceptUnlisted: true } });
    await Promise.all([gate.start(), open.start()]);
    const stranger = await agent("n9", await freePort(), [
      { id: "gate", url: gate.meshUrl },
      { id: "open", url: open.meshUrl },
    ]);
    await stranger.start();
    await stranger.call("alias.set", { alias: "sip:stranger@example.com", target: "sip:s@example.com" });

    await waitFor("refusal counted", async () => (await gate.metric("locmesh_auth_failures_total", { reason: "unknown node id" })) > 0);
    await waitFor("accepted by the open node", async () => (await aliasNames(open)).includes("stranger@example.com"));
    expect(await peerConnected(open, "n9")).toBe(true);
    expect(await open.metric("locmesh_auth_failures_total", { reason: "unknown node id" })).toBe(0);

    expect(await aliasNames(gate)).toEqual([]);
    expect((await gate.call<ClusterStatus>("cluster.status")).peers).toEqual([]);
    const seen = (await stranger.call<ClusterStatus>("cluster.status")).peers.find((p) => p.nodeId === "gate");
    expect(seen?.connected).toBe(false);
  });
});

describe("raw clients on the peer port", () => {
  let target: AgentProcess;
  let friend: AgentProcess;

  // The agent keeps the older of two sessions from the same node id, so a test that signs in as
  // "raw" again waits until the agent has seen the previous connection go.
  const signIn = async () => {
    await waitFor("previous raw session gone", async () => !(await peerConnected(target, RAW)));
    return authenticatedWire(target.meshUrl, SECRET, RAW);
  };

  beforeAll(async () => {
    const [tPort, fPort, deadPort] = [await freePort(), await freePort(), await freePort()];
    // "raw" is a listed node this test impersonates with a hand-driven WebSocket; nothing listens
    // at its URL, so the target's own dialer to it just keeps retrying.
    target = await agent("target", tPort, [
      { id: "friend", url: `ws://127.0.0.1:${fPort}` },
      { id: RAW, url: `ws://127.0.0.1:${deadPort}` },
    ], { mesh: { maxMessageBytes: 65_536 } });
    friend = await agent("friend", fPort, [{ id: "target", url: `ws://127.0.0.1:${tPort}` }]);
    await Promise.all([target.start(), friend.start()]);
    const binding = { aor: "sip:carol@example.com", contact: "sip:carol@192.0.2.7:5060", expires: Math.floor(Date.now() / 1000) + 3600 };
    await target.call("location.publish", { edits: [{ op: "upsert", binding }] });
    await target.call("alias.set", { alias: "sip:before@example.com", target: "sip:b@example.com" });
    await waitFor("friend has the seed data", async () => (await aliasNames(friend)).includes("before@example.com"));
  });

  it("refuses a recorded auth.hello replayed on a new connection", async () => {
    await waitFor("no raw session", async () => !(await peerConnected(target, RAW)));
    const first = await RpcWire.open(`${target.meshUrl}/peer`);
    const challenge = await first.challenge();
    const hello = makeHello(SECRET, RAW, challenge);
    const answer = await first.request("auth.hello", hello);
    const result = answer.result as HelloResult;
    expect(result.nodeId).toBe("target");
    // The agent proves itself too: its MAC over our nonce checks out with the cluster key.
    expect(result.mac).toBe(serverProof(SECRET, { clientId: RAW, serverId: "target", clientNonce: hello.nonce, serverNonce: challenge.nonce }));
    await first.close();

    const refusedBefore = await target.metric("locmesh_auth_failures_total", { reason: "wrong key" });
    const second = await RpcWire.open(`${target.meshUrl}/peer`);
    expect((await second.challenge()).nonce).not.toBe(challenge.nonce);
    const replayed = await second.request("auth.hello", hello);
    expect(replayed.error?.code).toBe(ErrorCode.Unauthorized);
    expect(await second.closed).toBe(4001);
    expect(await target.metric("locmesh_auth_failures_total", { reason: "wrong key" })).toBe(refusedBefore + 1);
  });

  it("refuses connections from an address after 10 refused handshakes, right key or not; other addresses still get in", async () => {
    const guesser = { localAddress: "127.0.0.2" };
    const lockedBefore = await target.metric("locmesh_auth_failures_total", { reason: "peer locked out" });
    for (let i = 0; i < 10; i++) {
      const wire = await RpcWire.open(`${target.meshUrl}/peer`, guesser);
      const answer = await wire.request("auth.hello", makeHello(`${SECRET}-guess-${i}`, RAW, await wire.challenge()));
      expect(answer.error?.code).toBe(ErrorCode.Unauthorized);
      await wire.close();
    }
    const held = await RpcWire.open(`${target.meshUrl}/peer`, guesser);
    expect(await held.closed).toBe(4029);
    // Closed before its challenge: no hello, with the right key or not, is looked at.
    expect(held.notifications("auth.challenge")).toEqual([]);
    expect(await target.metric("locmesh_auth_failures_total", { reason: "peer locked out" })).toBe(lockedBefore + 1);
    await waitFor("the lockout warning in the agent's log", async () => /too many refused peer handshakes from this address/.test(readFileSync(target.logPath, "utf8")), 5000);

    await waitFor("no raw session", async () => !(await peerConnected(target, RAW)));
    const other = await authenticatedWire(target.meshUrl, SECRET, RAW, { localAddress: "127.0.0.3" });
    await other.close();
  });

  it("answers garbage with a parse error and refuses replication before authentication", async () => {
    const before = await snapshot(target);
    const wire = await RpcWire.open(`${target.meshUrl}/peer`);
    try {
      await wire.challenge();
      wire.sendText("{ this is not json");
      const parseError = await wire.next((m) => m.error?.code === ErrorCode.ParseError, "parse error");
      expect(parseError.id).toBeNull();
      const batch = await wire.request("repl.batch", validBatch("early@example.com"));
      expect(batch.error?.code).toBe(ErrorCode.NotReady);
      const pull = await wire.request("repl.pull", { vv: {}, limit: 100 });
      expect(pull.error?.code).toBe(ErrorCode.NotReady);
      expect(pull.result).toBeUndefined();
    } finally {
      await wire.close();
    }
    expect(await snapshot(target)).toEqual(before);
  });

  it("rejects malformed batches from an authenticated peer with JSON-RPC errors and stores nothing", async () => {
    const wire = await signIn();
    try {
      const before = await snapshot(target);
      const invalidParams = () => target.metric("locmesh_rpc_errors_total", { surface: "peer", code: String(ErrorCode.InvalidParams) });
      const countedBefore = await invalidParams();
      const hostile = hostileBatches();
      for (const [what, params] of hostile) {
        const answer = await wire.request("repl.batch", params);
        expect(answer.error?.code, what).toBe(ErrorCode.InvalidParams);
        expect(answer.result, what).toBeUndefined();
        if (what.startsWith("hlc more than a year ahead")) expect(answer.error?.message).toMatch(/changes\.0\.hlc: .* is stamped .*, more than a year ahead of this node's clock/);
      }
      expect(await invalidParams()).toBe(countedBefore + hostile.length);
      wire.sendText(JSON.stringify({ jsonrpc: "2.0", id: 1, method: "repl.batch", params: validBatch("x@example.com") }).slice(0, 60));
      expect((await wire.next((m) => m.error?.code === ErrorCode.ParseError, "parse error for a truncated frame")).id).toBeNull();
      expect(await snapshot(target)).toEqual(before);

      // Control: the same session's well-formed batch is stored, so the refusals above were about content.
      const ok = await wire.request("repl.batch", validBatch("welcome@example.com"));
      expect(ok.result).toEqual({ have: 1 });
      expect(await aliasNames(target)).toContain("welcome@example.com");
    } finally {
      await wire.close();
    }
  });

  it("answers frames that are not requests with Invalid Request instead of dropping them", async () => {
    const wire = await signIn();
    try {
      const before = await snapshot(target);
      const junk = ["5", '"x"', "{}", '{"foo":1}', "[]", "[null]", '{"jsonrpc":"2.0","id":[1],"method":"repl.pull","params":{"vv":{},"limit":1}}'];
      const seen = wire.messages.length;
      for (const frame of junk) wire.sendText(frame);
      const until = Date.now() + 5000;
      const answers = () => wire.messages.slice(seen).filter((m) => m.method === undefined);
      while (answers().length < junk.length && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
      const got = answers().flatMap((m) => (Array.isArray(m) ? (m as WireMessage[]) : [m]));
      expect(got).toHaveLength(junk.length);
      for (const m of got) {
        expect(m.error?.code, JSON.stringify(m)).toBe(ErrorCode.InvalidRequest);
        expect(m.id).toBeNull();
      }
      expect(await snapshot(target)).toEqual(before);
    } finally {
      await wire.close();
    }
  });

  it("refuses a malformed pull answer from an authenticated peer: the resync fails, saying why, and stores nothing", async () => {
    const wire = await signIn();
    try {
      const before = await snapshot(target);
      await target.call("cluster.resync", { peer: RAW });
      const pull = await wire.next((m) => m.method === "repl.pull", "the target's pull");
      // A change with a field no change has: as a pushed batch it is refused (above); pulled, too.
      const batch = { origin: ORIGIN, after: 1, upTo: 2, changes: [aliasChange("pulled@example.com", { seq: 2, sql: "drop table changes" })] };
      wire.sendText(JSON.stringify({ jsonrpc: "2.0", id: pull.id, result: { batch, remaining: 0 } }));
      const resync = await waitFor("the resync failed", async () => {
        const r = (await target.call<ClusterStatus>("cluster.status")).resync;
        return r.state === "failed" ? r : null;
      });
      expect(resync.error).toMatch(/^raw answered pull with a malformed result \(batch\.changes\.0/);
      expect(await snapshot(target)).toEqual(before);
      expect(await aliasNames(target)).not.toContain("pulled@example.com");
    } finally {
      await wire.close();
    }
  });

  it("before authentication, takes no frame over 1 MiB and drops a connection that does not read its answers", async () => {
    // friend runs with the default mesh.maxMessageBytes (32 MiB): the smaller limit is the pre-auth one.
    const big = await RpcWire.open(`${friend.meshUrl}/peer`);
    await big.challenge();
    big.sendText(JSON.stringify({ jsonrpc: "2.0", id: 1, method: "auth.hello", params: { pad: "x".repeat(2 << 20) } }));
    expect(await big.closed).toBe(1009);

    const flood = await RpcWire.open(`${friend.meshUrl}/peer`);
    try {
      await flood.challenge();
      await flood.floodWithoutReading();
      await expect.poll(() => readFileSync(friend.logPath, "utf8").includes("an unauthenticated peer connection does not read its answers; dropping it"), { timeout: 10_000 }).toBe(true);
    } finally {
      flood.ws.terminate();
    }
    // friend still serves its real peer.
    await waitFor("friend still connected to target", () => peerConnected(friend, "target"));
  });

  it("closes a connection that sends a frame over mesh.maxMessageBytes and keeps serving its peers", async () => {
    const wire = await signIn();
    wire.sendText(JSON.stringify({ jsonrpc: "2.0", method: "repl.status", params: { vv: {}, pad: "x".repeat(70_000) } }));
    expect(await wire.closed).toBe(1009);

    expect(target.child?.exitCode).toBeNull();
    expect(await peerConnected(target, "friend")).toBe(true);
    await target.call("alias.set", { alias: "sip:after-flood@example.com", target: "sip:a@example.com" });
    await friend.call("alias.set", { alias: "sip:from-friend@example.com", target: "sip:f@example.com" });
    await waitFor("friend gets target's change", async () => (await aliasNames(friend)).includes("after-flood@example.com"));
    await waitFor("target gets friend's change", async () => (await aliasNames(target)).includes("from-friend@example.com"));
    // And the port still admits a new, well-behaved connection.
    await (await signIn()).close();
  });
});

const ORIGIN = "raw~0123abcd";
const nowHlc = () => Date.now() * 1024;

function aliasChange(key: string, over: Record<string, unknown> = {}) {
  return { kind: "alias", key, sub: "", value: { target: "sip:t@example.com" }, hlc: nowHlc(), origin: ORIGIN, seq: 1, ...over };
}

function locChange(value: Record<string, unknown>) {
  const binding = {
    expires: 0, q: -1, path: "", received: "", socket: "", callid: "c", cseq: 1, userAgent: "", flags: 0, cflags: 0,
    methods: 4294967295, instance: "", regId: 0, owner: RAW, ruid: "", ...value,
  };
  return { kind: "loc", key: "hostile@example.com", sub: "sip:hostile@192.0.2.66", value: binding, hlc: nowHlc(), origin: ORIGIN, seq: 1 };
}

const validBatch = (alias: string) => ({ origin: ORIGIN, after: 0, upTo: 1, changes: [aliasChange(alias)] });
const batchOf = (...changes: unknown[]) => ({ origin: ORIGIN, after: 0, upTo: changes.length, changes });

function hostileBatches(): [string, unknown][] {
  return [
    ["type-confused batch", { origin: 7, after: "0", upTo: null, changes: {} }],
    ["params not an object", ["raw~0123abcd", 0, 1, []]],
    ["type-confused seq", batchOf(aliasChange("h@example.com", { seq: "1" }))],
    ["binding value on an alias", batchOf(aliasChange("h@example.com", { value: { expires: 0 } }))],
    ["unknown kind", batchOf(aliasChange("h@example.com", { kind: "user" }))],
    ["extra field", batchOf(aliasChange("h@example.com", { sql: "drop table changes" }))],
    ["truncated batch", { origin: ORIGIN, after: 0 }],
    ["truncated change", batchOf({ kind: "alias", key: "h@example.com", origin: ORIGIN })],
    ["truncated binding", batchOf({ ...locChange({}), value: { expires: 0, q: -1 } })],
    ["oversized key", batchOf(aliasChange(`${"a".repeat(5000)}@example.com`))],
    ["oversized target", batchOf(aliasChange("h@example.com", { value: { target: `sip:${"x".repeat(600)}@example.com` } }))],
    ["oversized user agent", batchOf(locChange({ userAgent: "U".repeat(300) }))],
    ["oversized origin", batchOf(aliasChange("h@example.com", { origin: `raw~${"f".repeat(100)}` }))],
    ["seq 0", batchOf(aliasChange("h@example.com", { seq: 0 }))],
    ["negative hlc", batchOf(aliasChange("h@example.com", { hlc: -1 }))],
    ["hlc beyond 2^53", batchOf(aliasChange("h@example.com", { hlc: 2 ** 60 }))],
    // Taken, its stamp would become every node's clock: near 2^53, every later stamp would pass it.
    ["hlc more than a year ahead (near 2^53)", batchOf(aliasChange("h@example.com", { hlc: 2 ** 53 - 4 }))],
    ["fractional seq", batchOf(aliasChange("h@example.com", { seq: 1.5 }))],
    ["q out of range", batchOf(locChange({ q: 5 }))],
    ["cseq beyond uint32", batchOf(locChange({ cseq: 2 ** 32 }))],
    ["negative after", { origin: ORIGIN, after: -1, upTo: 1, changes: [aliasChange("h@example.com")] }],
    ["change of another origin", batchOf(aliasChange("h@example.com", { origin: "friend~0123abcd" }))],
    ["seq beyond upTo", { origin: ORIGIN, after: 0, upTo: 1, changes: [aliasChange("h@example.com", { seq: 2 })] }],
  ];
}
