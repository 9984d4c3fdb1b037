/**
 * The include's event format 2 (agent/kamailio/event-format2.ts) through a real Kamailio 5.6: the
 * values a phone controls come through byte for byte however hostile they are, unset ones read as
 * empty, an AoR whose event outgrows the 8 KB pv buffer still arrives whole (so does a REGISTER
 * too big for the queue the include hands REGISTERs over in, and one taken while no agent is
 * connected reaches it as its AoR when it connects), and one that the
 * include's loop cannot finish (more contacts than max_while_loops) is refused instead of read as
 * removals. REGISTERs are written by hand (raw UDP) so every byte is ours; sipp cannot send these.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ExpiredEvent, KamailioEvent, RegisterEvent } from "../../agent/kamailio/register-event.js";
import { EVENTS_SHV } from "../../agent/kamailio/cfg-include-names.js";
import { createCoreRpc } from "../../agent/kamailio/core-rpc.js";
import { createFifoClient } from "../../agent/kamailio/fifo-client.js";
import { silentLogger } from "../../agent/ops/logger.js";
import { listenToEvapi, type EvapiListener } from "../support/evapi-listener.js";
import { startKamailio, type KamailioProcess } from "../support/kamailio-process.js";
import { sendRawRegister, type RawRegister } from "../support/raw-register.js";

const AGENT = "127.0.0.2";

let kam: KamailioProcess;
let listener: EvapiListener;

beforeAll(async () => {
  kam = await startKamailio({ locmesh: { agentAddress: AGENT }, extraCfg: 'modparam("registrar", "min_expires", 1)\nmodparam("usrloc", "timer_interval", 1)' });
  listener = await listenToEvapi(kam, AGENT);
});

afterAll(async () => {
  await listener?.client.close();
  await kam?.close();
});

/** Sends one REGISTER to the test's Kamailio (raw-register.ts). */
const register = (r: RawRegister) => sendRawRegister(kam.sipPort, r, () => kam.logTail(20));

const registerFor = (aor: string) => (ev: KamailioEvent): ev is RegisterEvent => ev.type === "register" && ev.aor === aor;

/** Waits until the client has counted `n` malformed events, proving an event came and was refused. */
async function malformedReaches(n: number): Promise<void> {
  const deadline = Date.now() + 5000;
  while (listener.client.stats().malformed < n) {
    if (Date.now() > deadline) throw new Error(`malformed stayed at ${listener.client.stats().malformed}, expected ${n}\n${kam.logTail(20)}`);
    await sleep(20);
  }
}

