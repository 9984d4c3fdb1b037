/**
 * locmesh's kamailio.cfg include (agent/kamailio/cfg-include.ts) in a real Kamailio 5.6, wired in
 * the way kamailioIncludeInstructions() tells operators, with the evapi client
 * (agent/kamailio/evapi-client.ts) receiving its events. REGISTERs come from sipp.
 *
 * evapi listens on 127.0.0.1 and the include allows only 127.0.0.2 (the agent connects from that
 * loopback address), so a client from 127.0.0.1 shows the connection filter at work.
 */
import { execFile } from "node:child_process";
import { createSocket, type Socket as UdpSocket } from "node:dgram";
import { writeFileSync } from "node:fs";
import { connect, createServer, type Socket as TcpSocket } from "node:net";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { kamailioInclude } from "../../agent/kamailio/cfg-include.js";
import { LOCMESH_QUEUE } from "../../agent/kamailio/cfg-include-names.js";
import { openEvapiBulk, type EvapiBulkRpc } from "../../agent/kamailio/evapi-bulk.js";
import { createFifoClient } from "../../agent/kamailio/fifo-client.js";
import { encodeNetstring } from "../../agent/kamailio/netstring.js";
import { createEvapiClient, type EvapiClient } from "../../agent/kamailio/evapi-client.js";
import type { ExpiredEvent, KamailioEvent, RegisterEvent } from "../../agent/kamailio/register-event.js";
import { silentLogger } from "../../agent/ops/logger.js";
import { kamailioCfg } from "../support/kamailio-cfg.js";
import { freeUdpPort, KAMAILIO_BIN, modulesDir, startKamailio, type KamailioProcess } from "../support/kamailio-process.js";
import { sippRegister } from "../support/sipp.js";
import { sippRegisterLoad } from "../support/sipp-call.js";
import { listenToEvapi, openRegisterGate, type EvapiListener } from "../support/evapi-listener.js";
import { freePort } from "../support/ports.js";
import { relayInvite } from "../support/relay-invite.js";

const run = promisify(execFile);
const log = silentLogger();
const AGENT = "127.0.0.2";

interface Node {
  kam: KamailioProcess;
  client: EvapiClient;
  events: KamailioEvent[];
  next: EvapiListener["next"];
}

async function startNode(locmesh: NonNullable<Parameters<typeof startKamailio>[0]>["locmesh"], extraCfg?: string): Promise<Node> {
  const kam = await startKamailio({ locmesh, extraCfg });
  return { kam, ...(await listenToEvapi(kam, AGENT)) };
}

/** One REGISTER over UDP from a throwaway socket; resolves with the final response's status line. */
function rawRegister(sipPort: number, user: string): Promise<string> {
  const sock = createSocket("udp4");
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => sock.close(() => reject(new Error(`no answer to ${user}'s REGISTER`))), 3000);
    sock.on("message", (m) => {
      const status = m.toString().split("\r\n")[0]!;
      if (/^SIP\/2\.0 1\d\d/.test(status)) return;
      clearTimeout(t);
      sock.close(() => resolve(status));
    });
    sock.bind(0, "127.0.0.1", () => {
      const port = sock.address().port;
      sock.send([
        "REGISTER sip:example.com SIP/2.0",
        `Via: SIP/2.0/UDP 127.0.0.1:${port};branch=z9hG4bK-${user}-${Date.now()}`,
        "Max-Forwards: 70",
        `From: <sip:${user}@example.com>;tag=g1`,
        `To: <sip:${user}@example.com>`,
        `Call-ID: gate-${user}-${Date.now()}`,
        "CSeq: 1 REGISTER",
        `Contact: <sip:${user}@127.0.0.1:${port}>`,
        "Expires: 300",
        "Content-Length: 0",
        "",
        "",
      ].join("\r\n"), sipPort, "127.0.0.1");
    });
  });
}

function waitFor<T extends KamailioEvent>(node: Node, pred: (ev: KamailioEvent) => ev is T, ms = 5000): Promise<T> {
  return node.next(pred, ms);
}

