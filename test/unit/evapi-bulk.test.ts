/**
 * The evapi bulk channel's client (agent/kamailio/evapi-bulk.ts) against a scripted evapi peer on
 * 127.0.0.1: chunking and the bound on unacked bytes, per-request errors, and every way the channel
 * must give up (a lost ack, a silent Kamailio, an answer it cannot place, a closed socket), each
 * failing the unacked calls with a transient error so that the caller repeats them over jsonrpcs.
 * The real include runs against real Kamailio in test/integration/kamailio-bulk.test.ts.
 */
import { createServer, type Server, type Socket } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { afterEach, describe, expect, it } from "vitest";
import { isTransient } from "../../agent/core/transient.js";
import { EvapiBulkUnavailableError, MAX_BATCH_CALLS, evapiBulkToken, openEvapiBulk, type EvapiBulkOptions } from "../../agent/kamailio/evapi-bulk.js";
import { openEvapiBulkChannels } from "../../agent/kamailio/evapi-bulk-channels.js";
import { KamailioRpcError, KamailioUnavailableError } from "../../agent/kamailio/jsonrpcs-wire.js";
import { createNetstringDecoder, encodeNetstring } from "../../agent/kamailio/netstring.js";
import { silentLogger } from "../../agent/ops/logger.js";
import { bulkTokens, createBulkOpener } from "../../agent/kamailio/bulk-tokens.js";
import { createKeyRing, keyId } from "../../agent/ops/key-ring.js";
import { capturedLog } from "../support/captured-log.js";

const TOKEN = evapiBulkToken("unit-test-cluster-key-0123456789", "n1");

interface Peer {
  port: number;
  /** Request frames received, in order. */
  requests: { id: number; method: string; params: unknown[] }[];
  /** Requests received on each connection, in the order the connections came. */
  perConnection: number[];
  /** Every connection, in the order they came. */
  connections: Socket[];
  /** Largest number of request/ack bytes received while acks were held back. */
  maxUnacked: number;
  /** The seq of every chunk received (its ack frame's, or its batch frame's), in order. */
  seqs: number[];
  /** Requests in each batch frame received, in order. */
  batchSizes: number[];
  /** The fields of each batch frame's first line after `locmesh-batch:`, in order. */
  batchHeads: string[][];
  /** `locmesh-close` frames received. */
  closes: number;
  /** Answers the `locmesh-close` frames held back (script.closed "hold"). */
  releaseClosed(): void;
  /** The largest batch frame's body, in bytes. */
  maxBatchBytes: number;
  socket(): Socket;
  send(obj: unknown): void;
  /** Sends the acks held back so far, in the order their chunks came or the other way round. */
  releaseAcks(order?: "sent" | "reversed"): void;
  close(): Promise<void>;
}

interface PeerScript {
  hello?: "ready" | "refused" | "silent";
  /** Ack at once (default), hold until releaseAcks(), or never. */
  acks?: "echo" | "hold" | "never";
  /** Answer for a request before its chunk's ack; undefined = none. */
  errorFor?: (req: { id: number; method: string }) => unknown;
  /** Send a registrar event before every ack (all evapi clients get them). */
  registrarEvents?: boolean;
  /** Answer hello as an include with batch frames does (with the connection index). */
  batch?: boolean;
  /** How many of a batch's requests the include says it ran (default: all). */
  ran?: (requests: number) => number;
  /** With batch: the channel's number the ready answer gives ("chan"); left out when undefined, as an older include does. */
  chan?: number;
  /** How `locmesh-close` is answered: at once (default), when releaseClosed() is called, or never. */
  closed?: "answer" | "hold" | "never";
}

let peers: Server[] = [];
afterEach(async () => {
  await Promise.all(peers.map((s) => new Promise((r) => s.close(r))));
  peers = [];
});

