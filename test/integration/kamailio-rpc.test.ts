/**
 * The Kamailio RPC clients against a real Kamailio 5.6 (test/support/kamailio-process.ts): usrloc
 * wrappers, pipelining, the FIFO's framing traps (kamailio-5.6.md §0 surprises 1-3), error mapping,
 * the UDP datagram transport, a sipp REGISTER, and restart detection.
 */
import { execFileSync } from "node:child_process";
import { closeSync, constants, mkdirSync, openSync, readdirSync, unlinkSync, writeSync } from "node:fs";
import { Socket } from "node:net";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createCoreRpc, createRestartDetector } from "../../agent/kamailio/core-rpc.js";
import { createDgramClient } from "../../agent/kamailio/dgram-client.js";
import { createFifoClient, type FifoClient } from "../../agent/kamailio/fifo-client.js";
import { KamailioReplyTooLargeError, KamailioRequestError, KamailioRpcError, KamailioUnavailableError } from "../../agent/kamailio/jsonrpcs-wire.js";
import { createUsrlocRpc, type UlAddBinding } from "../../agent/kamailio/usrloc-rpc.js";
import { isTransient } from "../../agent/core/transient.js";
import { silentLogger } from "../../agent/ops/logger.js";
import { freeUdpPort, startKamailio, type KamailioProcess } from "../support/kamailio-process.js";
import { sippRegister } from "../support/sipp.js";

const log = silentLogger();
const nowSec = (): number => Math.floor(Date.now() / 1000);
const binding = (contact: string, over: Partial<UlAddBinding> = {}): UlAddBinding => ({
  contact, expires: nowSec() + 600, q: -1, path: "", received: "", socket: "", flags: 0, cflags: 0, methods: 4294967295, ...over,
});

/** A core.echo request of exactly `bytes` bytes, written by hand (bypassing the client's guards). */
function rawEcho(bytes: number, replyName?: string): Buffer {
  const base = (s: string): string => JSON.stringify({ jsonrpc: "2.0", method: "core.echo", params: [s], ...(replyName ? { reply_name: replyName } : {}), id: 1 });
  return Buffer.from(base("z".repeat(bytes - base("").length)));
}

/** Sends one hand-made request with its own reply FIFO; "" when no reply came within `waitMs`. */
async function rawExchange(request: Buffer, replyName: string, waitMs: number): Promise<string> {
  const path = join(kam.replyDir, replyName);
  execFileSync("mkfifo", [path]);
  const sock = new Socket({ fd: openSync(path, constants.O_RDONLY | constants.O_NONBLOCK), readable: true, writable: false });
  try {
    const chunks: Buffer[] = [];
    sock.on("data", (c: Buffer) => chunks.push(c));
    const done = new Promise<void>((resolve) => sock.once("end", resolve));
    const fd = openSync(kam.fifoPath, constants.O_WRONLY | constants.O_NONBLOCK);
    writeSync(fd, request);
    closeSync(fd);
    await Promise.race([done, sleep(waitMs)]);
    return Buffer.concat(chunks).toString();
  } finally {
    sock.destroy();
    unlinkSync(path);
  }
}

let kam: KamailioProcess;
let fifo: FifoClient;

function newFifoClient(over: Partial<Parameters<typeof createFifoClient>[0]> = {}): FifoClient {
  return createFifoClient({ fifoPath: kam.fifoPath, replyDir: kam.replyDir, timeoutMs: 3000, log, ...over });
}

beforeAll(async () => {
  kam = await startKamailio({ dgramWorkers: 1 });
  fifo = newFifoClient({ maxInFlight: 20 });
});

afterAll(async () => {
  await fifo?.close();
  await kam?.close();
});