const registerFor = (aor: string) => (ev: KamailioEvent): ev is RegisterEvent => ev.type === "register" && ev.aor === aor;

let main: Node;
let replacing: Node;

beforeAll(async () => {
  // min_expires 1 lets a contact expire during the test; the later timer_interval wins over the cfg's 10.
  main = await startNode({ agentAddress: AGENT, meshPeers: ["127.0.0.1"] }, 'modparam("registrar", "min_expires", 1)\nmodparam("usrloc", "timer_interval", 1)');
  replacing = await startNode({ agentAddress: AGENT, saveFlags: "0x04", ownExpiredRoute: true });
});

afterAll(async () => {
  for (const n of [main, replacing]) {
    await n?.client.close();
    await n?.kam.close();
  }
});

describe("register events", () => {
  it("REGISTER, refresh and de-REGISTER give rc 1, 2 and 3 with the AoR's state after save()", async () => {
    const reg = { dir: main.kam.dir, sipPort: main.kam.sipPort, user: "Alice", domain: "example.com", callId: "alice-reg-1", userAgent: "Phone/1.0" };
    const first = await sippRegister({ ...reg, expires: 300, cseq: 1 });
    const t0 = Date.now();
    const ev1 = await waitFor(main, registerFor("alice@example.com"));
    expect(ev1).toMatchObject({
      rc: 1, callid: "alice-reg-1", cseq: 1, userAgent: "Phone/1.0", requestExpires: 300, source: `udp:127.0.0.1:${first.localPort}`,
      requestContacts: [{ uri: first.contact, expires: null }],
    });
    expect(Math.abs(ev1.tsMs - t0)).toBeLessThan(2000);
    expect(ev1.contacts).toHaveLength(1);
    expect(ev1.contacts[0]).toMatchObject({ contact: first.contact, q: -1, callid: "alice-reg-1", cseq: 1, userAgent: "Phone/1.0", socket: `udp:127.0.0.1:${main.kam.sipPort}`, methods: 4294967295 });
    expect(ev1.contacts[0]?.ruid).toMatch(/^uloc-/);
    expect(Math.abs((ev1.contacts[0]?.expires ?? 0) - (Math.floor(t0 / 1000) + 300))).toBeLessThanOrEqual(2);
    // usrloc's last_modified: when save() wrote the contact.
    expect(Math.abs((ev1.contacts[0]?.modified ?? 0) - Math.floor(t0 / 1000))).toBeLessThanOrEqual(2);

    await sippRegister({ ...reg, localPort: first.localPort, expires: 300, cseq: 2 });
    const ev2 = await waitFor(main, registerFor("alice@example.com"));
    expect(ev2).toMatchObject({ rc: 2, cseq: 2 });
    expect(ev2.contacts.map((c) => [c.contact, c.cseq, c.ruid])).toEqual([[first.contact, 2, ev1.contacts[0]?.ruid]]);

    await sippRegister({ ...reg, localPort: first.localPort, expires: 0, cseq: 3 });
    const ev3 = await waitFor(main, registerFor("alice@example.com"));
    expect(ev3).toMatchObject({ rc: 3, requestExpires: 0, contacts: [] });
  });

  it("several Contact headers all reach req_contact; Contact: * removes every contact", async () => {
    const reg = { dir: main.kam.dir, sipPort: main.kam.sipPort, user: "carol", domain: "example.com", callId: "carol-1" };
    await sippRegister({ ...reg, cseq: 1, contactHeaders: ['"Carol, home" <sip:carol@192.0.2.1:5060>;expires=200', "<sip:carol@192.0.2.2:5060>;q=0.5"] });
    const ev = await waitFor(main, registerFor("carol@example.com"));
    expect(ev.requestContacts).toEqual([{ uri: "sip:carol@192.0.2.1:5060", expires: 200 }, { uri: "sip:carol@192.0.2.2:5060", expires: null }]);
    expect(ev.contacts.map((c) => [c.contact, c.q]).sort()).toEqual([["sip:carol@192.0.2.1:5060", -1], ["sip:carol@192.0.2.2:5060", 0.5]]);

    await sippRegister({ ...reg, cseq: 2, expires: 0, contactHeaders: ["*"] });
    const star = await waitFor(main, registerFor("carol@example.com"));
    expect(star).toMatchObject({ rc: 3, requestContacts: "*", contacts: [] });
  });

  it("with save() flag 0x04 the event shows the replaced contact gone (no other event says so)", async () => {
    const reg = { dir: replacing.kam.dir, sipPort: replacing.kam.sipPort, user: "dave", domain: "example.com", expires: 300 };
    const a = await sippRegister({ ...reg, callId: "dave-a" });
    expect((await waitFor(replacing, registerFor("dave@example.com"))).contacts.map((c) => c.contact)).toEqual([a.contact]);
    const b = await sippRegister({ ...reg, callId: "dave-b" });
    const ev = await waitFor(replacing, registerFor("dave@example.com"));
    expect(ev.contacts.map((c) => c.contact)).toEqual([b.contact]);
  });

  it("an expired contact yields an expired event from the usrloc timer", async () => {
    const reg = await sippRegister({ dir: main.kam.dir, sipPort: main.kam.sipPort, user: "erin", domain: "example.com", expires: 1, callId: "erin-1" });
    const r = await waitFor(main, registerFor("erin@example.com"));
    const ev = await waitFor(main, (e): e is ExpiredEvent => e.type === "expired" && e.aor === "erin@example.com", 6000);
    expect(ev).toMatchObject({ contact: reg.contact, callid: "erin-1", ruid: r.contacts[0]?.ruid, expires: r.contacts[0]?.expires });
    expect(ev.tsMs).toBeGreaterThanOrEqual(ev.expires * 1000);
  });
});

