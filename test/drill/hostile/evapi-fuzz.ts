/**
 * The registrar-event input under fire: a TCP server standing in for Kamailio's evapi, which the
 * agent under test dials (its `kamailio.evapi` points here). It feeds well-framed netstrings whose
 * payloads are fuzzed events (each checked with the agent's own event parser first: a mutant that
 * is still a valid event would change state, so it is not sent), then broken framing, each case
 * on a connection of its own (the agent must drop it and dial again), and between them a valid
 * event that changes nothing, to prove the input still reads.
 */
import { createServer, type Server, type Socket } from "node:net";
import { encodeNetstring } from "../../../agent/kamailio/netstring.js";
import { MAX_EVENT_BYTES, parseKamailioEvent } from "../../../agent/kamailio/register-event.js";
import { expiredEvent, probeEvent, registerEvent } from "./corpus.js";
import { boundedMutant, type Rng } from "./mutate.js";

export interface EvapiFuzzServer {
  readonly port: number;
  /** Connections the agent made. */
  accepted(): number;
  /** The agent's live connection, or the next one it makes. */
  connection(timeoutMs?: number): Promise<Socket>;
  close(): Promise<void>;
}

export async function startEvapiFuzzServer(): Promise<EvapiFuzzServer> {
  let current: Socket | null = null;
  let accepted = 0;
  const waiters: ((s: Socket) => void)[] = [];
  const sockets = new Set<Socket>();
  const server: Server = createServer((s) => {
    accepted++;
    sockets.add(s);
    let bulk = false;
    s.on("error", () => undefined);
    s.on("close", () => {
      sockets.delete(s);
      if (current === s) current = null;
    });
    // The event connection sends nothing. A connection that says the bulk channel's hello (the
    // agent reloading its "restarted" Kamailio) is not the one to fuzz: it gets no answer, as from
    // an include without the bulk route, and the agent closes it and reloads over jsonrpcs.
    s.on("data", (chunk: Buffer) => {
      if (chunk.includes("locmesh-hello:")) bulk = true;
    });
    // The hello comes at once; a connection quiet for a moment is the event connection.
    setTimeout(() => {
      if (bulk || s.destroyed) return;
      current = s;
      for (const w of waiters.splice(0)) w(s);
    }, 200);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    port: (server.address() as { port: number }).port,
    accepted: () => accepted,
    connection(timeoutMs = 30_000) {
      if (current && !current.destroyed && current.writable) return Promise.resolve(current);
      return new Promise((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`the agent did not connect to the fake evapi within ${timeoutMs} ms`)), timeoutMs);
        waiters.push((s) => {
          clearTimeout(t);
          resolve(s);
        });
      });
    },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

export interface EvapiFigures {
  /** Well-framed malformed events sent. */
  sent: number;
  /** Mutants that were still valid events: not sent. */
  skipped: number;
  bytes: number;
  /** Broken-framing cases sent, and how many of those connections the agent dropped. */
  framingCases: number;
  droppedByAgent: number;
  /** Streams we cut in the middle of a frame. */
  truncated: number;
}

/** What the agent reports about its event input (cluster.status kamailio.events). */
export interface EventCounters {
  received: number;
  malformed: number;
  framingErrors: number;
}

const utf8 = new TextDecoder("utf-8", { fatal: true });

function isValidEvent(bytes: Buffer): boolean {
  try {
    parseKamailioEvent(utf8.decode(bytes));
    return true;
  } catch {
    return false;
  }
}

/** A fuzzed event payload: a mutant of a valid event, sometimes with its UTF-8 bytes damaged too. */
function payload(rng: Rng): Buffer {
  const text = boundedMutant(rng, rng.chance(0.8) ? registerEvent() : expiredEvent());
  const bytes = Buffer.from(text, "utf8");
  if (rng.chance(0.15) && bytes.length > 0) {
    for (let i = 0, n = 1 + rng.int(3); i < n; i++) {
      const at = rng.int(bytes.length);
      bytes[at] = (bytes[at] as number) ^ (1 << rng.int(8));
    }
  }
  return bytes;
}

