/**
 * The evapi bulk channel (agent/kamailio/evapi-bulk.ts) against a real Kamailio 5.6 running the
 * include's bulk route (cfg-include.ts): the token, writes in chunks, per-request errors, the
 * method whitelist, and connections that did not say hello.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EvapiBulkUnavailableError, evapiBulkToken, openEvapiBulk, type EvapiBulkRpc } from "../../agent/kamailio/evapi-bulk.js";
import { createFifoClient, type FifoClient } from "../../agent/kamailio/fifo-client.js";
import { KamailioProtocolError, KamailioRequestError, KamailioUnavailableError } from "../../agent/kamailio/jsonrpcs-wire.js";
import { createNetstringDecoder, encodeNetstring } from "../../agent/kamailio/netstring.js";
import { createUsrlocRpc, type UlAddBinding } from "../../agent/kamailio/usrloc-rpc.js";
import { silentLogger } from "../../agent/ops/logger.js";
import { kamailioDbCfg } from "../support/kamailio-cfg.js";
import { startKamailio, type KamailioProcess } from "../support/kamailio-process.js";
import { createKamailioSqlite } from "../support/kamailio-schema.js";

const log = silentLogger();
const TOKEN = evapiBulkToken("bulk-test-cluster-key-0123456789", "n1");
const nowSec = (): number => Math.floor(Date.now() / 1000);
const binding = (contact: string): UlAddBinding => ({
  contact, expires: nowSec() + 600, q: 0.5, path: "", received: "", socket: "", flags: 0, cflags: 0, methods: 4294967295,
});

let kam: KamailioProcess;
let fifo: FifoClient;

beforeAll(async () => {
  kam = await startKamailio({ locmesh: { aliasMode: "usrloc", bulkToken: TOKEN } });
  fifo = createFifoClient({ fifoPath: kam.fifoPath, replyDir: kam.replyDir, timeoutMs: 5000, log });
}, 30_000);

afterAll(async () => {
  await fifo?.close();
  await kam?.close();
});

const open = (token = TOKEN, on?: KamailioProcess): Promise<EvapiBulkRpc> => openEvapiBulk({ host: "127.0.0.1", port: (on ?? kam).evapiPort!, token, log, ackTimeoutMs: 5000 });

/** Adds `n` bindings `<prefix><i>@example.com` to `on` through a bulk channel, which must take batch frames. */
async function addInBatches(on: KamailioProcess, prefix: string, n: number): Promise<void> {
  const bulk = await open(TOKEN, on);
  try {
    const usrloc = createUsrlocRpc({ rpc: bulk });
    await Promise.all(Array.from({ length: n }, (_, i) => usrloc.ulAdd("location", `${prefix}${i}@example.com`, binding(`sip:${prefix}${i}@192.0.2.8:5060`), nowSec())));
    expect(bulk.stats().batched).toBe(true);
  } finally {
    await bulk.close();
  }
}

async function contactsHeld(): Promise<number> {
  const r = await fifo.call<string[]>("stats.get_statistics", ["usrloc:"]);
  const m = /location_contacts = (\d+)/.exec(r.join("\n"));
  if (!m) throw new Error(`unexpected statistics reply ${JSON.stringify(r)}`);
  return Number(m[1]);
}

/** A raw evapi connection: what anyone on the host could open. */
async function rawConnection(on?: KamailioProcess): Promise<{ send(frame: string): void; answers: string[]; close(): void }> {
  const sock = new Socket();
  const answers: string[] = [];
  const decoder = createNetstringDecoder({ maxFrameBytes: 1 << 20 });
  sock.on("data", (c: Buffer) => answers.push(...decoder.push(c).map((f) => f.toString())));
  await new Promise<void>((resolve, reject) => {
    sock.once("error", reject);
    sock.connect({ host: "127.0.0.1", port: (on ?? kam).evapiPort! }, resolve);
  });
  return { send: (frame) => sock.write(encodeNetstring(frame)), answers, close: () => sock.destroy() };
}