describe("evapi access", () => {
  it("closes a client that is not the agent's address, and keeps the agent", async () => {
    const sock = connect({ host: "127.0.0.1", port: main.kam.evapiPort as number, localAddress: "127.0.0.1" });
    const closed = await Promise.race([new Promise<boolean>((resolve) => sock.once("close", () => resolve(true))), sleep(3000).then(() => false)]);
    sock.destroy();
    expect(closed).toBe(true);
    expect(main.kam.logTail(50)).toMatch(/closing evapi connection from 127\.0\.0\.1/);
    expect(main.client.connected()).toBe(true);
    expect(main.client.stats()).toMatchObject({ connects: 1, disconnects: 0, malformed: 0, framingErrors: 0 });
  });

  it("reconnects after Kamailio restarts", async () => {
    await replacing.kam.restart();
    const deadline = Date.now() + 5000;
    while (replacing.client.stats().connects < 2 && Date.now() < deadline) await sleep(50);
    expect(replacing.client.stats()).toMatchObject({ connects: 2, disconnects: 1 });
    await sleep(100);
    await openRegisterGate(replacing.kam);
    await sippRegister({ dir: replacing.kam.dir, sipPort: replacing.kam.sipPort, user: "frank", domain: "example.com", callId: "frank-1" });
    expect((await waitFor(replacing, registerFor("frank@example.com"))).rc).toBe(1);
  });
});

describe("REGISTER gate after a start", () => {
  it("answers REGISTER with 503 until the agent says the node is whole, then registers", async () => {
    const kam = await startKamailio({ locmesh: { agentAddress: AGENT } });
    try {
      expect(await rawRegister(kam.sipPort, "early")).toBe("SIP/2.0 503 Restoring locations, retry shortly");
      expect(await kam.processes()).not.toHaveLength(0); // refused, not crashed
      await openRegisterGate(kam);
      expect(await rawRegister(kam.sipPort, "later")).toBe("SIP/2.0 200 OK");
    } finally {
      await kam.close();
    }
  });

  it("lets REGISTERs through on its own after LOCMESH_READY_GRACE seconds (the agent is down)", async () => {
    // The gate compares whole seconds since Kamailio started ($TV(s) - $Tb): with a grace of 4 it
    // opens between 3 and 4 s after the start, and Kamailio is up well before that.
    const grace = 4;
    const t0 = Date.now();
    const kam = await startKamailio({ locmesh: { agentAddress: AGENT }, extraCfg: `#!define LOCMESH_READY_GRACE ${grace}` });
    try {
      // Closed at first: nobody opened it, so a 200 later can only be the grace's doing.
      expect(await rawRegister(kam.sipPort, "alone0")).toBe("SIP/2.0 503 Restoring locations, retry shortly");
      let status = "";
      for (let i = 1; Date.now() - t0 < (grace + 5) * 1000; i++) {
        status = await rawRegister(kam.sipPort, `alone${i}`);
        if (status !== "SIP/2.0 503 Restoring locations, retry shortly") break;
        await sleep(200);
      }
      expect(status).toBe("SIP/2.0 200 OK");
      expect(Date.now() - t0).toBeGreaterThanOrEqual((grace - 1) * 1000);
    } finally {
      await kam.close();
    }
  });
});

