/**
 * Three real agent processes on 127.0.0.1: live replication, kill -9 and incremental catch-up,
 * full snapshot after journal loss, a journal restored from an older copy (with a real Kamailio
 * attached, to see that nothing stale is written into it), and refusal of a peer with the wrong key.
 */
import { execFile } from "node:child_process";
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ClusterStatus } from "../../agent/contract/cluster-status.js";
import type { Location } from "../../agent/contract/records.js";
import { ErrorCode } from "../../agent/contract/errors.js";
import { evapiBulkToken } from "../../agent/kamailio/evapi-bulk.js";
import { createFifoClient } from "../../agent/kamailio/fifo-client.js";
import { createUsrlocRpc } from "../../agent/kamailio/usrloc-rpc.js";
import { silentLogger } from "../../agent/ops/logger.js";
import { AgentProcess, ROOT, freePort, makeCluster, sleep, waitFor, type RpcCallError } from "../support/agent-process.js";
import { aliasCount, dumpAliases, hasAlias, publishAliases } from "../support/aliases.js";
import { startKamailio } from "../support/kamailio-process.js";
import { sippRegister } from "../support/sipp.js";

let dir: string;
let nodes: AgentProcess[];

/** Runs the `locmesh` CLI as an operator would (no LOCMESH_* from the caller's environment). */
function cli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("LOCMESH_")));
  return new Promise((resolve) => {
    execFile(process.execPath, [join(ROOT, "bin", "locmesh.js"), ...args], { env: { ...env, NO_COLOR: "1" }, timeout: 20_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === "number" ? err.code : null) : 0, stdout, stderr });
    });
  });
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "locmesh-mesh-"));
  nodes = await makeCluster(dir, 3);
  await Promise.all(nodes.map((n) => n.start()));
  await waitFor("all peers connected", async () => {
    const st = await Promise.all(nodes.map((n) => n.call<ClusterStatus>("cluster.status")));
    return st.every((s) => s.peers.every((p) => p.connected));
  });
});

afterAll(async () => {
  await Promise.all((nodes ?? []).map((n) => n.stop()));
  if (dir && !process.env["LOCMESH_KEEP_TEST_DIRS"]) rmSync(dir, { recursive: true, force: true });
});