describe("evapi bulk channel", () => {
  it("refuses a wrong token, with a message that says how to fix it", async () => {
    const err = await open(evapiBulkToken("another-cluster-key-0123456789", "n1")).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(EvapiBulkUnavailableError);
    expect((err as Error).message).toMatch(/refused .*token.*locmesh kamailio-cfg/);
  });

  it("writes thousands of bindings in chunks, and every one is in Kamailio when its call resolves", async () => {
    const before = await contactsHeld();
    const bulk = await open();
    try {
      const usrloc = createUsrlocRpc({ rpc: bulk });
      const n = 3000;
      const outcomes = await Promise.all(Array.from({ length: n }, (_, i) => usrloc.ulAdd("location", `bulk${i}@example.com`, binding(`sip:bulk${i}@192.0.2.${i % 250}:5060`), nowSec())));
      expect(outcomes.every((o) => o === "added")).toBe(true);
      expect(bulk.stats().chunks).toBeGreaterThan(10);
      // As batch frames, run by Kamailio's async task workers.
      expect(bulk.stats().batched).toBe(true);
      expect(bulk.stats().calls).toBe(n);
      expect(await contactsHeld()).toBe(before + n);
      const fifoUsrloc = createUsrlocRpc({ rpc: fifo });
      const [c] = await fifoUsrloc.ulLookup("location", "bulk2999@example.com");
      expect(c?.contact).toBe("sip:bulk2999@192.0.2.249:5060");
      expect(c?.q).toBe(0.5);
      // Removals go the same way.
      await Promise.all(Array.from({ length: n }, (_, i) => usrloc.ulRm("location", `bulk${i}@example.com`)));
      expect(await contactsHeld()).toBe(before);
    } finally {
      await bulk.close();
    }
  }, 30_000);

  it("fails the one request Kamailio refuses and carries on with the rest of its chunk", async () => {
    const bulk = await open();
    try {
      const usrloc = createUsrlocRpc({ rpc: bulk });
      const [a, missing, b, noTable] = await Promise.allSettled([
        usrloc.ulAdd("location", "err-a@example.com", binding("sip:a@192.0.2.1"), nowSec()),
        usrloc.ulRmContact("location", "nobody@example.com", "sip:nobody@192.0.2.9"),
        usrloc.ulAdd("location", "err-b@example.com", binding("sip:b@192.0.2.2"), nowSec()),
        usrloc.ulAdd("no_such_table", "err-c@example.com", binding("sip:c@192.0.2.3"), nowSec()),
      ]);
      expect(a.status).toBe("fulfilled");
      // 404 "AOR not found" came back as an error event with the request's id: "was not there".
      expect(missing).toEqual({ status: "fulfilled", value: false });
      expect(b.status).toBe("fulfilled");
      expect(noTable.status).toBe("rejected");
      expect(String((noTable as PromiseRejectedResult).reason)).toMatch(/Domain table not found/);
      expect(bulk.usable()).toBe(true);
      const fifoUsrloc = createUsrlocRpc({ rpc: fifo });
      expect(await fifoUsrloc.ulLookup("location", "err-b@example.com")).toHaveLength(1);
      await Promise.all(["err-a@example.com", "err-b@example.com"].map((aor) => usrloc.ulRm("location", aor)));
    } finally {
      await bulk.close();
    }
  });

  it("takes only ul.add, ul.rm and ul.rm_contact, on the client and in the include", async () => {
    const bulk = await open();
    try {
      await expect(bulk.call("ul.dump", [])).rejects.toBeInstanceOf(KamailioRequestError);
    } finally {
      await bulk.close();
    }
    // A hand-made client with the right token that asks for something else gets an error, not a dump.
    const raw = await rawConnection();
    try {
      raw.send(`locmesh-hello:${TOKEN}`);
      raw.send(JSON.stringify({ jsonrpc: "2.0", method: "ul.dump", params: [], id: 7 }));
      raw.send("locmesh-ack:1");
      await waitUntil(() => raw.answers.length >= 3);
      // Frame by frame (what an agent older than batch frames sends), run in evapi's dispatcher.
      expect(raw.answers.map((a) => JSON.parse(a) as unknown)).toEqual([
        { event: "locmesh-bulk-ready", batch: expect.any(Number) as number, chan: expect.any(Number) as number },
        { event: "locmesh-bulk-error", reply: null },
        { event: "locmesh-ack", seq: 1 },
      ]);
      // In a batch frame, run by an async task worker: the refused line fails, the others run, then the ack.
      // The header leaves out the channel's "chan", as an agent older than it does: such batches always run.
      const { batch } = JSON.parse(raw.answers[0]!) as { batch: number };
      const add = { jsonrpc: "2.0", method: "ul.add", params: ["location", "batch-raw@example.com", "sip:r@192.0.2.68", 600, 1, ".", 0, 0, 4294967295, ".", "."], id: 9 };
      raw.send([`locmesh-batch:${batch}:42`, JSON.stringify({ jsonrpc: "2.0", method: "ul.dump", params: [], id: 8 }), JSON.stringify(add)].join("\n"));
      await waitUntil(() => raw.answers.length >= 5);
      expect(raw.answers.slice(3).map((a) => JSON.parse(a) as unknown)).toEqual([
        { event: "locmesh-bulk-error", seq: 42, reply: null },
        { event: "locmesh-ack", seq: 42, n: 2 },
      ]);
      expect(await createUsrlocRpc({ rpc: fifo }).ulLookup("location", "batch-raw@example.com")).toHaveLength(1);
      await createUsrlocRpc({ rpc: fifo }).ulRm("location", "batch-raw@example.com");
    } finally {
      raw.close();
    }
  });

  it("ignores a connection that has not said hello: its writes never run", async () => {
    const raw = await rawConnection();
    try {
      raw.send(JSON.stringify({ jsonrpc: "2.0", method: "ul.add", params: ["location", "intruder@example.com", "sip:x@192.0.2.66", 600, 1, ".", 0, 0, 4294967295, ".", "."], id: 1 }));
      raw.send("locmesh-ack:1");
      await sleep(300);
      expect(raw.answers).toEqual([]);
      expect(await createUsrlocRpc({ rpc: fifo }).ulLookup("location", "intruder@example.com")).toEqual([]);
    } finally {
      raw.close();
    }
  });

  it("runs several channels at once (an old agent's may still be open), and forgets a channel once its connection is gone", async () => {
    const before = await contactsHeld();
    const channels = await Promise.all([open(), open(), open()]);
    const on = (i: number) => createUsrlocRpc({ rpc: channels[i % 3]! });
    await Promise.all(Array.from({ length: 900 }, (_, i) => on(i).ulAdd("location", `multi${i}@example.com`, binding(`sip:multi${i}@192.0.2.7:5060`), nowSec())));
    expect(await contactsHeld()).toBe(before + 900);
    await Promise.all(Array.from({ length: 900 }, (_, i) => on(i).ulRm("location", `multi${i}@example.com`)));
    expect(await contactsHeld()).toBe(before);
    await Promise.all(channels.map((c) => c.close()));
    // New connections take the freed slots: without a hello, their writes must not run.
    const raws = await Promise.all([rawConnection(), rawConnection(), rawConnection()]);
    try {
      for (const raw of raws) {
        raw.send(JSON.stringify({ jsonrpc: "2.0", method: "ul.add", params: ["location", "slot@example.com", "sip:x@192.0.2.67", 600, 1, ".", 0, 0, 4294967295, ".", "."], id: 1 }));
        raw.send("locmesh-ack:1");
      }
      await sleep(300);
      expect(raws.flatMap((r) => r.answers)).toEqual([]);
      expect(await createUsrlocRpc({ rpc: fifo }).ulLookup("location", "slot@example.com")).toEqual([]);
    } finally {
      for (const raw of raws) raw.close();
    }
  }, 30_000);

  it("runs batches of the most requests a batch holds (64 removals), every line of them", async () => {
    const bulk = await open();
    try {
      const usrloc = createUsrlocRpc({ rpc: bulk });
      await Promise.all(Array.from({ length: 200 }, (_, i) => usrloc.ulRm("location", `gone${i}@example.com`)));
      // 64 + 64 + 64 + 8: full by count, each acked with all 64 run (a shorter "n" breaks the channel).
      expect(bulk.stats().chunks).toBe(4);
      expect(bulk.usable()).toBe(true);
    } finally {
      await bulk.close();
    }
  });

  it("gives up the channel when Kamailio's max_while_loops stops a batch part way, and nothing passes for written", async () => {
    const short = await startKamailio({ locmesh: { aliasMode: "usrloc", bulkToken: TOKEN }, extraCfg: "max_while_loops=10" });
    const shortFifo = createFifoClient({ fifoPath: short.fifoPath, replyDir: short.replyDir, timeoutMs: 5000, log });
    try {
      const bulk = await open(TOKEN, short);
      const usrloc = createUsrlocRpc({ rpc: bulk });
      const results = await Promise.all(Array.from({ length: 30 }, (_, i) => usrloc.ulAdd("location", `loop${i}@example.com`, binding(`sip:loop${i}@192.0.2.9:5060`), nowSec()).then(() => null, (e: unknown) => e as Error)));
      await bulk.close();
      expect(results.every((e) => e instanceof KamailioProtocolError)).toBe(true);
      expect(results[0]!.message).toMatch(/ran 10 of the \d+ requests .*max_while_loops/);
      // Kamailio did stop after 10: the calls the agent failed are the ones it has to write again.
      const held = await Promise.all(Array.from({ length: 30 }, (_, i) => createUsrlocRpc({ rpc: shortFifo }).ulLookup("location", `loop${i}@example.com`)));
      expect(held.filter((c) => c.length > 0).length).toBe(10);
    } finally {
      await shortFifo.close();
      await short.close();
    }
  }, 30_000);

  it("runs batches on Kamailio's async task workers: two by default, or as many as the operator's cfg sets above the include", async () => {
    const asyncWorkers = async (f: FifoClient): Promise<number> =>
      (await f.call<{ DSC: string }[]>("core.psx", [])).filter((p) => p.DSC.startsWith("Async Task Worker")).length;
    expect(await asyncWorkers(fifo)).toBe(2);
    const own = await startKamailio({ locmesh: { aliasMode: "usrloc", bulkToken: TOKEN }, extraCfg: "async_workers=3\n#!define LOCMESH_ASYNC_WORKERS_SET" });
    const ownFifo = createFifoClient({ fifoPath: own.fifoPath, replyDir: own.replyDir, timeoutMs: 5000, log });
    try {
      expect(await asyncWorkers(ownFifo)).toBe(3);
      // The include's `async_workers=2` was left out: Kamailio logs no "task workers already set".
      expect(own.logTail(400)).not.toMatch(/task workers already set/);
      await addInBatches(own, "own", 300);
      expect(await createUsrlocRpc({ rpc: ownFifo }).ulLookup("location", "own299@example.com")).toHaveLength(1);
    } finally {
      await ownFifo.close();
      await own.close();
    }
  }, 30_000);

  it("writes every row into a Kamailio that keeps usrloc in SQLite (db_mode 1 and 3): with db_sqlite loaded the batches run one at a time, as two writers lock each other out", async () => {
    for (const mode of [1, 3] as const) {
      await rowsLand(mode);
    }
  }, 60_000);

  async function rowsLand(mode: 1 | 3): Promise<void> {
    const dir = mkdtempSync(join(tmpdir(), "locmesh-bulk-db-"));
    const dbPath = createKamailioSqlite(join(dir, "kamailio.db"));
    const withDb = await startKamailio({ locmesh: { aliasMode: "usrloc", bulkToken: TOKEN }, extraCfg: kamailioDbCfg({ url: `sqlite://${dbPath}`, mode }) });
    try {
      await addInBatches(withDb, "row", 300);
      // db_mode 1 and 3 write the row at once, from the process that ran ul.add.
      const db = new Database(dbPath, { readonly: true });
      try {
        expect((db.prepare("SELECT count(*) AS n FROM location WHERE username LIKE 'row%'").get() as { n: number }).n).toBe(300);
      } finally {
        db.close();
      }
    } finally {
      await withDb.close();
      rmSync(dir, { recursive: true, force: true });
    }
  }

  it("drops the batches a closed channel left waiting for the async workers, and runs those of the channel that took its slot", async () => {
    // One worker, stopped while the batches queue: as when Kamailio is too slow to ack and the agent gives the channel up.
    const one = await startKamailio({ locmesh: { aliasMode: "usrloc", bulkToken: TOKEN }, extraCfg: "async_workers=1\n#!define LOCMESH_ASYNC_WORKERS_SET" });
    const oneFifo = createFifoClient({ fifoPath: one.fifoPath, replyDir: one.replyDir, timeoutMs: 5000, log });
    const lookup = (aor: string) => createUsrlocRpc({ rpc: oneFifo }).ulLookup("location", aor);
    const add = (aor: string, id: number) => JSON.stringify({ jsonrpc: "2.0", method: "ul.add", params: ["location", aor, `sip:${aor.split("@")[0]}@192.0.2.69`, 600, 1, ".", 0, 0, 4294967295, ".", "."], id });
    const worker = (await oneFifo.call<{ PID: number; DSC: string }[]>("core.psx", [])).find((p) => p.DSC.startsWith("Async Task Worker"))!.PID;
    const live = async (): Promise<string> => String((await oneFifo.call<{ value: unknown }>("pv.shvGet", ["locmesh_bulk_live"])).value);
    const hello = async (raw: Awaited<ReturnType<typeof rawConnection>>): Promise<{ batch: number; chan: number }> => {
      raw.send(`locmesh-hello:${TOKEN}`);
      await waitUntil(() => raw.answers.length >= 1);
      return JSON.parse(raw.answers[0]!) as { batch: number; chan: number };
    };
    process.kill(worker, "SIGSTOP");
    let stopped = true;
    try {
      const first = await rawConnection(one);
      const a = await hello(first);
      expect((await live()).split("|")[a.batch]).toBe(String(a.chan));
      for (let i = 0; i < 3; i++) first.send([`locmesh-batch:${a.batch}:${10 + i}:${a.chan}`, add(`late${i}a@example.com`, 2 * i), add(`late${i}b@example.com`, 2 * i + 1)].join("\n"));
      await sleep(200);
      first.close();
      // Kamailio's dispatcher has seen the close once the slot's entry is 0.
      await waitUntil(async () => (await live()).split("|")[a.batch] === "0");
      const second = await rawConnection(one);
      const b = await hello(second);
      expect(b.chan).not.toBe(a.chan);
      second.send([`locmesh-batch:${b.batch}:77:${b.chan}`, add("fresh@example.com", 9)].join("\n"));
      process.kill(worker, "SIGCONT");
      stopped = false;
      await waitUntil(() => second.answers.length >= 2);
      // The worker took the queued batches in order: the closed channel's three went before the new one's.
      expect(second.answers.slice(1).map((t) => JSON.parse(t) as unknown)).toEqual([{ event: "locmesh-ack", seq: 77, n: 1 }]);
      expect(await lookup("fresh@example.com")).toHaveLength(1);
      for (let i = 0; i < 3; i++) {
        expect(await lookup(`late${i}a@example.com`)).toEqual([]);
        expect(await lookup(`late${i}b@example.com`)).toEqual([]);
      }
      expect(one.logTail(200).match(/dropped 2 requests of batch 1[0-2]: its evapi bulk channel has closed/g)).toHaveLength(3);
      second.close();
    } finally {
      if (stopped) process.kill(worker, "SIGCONT");
      await oneFifo.close();
      await one.close();
    }
  }, 30_000);

  it("runs the batches of a channel that is still open, however long they waited for the async workers", async () => {
    const one = await startKamailio({ locmesh: { aliasMode: "usrloc", bulkToken: TOKEN }, extraCfg: "async_workers=1\n#!define LOCMESH_ASYNC_WORKERS_SET" });
    const oneFifo = createFifoClient({ fifoPath: one.fifoPath, replyDir: one.replyDir, timeoutMs: 5000, log });
    const worker = (await oneFifo.call<{ PID: number; DSC: string }[]>("core.psx", [])).find((p) => p.DSC.startsWith("Async Task Worker"))!.PID;
    const bulk = await open(TOKEN, one);
    process.kill(worker, "SIGSTOP");
    let stopped = true;
    try {
      const usrloc = createUsrlocRpc({ rpc: bulk });
      const writes = Promise.all(Array.from({ length: 100 }, (_, i) => usrloc.ulAdd("location", `wait${i}@example.com`, binding(`sip:wait${i}@192.0.2.10:5060`), nowSec())));
      await sleep(500);
      process.kill(worker, "SIGCONT");
      stopped = false;
      await writes;
      expect(bulk.stats().batched).toBe(true);
      const held = await Promise.all(Array.from({ length: 100 }, (_, i) => createUsrlocRpc({ rpc: oneFifo }).ulLookup("location", `wait${i}@example.com`)));
      expect(held.every((c) => c.length === 1)).toBe(true);
    } finally {
      if (stopped) process.kill(worker, "SIGCONT");
      await bulk.close();
      await oneFifo.close();
      await one.close();
    }
  }, 30_000);

  it("gives a channel up only once Kamailio confirms that none of its batches will run: a version the caller writes after through jsonrpcs stays", async () => {
    // The batch waits in the process that runs it, stopped as a Kamailio too slow to ack would be:
    // an async task worker, or (db_sqlite loaded) evapi's dispatcher itself, which runs every frame in order.
    for (const variant of ["async worker", "dispatcher"] as const) {
      const dir = mkdtempSync(join(tmpdir(), "locmesh-bulk-fence-"));
      const extraCfg = variant === "dispatcher"
        ? kamailioDbCfg({ url: `sqlite://${createKamailioSqlite(join(dir, "kamailio.db"))}`, mode: 1 })
        : "async_workers=1\n#!define LOCMESH_ASYNC_WORKERS_SET";
      const k = await startKamailio({ locmesh: { aliasMode: "usrloc", bulkToken: TOKEN }, extraCfg });
      const kFifo = createFifoClient({ fifoPath: k.fifoPath, replyDir: k.replyDir, timeoutMs: 5000, log });
      const direct = createUsrlocRpc({ rpc: kFifo });
      const pid = (await kFifo.call<{ PID: number; DSC: string }[]>("core.psx", [])).find((p) => p.DSC.startsWith(variant === "dispatcher" ? "EvAPI Dispatcher" : "Async Task Worker"))!.PID;
      const bulk = await openEvapiBulk({ host: "127.0.0.1", port: k.evapiPort!, token: TOKEN, log, ackTimeoutMs: 300, closeTimeoutMs: 10_000 });
      process.kill(pid, "SIGSTOP");
      let stopped = true;
      try {
        // What the reload does when a bulk write fails: write the journal's version, newer by then, through jsonrpcs.
        const outcome = createUsrlocRpc({ rpc: bulk }).ulAdd("location", "fence@example.com", { ...binding("sip:fence@192.0.2.11:5060"), q: 0.1 }, nowSec()).then(
          () => "acked",
          async () => {
            await direct.ulAdd("location", "fence@example.com", { ...binding("sip:fence@192.0.2.11:5060"), q: 0.9 }, nowSec());
            return "written again";
          },
        );
        await sleep(800);
        process.kill(pid, "SIGCONT");
        stopped = false;
        const result = await outcome;
        await sleep(300);
        const held = await direct.ulLookup("location", "fence@example.com");
        // The dispatcher runs the batch before it reads the close, and acks it; a worker drops it once
        // the dispatcher has closed the channel. Either way Kamailio holds what the caller wrote last.
        expect({ variant, result, q: held.map((c) => c.q) }).toEqual({ variant, result: variant === "dispatcher" ? "acked" : "written again", q: [variant === "dispatcher" ? 0.1 : 0.9] });
      } finally {
        if (stopped) process.kill(pid, "SIGCONT");
        await bulk.close();
        await kFifo.close();
        await k.close();
        rmSync(dir, { recursive: true, force: true });
      }
    }
  }, 60_000);

  it("fails every call at once after the channel is closed, as a transient error (the caller goes through jsonrpcs)", async () => {
    const bulk = await open();
    await bulk.close();
    const err = await bulk.call("ul.rm", ["location", "x@example.com"]).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(KamailioUnavailableError);
    expect(bulk.usable()).toBe(false);
  });
});

async function waitUntil(ok: () => boolean | Promise<boolean>, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await ok())) {
    if (Date.now() > deadline) throw new Error("timed out");
    await sleep(20);
  }
}