describe("while no agent is connected", () => {
  /** REGISTERs waiting in the include's queue for the drain (mqueue's RPC). */
  async function queued(kam: KamailioProcess): Promise<number> {
    const rpc = createFifoClient({ fifoPath: kam.fifoPath, replyDir: kam.replyDir, timeoutMs: 5000, log, maxInFlight: 1, autoResync: false });
    try {
      return (await rpc.call<{ size: number }>("mqueue.get_size", [LOCMESH_QUEUE])).size;
    } finally {
      await rpc.close();
    }
  }

  it("holds REGISTER events, also while only a bulk channel is open, and delivers them once the agent connects", async () => {
    const token = "0123456789abcdef0123456789abcdef";
    const kam = await startKamailio({ locmesh: { agentAddress: AGENT, bulkToken: token } });
    let bulk: EvapiBulkRpc | null = null;
    let agent: EvapiListener | null = null;
    try {
      await openRegisterGate(kam); // as an agent that went away after opening it
      // Bulk channels drop registrar events (evapi-bulk.ts): one open alone must not drain the queue.
      // It is opened first: an event drained between a bulk channel's connect and its hello goes to
      // it alone here and is lost (cfg-include-evapi.ts; the agent opens its channels only beside its
      // event connection, bulk-after-events.ts), which made this test flaky when held1 came first.
      bulk = await openEvapiBulk({ host: "127.0.0.1", port: kam.evapiPort as number, localAddress: AGENT, token, log, ackTimeoutMs: 5000 });
      expect(await rawRegister(kam.sipPort, "held1")).toBe("SIP/2.0 200 OK");
      expect(await rawRegister(kam.sipPort, "held2")).toBe("SIP/2.0 200 OK");
      await sleep(300); // 60 runs of the drain
      expect(await queued(kam)).toBe(2);

      agent = await listenToEvapi(kam, AGENT);
      for (const user of ["held1", "held2"]) {
        const ev = await agent.next(registerFor(`${user}@example.com`));
        expect(ev.rc).toBe(1);
        expect(ev.contacts.map((c) => c.contact.replace(/:\d+$/, ""))).toEqual([`sip:${user}@127.0.0.1`]);
      }
      expect(await queued(kam)).toBe(0);
      // And the drain goes on as usual.
      expect(await rawRegister(kam.sipPort, "held3")).toBe("SIP/2.0 200 OK");
      expect((await agent.next(registerFor("held3@example.com"))).rc).toBe(1);
    } finally {
      await bulk?.close();
      await agent?.client.close();
      await kam.close();
    }
  });

  it("answers REGISTERs at once with a full queue (no back-pressure without an agent), and keeps the newest 20,000", async () => {
    const kam = await startKamailio({ locmesh: { agentAddress: AGENT }, shmMb: 256 });
    let agent: EvapiListener | null = null;
    try {
      await openRegisterGate(kam);
      // 20,500 REGISTERs at 2,000/s: past 5,000 queued a worker would wait up to 1 s per REGISTER
      // for a drain that never comes, and sipp would time out.
      const load = await sippRegisterLoad({ dir: kam.dir, sipPort: kam.sipPort, count: 20_500, rate: 2000, domain: "example.com", prefix: "full" });
      expect(load.ok, load.output).toBe(true);
      expect(await queued(kam)).toBe(20_000);
      const took: number[] = [];
      for (let i = 0; i < 5; i++) {
        const t0 = performance.now();
        expect(await rawRegister(kam.sipPort, `late${i}`)).toBe("SIP/2.0 200 OK");
        took.push(performance.now() - t0);
      }
      expect(Math.max(...took), `REGISTER round trips ${took.map((t) => t.toFixed(1)).join(", ")} ms`).toBeLessThan(250);

      agent = await listenToEvapi(kam, AGENT);
      const registers = () => agent!.events.filter((e): e is RegisterEvent => e.type === "register");
      const deadline = Date.now() + 60_000;
      while (registers().length < 20_000 && Date.now() < deadline) await sleep(100);
      await sleep(200);
      const got = registers();
      expect(got).toHaveLength(20_000);
      const aors = new Set(got.map((e) => e.aor));
      // mqueue dropped the oldest: the first REGISTERs are gone, the last ones are all there.
      expect(aors.has("full1@example.com")).toBe(false);
      for (let i = 0; i < 5; i++) expect(aors.has(`late${i}@example.com`)).toBe(true);
      expect(aors.has("full20500@example.com")).toBe(true);
    } finally {
      await agent?.client.close();
      await kam.close();
    }
  }, 90_000);
});