async function startPeer(script: PeerScript = {}): Promise<Peer> {
  let conn: Socket | null = null;
  const requests: Peer["requests"] = [];
  const held: string[] = [];
  let unacked = 0;
  let maxUnacked = 0;
  const send = (obj: unknown) => conn?.write(encodeNetstring(typeof obj === "string" ? obj : JSON.stringify(obj)));
  const perConnection: number[] = [];
  const connections: Socket[] = [];
  const seqs: number[] = [];
  const batchSizes: number[] = [];
  const batchHeads: string[][] = [];
  let maxBatchBytes = 0;
  let closes = 0;
  const heldClosed: (() => void)[] = [];
  const server = createServer((sock) => {
    conn = sock;
    const index = connections.push(sock) - 1;
    perConnection[index] = 0;
    // Answers go to the connection that asked.
    const send = (obj: unknown) => sock.write(encodeNetstring(typeof obj === "string" ? obj : JSON.stringify(obj)));
    const dec = createNetstringDecoder({ maxFrameBytes: 1 << 20 });
    const request = (text: string) => {
      const req = JSON.parse(text) as { id: number; method: string; params: unknown[] };
      requests.push(req);
      perConnection[index]!++;
      const err = script.errorFor?.(req);
      if (err !== undefined) send({ event: "locmesh-bulk-error", reply: err });
    };
    const ackFor = (seq: number, ran?: number) => {
      seqs.push(seq);
      const ack = JSON.stringify({ event: "locmesh-ack", seq, ...(ran === undefined ? {} : { n: ran }) });
      if (script.registrarEvents) send({ v: 2, event: "register", aor: "" });
      if ((script.acks ?? "echo") === "echo") {
        unacked = 0;
        send(ack);
      } else if (script.acks === "hold") held.push(ack);
    };
    sock.on("data", (chunk: Buffer) => {
      for (const f of dec.push(chunk)) {
        const text = f.toString();
        unacked += f.length;
        maxUnacked = Math.max(maxUnacked, unacked);
        if (text.startsWith("locmesh-hello:")) {
          unacked = 0;
          const h = script.hello ?? "ready";
          const ready = text === `locmesh-hello:${TOKEN}` && h === "ready";
          if (h !== "silent") send(ready && script.batch ? { event: "locmesh-bulk-ready", batch: index, ...(script.chan === undefined ? {} : { chan: script.chan }) } : { event: ready ? "locmesh-bulk-ready" : "locmesh-bulk-refused" });
        } else if (text === "locmesh-close") {
          closes++;
          const answer = () => send({ event: "locmesh-closed" });
          if ((script.closed ?? "answer") === "answer") answer();
          else if (script.closed === "hold") heldClosed.push(answer);
        } else if (text.startsWith("locmesh-ack:")) {
          ackFor(Number(text.slice(12)));
        } else if (text.startsWith("locmesh-batch:")) {
          const [head, ...lines] = text.split("\n");
          const fields = head!.slice("locmesh-batch:".length).split(":");
          batchHeads.push(fields);
          const [conidx, seq] = fields.map(Number);
          expect(conidx).toBe(index);
          batchSizes.push(lines.length);
          maxBatchBytes = Math.max(maxBatchBytes, f.length);
          for (const line of lines) request(line);
          ackFor(seq!, script.ran ? script.ran(lines.length) : lines.length);
        } else {
          request(text);
        }
      }
    });
  });
  peers.push(server);
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    port: (server.address() as { port: number }).port,
    requests,
    perConnection,
    connections,
    seqs,
    batchSizes,
    batchHeads,
    get closes() {
      return closes;
    },
    releaseClosed: () => {
      for (const answer of heldClosed.splice(0)) answer();
    },
    get maxBatchBytes() {
      return maxBatchBytes;
    },
    get maxUnacked() {
      return maxUnacked;
    },
    socket: () => conn!,
    send,
    releaseAcks(order: "sent" | "reversed" = "sent") {
      unacked = 0;
      const acks = held.splice(0);
      for (const a of order === "sent" ? acks : acks.reverse()) send(a);
    },
    close: () => new Promise((r) => server.close(() => r())),
  };
}