describe("event format 2 from a real Kamailio", () => {
  it("carries quotes, backslashes, control characters, JSON separators and Unicode byte for byte", async () => {
    const ua = 'Phone "7" \\ tab\there ","}],{ <null> ü€😀 \u2028 end';
    const callId = `a"b\\c{x}'y",}@h`;
    const reg = await register({
      user: "hostile", callId,
      contacts: (p) => [`"Dis, \\"play\\"" <sip:hostile@127.0.0.1:${p};x={a}'\\;y=%22>;expires=120`],
      headers: [`User-Agent: ${ua}`, "Expires: 300"],
    });
    expect(reg.status).toBe("SIP/2.0 200 OK");
    const ev = await listener.next(registerFor("hostile@example.com"));
    const uri = `sip:hostile@127.0.0.1:${reg.port};x={a}'\\;y=%22`;
    expect(ev).toMatchObject({ rc: 1, callid: callId, userAgent: ua, requestExpires: 300, requestContacts: [{ uri, expires: 120 }] });
    expect(ev.contacts).toHaveLength(1);
    expect(ev.contacts[0]).toMatchObject({ contact: uri, callid: callId, userAgent: ua, path: "", received: "", instance: "", socket: `udp:127.0.0.1:${kam.sipPort}` });
  });

  it("reads an absent User-Agent and Expires as empty and null, and bytes that are not UTF-8 as U+FFFD", async () => {
    await register({ user: "plain", callId: "plain-1" });
    const ev = await listener.next(registerFor("plain@example.com"));
    expect(ev).toMatchObject({ userAgent: "", requestExpires: null });
    expect(ev.contacts[0]?.userAgent).toBe("n/a"); // what registrar stores for a REGISTER without one

    await register({ user: "latin1", callId: "latin1-1", headers: [Buffer.concat([Buffer.from("User-Agent: Caf"), Buffer.from([0xe9])])] });
    expect((await listener.next(registerFor("latin1@example.com"))).userAgent).toBe("Caf\ufffd");
  });

  it("refuses an event with a NUL in a value instead of cutting it short", async () => {
    const before = listener.client.stats().malformed;
    expect((await register({ user: "nul", callId: "nul-1", headers: [Buffer.concat([Buffer.from("User-Agent: a"), Buffer.from([0]), Buffer.from("b")])] })).status).toBe("SIP/2.0 200 OK");
    await malformedReaches(before + 1);
    expect(listener.events.some(registerFor("nul@example.com"))).toBe(false);
  });

  it("sends an AoR far over the 8 KB pv buffer whole, and refuses one the include's loop cannot finish", async () => {
    const many = (from: number, n: number) => (p: number) => Array.from({ length: n }, (_, i) => `<sip:many@127.0.0.1:${p};n=${from + i}>`);
    await register({ user: "many", callId: "many-1", contacts: many(0, 60), headers: [`User-Agent: ${"u".repeat(200)}`] });
    const ev = await listener.next(registerFor("many@example.com"));
    expect(ev.contacts).toHaveLength(60);
    expect(new Set(ev.contacts.map((c) => c.contact)).size).toBe(60);

    // 101 contacts: Kamailio's max_while_loops (100) stops the loop; the event says usrloc holds 101.
    const before = listener.client.stats().malformed;
    await register({ user: "many", callId: "many-2", contacts: many(60, 41) });
    await malformedReaches(before + 1);
    expect(listener.events.some(registerFor("many@example.com"))).toBe(false);
    expect(kam.logTail(50)).toMatch(/runaway while/);
    // Its number (acknowledged all the same) and its AoR (which the agent then looks up in Kamailio) still read.
    expect(listener.unreadable.at(-1)).toEqual({ n: expect.any(Number), aor: "many@example.com" });
  });

  it("sends a REGISTER too big for the queue's pv buffer from the SIP worker, whole", async () => {
    // 20 Contact headers of ~300 bytes: the request's half of the event is ~12 KB in hex, over the
    // 8 KB mq_add can print, so the include sends this event from the SIP worker instead of the drain.
    const long = (p: number) => Array.from({ length: 20 }, (_, i) => `<sip:big@127.0.0.1:${p};n=${i};x=${"y".repeat(280)}>`);
    expect((await register({ user: "big", callId: "big-1", contacts: long })).status).toBe("SIP/2.0 200 OK");
    const ev = await listener.next(registerFor("big@example.com"));
    expect(ev.contacts).toHaveLength(20);
    expect(ev.requestContacts).not.toBe("*");
    expect((ev.requestContacts as unknown[]).length).toBe(20);
    expect(ev.callid).toBe("big-1");
    // A small REGISTER right after it still goes through the queue and arrives.
    await register({ user: "small", callId: "small-1" });
    expect((await listener.next(registerFor("small@example.com"))).callid).toBe("small-1");
  });

  it("queues a REGISTER too big for the queue taken while no agent is connected as its AoR, read back when the agent connects", async () => {
    await listener.client.close();
    // Until Kamailio's connection-closed route has run, the include still takes the agent for connected.
    const rpc = createFifoClient({ fifoPath: kam.fifoPath, replyDir: kam.replyDir, timeoutMs: 5000, log: silentLogger(), maxInFlight: 1, autoResync: false });
    const until = async (what: string, ok: () => Promise<boolean>) => {
      for (let i = 0; !(await ok()); i++) {
        if (i > 100) throw new Error(`${what}\n${kam.logTail(20)}`);
        await sleep(50);
      }
    };
    try {
      await until("Kamailio still counts the closed evapi connection as the agent's", async () => (await createCoreRpc({ rpc }).getShv(EVENTS_SHV)) === 0);
      const long = (p: number) => Array.from({ length: 20 }, (_, i) => `<sip:bigaway@127.0.0.1:${p};n=${i};x=${"y".repeat(280)}>`);
      expect((await register({ user: "bigaway", callId: "bigaway-1", contacts: long })).status).toBe("SIP/2.0 200 OK");
      // save() answers before the include runs: the agent connects once the REGISTER waits in the queue.
      // Sent from the SIP worker as before, evapi would have dropped it: no client was connected.
      await until("the REGISTER was not queued", async () => (await rpc.call<{ size: number }>("mqueue.get_size", ["locmesh"])).size === 1);
    } finally {
      await rpc.close();
    }
    listener = await listenToEvapi(kam, AGENT);
    const ev = await listener.next(registerFor("bigaway@example.com"));
    expect(ev.rc).toBe(4);
    expect(ev.contacts).toHaveLength(20);
    expect(ev.requestContacts).toEqual([]);
  });

  it("sends the expired event in format 2 too", async () => {
    const callId = `exp"\\{}-1`;
    const reg = await register({ user: "brief", callId, headers: ["Expires: 1"] });
    await listener.next(registerFor("brief@example.com"));
    const ev = await listener.next((e): e is ExpiredEvent => e.type === "expired" && e.aor === "brief@example.com", 6000);
    expect(ev).toMatchObject({ contact: `sip:brief@127.0.0.1:${reg.port}`, callid: callId });
    expect(ev.ruid).toMatch(/^uloc-/);
  });
});