describe("route(LOCMESH_INBOUND)", () => {
  let phone: UdpSocket;
  const received: string[] = [];

  beforeAll(async () => {
    phone = createSocket("udp4");
    phone.on("message", (m) => received.push(m.toString()));
    await new Promise<void>((resolve) => phone.bind(0, "127.0.0.1", resolve));
  });
  afterAll(async () => {
    await new Promise<void>((resolve) => phone.close(() => resolve()));
  });

  const invite = (from: string, callId: string, done: (replies: string[]) => boolean) =>
    relayInvite({ from, callId, done, sipPort: main.kam.sipPort, phonePort: phone.address().port });

  it("relays a peer's INVITE to the Route's received= address, keeping the contact as R-URI", async () => {
    await invite("127.0.0.1", "inbound-1", () => received.some((m) => m.includes("Call-ID: inbound-1")));
    const got = received.find((m) => m.includes("Call-ID: inbound-1"));
    expect(got?.split("\r\n")[0]).toBe("INVITE sip:bob@203.0.113.9:5060 SIP/2.0");
    expect(got).toMatch(/^Record-Route: /m);
  });

  it("ignores the same INVITE from an address that is not a mesh peer", async () => {
    // The 403 says Kamailio has decided; a relay it made all the same would be on its way by then.
    const replies = await invite("127.0.0.2", "inbound-2", (r) => r.some((m) => /^SIP\/2\.0 403/.test(m)));
    expect(replies).toMatch(/^SIP\/2\.0 403/);
    await sleep(500);
    expect(received.some((m) => m.includes("Call-ID: inbound-2"))).toBe(false);
  });
});

describe("kamailio -c", () => {
  async function check(ownExpiredRoute: boolean, defineIt: boolean): Promise<string> {
    const dir = main.kam.dir;
    const includePath = join(dir, "check-include.cfg");
    writeFileSync(includePath, kamailioInclude({ evapiListen: { host: "127.0.0.1", port: 18491 }, agentAddress: "127.0.0.1", aliasMode: "usrloc", meshPeers: ["10.0.0.2"] }));
    let cfg = kamailioCfg({ dir, modulesDir: modulesDir(), sipPort: await freeUdpPort(), locmesh: { includePath, ownExpiredRoute } });
    if (!defineIt) cfg = cfg.replace("#!define LOCMESH_OWN_EXPIRED_ROUTE\n", "");
    const cfgPath = join(dir, "check.cfg");
    writeFileSync(cfgPath, cfg);
    return run(KAMAILIO_BIN, ["-c", "-f", cfgPath]).then(() => "ok", (e: { stderr?: string }) => e.stderr ?? "failed");
  }

  it("accepts a full cfg with the include, also with the operator's own contact-expired route", async () => {
    expect(await check(false, false)).toBe("ok");
    expect(await check(true, true)).toBe("ok");
  });

  it("fails loudly when the operator keeps their own contact-expired route without the define", async () => {
    expect(await check(true, false)).toMatch(/duplicate route/);
  });
});