describe("three agents", () => {
  it("replicates a location published on one node to the others, and its removal", async () => {
    const [n1, n2, n3] = nodes as [AgentProcess, AgentProcess, AgentProcess];
    const binding = { aor: "sip:alice@example.com", contact: "sip:alice@192.0.2.10:5060", expires: Math.floor(Date.now() / 1000) + 3600, callid: "c1", cseq: 7, userAgent: "Phone/1.0" };
    await n1.call("location.publish", { edits: [{ op: "upsert", binding }] });
    for (const n of [n2, n3]) {
      const got = await waitFor(`binding on ${n.spec.id}`, async () => {
        const r = await n.call<{ bindings: Location[] }>("location.lookup", { aor: "alice@example.com" });
        return r.bindings.length === 1 ? r.bindings[0] : null;
      });
      expect(got).toMatchObject({ aor: "alice@example.com", contact: binding.contact, callid: "c1", cseq: 7, userAgent: "Phone/1.0", owner: "n1" });
    }
    await n2.call("location.publish", { edits: [{ op: "remove", aor: "alice@example.com", contact: binding.contact }] });
    for (const n of [n1, n3]) {
      await waitFor(`removal on ${n.spec.id}`, async () => (await n.call<{ bindings: Location[] }>("location.lookup", { aor: "alice@example.com" })).bindings.length === 0);
    }
  });

  it("a node killed with -9 catches up by receiving only the changes it missed", async () => {
    const [n1, n2, n3] = nodes as [AgentProcess, AgentProcess, AgentProcess];
    await n3.kill9();
    await publishAliases(n1, 0, 5000, "missed");
    const before = await aliasCount(n1);
    await n3.start();
    await waitFor("n3 caught up", async () => (await aliasCount(n3)) === before, 30_000);
    // Only what it missed: n1's own 5,000 changes, sent once, by n1 (n2 relays nothing n1 can send).
    expect(await n3.metric("locmesh_changes_received_total")).toBe(5000);
    expect(await n3.metric("locmesh_changes_received_total", { peer: "n1" })).toBe(5000);
    expect(await dumpAliases(n3)).toEqual(await dumpAliases(n2));
  });

  it("a node whose journal was deleted gets a full snapshot", async () => {
    const [n1, n2, n3] = nodes as [AgentProcess, AgentProcess, AgentProcess];
    await n2.call("alias.remove", { alias: "missed0@example.com" }); // a tombstone the snapshot need not carry
    await waitFor("removal everywhere", async () => (await aliasCount(n3)) === (await aliasCount(n2)) && (await aliasCount(n1)) === (await aliasCount(n2)));
    const oldStatus = await n3.call<ClusterStatus>("cluster.status");
    const emptyWarnings = () => readFileSync(n3.logPath, "utf8").split("\n").filter((l) => l.includes("created a new journal")).length;
    const warnedBefore = emptyWarnings();
    await n3.stop();
    rmSync(join(n3.spec.dir, "data"), { recursive: true, force: true });
    await n3.start();
    // The operator is told where the (empty) journal is, as a dataDir pointing elsewhere looks the same.
    expect(emptyWarnings()).toBe(warnedBefore + 1);
    expect(readFileSync(n3.logPath, "utf8")).toContain(join(n3.spec.dir, "data", "journal.sqlite"));
    const expected = await dumpAliases(n1);
    await waitFor("snapshot complete", async () => (await aliasCount(n3)) === expected.length, 30_000);
    expect(await dumpAliases(n3)).toEqual(expected);
    const status = await n3.call<ClusterStatus>("cluster.status");
    expect(status.replicaId).not.toBe(oldStatus.replicaId);
    // A snapshot, not a replay: each live record once, plus at most the tombstones of peers that
    // connected after n3 already held something (an empty peer gets no tombstones).
    const tombstones = (await n1.call<ClusterStatus>("cluster.status")).counts.tombstones;
    expect(tombstones).toBeGreaterThan(0);
    const received = await n3.metric("locmesh_changes_received_total");
    expect(received).toBeGreaterThanOrEqual(expected.length);
    expect(received).toBeLessThanOrEqual(expected.length + tombstones);
    // And what n3 writes now reaches the others under its new epoch.
    await n3.call("alias.set", { alias: "after-loss@example.com", target: "sip:x@example.com" });
    await waitFor("new epoch replicates", async () => (await aliasCount(n1)) === expected.length + 1);
  });

  it("a node whose journal went back in time (restored from a copy) stops replicating, refuses changes, writes nothing into its Kamailio and says why", async () => {
    const [n1, n2, n3] = nodes as [AgentProcess, AgentProcess, AgentProcess];
    const data = join(n3.spec.dir, "data");
    const backup = join(dir, "n3-journal-backup");
    await n3.call("alias.set", { alias: "before-copy@example.com", target: "sip:x@example.com" });
    await waitFor("before-copy on n1", () => hasAlias(n1, "before-copy@example.com"));
    await n3.stop();
    cpSync(data, backup, { recursive: true });
    await n3.start();
    await n3.call("alias.set", { alias: "after-copy@example.com", target: "sip:x@example.com" });
    await waitFor("after-copy on n1 and n2", async () => (await hasAlias(n1, "after-copy@example.com")) && (await hasAlias(n2, "after-copy@example.com")));

    // The copy comes back: n1 and n2 hold one more of n3's changes than n3's journal does. From
    // here on n3 is attached to a real Kamailio, to see what the stale journal writes into it.
    await n3.stop();
    rmSync(data, { recursive: true, force: true });
    cpSync(backup, data, { recursive: true });
    const kam = await startKamailio({ locmesh: { aliasMode: "usrloc", bulkToken: evapiBulkToken(n3.spec.secret, "n3") } });
    const inKamailio = async (alias: string) => {
      const rpc = createFifoClient({ fifoPath: kam.fifoPath, replyDir: kam.replyDir, timeoutMs: 5000, log: silentLogger(), maxInFlight: 1, autoResync: false });
      try {
        return (await createUsrlocRpc({ rpc }).ulLookup("aliases", alias)).length > 0;
      } finally {
        await rpc.close();
      }
    };
    n3.spec.config = {
      kamailio: {
        fifo: kam.fifoPath, replyDir: kam.replyDir, evapi: `127.0.0.1:${kam.evapiPort}`, timeoutMs: 2000, checkIntervalSec: 1, reconcileIntervalSec: 1,
      },
    };
    try {
      // Phones register while n3's agent is down (its Kamailio taken for whole): the include holds
      // their events, which arrive in a burst once the agent reads evapi. Journaled before any
      // handshake, they took n3's next sequence numbers past what the peers hold, and no handshake
      // then showed the journal had gone back (found by review): n3 waits for its first session.
      const kamRpc = createFifoClient({ fifoPath: kam.fifoPath, replyDir: kam.replyDir, timeoutMs: 5000, log: silentLogger(), maxInFlight: 1, autoResync: false });
      try {
        await kamRpc.call("pv.shvSet", ["locmesh_ready", "int", 1]);
      } finally {
        await kamRpc.close();
      }
      for (const user of ["held1", "held2", "held3"]) await sippRegister({ dir, sipPort: kam.sipPort, user, domain: "example.com", expires: 300 });
      await n3.start();
      // Made at once: taken if no peer has shown the journal behind yet (then it never goes out),
      // refused if one has.
      const early = await n3.call("alias.set", { alias: "after-restore@example.com", target: "sip:x@example.com" }).then(() => null, (e: RpcCallError) => e);
      if (early !== null) expect(early.code).toBe(ErrorCode.JournalBehind);
      await waitFor("n3 notices", async () => (await n3.metric("locmesh_journal_behind")) === 1);
      await waitFor("the journal-behind error in n3's log", async () => readFileSync(n3.logPath, "utf8").includes("journal lacks changes of its own that the peer holds"), 5000);
      // Every session closes; polled, not assumed after a pause.
      const st = await waitFor("n3 to close every session", async () => {
        const s = await n3.call<ClusterStatus>("cluster.status");
        return s.peers.every((p) => !p.connected) && s.peers.some((p) => (p.lastError ?? "").includes("journal behind peer")) ? s : null;
      }, 10_000);
      expect(st.peers.every((p) => !p.connected)).toBe(true);
      expect(st.peers.some((p) => (p.lastError ?? "").includes("journal behind peer"))).toBe(true);
      expect(st.journalBehind).toMatchObject({ peerHolds: expect.any(Number) as number, journalHas: expect.any(Number) as number });
      expect(st.journalBehind!.peerHolds).toBeGreaterThan(st.journalBehind!.journalHas);
      // Its new change took a sequence number the others hold for after-copy: it did not go out,
      // and nothing of the two changes was mixed up on the others.
      for (const n of [n1, n2]) {
        expect(await hasAlias(n, "after-restore@example.com")).toBe(false);
        expect(await hasAlias(n, "after-copy@example.com")).toBe(true);
      }

      // Changes are refused now, saying why and what to do; reads go on.
      const refused = await n3.call("alias.set", { alias: "while-behind@example.com", target: "sip:x@example.com" }).then(() => null, (e: RpcCallError) => e);
      expect(refused?.code).toBe(ErrorCode.JournalBehind);
      expect(refused?.message).toMatch(/^this node's journal is behind: peer n[12] holds \d+ of this node's own changes, its journal only \d+ .*make this change on another node, and repair this one: stop the agent, move everything in its dataDir aside \(the journal\.sqlite\* files and the two kamailio-\*\.json, .*\) and start it/);
      expect(await hasAlias(n3, "before-copy@example.com")).toBe(true);
      expect(await hasAlias(n3, "while-behind@example.com")).toBe(false);
      // The CLI prints the refusal and exits 1; its status says it above everything else.
      const add = await cli(["alias", "add", "sip:while-behind@example.com", "sip:x@example.com", "-c", n3.configPath]);
      expect([add.code, add.stdout]).toEqual([1, ""]);
      expect(add.stderr).toMatch(/^locmesh: this node's journal is behind: peer n[12] holds/);
      const status = await cli(["status", "-c", n3.configPath]);
      expect(status.code).toBe(0);
      expect(status.stdout).toMatch(/^JOURNAL BEHIND since \S+: peer n[12] holds \d+ of this node's own changes, its journal only \d+ .* To repair it: stop the agent, move everything in its dataDir aside \(the journal\.sqlite\* files and the two kamailio-\*\.json, .*\) and start it/);
      expect(status.stdout).toMatch(/^kamailio\s+up, NOT WRITING: this node's journal is behind \(see above\)/m);

      // Nothing goes into Kamailio from the stale journal: no reconcile (one a second otherwise),
      // and a restarted, empty Kamailio is noticed but not refilled with it.
      const k = (await n3.call<ClusterStatus>("cluster.status")).kamailio!;
      expect(k.writer).toBe("held");
      await expect(n3.call("kamailio.reload")).rejects.toMatchObject({ code: ErrorCode.JournalBehind });
      // (This journal never reloaded a Kamailio whole, so each new instance is a "first contact".)
      const noticed = () => readFileSync(n3.logPath, "utf8").split("\n").filter((l) => /first contact with this Kamailio|Kamailio restarted/.test(l)).length;
      const before = noticed();
      await kam.restart();
      await waitFor("n3 to notice the restarted Kamailio", async () => noticed() > before, 15_000);
      await sleep(2500);
      expect((await n3.call<ClusterStatus>("cluster.status")).kamailio!.lastReconcile).toEqual(k.lastReconcile);
      expect(await inKamailio("before-copy@example.com")).toBe(false);

      // The remedy `locmesh status` gives: start afresh; the snapshot brings after-copy back, also into Kamailio.
      await n3.stop();
      rmSync(data, { recursive: true, force: true });
      await n3.start();
      const expected = await dumpAliases(n1);
      await waitFor("n3 whole again", async () => (await aliasCount(n3)) === expected.length, 30_000);
      expect(await dumpAliases(n3)).toEqual(expected);
      expect(await n3.metric("locmesh_journal_behind")).toBe(0);
      await waitFor("after-copy in n3's Kamailio", () => inKamailio("after-copy@example.com"), 30_000);
      expect((await n3.call("alias.set", { alias: "after-remedy@example.com", target: "sip:x@example.com" }))).toMatchObject({ alias: "after-remedy@example.com" });
    } finally {
      await n3.stop();
      n3.spec.config = undefined;
      await kam.close();
      await n3.start();
    }
  });

  it("a journal restored while no peer answered, then written past what the peers hold, is found at the next session and stops the same way", async () => {
    // Two nodes of their own: the restored one is out of service at the end.
    const [f1, f2] = (await makeCluster(join(dir, "fork"), 2)) as [AgentProcess, AgentProcess];
    const data = join(f1.spec.dir, "data");
    const backup = join(dir, "fork-f1-backup");
    try {
      await Promise.all([f1.start(), f2.start()]);
      await f1.call("alias.set", { alias: "kept@example.com", target: "sip:x@example.com" });
      await waitFor("kept on f2", () => hasAlias(f2, "kept@example.com"));
      await f1.stop();
      cpSync(data, backup, { recursive: true });
      await f1.start();
      await f1.call("alias.set", { alias: "lost@example.com", target: "sip:x@example.com" });
      await waitFor("lost on f2", () => hasAlias(f2, "lost@example.com"));

      // The copy comes back while f2 is down: no handshake can count f1's changes, and f1 takes two
      // (API writes wait for nobody), one more than it lost. The first takes the number f2 holds
      // for lost@; by the count alone f2 then holds less of f1's changes than f1 does.
      await Promise.all([f1.stop(), f2.stop()]);
      rmSync(data, { recursive: true, force: true });
      cpSync(backup, data, { recursive: true });
      await f1.start();
      await f1.call("alias.set", { alias: "forked1@example.com", target: "sip:x@example.com" });
      await f1.call("alias.set", { alias: "forked2@example.com", target: "sip:x@example.com" });
      await f2.start();

      await waitFor("f1 notices", async () => (await f1.metric("locmesh_journal_behind")) === 1, 15_000);
      const st = await f1.call<ClusterStatus>("cluster.status");
      expect(st.journalBehind).toMatchObject({ peer: "n2" });
      expect(st.journalBehind!.peerHolds).toBeLessThan(st.journalBehind!.journalHas);
      expect(st.journalBehind!.conflict).toMatch(/^this node's change \d+ is alias lost@example\.com set at HLC \d+ on the peer, but alias forked1@example\.com set at HLC \d+ in the journal$/);
      expect(readFileSync(f1.logPath, "utf8")).toContain("this node's journal and the peer hold different changes of this node under the same numbers");
      await waitFor("f1 to close its session", async () => !(await f1.call<ClusterStatus>("cluster.status")).peers[0]!.connected, 10_000);
      // Changes are refused, saying what was found.
      const refused = await f1.call("alias.set", { alias: "while-forked@example.com", target: "sip:x@example.com" }).then(() => null, (e: RpcCallError) => e);
      expect(refused?.code).toBe(ErrorCode.JournalBehind);
      expect(refused?.message).toMatch(/^this node's journal is behind: peer n2 holds other changes of this node's own than its journal under the same numbers \(this node's change \d+ is alias lost@example\.com/);
      const status = await cli(["status", "-c", f1.configPath]);
      expect(status.stdout).toMatch(/^JOURNAL BEHIND since \S+: peer n2 holds other changes of this node's own than its journal under the same numbers/);
      // f2 kept what it had: lost@ stays, forked1@ (under lost@'s number) never came.
      expect(await hasAlias(f2, "lost@example.com")).toBe(true);
      expect(await hasAlias(f2, "forked1@example.com")).toBe(false);
    } finally {
      await Promise.all([f1.stop(), f2.stop()]);
    }
  });

  it("refuses a second agent on a running agent's journal at once, saying so, and the first goes on", async () => {
    const [n1, n2] = nodes as [AgentProcess, AgentProcess];
    // The same config on other ports, as someone starting `locmesh agent` by hand beside the service.
    const config = JSON.parse(readFileSync(n1.configPath, "utf8")) as { mesh: { listen: string }; api: { listen: string } };
    config.mesh.listen = `127.0.0.1:${await freePort()}`;
    config.api.listen = `127.0.0.1:${await freePort()}`;
    const second = join(dir, "second-agent.json");
    writeFileSync(second, JSON.stringify(config), { mode: 0o600 });
    const run = await cli(["agent", "-c", second]);
    expect(run.code).toBe(1);
    expect(run.stdout + run.stderr).toMatch(/another process holds the journal at \S+journal\.sqlite: an agent with this dataDir is running already/);
    await n1.call("alias.set", { alias: "after-second@example.com", target: "sip:x@example.com" });
    await waitFor("n1 still replicates", () => hasAlias(n2, "after-second@example.com"));
  });

  it("refuses a peer with the wrong key, and logs and counts it", async () => {
    const [n1] = nodes as [AgentProcess];
    const intruder = new AgentProcess({
      id: "n2", // claims a listed id
      meshPort: await freePort(),
      apiPort: await freePort(),
      dir: join(dir, "intruder"),
      secret: "not-the-cluster-secret-9876543210",
      token: "intruder-api-token-0123456789",
      peers: [{ id: "n1", url: n1.meshUrl }],
    });
    const refusedBefore = await n1.metric("locmesh_auth_failures_total", { reason: "wrong key" });
    await intruder.start();
    try {
      await waitFor("refusal counted", async () => (await n1.metric("locmesh_auth_failures_total", { reason: "wrong key" })) > refusedBefore);
      const st = await intruder.call<ClusterStatus>("cluster.status");
      expect(st.peers.find((p) => p.nodeId === "n1")?.connected).toBe(false);
      expect(st.counts.aliases).toBe(0);
    } finally {
      await intruder.stop();
    }
  });
});

describe("logs", () => {
  it("every line is JSON with each key once (a sub-part's logger does not repeat its component)", () => {
    const lines = readFileSync(nodes[0]!.logPath, "utf8").split("\n").filter((l) => l.startsWith("{"));
    expect(lines.some((l) => l.includes('"part":"peer"'))).toBe(true);
    for (const l of lines) {
      const keys = [...l.matchAll(/[{,]"([A-Za-z_]+)":/g)].map((m) => m[1]);
      const top = keys.filter((k) => k === "component" || k === "part" || k === "msg");
      expect(new Set(top).size, l.slice(0, 200)).toBe(top.length);
    }
  });
});

describe("a small mesh.maxMessageBytes", () => {
  it("a node catching up with more than one frame can hold gets it in batches cut to fit", async () => {
    const small = await makeCluster(join(dir, "small"), 2, { config: { mesh: { maxMessageBytes: 65_536, batchSize: 5000 } } });
    const [a, b] = small as [AgentProcess, AgentProcess];
    try {
      await a.start();
      const expires = Math.floor(Date.now() / 1000) + 3600;
      // 3,000 bindings of ~500 bytes: about 1.5 MB, which a batch of 5,000 would put in one frame.
      for (let chunk = 0; chunk < 3; chunk++) {
        const edits = Array.from({ length: 1000 }, (_, i) => ({
          op: "upsert",
          binding: { aor: `sip:big${chunk}-${i}@example.com`, contact: `sip:big${chunk}-${i}@192.0.2.9:5060`, expires, userAgent: "U".repeat(250) },
        }));
        await a.call("location.publish", { edits });
      }
      await b.start();
      await waitFor("b holds all 3,000", async () => (await b.call<ClusterStatus>("cluster.status")).counts.locations === 3000, 30_000);
      expect(readFileSync(b.logPath, "utf8")).not.toMatch(/1009|too big|Max payload/i);
    } finally {
      await Promise.all(small.map((n) => n.stop()));
    }
  });
});

describe("state gauges, read at every scrape", () => {
  const series = async (a: AgentProcess, name: string) =>
    (await (await fetch(`${a.apiUrl}/metrics?name=${name}`)).text()).split("\n").filter((l) => l.startsWith(`${name}{`)).sort();

  it("a peer never reached shows connected 0, a removed one disappears, and records and behind counts are current without cluster.status", async () => {
    const ghostPort = await freePort(); // nothing listens there
    const [x, y] = await makeCluster(join(dir, "gauges"), 2) as [AgentProcess, AgentProcess];
    x.spec.peers = [...x.spec.peers, { id: "ghost", url: `ws://127.0.0.1:${ghostPort}` }];
    try {
      await Promise.all([x.start(), y.start()]);
      await waitFor("x connected to y", async () => (await x.metric("locmesh_peer_connected", { peer: "n2" })) === 1);
      expect(await series(x, "locmesh_peer_connected")).toEqual(['locmesh_peer_connected{peer="ghost"} 0', 'locmesh_peer_connected{peer="n2"} 1']);
      expect(await series(x, "locmesh_peer_behind_changes")).toEqual(['locmesh_peer_behind_changes{peer="n2"} 0']);
      // In cluster.status too, the lag of a peer never reached is unknown (null), not 0.
      const lagOf = async () => Object.fromEntries((await x.call<ClusterStatus>("cluster.status")).peers.map((p) => [p.nodeId, [p.behindChanges, p.behindSeconds]]));
      expect(await lagOf()).toEqual({ ghost: [null, null], n2: [0, 0] });

      // No cluster.status call in between: the scrape counts the journal itself.
      await publishAliases(x, 0, 3, "gauge");
      expect(await x.metric("locmesh_records", { kind: "alias" })).toBe(3);
      await waitFor("y counts them", async () => (await y.metric("locmesh_records", { kind: "alias" })) === 3);

      const stoppingAt = Date.now();
      await y.stop();
      await publishAliases(x, 0, 2, "gauge-later");
      await waitFor("y shows down", async () => (await x.metric("locmesh_peer_connected", { peer: "n2" })) === 0);
      expect(await series(x, "locmesh_peer_behind_changes")).toEqual([]);
      expect(await lagOf()).toEqual({ ghost: [null, null], n2: [null, null] });
      // When each link was last up: n2's as it closed, the ghost's never.
      const peers = (await x.call<ClusterStatus>("cluster.status")).peers;
      const lastSeen = Date.parse(peers.find((p) => p.nodeId === "n2")?.lastSeen ?? "");
      expect(lastSeen).toBeGreaterThanOrEqual(stoppingAt);
      expect(lastSeen).toBeLessThanOrEqual(Date.now());
      expect(peers.find((p) => p.nodeId === "ghost")?.lastSeen).toBeUndefined();

      // The ghost was retried and n2 was sent changes: both have their series until taken out.
      expect((await series(x, "locmesh_peer_retries_total")).some((l) => l.includes('peer="ghost"'))).toBe(true);
      expect((await series(x, "locmesh_changes_sent_total")).some((l) => l.includes('peer="n2"'))).toBe(true);
      expect(await (await fetch(`${x.apiUrl}/metrics?name=locmesh_batch_round_trip_seconds`)).text()).toContain('peer="n2"');
      // Another setting changed with it waits for a restart, and the log says which.
      x.spec.config = { journal: { retentionHours: 48 } };
      x.reloadPeers(x.spec.peers.filter((p) => p.id !== "ghost"));
      await waitFor("ghost's series gone", async () => !(await series(x, "locmesh_peer_connected")).some((l) => l.includes("ghost")));
      await waitFor("the restart warning", async () => /SIGHUP applies only mesh\.peers.*"settings":\["journal\.retentionHours"\]|"settings":\["journal\.retentionHours"\].*SIGHUP applies only mesh\.peers/.test(readFileSync(x.logPath, "utf8")));
      expect(await series(x, "locmesh_peer_connected")).toEqual(['locmesh_peer_connected{peer="n2"} 0']);
      expect((await series(x, "locmesh_peer_retries_total")).filter((l) => l.includes('peer="ghost"'))).toEqual([]);
      // A node decommissioned: none of its series is left behind until the next restart.
      x.reloadPeers([]);
      await waitFor("n2's link series gone", async () => (await series(x, "locmesh_peer_connected")).length === 0);
      for (const name of ["locmesh_changes_sent_total", "locmesh_peer_retries_total"]) {
        expect((await series(x, name)).filter((l) => l.includes('peer="n2"'))).toEqual([]);
      }
      expect(await (await fetch(`${x.apiUrl}/metrics?name=locmesh_batch_round_trip_seconds`)).text()).not.toContain('peer="n2"');
    } finally {
      await Promise.all([x.stop(), y.stop()]);
    }
  });
});