describe("usrloc over the FIFO", () => {
  it("ul.add then ul.lookup returns the binding with its expires, q, path, received and socket", async () => {
    const ul = createUsrlocRpc({ rpc: fifo });
    const socket = `udp:127.0.0.1:${kam.sipPort}`;
    const exp = nowSec() + 100;
    await ul.ulAdd("location", "alice@example.com", binding("sip:alice@192.0.2.10:5060", {
      expires: exp, q: 0.5, path: "<sip:edge.example.net;lr>", received: "sip:198.51.100.7:34567", socket, flags: 3, cflags: 4, methods: 7,
    }), nowSec());
    await ul.ulAdd("location", "alice@example.com", binding("sip:alice@192.0.2.11:5060", { expires: 0, q: 1 }), nowSec());
    const got = await ul.ulLookup("location", "alice@example.com");
    const a = got.find((c) => c.contact === "sip:alice@192.0.2.10:5060");
    expect(a).toMatchObject({
      table: "location", aor: "alice@example.com", q: 0.5, path: "<sip:edge.example.net;lr>", received: "sip:198.51.100.7:34567",
      socket, flags: 3, cflags: 4, methods: 7, status: "active", callid: "dfjrewr12386fd6-343@kamailio.rpc", cseq: 1, instance: "",
    });
    expect(Math.abs(a!.expires - exp)).toBeLessThanOrEqual(1);
    expect(a!.ruid).toMatch(/^ulcx-/);
    expect(got.find((c) => c.contact === "sip:alice@192.0.2.11:5060")).toMatchObject({ expires: 0, status: "permanent", q: 1, path: "", received: "", socket: "" });
  });

  it("ul.rm_contact removes one contact and reports a missing one; ul.rm removes the AoR", async () => {
    const ul = createUsrlocRpc({ rpc: fifo });
    await ul.ulAdd("location", "bob@example.com", binding("sip:bob@192.0.2.20"), nowSec());
    await ul.ulAdd("location", "bob@example.com", binding("sip:bob@192.0.2.21"), nowSec());
    expect(await ul.ulRmContact("location", "bob@example.com", "sip:bob@192.0.2.20")).toBe(true);
    expect((await ul.ulLookup("location", "bob@example.com")).map((c) => c.contact)).toEqual(["sip:bob@192.0.2.21"]);
    expect(await ul.ulRmContact("location", "bob@example.com", "sip:bob@192.0.2.20")).toBe(false);
    await ul.ulRm("location", "bob@example.com");
    expect(await ul.ulLookup("location", "bob@example.com")).toEqual([]);
    expect(await ul.ulRmContact("location", "bob@example.com", "sip:bob@192.0.2.21")).toBe(false);
  });

  it("does not turn an already expired binding into a permanent one, keeps q = -1, and fills the aliases table", async () => {
    const ul = createUsrlocRpc({ rpc: fifo });
    expect(await ul.ulAdd("location", "carol@example.com", binding("sip:carol@192.0.2.30", { expires: nowSec() - 5 }), nowSec())).toBe("already-expired");
    expect(await ul.ulLookup("location", "carol@example.com")).toEqual([]);
    await ul.ulAdd("aliases", "nick@example.com", binding("sip:real@example.com", { expires: 0, methods: 0 }), nowSec());
    const dump = await ul.ulDump();
    expect(dump.find((c) => c.table === "aliases" && c.aor === "nick@example.com")).toMatchObject({ contact: "sip:real@example.com", status: "permanent" });
    expect(dump.find((c) => c.aor === "alice@example.com" && c.contact === "sip:alice@192.0.2.10:5060")?.q).toBe(0.5);
  });

  it("maps Kamailio faults to KamailioRpcError, which is not transient", async () => {
    const ul = createUsrlocRpc({ rpc: fifo });
    const err = await ul.ulAdd("nosuch", "eve@example.com", binding("sip:eve@192.0.2.50"), nowSec()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(KamailioRpcError);
    expect(err).toMatchObject({ code: 500, kamailioMessage: "Domain table not found" });
    expect(isTransient(err)).toBe(false);
    const missing = await fifo.call("no.such_method").catch((e: unknown) => e);
    expect(missing).toMatchObject({ code: 500, kamailioMessage: "Method Not Found" });
  });

  it("round-trips strings that end in a backslash or hold quotes and braces without breaking the framing", async () => {
    const ul = createUsrlocRpc({ rpc: fifo });
    const path = `<sip:o'brien;lr>{"x"}\\`;
    await ul.ulAdd("location", "dave@example.com", binding("sip:dave@192.0.2.40", { path }), nowSec());
    expect((await ul.ulLookup("location", "dave@example.com"))[0]?.path).toBe(path);
    expect(await createCoreRpc({ rpc: fifo }).coreVersion()).toMatch(/^kamailio 5\.6\./);
  });
});

describe("FIFO client behaviour", () => {
  it("a 20-way pipelined burst of 2,000 ul.add all succeed and ul.dump shows 2,000 contacts", async () => {
    const ul = createUsrlocRpc({ rpc: fifo });
    const now = nowSec();
    const results = await Promise.all(
      Array.from({ length: 2000 }, (_, i) => ul.ulAdd("location", `burst${i}@example.com`, binding(`sip:burst${i}@192.0.2.1:${5000 + (i % 1000)}`), now)),
    );
    expect(results.every((r) => r === "added")).toBe(true);
    const dump = await ul.ulDump();
    expect(dump.filter((c) => c.aor.startsWith("burst")).length).toBe(2000);
    // This cfg does not load kex (the include does): Kamailio cannot say how many contacts it holds.
    expect(await ul.ulContactCount("location")).toBeNull();
  });

  it("drops a reply larger than the call's maxReplyBytes, and Kamailio keeps answering on the same reply FIFO pool", async () => {
    const client = newFifoClient({ maxInFlight: 1 });
    try {
      // The 2,000 contacts above make a dump of about a megabyte.
      const err = await createUsrlocRpc({ rpc: client }).ulDump({ maxReplyBytes: 100_000 }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(KamailioReplyTooLargeError);
      expect(isTransient(err)).toBe(false);
      expect(await client.call("core.version")).toMatch(/^kamailio/);
      expect((await createUsrlocRpc({ rpc: client }).ulDump({ maxReplyBytes: 10_000_000 })).length).toBeGreaterThanOrEqual(2000);
    } finally {
      await client.close();
    }
  });

  it("refuses an oversize request client-side, and Kamailio keeps answering", async () => {
    // One reply FIFO: a refused request must hand it back, or the next call would starve.
    const client = newFifoClient({ maxInFlight: 1 });
    try {
      const big = await client.call("core.echo", ["x".repeat(9000)]).catch((e: unknown) => e);
      expect(big).toBeInstanceOf(KamailioRequestError);
      expect((big as Error).message).toMatch(/at most 8190/);
      expect(isTransient(big)).toBe(false);
      // Just under the limit still goes through.
      expect(await client.call<string[]>("core.echo", ["y".repeat(8000)])).toEqual(["y".repeat(8000)]);
      expect(await client.call("core.version")).toMatch(/^kamailio/);
    } finally {
      await client.close();
    }
  });

  it("Kamailio answers an 8190-byte request but drops an 8191-byte one (the doc says 8191 is the maximum)", async () => {
    expect(await rawExchange(rawEcho(8190, "rawlimit"), "rawlimit", 5000)).toContain('"result"');
    // No reply is the finding; give Kamailio as long as the answered request may take and more.
    expect(await rawExchange(rawEcho(8191, "rawlimit"), "rawlimit", 3000)).toBe("");
    expect(await fifo.call("core.version")).toMatch(/^kamailio/);
  });

  it("resync restores the stream after another writer broke the framing with an oversize request", async () => {
    const fd = openSync(kam.fifoPath, constants.O_WRONLY | constants.O_NONBLOCK);
    writeSync(fd, rawEcho(8300));
    closeSync(fd);
    const victim = newFifoClient({ timeoutMs: 500, autoResync: false });
    try {
      // The oversize request's tail (`zzz"],"id":1}`) leaves the reader inside a string: the next request is lost.
      await expect(victim.call("core.version")).rejects.toMatchObject({ code: "ETIMEDOUT" });
      expect(await victim.resync()).toBe(true);
      expect(await victim.call("core.version")).toMatch(/^kamailio/);
    } finally {
      await victim.close();
    }
  });

  it("fails fast with a transient error when the FIFO is missing or has no reader", async () => {
    const missing = newFifoClient({ fifoPath: join(kam.dir, "no-such.fifo") });
    const t0 = Date.now();
    const e1 = await missing.call("core.version").catch((e: unknown) => e);
    expect(Date.now() - t0).toBeLessThan(1000); // well under the 3 s timeout: no waiting at all
    expect(e1).toBeInstanceOf(KamailioUnavailableError);
    expect(e1).toMatchObject({ code: "ENOENT" });
    expect(isTransient(e1)).toBe(true);
    await missing.close();

    const orphan = join(kam.dir, "orphan.fifo");
    execFileSync("mkfifo", [orphan]);
    const noReader = newFifoClient({ fifoPath: orphan });
    const e2 = await noReader.call("core.version").catch((e: unknown) => e);
    expect(e2).toMatchObject({ code: "ENXIO" });
    // Not "died": a starting Kamailio has no reader on its FIFO either, for some milliseconds.
    expect((e2 as Error).message).toBe(`Kamailio FIFO ${orphan} has no reader (Kamailio is not running: it was killed or crashed and left the FIFO behind; or it is starting and has not opened it yet)`);
    expect(isTransient(e2)).toBe(true);
    await noReader.close();
  });

  it("a timeout names fifo_reply_dir, as the agent's replyDir with its trailing slash, when Kamailio writes its replies elsewhere", async () => {
    // Kamailio's fifo_reply_dir is its run dir; this client makes its reply FIFOs in another one, as
    // Kamailio does with `fifo_reply_dir` "/run/locmesh" (no slash: "/run/locmeshlocmesh_…").
    const elsewhere = join(kam.dir, "elsewhere");
    mkdirSync(elsewhere, { recursive: true });
    const astray = newFifoClient({ replyDir: elsewhere, timeoutMs: 500, autoResync: false });
    try {
      const err = await astray.call("core.version").catch((e: unknown) => e);
      expect(err).toMatchObject({ code: "ETIMEDOUT" });
      expect((err as Error).message).toContain(`or jsonrpcs' fifo_reply_dir is not "${elsewhere}/" with its trailing slash, and Kamailio writes its replies elsewhere`);
    } finally {
      await astray.close();
    }
    // Kamailio keeps answering the client whose directory is its own.
    expect(await fifo.call("core.version")).toMatch(/^kamailio/);
  });

  it("a timeout does not jam the FIFO for the next caller", async () => {
    const fifoProc = (await kam.processes()).find((p) => p.description === "JSONRPCS FIFO");
    expect(fifoProc).toBeDefined();
    const replyFifos = (): string[] => readdirSync(kam.dir).filter((n) => n.startsWith("locmesh_")).sort();
    const before = replyFifos();
    const client = newFifoClient({ timeoutMs: 2000 });
    try {
      // 1. Kamailio never got to the request: stopped, like a FIFO process stuck on another client.
      // Only what Kamailio logs from here on counts (the log is shared by the whole file).
      const mark = kam.logMark();
      process.kill(fifoProc!.pid, "SIGSTOP");
      try {
        const stuck = await client.call("core.version", undefined, { timeoutMs: 300 }).catch((e: unknown) => e);
        expect(stuck).toMatchObject({ code: "ETIMEDOUT" });
        expect(isTransient(stuck)).toBe(true);
      } finally {
        process.kill(fifoProc!.pid, "SIGCONT");
      }
      // The late reply's FIFO is gone, so Kamailio skips it at once (ENOENT) instead of retrying
      // 4 × 80 ms for a reader (ENXIO, "no client at"), which would hold up the next caller.
      expect(await client.call("core.version")).toMatch(/^kamailio/);
      // stderr and the reply FIFO are separate pipes: the line may come a little after the reply.
      const deadline = Date.now() + 3000;
      while (!/open error .*No such file/.test(kam.logSince(mark)) && Date.now() < deadline) await sleep(20);
      expect(kam.logSince(mark)).toMatch(/open error .*No such file/);
      expect(kam.logSince(mark)).not.toMatch(/no client at/);

      // 2. Kamailio is mid-way through writing a big reply (ul.dump of 2,000+ contacts) when we give up.
      const early = await client.call("ul.dump", undefined, { timeoutMs: 5 }).catch((e: unknown) => e);
      expect(early).toMatchObject({ code: "ETIMEDOUT" });
      expect(await client.call("core.version")).toMatch(/^kamailio/);
    } finally {
      await client.close();
    }
    // Timed-out reply FIFOs were unlinked, and close() removed the rest.
    expect(replyFifos()).toEqual(before);
  });
});

describe("UDP datagram transport", () => {
  it("answers small calls, pipelined, and times out on a reply too large for one datagram", async () => {
    const dgram = await createDgramClient({ host: "127.0.0.1", port: kam.dgramPort!, timeoutMs: 1000, log });
    try {
      const ul = createUsrlocRpc({ rpc: dgram });
      await Promise.all(Array.from({ length: 200 }, (_, i) => ul.ulAdd("location", `udp${i}@example.com`, binding(`sip:udp${i}@192.0.2.2`), nowSec())));
      expect(await ul.ulLookup("location", "udp199@example.com")).toHaveLength(1);
      const err = await dgram.call("ul.dump", undefined, { timeoutMs: 1000 }).catch((e: unknown) => e);
      expect(err).toMatchObject({ code: "ETIMEDOUT" });
      expect(await createCoreRpc({ rpc: dgram }).coreVersion()).toMatch(/^kamailio/);
    } finally {
      await dgram.close();
    }
    // Nothing listening: the connected socket turns the ICMP port-unreachable into ECONNREFUSED at once.
    const nobody = await createDgramClient({ host: "127.0.0.1", port: await freeUdpPort(), timeoutMs: 2000, log });
    const t0 = Date.now();
    const err = await nobody.call("core.version").catch((e: unknown) => e);
    expect(Date.now() - t0).toBeLessThan(1000); // not the 2 s timeout
    expect(err).toMatchObject({ code: "ECONNREFUSED" });
    expect(isTransient(err)).toBe(true);
    // A burst too, as the sink writes (window 32): Linux reports a datagram's port-unreachable on the
    // next send, so half of them used to wait out the timeout.
    const t1 = Date.now();
    const burst = await Promise.all(Array.from({ length: 32 }, () => nobody.call("core.version").catch((e: unknown) => e)));
    expect(Date.now() - t1).toBeLessThan(1000);
    expect(burst.map((e) => (e as { code?: unknown }).code)).toEqual(Array.from({ length: 32 }, () => "ECONNREFUSED"));
    await nobody.close();
  });
});

describe("SIP and restarts", () => {
  it("a REGISTER sent by sipp appears in ul.dump with its callid, cseq and user agent", async () => {
    const reg = await sippRegister({
      dir: kam.dir, sipPort: kam.sipPort, user: "phone1", domain: "example.com", callId: "reg-phone1@test", cseq: 42, userAgent: "TestPhone/1.0", expires: 120,
    });
    const dump = await createUsrlocRpc({ rpc: fifo }).ulDump();
    const c = dump.find((x) => x.aor === "phone1@example.com");
    expect(c).toMatchObject({
      table: "location", contact: reg.contact, callid: "reg-phone1@test", cseq: 42, userAgent: "TestPhone/1.0", socket: `udp:127.0.0.1:${kam.sipPort}`, q: -1, status: "active",
    });
    expect(c!.ruid).toMatch(/^uloc-/);
    expect(Math.abs(c!.expires - (nowSec() + 120))).toBeLessThanOrEqual(2);
  });

  it("restart detection notices a Kamailio restart, and the client keeps working across it", async () => {
    const own = await startKamailio();
    const client = createFifoClient({ fifoPath: own.fifoPath, replyDir: own.replyDir, timeoutMs: 3000, log });
    try {
      const detector = createRestartDetector({ core: createCoreRpc({ rpc: client }) });
      const ul = createUsrlocRpc({ rpc: client });
      expect((await detector.check()).restarted).toBe(false);
      await ul.ulAdd("location", "frank@example.com", binding("sip:frank@192.0.2.60"), nowSec());
      expect((await detector.check()).restarted).toBe(false);
      await own.restart();
      const after = await detector.check();
      expect(after.restarted).toBe(true);
      expect(after.instance.mainPid).toBe(own.pid());
      // db_mode 0: the restart lost every binding, which is why the agent must notice.
      expect(await ul.ulLookup("location", "frank@example.com")).toEqual([]);
      expect((await detector.check()).restarted).toBe(false);
    } finally {
      await client.close();
      await own.close();
    }
  });
});