describe("evapi client against a hostile server", () => {
  it("skips malformed events, drops the connection on broken framing, reconnects, and survives a throwing consumer", async () => {
    const conns: TcpSocket[] = [];
    const server = createServer((c) => {
      conns.push(c);
      if (conns.length === 1) {
        c.write(Buffer.concat([encodeNetstring("not json"), encodeNetstring('{"event":"register","rc":"1"}'), encodeNetstring(Buffer.from([0xff, 0xfe])),
          encodeNetstring('{"event":"expired","aor":"a@b","addr":"sip:a@h","expires":5}')]));
        setTimeout(() => c.write("12x:garbage"), 100);
      } else {
        c.write(encodeNetstring('{"event":"expired","aor":"b@b","addr":"sip:b@h","expires":6}'));
      }
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const seen: string[] = [];
    const client = createEvapiClient({
      host: "127.0.0.1", port: (server.address() as { port: number }).port, log, retry: { minMs: 20, maxMs: 50 },
      onEvent: (ev) => {
        seen.push(ev.aor);
        throw new Error("consumer bug");
      },
    });
    try {
      client.start();
      const deadline = Date.now() + 3000;
      while (seen.length < 2 && Date.now() < deadline) await sleep(20);
      expect(seen).toEqual(["a@b", "b@b"]);
      expect(client.stats()).toMatchObject({ connects: 2, disconnects: 1, events: 2, malformed: 3, framingErrors: 1, callbackErrors: 2 });
    } finally {
      await client.close();
      for (const c of conns) c.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
    expect(client.connected()).toBe(false);
  });

  it("retryNow() connects at once instead of waiting out the back-off", async () => {
    // A port with nobody on it: the first connect fails, and the next waits 5-10 s of back-off.
    const port = await freePort();
    const client = createEvapiClient({ host: "127.0.0.1", port, log, onEvent: () => undefined, retry: { minMs: 10_000, maxMs: 10_000 } });
    const server = createServer(() => undefined);
    try {
      client.start();
      await sleep(200);
      expect(client.stats().connects).toBe(0);
      await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve));
      client.retryNow();
      const deadline = Date.now() + 3000;
      while (!client.connected() && Date.now() < deadline) await sleep(20);
      expect(client.connected()).toBe(true);
      expect(client.stats().connects).toBe(1);
    } finally {
      await client.close();
      server.close();
    }
  });

  it("pause() stops reading, even across the connect, so the sender's writes back up; resume() reads everything", async () => {
    // About 18 MB: more than the kernel buffers on both ends hold, so the sender must wait.
    const count = 60_000;
    const frame = (i: number) => encodeNetstring(JSON.stringify({ event: "expired", aor: `u${i}@b`, addr: `sip:u${i}@h`, callid: "c".repeat(250), expires: 5 }));
    let conn: TcpSocket | null = null;
    let written = 0;
    const server = createServer((c) => {
      conn = c;
      const pump = () => {
        while (written < count) if (!c.write(frame(written++))) return void c.once("drain", pump);
      };
      pump();
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    let seen = 0;
    const client = createEvapiClient({ host: "127.0.0.1", port: (server.address() as { port: number }).port, log, onEvent: () => void seen++ });
    try {
      client.pause();
      client.start();
      await sleep(1000);
      expect(client.connected()).toBe(true);
      expect(seen).toBe(0);
      // The sender is blocked: it waits for "drain", or Node holds what the kernel would not take.
      expect(written < count || conn!.writableLength > 0).toBe(true);
      client.resume();
      const deadline = Date.now() + 20_000;
      while (seen < count && Date.now() < deadline) await sleep(20);
      expect(seen).toBe(count);
    } finally {
      await client.close();
      (conn as TcpSocket | null)?.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});