const open = (peer: Peer, over: Partial<EvapiBulkOptions> = {}) =>
  openEvapiBulk({ host: "127.0.0.1", port: peer.port, token: TOKEN, log: silentLogger(), ackTimeoutMs: 2000, ...over });

const add = (i: number) => ["location", `u${i}@example.com`, `sip:u${i}@192.0.2.1:5060`, 600, -1, ".", 0, 0, 4294967295, ".", "."];

describe("evapi bulk channel client", () => {
  it("sends calls in chunks, each closed by an ack frame, and resolves a chunk's calls at its ack", async () => {
    const peer = await startPeer();
    const bulk = await open(peer);
    const results = await Promise.all(Array.from({ length: 500 }, (_, i) => bulk.call("ul.add", add(i))));
    expect(results.every((r) => JSON.stringify(r) === "{}")).toBe(true);
    expect(peer.requests.map((r) => r.params[1])).toEqual(Array.from({ length: 500 }, (_, i) => `u${i}@example.com`));
    expect(peer.requests[0]).toMatchObject({ method: "ul.add" });
    // ~150 bytes a request, 8 KB chunks: far fewer chunks than calls.
    expect(bulk.stats().chunks).toBeLessThan(50);
    expect(bulk.stats().chunks).toBeGreaterThan(3);
    await bulk.close();
  });

  it("frames requests by their UTF-8 length, so non-ASCII values arrive whole", async () => {
    const peer = await startPeer();
    const bulk = await open(peer);
    const aor = "jürgen-😀@example.com";
    await Promise.all([bulk.call("ul.add", ["location", aor, "sip:x@192.0.2.1", 600, -1, ".", 0, 0, 4294967295, ".", "."]), bulk.call("ul.add", add(1))]);
    expect(peer.requests.map((r) => r.params[1])).toEqual([aor, "u1@example.com"]);
    await bulk.close();
  });

  it("never has more than maxBytesInFlight unacked, so one evapi read always ends at a frame's end", async () => {
    const peer = await startPeer({ acks: "hold" });
    const bulk = await open(peer, { maxBytesInFlight: 4096, chunkBytes: 1024 });
    const calls = Promise.all(Array.from({ length: 300 }, (_, i) => bulk.call("ul.add", add(i))));
    for (let i = 0; i < 200 && peer.requests.length < 300; i++) {
      await sleep(5);
      peer.releaseAcks();
    }
    await calls;
    expect(peer.requests).toHaveLength(300);
    expect(peer.maxUnacked).toBeLessThanOrEqual(4096 + 1024);
    expect(peer.maxUnacked).toBeGreaterThan(1024);
    await bulk.close();
  });

  it("fails only the request Kamailio refused, with its code (404 from ul.rm_contact)", async () => {
    const peer = await startPeer({ errorFor: (r) => (r.method === "ul.rm_contact" ? { jsonrpc: "2.0", error: { code: 404, message: "AOR not found" }, id: r.id } : undefined) });
    const bulk = await open(peer);
    const [a, b, c] = await Promise.allSettled([
      bulk.call("ul.add", add(1)),
      bulk.call("ul.rm_contact", ["location", "x@example.com", "sip:x@192.0.2.1"]),
      bulk.call("ul.add", add(2)),
    ]);
    expect(a.status).toBe("fulfilled");
    expect(c.status).toBe("fulfilled");
    const err = (b as PromiseRejectedResult).reason as KamailioRpcError;
    expect(err).toBeInstanceOf(KamailioRpcError);
    expect([err.code, err.kamailioMessage, err.method]).toEqual([404, "AOR not found", "ul.rm_contact"]);
    expect(bulk.usable()).toBe(true);
    await bulk.close();
  });

  it("skips the registrar events evapi sends to every client", async () => {
    const peer = await startPeer({ registrarEvents: true });
    const bulk = await open(peer);
    await Promise.all(Array.from({ length: 50 }, (_, i) => bulk.call("ul.add", add(i))));
    expect(bulk.usable()).toBe(true);
    await bulk.close();
  });

  it.each([
    ["an ack out of order (a frame was lost)", (p: Peer) => p.send({ event: "locmesh-ack", seq: p.seqs[1] }), /acked chunk \d+ while chunk \d+ was due/],
    ["an error that names no request", (p: Peer) => p.send({ event: "locmesh-bulk-error", reply: null }), /could not run a request/],
    ["an unknown answer", (p: Peer) => p.send({ event: "locmesh-what" }), /unknown answer/],
    ["a closed socket", (p: Peer) => p.socket().destroy(), /closed the evapi bulk channel|evapi bulk channel failed/],
  ])("gives up on %s: every unacked call fails transiently, and later calls at once", async (_what, breakIt, message) => {
    const peer = await startPeer({ acks: "never" });
    // Chunks of 1 KB: the 20 calls go in more than one, so that one can be acked out of turn.
    const bulk = await open(peer, { chunkBytes: 1024 });
    const calls = Array.from({ length: 20 }, (_, i) => bulk.call("ul.add", add(i)).catch((e: unknown) => e as Error));
    // The rest wait for an ack (a chunk smaller than chunkBytes goes only when none is in flight).
    while (peer.seqs.length < 2) await sleep(5);
    breakIt(peer);
    const errors = await Promise.all(calls);
    for (const e of errors) {
      expect(isTransient(e)).toBe(true);
      expect((e as Error).message).toMatch(message);
    }
    expect(bulk.usable()).toBe(false);
    const later = await bulk.call("ul.rm", ["location", "x@example.com"]).catch((e: unknown) => e as Error);
    expect(isTransient(later)).toBe(true);
    await bulk.close();
  });

  it("spreads calls over several channels, and keeps going on the others when one breaks", async () => {
    const peer = await startPeer();
    const bulk = await openEvapiBulkChannels({ host: "127.0.0.1", port: peer.port, token: TOKEN, log: silentLogger(), ackTimeoutMs: 2000 }, 2);
    await Promise.all(Array.from({ length: 400 }, (_, i) => bulk.call("ul.add", add(i))));
    expect(peer.perConnection).toEqual([200, 200]);
    expect(bulk.stats().calls).toBe(400);
    // The first channel's socket closes: the client sees it break, and the calls go to the other.
    peer.connections[0]!.destroy();
    await sleep(50);
    expect(bulk.usable()).toBe(true);
    await Promise.all(Array.from({ length: 100 }, (_, i) => bulk.call("ul.add", add(1000 + i))));
    expect(peer.perConnection).toEqual([200, 300]);
    peer.connections[1]!.destroy();
    await sleep(50);
    expect(bulk.usable()).toBe(false);
    const err = await bulk.call("ul.add", add(2000)).then(() => null, (e: unknown) => e as Error);
    expect(isTransient(err)).toBe(true);
    await bulk.close();
  });

  it("opens the channels it can, and fails as one channel would when none opens", async () => {
    const refusing = await startPeer({ hello: "refused" });
    const err = await openEvapiBulkChannels({ host: "127.0.0.1", port: refusing.port, token: TOKEN, log: silentLogger(), ackTimeoutMs: 2000 }, 2).then(() => null, (e: unknown) => e);
    expect(err).toBeInstanceOf(EvapiBulkUnavailableError);
    expect((err as Error).message).toMatch(/refused the evapi bulk channel's token/);
  });

  it("gives up when an ack does not come in time", async () => {
    const peer = await startPeer({ acks: "never" });
    const bulk = await open(peer, { ackTimeoutMs: 100 });
    const err = await bulk.call("ul.add", add(1)).then(() => null, (e: unknown) => e as Error);
    expect(isTransient(err)).toBe(true);
    expect(err?.message).toMatch(/did not ack chunk \d+ .* within 100 ms/);
    await bulk.close();
  });

  it("does not open when the include refuses the token or never answers, and says what to do", async () => {
    const fails = (p: Promise<unknown>): Promise<Error> => p.then(() => new Error("it opened"), (e: unknown) => e as Error);
    const refused = await fails(open(await startPeer({ hello: "refused" })));
    expect(refused).toBeInstanceOf(EvapiBulkUnavailableError);
    expect(refused.message).toMatch(/refused .* token.*locmesh kamailio-cfg/);
    const silent = await fails(open(await startPeer({ hello: "silent" }), { helloTimeoutMs: 100 }));
    expect(silent).toBeInstanceOf(EvapiBulkUnavailableError);
    expect(silent.message).toMatch(/did not answer .* within 100 ms.*regenerate the include/);
    const peer = await startPeer();
    await peer.close();
    const down = await fails(open(peer));
    expect(down).toBeInstanceOf(EvapiBulkUnavailableError);
    expect(down.message).toMatch(/cannot open the evapi bulk channel/);
  });

  it("refuses methods the include would refuse, and requests too large for one evapi read", async () => {
    const peer = await startPeer();
    const bulk = await open(peer);
    await expect(bulk.call("ul.dump", [])).rejects.toThrow(/only ul.add, ul.rm, ul.rm_contact/);
    await expect(bulk.call("ul.add", { table: "location" })).rejects.toThrow(/positional params/);
    const huge = await bulk.call("ul.add", ["location", "big@example.com", `sip:${"x".repeat(20_000)}@192.0.2.1`]).catch((e: unknown) => e as Error);
    // Transient: the caller sends it over jsonrpcs instead, whose datagrams take 64 KB.
    expect(isTransient(huge)).toBe(true);
    expect(peer.requests).toEqual([]);
    expect(bulk.usable()).toBe(true);
    await bulk.close();
  });
});

describe("evapi bulk channel with an include that takes batch frames", () => {
  const rm = (i: number) => ["location", `u${i}@example.com`];

  it("sends each chunk as one batch frame of at most MAX_BATCH_CALLS requests, and settles each chunk at its ack, in whatever order they come", async () => {
    const peer = await startPeer({ batch: true, acks: "hold" });
    const bulk = await open(peer);
    let settled = 0;
    const calls = Array.from({ length: 200 }, (_, i) => bulk.call("ul.rm", rm(i)).finally(() => settled++));
    // Batch frames run on several Kamailio processes: the later chunk's ack may come first.
    while (settled < 200) {
      await sleep(10);
      peer.releaseAcks("reversed");
    }
    await Promise.all(calls);
    expect(bulk.stats().batched).toBe(true);
    expect(peer.batchSizes.reduce((a, b) => a + b, 0)).toBe(200);
    expect(Math.max(...peer.batchSizes)).toBe(MAX_BATCH_CALLS);
    expect(peer.requests.map((r) => r.params[1])).toEqual(Array.from({ length: 200 }, (_, i) => `u${i}@example.com`));
    expect(bulk.usable()).toBe(true);
    await bulk.close();
  });

  it("names the channel in every batch frame with the number of the include's ready answer, and leaves it out for an include older than it", async () => {
    for (const chan of [123_456_789, undefined]) {
      const peer = await startPeer({ batch: true, chan });
      const bulk = await open(peer);
      await Promise.all(Array.from({ length: 100 }, (_, i) => bulk.call("ul.rm", rm(i))));
      expect(peer.batchHeads).toHaveLength(2);
      for (const head of peer.batchHeads) expect(head).toEqual(chan === undefined ? [String(0), expect.any(String)] : [String(0), expect.any(String), String(chan)]);
      await bulk.close();
    }
  });

  it("when it gives a channel up, fails the calls not acked only once the include confirms none of its batches will run any more", async () => {
    const peer = await startPeer({ batch: true, chan: 7, acks: "hold", closed: "hold" });
    const bulk = await open(peer, { ackTimeoutMs: 100, closeTimeoutMs: 5000 });
    const outcome: (string | undefined)[] = new Array(200);
    const calls = Array.from({ length: 200 }, (_, i) => bulk.call("ul.rm", rm(i)).then(() => { outcome[i] = "ok"; }, (e: unknown) => { outcome[i] = (e as Error).name; }));
    await waitFor(() => peer.closes === 1);
    await sleep(150);
    // Kamailio has not confirmed yet: had the calls failed now, their batches could still run after the callers wrote them again.
    expect(outcome.filter((o) => o !== undefined)).toEqual([]);
    expect(bulk.usable()).toBe(false);
    // Acks that come meanwhile still count: those batches ran.
    peer.releaseAcks();
    peer.releaseClosed();
    await Promise.all(calls);
    // The calls sent were acked; those still queued (never sent) fail, for the caller to write through jsonrpcs.
    expect(peer.requests.length).toBeGreaterThan(100);
    expect(outcome.slice(0, peer.requests.length).every((o) => o === "ok")).toBe(true);
    expect(outcome.slice(peer.requests.length).every((o) => o === "KamailioUnavailableError")).toBe(true);
    expect(peer.closes).toBe(1);
  });

  it("fails the calls not acked once the include confirms the close, as transient errors, and at once when the include has no chan (older)", async () => {
    for (const chan of [5, undefined]) {
      const peer = await startPeer({ batch: true, chan, acks: "never" });
      const bulk = await open(peer, { ackTimeoutMs: 100 });
      const errs = await Promise.all(Array.from({ length: 100 }, (_, i) => bulk.call("ul.rm", rm(i)).then(() => null, (e: unknown) => e)));
      expect(errs.every((e) => e instanceof KamailioUnavailableError)).toBe(true);
      expect(peer.closes).toBe(chan === undefined ? 0 : 1);
    }
  });

  it("fails the calls anyway, with a warning, when the include never confirms the close", async () => {
    const peer = await startPeer({ batch: true, chan: 9, acks: "never", closed: "never" });
    const { log, lines } = capturedLog();
    const bulk = await openEvapiBulk({ host: "127.0.0.1", port: peer.port, token: TOKEN, log, ackTimeoutMs: 100, closeTimeoutMs: 200 });
    const started = Date.now();
    const errs = await Promise.all(Array.from({ length: 10 }, (_, i) => bulk.call("ul.rm", rm(i)).then(() => null, (e: unknown) => e)));
    expect(Date.now() - started).toBeGreaterThanOrEqual(290);
    expect(errs.every((e) => e instanceof KamailioUnavailableError)).toBe(true);
    expect(lines.filter((l) => /did not confirm that the given-up evapi bulk channel is closed/.test(l.msg))).toHaveLength(1);
  });

  it("sends chunks full by their count without waiting for an ack, and keeps every batch frame within Kamailio's 8 KB format buffer and the in-flight bound", async () => {
    const peer = await startPeer({ batch: true, acks: "hold" });
    const bulk = await open(peer);
    let settled = 0;
    // 200 short removals: 3 chunks of 64 are full by count at about 5 KB each, and go at once.
    const calls = Array.from({ length: 200 }, (_, i) => bulk.call("ul.rm", rm(i)).finally(() => settled++));
    const deadline = Date.now() + 2000;
    while (peer.seqs.length < 3 && Date.now() < deadline) await sleep(5);
    await sleep(30);
    expect(peer.seqs).toHaveLength(3);
    while (settled < 200) {
      await sleep(10);
      peer.releaseAcks();
    }
    await Promise.all(calls);
    // Large requests (a long path) and one near the largest taken: frames stay under 8,000 bytes.
    const big = (i: number, pathBytes: number) => ["location", `b${i}@example.com`, `sip:b${i}@192.0.2.1`, 600, -1, "p".repeat(pathBytes), 0, 0, 4294967295, ".", "."];
    settled = 0;
    const more = [...Array.from({ length: 40 }, (_, i) => bulk.call("ul.add", big(i, 1500))), bulk.call("ul.add", big(99, 7800))].map((p) => p.finally(() => settled++));
    while (settled < more.length) {
      await sleep(10);
      peer.releaseAcks();
    }
    await Promise.all(more);
    expect(peer.maxBatchBytes).toBeGreaterThan(7000);
    expect(peer.maxBatchBytes).toBeLessThan(8000);
    expect(peer.maxUnacked).toBeLessThanOrEqual(24 * 1024);
    // One that would not fit goes through jsonrpcs instead (a transient error here).
    const err = await bulk.call("ul.add", big(100, 8000)).then(() => null, (e: unknown) => e as Error);
    expect(isTransient(err)).toBe(true);
    await bulk.close();
  });

  it("breaks when Kamailio ran only part of a batch (its while loop stopped by max_while_loops): the rest must not pass for written", async () => {
    const peer = await startPeer({ batch: true, ran: (n) => Math.min(n, 10) });
    const bulk = await open(peer);
    const results = await Promise.all(Array.from({ length: 30 }, (_, i) => bulk.call("ul.rm", rm(i)).then(() => null, (e: unknown) => e as Error)));
    expect(results.every((e) => e !== null && isTransient(e))).toBe(true);
    expect(results[0]!.message).toMatch(/ran 10 of the 30 requests of batch \d+ .*max_while_loops/);
    expect(bulk.usable()).toBe(false);
    await bulk.close();
  });

  it("says to regenerate the include when it predates batch frames, and nothing when it takes them", async () => {
    for (const batch of [false, true]) {
      const peer = await startPeer({ batch });
      const { log, lines } = capturedLog();
      const bulk = await openEvapiBulkChannels({ host: "127.0.0.1", port: peer.port, token: TOKEN, log, ackTimeoutMs: 2000 }, 2);
      await Promise.all(Array.from({ length: 10 }, (_, i) => bulk.call("ul.rm", rm(i))));
      expect(bulk.stats().batched).toBe(batch);
      expect(lines.filter((l) => /predates batch frames.*locmesh kamailio-cfg/.test(l.msg))).toHaveLength(batch ? 0 : 1);
      await bulk.close();
    }
  });

  it("fails only the request Kamailio refused, and carries on", async () => {
    const peer = await startPeer({ batch: true, errorFor: (r) => (r.method === "ul.rm_contact" ? { id: r.id, error: { code: 500, message: "Domain table not found" } } : undefined) });
    const bulk = await open(peer);
    const [a, b] = await Promise.allSettled([bulk.call("ul.rm", rm(1)), bulk.call("ul.rm_contact", ["nosuch", "u2@example.com", "sip:u2@192.0.2.1"])]);
    expect(a.status).toBe("fulfilled");
    expect((b as PromiseRejectedResult).reason).toBeInstanceOf(KamailioRpcError);
    expect(bulk.usable()).toBe(true);
    await bulk.close();
  });

  it("ignores acks and errors meant for an earlier channel in its evapi slot (seqs and ids it never sent), and breaks on one of its own out of place", async () => {
    const peer = await startPeer({ batch: true });
    const bulk = await open(peer);
    await Promise.all(Array.from({ length: 10 }, (_, i) => bulk.call("ul.rm", rm(i))));
    const firstSeq = peer.seqs[0]!;
    const firstId = peer.requests[0]!.id;
    // What an earlier channel's async worker could still send to this slot's tag.
    peer.send({ event: "locmesh-ack", seq: firstSeq - 1 });
    peer.send({ event: "locmesh-bulk-error", reply: { id: firstId - 1, error: { code: 500, message: "old" } } });
    // A request an earlier channel's worker could not run names no id, but its batch's seq.
    peer.send({ event: "locmesh-bulk-error", seq: firstSeq - 1, reply: null });
    await sleep(50);
    expect(bulk.usable()).toBe(true);
    await Promise.all(Array.from({ length: 10 }, (_, i) => bulk.call("ul.rm", rm(100 + i))));
    // An ack of a chunk it sent and has settled: something is wrong with the channel.
    peer.send({ event: "locmesh-ack", seq: firstSeq });
    await sleep(50);
    expect(bulk.usable()).toBe(false);
    await bulk.close();
  });
});

describe("evapi bulk channel while the cluster key is rotated", () => {
  // The scripted include takes TOKEN only: it was generated with this key.
  const INCLUDE_KEY = "unit-test-cluster-key-0123456789";
  const NEW_KEY = "unit-test-next-cluster-key-012345";
  function opener(peer: Peer, own: string, accepted: string[]) {
    const { log, lines } = capturedLog();
    const ring = createKeyRing({ own, accepted });
    const open = createBulkOpener({ tokens: () => bulkTokens(ring, "n1"), options: { host: "127.0.0.1", port: peer.port, log, ackTimeoutMs: 2000 }, count: 2, log });
    return { open, lines, ring };
  }

  it("opens with the token of an accepted key when Kamailio's include holds that one, says which, and tries it first next time", async () => {
    const peer = await startPeer({ batch: true });
    const { open, lines } = opener(peer, NEW_KEY, [INCLUDE_KEY]);
    const bulk = await open();
    // A refused hello with the own key's token, then two channels with the accepted key's.
    expect(peer.connections).toHaveLength(3);
    await Promise.all(Array.from({ length: 40 }, (_, i) => bulk.call("ul.add", add(i))));
    expect(peer.requests).toHaveLength(40);
    await bulk.close();
    expect(lines.filter((l) => l.level === 40).map((l) => l.msg)).toEqual([
      `Kamailio took the evapi bulk channel's token of accepted cluster key ${keyId(INCLUDE_KEY)}, not that of this node's own (mesh.secret, ${keyId(NEW_KEY)}): ` +
        "its include was generated with that key. Regenerate the include (locmesh kamailio-cfg --config …) and load it at the next convenient Kamailio restart, " +
        "before that key leaves mesh.acceptedSecrets (after that a restarted Kamailio is refilled over jsonrpcs, more slowly)",
    ]);
    await (await open()).close();
    expect(peer.connections).toHaveLength(5);
  });

  it("with the own key's token taken, opens as before and says nothing", async () => {
    const peer = await startPeer({ batch: true });
    const { open, lines } = opener(peer, INCLUDE_KEY, [NEW_KEY]);
    await (await open()).close();
    expect(peer.connections).toHaveLength(2);
    expect(lines).toEqual([]);
  });

  it("once the include's key was dropped, fails naming the keys it tried (the reload goes over jsonrpcs)", async () => {
    const peer = await startPeer({ batch: true });
    const { open, ring } = opener(peer, NEW_KEY, [INCLUDE_KEY]);
    await (await open()).close();
    ring.set({ own: NEW_KEY, accepted: [] });
    const err = await open().then(() => null, (e: unknown) => e as Error);
    expect(err).toBeInstanceOf(EvapiBulkUnavailableError);
    expect(err?.message).toBe(`Kamailio refused the evapi bulk channel's token of this node's cluster key (${keyId(NEW_KEY)}): the include was generated for another node or cluster key; regenerate it with \`locmesh kamailio-cfg\``);
    const other = opener(await startPeer({ batch: true }), "unit-test-another-key-0123456789", [NEW_KEY]);
    expect((await other.open().then(() => null, (e: unknown) => e as Error))?.message).toMatch(/token of each of the 2 cluster keys this node holds \(\w{8}, \w{8}\)/);
  });
});

async function waitFor(ok: () => boolean, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error("timed out");
    await sleep(5);
  }
}