export const yieldToEventLoop = (): Promise<void> => new Promise((r) => setImmediate(r));

function write(s: Socket, data: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    if (s.write(data)) resolve();
    else {
      s.once("drain", resolve);
      s.once("close", () => reject(new Error("the agent closed the evapi connection while we were writing")));
    }
  });
}

/** Broken netstring framing, each case sent on its own connection. */
export const FRAMING_CASES: readonly string[] = [
  'abc{"event":"register"}', "01:x,", "5:hello!", "99999999999999:",
  // Just over the agent's frame limit: it must drop the connection, not wait for the bytes.
  `${MAX_EVENT_BYTES + 1}:`, ":x,", "-1:x,", "3:abc3:def,", '{"event":"register"}', "\u0000\u0000\u0000",
  "1:\u0000;", "4:😀X",
];

export interface EvapiFuzzOptions {
  count: number;
  framingCases: number;
  counters(): Promise<EventCounters>;
  /** Sends the probe and waits until the agent counted it; throws when it does not. */
  timeoutMs?: number;
}

async function probe(server: EvapiFuzzServer, o: EvapiFuzzOptions): Promise<{ before: EventCounters; after: EventCounters }> {
  const before = await o.counters();
  await write(await server.connection(), encodeNetstring(JSON.stringify(probeEvent())));
  const until = Date.now() + (o.timeoutMs ?? 30_000);
  for (;;) {
    const after = await o.counters();
    if (after.received > before.received) return { before, after };
    if (Date.now() > until) throw new Error("the agent did not read a valid event sent after the fuzz: its event input is stuck");
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * Runs the evapi fuzz. Returns the figures and the agent's counters around it: `accepted` is the
 * number of valid events the agent read beyond the two probes (must be 0).
 */
export async function fuzzEvapi(server: EvapiFuzzServer, rng: Rng, o: EvapiFuzzOptions): Promise<{ fig: EvapiFigures; accepted: number; refused: number; framingErrors: number }> {
  const fig: EvapiFigures = { sent: 0, skipped: 0, bytes: 0, framingCases: 0, droppedByAgent: 0, truncated: 0 };
  const start = await o.counters();
  let sock = await server.connection();
  const batch: Buffer[] = [];
  const flush = async () => {
    if (batch.length === 0) return;
    const data = Buffer.concat(batch.splice(0));
    fig.bytes += data.length;
    await write(sock, data);
    // Let the rest of this process run (the drill's mesh relays live here too).
    await yieldToEventLoop();
  };
  while (fig.sent < o.count) {
    const p = payload(rng);
    if (isValidEvent(p)) {
      fig.skipped++;
      continue;
    }
    batch.push(encodeNetstring(p));
    fig.sent++;
    if (batch.length >= 200) await flush();
  }
  await flush();
  const first = await probe(server, o);

  // Truncation: a frame cut off by the end of the stream; the agent drops the partial frame.
  sock = await server.connection();
  await write(sock, Buffer.from('120:{"event":"register","rc":1,'));
  sock.end();
  fig.truncated++;

  for (const garbage of FRAMING_CASES.slice(0, o.framingCases)) {
    sock = await server.connection();
    const closed = new Promise<boolean>((resolve) => {
      const t = setTimeout(() => resolve(false), 10_000);
      sock.once("close", () => {
        clearTimeout(t);
        resolve(true);
      });
    });
    await write(sock, Buffer.from(garbage, "utf8")).catch(() => undefined);
    fig.framingCases++;
    if (await closed) fig.droppedByAgent++;
  }
  const last = await probe(server, o);
  return {
    fig,
    accepted: last.after.received - start.received - 2,
    refused: first.after.malformed - start.malformed,
    framingErrors: last.after.framingErrors - start.framingErrors,
  };
}
