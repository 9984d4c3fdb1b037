/**
 * The bulk channel into Kamailio: usrloc writes sent as netstring frames over an evapi connection
 * of its own (the agent opens two as one: evapi-bulk-channels.ts), which the include's
 * event_route[evapi:message-received] runs with jsonrpc_exec (cfg-include.ts, bulkRoute). Used
 * to put a restarted Kamailio back (reload.ts): one TCP write carries dozens of `ul.add`s, where
 * jsonrpcs takes one datagram (or one FIFO round trip) each.
 * Measured with Kamailio 5.6.3 (-m 512) on a 2-core VM, 100,000 `ul.add` into an empty Kamailio
 * from a node script: 48,000-51,000/s in batch frames on Kamailio's two async workers, about
 * 37,000/s run in the evapi dispatcher; the agent's reload over datagrams (4 workers) wrote
 * 14,000-17,000/s. Kamailio's side is then the limit (usrloc's hash chains, qm_malloc).
 *
 * Protocol (all frames netstrings):
 * - the agent says `locmesh-hello:<token>`; the include answers `{"event":"locmesh-bulk-ready",
 *   "batch":<its evapi connection index>,"chan":<a number no channel had before>}` (an include
 *   older than batch frames leaves both out, one older than the fence below leaves "chan" out)
 *   or `...-refused`, and tags this connection so its answers go to it alone (evapi_unicast);
 * - then the agent sends JSON-RPC requests (only ul.add, ul.rm and ul.rm_contact, whose result is
 *   `{}`: the include refuses any other method) in chunks. With "batch", a chunk is one frame:
 *   `locmesh-batch:<conidx>:<seq>:<chan>` and one request per line. The include hands it to one of
 *   Kamailio's async task workers, which runs its requests in order and answers
 *   `{"event":"locmesh-ack","seq":<seq>,"n":<requests run>}`; chunks run on several workers, so
 *   their acks come in any order. Without "batch", each request is a frame and the chunk ends with
 *   `locmesh-ack:<seq>`, which the include echoes; evapi runs a connection's frames in order in its
 *   one dispatcher process, so the ack means every request before it has run, and acks come in
 *   order. A request that failed is reported before its chunk's ack as
 *   `{"event":"locmesh-bulk-error","reply":<the JSON-RPC reply, with its id>}` (with "seq" too in a
 *   batch). Seqs and ids start at random numbers: an answer naming none of this channel's is meant
 *   for an earlier connection in the same evapi slot (a worker finishing its batch after that
 *   closed) and is ignored.
 *
 * evapi 5.6.3's reader has a flaw this client works around: a frame whose closing comma arrives in
 * the next read() is dropped together with the rest of that read (evapi_dispatch.c: the size check
 * is one byte short). Reads end at a chunk boundary as long as everything not yet acked fits in one
 * read (32,767 bytes), so at most `maxBytesInFlight` (24 KB) is written ahead of the acks (the
 * chunks and acks are evapi-bulk-window.ts). Should a frame be lost anyway, an ack goes missing: an
 * out-of-order ack, a silent timeout, an error that names no request, or a closed socket break the
 * channel, and every call not yet acked fails with a transient error. The caller then repeats it
 * through jsonrpcs; all three methods are idempotent.
 *
 * A broken channel's batches may still wait in Kamailio (it was slow to ack: that is why the
 * channel broke). Were they to run after the caller wrote the same records again, and after later
 * changes to them, they would put older versions back. So the include keeps, per connection slot,
 * the "chan" of the channel open in it, and a worker runs each request of a batch only while its
 * frame's chan is still that one. Before failing the calls not acked, the agent sends
 * `locmesh-close` and waits (closeTimeoutMs) for `{"event":"locmesh-closed"}`: the dispatcher
 * answers it after every frame before it (so batches it runs itself, with db_sqlite, have run), and
 * from then on the workers drop the channel's batches; at most the request each worker is in the
 * middle of still lands. Acks that come meanwhile settle their calls. Without an answer the calls
 * fail anyway, with a warning. An include without "chan" is not asked: its calls fail at once.
 *
 * The token authenticates the agent (evapi has no authentication and anyone on the host may
 * connect): HMAC of the cluster key and the node id, so `locmesh kamailio-cfg` derives the same one.
 */
import { createHmac } from "node:crypto";
import { Socket } from "node:net";
import type { Logger } from "../ops/logger.js";
import { KamailioProtocolError, KamailioRequestError, KamailioRpcError, KamailioUnavailableError, type KamailioRpc, type RpcParams } from "./jsonrpcs-wire.js";
import { createNetstringDecoder, encodeNetstring, netstringText } from "./netstring.js";
import { MAX_EVENT_BYTES } from "./register-event.js";
import { createBulkWindow, failCall, randomStart, type PendingCall } from "./evapi-bulk-window.js";

/** The methods the include lets through (their result is always `{}`). */
export const BULK_METHODS = ["ul.add", "ul.rm", "ul.rm_contact"] as const;
export type BulkMethod = (typeof BULK_METHODS)[number];

/** What every bulk request starts with, method by method: the include compares these bytes. */
export function bulkRequestPrefix(method: BulkMethod): string {
  return `{"jsonrpc":"2.0","method":"${method}","params":[`;
}

export const BULK_HELLO = "locmesh-hello:";
export const BULK_ACK = "locmesh-ack:";
/** The agent gives the channel up (an include that gave a "chan" answers `{"event":"locmesh-closed"}`). */
export const BULK_CLOSE = "locmesh-close";
/** A batch frame's first line: `locmesh-batch:<conidx>:<seq>` (cfg-include-evapi.ts, batchRoute). */
export const BULK_BATCH = "locmesh-batch:";
/** Every answer of the include on the bulk channel starts with this; registrar events never do. */
const ANSWER_PREFIX = Buffer.from('{"event":"locmesh-');

/** The token the include checks: HMAC-SHA256(cluster key, node id), 32 hex digits. */
export function evapiBulkToken(clusterKey: string, nodeId: string): string {
  return createHmac("sha256", clusterKey).update(`locmesh evapi bulk channel\n${nodeId}`).digest("hex").slice(0, 32);
}

/** The channel cannot be opened: no bulk route in the include, a wrong token, Kamailio down. */
export class EvapiBulkUnavailableError extends Error {
  override readonly name: string = "EvapiBulkUnavailableError";
  readonly transient = true;
}

/** The include answered the hello: not with this token (bulk-tokens.ts then tries the agent's other keys'). */
export class EvapiBulkTokenRefusedError extends EvapiBulkUnavailableError {
  override readonly name = "EvapiBulkTokenRefusedError";
}

/** The include's answer to hello: "batch" (its connection index) and "chan" from includes that take them. */
interface ReadyAnswer {
  event: string;
  batch?: unknown;
  chan?: unknown;
}

const isIndex = (v: unknown): v is number => typeof v === "number" && Number.isInteger(v) && v >= 0;

export interface EvapiBulkOptions {
  host: string;
  port: number;
  localAddress?: string;
  token: string;
  log: Logger;
  /** How long to wait for the include's answer to hello (an include without the route never answers). */
  helloTimeoutMs?: number;
  /** How long a chunk may wait for its ack before the channel is given up. */
  ackTimeoutMs: number;
  /**
   * How long a channel being given up waits for the include to confirm that none of its batches
   * will run any more (the header); default ackTimeoutMs.
   */
  closeTimeoutMs?: number;
  /** Bytes written and not yet acked, at most (see the header: must fit one evapi read). */
  maxBytesInFlight?: number;
  /** Requests per chunk are added until the chunk reaches this many bytes (at most, and by default, 8,000). */
  chunkBytes?: number;
}

export interface EvapiBulkRpc extends KamailioRpc {
  /** False once the channel broke; every call then fails at once with a transient error. */
  usable(): boolean;
  /** batched: the include takes batch frames (its async task workers run them), not frame by frame. */
  stats(): { calls: number; chunks: number; errors: number; batched: boolean };
}

const DEFAULT_MAX_IN_FLIGHT = 24 * 1024;
/**
 * A chunk's bytes, at most. The include passes a frame to Kamailio functions as a format string
 * ("$evapi(msg)", "$var(lm_req)"), which pv_printf renders into pv_buffer_size bytes (8,192 by
 * default) and fails beyond: a batch frame's body stays under this (its header and newlines take
 * less than the room kept per request and for the ack), and so does a request sent alone.
 */
const MAX_CHUNK_BYTES = 8000;
/**
 * Requests per chunk, at most: the include's async worker runs a batch frame in a cfg while loop,
 * which Kamailio stops after max_while_loops (default 100) iterations.
 */
export const MAX_BATCH_CALLS = 64;
/** A request larger than this goes through jsonrpcs instead (see MAX_CHUNK_BYTES; 40 bytes are the batch header's). */
const MAX_REQUEST_BYTES = MAX_CHUNK_BYTES - 40;

export async function openEvapiBulk(opts: EvapiBulkOptions): Promise<EvapiBulkRpc> {
  const log = opts.log.child({ part: "bulk" });
  const maxInFlight = opts.maxBytesInFlight ?? DEFAULT_MAX_IN_FLIGHT;
  const chunkBytes = Math.min(opts.chunkBytes ?? MAX_CHUNK_BYTES, MAX_CHUNK_BYTES, maxInFlight);
  const sock = new Socket();
  const decoder = createNetstringDecoder({ maxFrameBytes: MAX_EVENT_BYTES });
  // Random, as the window's seqs are: an error meant for an earlier channel in this slot names none of ours.
  const firstId = randomStart();
  let nextId = firstId;
  let broken: Error | null = null;
  let onHello: ((answer: ReadyAnswer) => void) | null = null;
  let opened = false;
  /** The connection index the include gave in its ready answer: it takes batch frames. Null: frame by frame. */
  let batchConidx: number | null = null;
  /** The channel's number in the include's ready answer, which each batch frame repeats; null from an include older than it. */
  let chan: number | null = null;
  const stats = { calls: 0, chunks: 0, errors: 0 };
  const flow = createBulkWindow({
    maxInFlight, chunkBytes, ackTimeoutMs: opts.ackTimeoutMs, maxCalls: MAX_BATCH_CALLS,
    encodeChunk,
    inOrder: () => batchConidx === null,
    write: (text) => sock.write(text, "utf8"),
    broken: () => broken,
    breakChannel,
    onChunk: () => stats.chunks++,
  });

  /** One batch frame (an include that announced it), else each request's frame and an ack frame. */
  function encodeChunk(seq: number, calls: readonly PendingCall[]): { text: string; bytes: number } {
    if (batchConidx !== null) {
      const head = chan === null ? `${BULK_BATCH}${batchConidx}:${seq}` : `${BULK_BATCH}${batchConidx}:${seq}:${chan}`;
      let body = head;
      let bodyBytes = head.length;
      for (const c of calls) {
        body += "\n" + c.body;
        bodyBytes += 1 + c.bodyBytes;
      }
      const { frame, bytes } = netstringText(body, bodyBytes);
      return { text: frame, bytes };
    }
    let text = "";
    let bytes = 0;
    for (const c of [...calls.map((c) => netstringText(c.body, c.bodyBytes)), netstringText(`${BULK_ACK}${seq}`)]) {
      text += c.frame;
      bytes += c.bytes;
    }
    return { text, bytes };
  }

  /** Settles whatever is not acked once the include has fenced the channel (or could not). */
  let onClosed: (() => void) | null = null;

  function breakChannel(err: Error): void {
    if (broken !== null) return;
    broken = err;
    if (opened) log.warn({ err: err.message, unacked: flow.unacked(), queued: flow.queued() }, "the evapi bulk channel broke; its writes go through jsonrpcs");
    if (chan === null || sock.destroyed || !sock.writable || flow.unacked() === 0) {
      flow.failPending(err);
      sock.destroy();
      return;
    }
    // Batches sent and not acked may still be queued in Kamailio: were the callers to write them
    // again through jsonrpcs now, those could land after, and put older versions back. The include
    // answers locmesh-close once none of this channel's batches can run any more (in the dispatcher,
    // after every frame before it; on the workers, each request checks the channel first). Acks and
    // errors that come meanwhile still settle their calls.
    const closeTimeoutMs = opts.closeTimeoutMs ?? opts.ackTimeoutMs;
    const timer = setTimeout(() => {
      log.warn({ chan, closeTimeoutMs }, "Kamailio did not confirm that the given-up evapi bulk channel is closed: writes of it may still land late, and the next reconcile puts any older version they bring back right");
      settle();
    }, closeTimeoutMs);
    const settle = (): void => {
      clearTimeout(timer);
      onClosed = null;
      flow.failPending(err);
      sock.destroy();
    };
    onClosed = settle;
    sock.write(encodeNetstring(BULK_CLOSE));
  }

  function onAnswer(text: string): void {
    let msg: { event?: unknown; seq?: unknown; n?: unknown; reply?: unknown };
    try {
      msg = JSON.parse(text) as typeof msg;
    } catch {
      breakChannel(new KamailioProtocolError(`the evapi bulk channel sent an unreadable answer: ${text.slice(0, 200)}`));
      return;
    }
    switch (msg.event) {
      case "locmesh-bulk-ready":
      case "locmesh-bulk-refused":
        onHello?.(msg as ReadyAnswer);
        return;
      case "locmesh-closed":
        onClosed?.();
        return;
      case "locmesh-ack":
        if (!flow.acked(msg.seq, msg.n)) log.debug({ seq: msg.seq }, "ignored an ack meant for an earlier channel in this evapi slot");
        return;
      case "locmesh-bulk-error":
        // A batch's answers name it: one this channel never sent is an earlier channel's.
        if (typeof msg.seq === "number" && !flow.sent(msg.seq)) {
          log.debug({ seq: msg.seq }, "ignored an error meant for an earlier channel in this evapi slot");
          return;
        }
        return onError(msg.reply);
      default:
        breakChannel(new KamailioProtocolError(`the evapi bulk channel sent an unknown answer: ${text.slice(0, 200)}`));
    }
  }

  function onError(reply: unknown): void {
    const r = reply as { id?: unknown; error?: { code?: unknown; message?: unknown } } | null;
    const id = r !== null && typeof r === "object" && typeof r.id === "number" ? r.id : undefined;
    if (id !== undefined && (id < firstId || id >= nextId)) {
      log.debug({ id }, "ignored an error meant for an earlier channel in this evapi slot");
      return;
    }
    const call = id === undefined ? undefined : flow.call(id);
    if (call === undefined) {
      breakChannel(new KamailioProtocolError(`Kamailio could not run a request of the evapi bulk channel: ${JSON.stringify(reply)?.slice(0, 200)}`));
      return;
    }
    stats.errors++;
    const code = typeof r!.error?.code === "number" ? r!.error.code : 500;
    const message = typeof r!.error?.message === "string" ? r!.error.message : JSON.stringify(r!.error);
    failCall(call, new KamailioRpcError(code, message, call.method));
  }

  sock.on("data", (chunk: Buffer) => {
    let frames: Buffer[];
    try {
      frames = decoder.push(chunk);
    } catch (err) {
      breakChannel(new KamailioProtocolError(`the evapi bulk channel is not netstring-framed: ${(err as Error).message}`));
      return;
    }
    for (const f of frames) {
      // Registrar events are sent to every evapi client, this one too: not for us.
      if (f.length >= ANSWER_PREFIX.length && f.compare(ANSWER_PREFIX, 0, ANSWER_PREFIX.length, 0, ANSWER_PREFIX.length) === 0) onAnswer(f.toString("utf8"));
      // While a broken channel waits for locmesh-closed, its acks still count.
      if (broken !== null && onClosed === null) return;
    }
  });
  sock.on("error", (err) => {
    breakChannel(new KamailioUnavailableError((err as NodeJS.ErrnoException).code ?? "EIO", `the evapi bulk channel failed: ${err.message}`, { cause: err }));
    onClosed?.();
  });
  sock.on("close", () => {
    breakChannel(new KamailioUnavailableError("ECONNRESET", "Kamailio closed the evapi bulk channel"));
    // Closed while the include was fencing it: Kamailio's dispatcher drops the channel on the close too.
    onClosed?.();
  });

  await hello();

  async function hello(): Promise<void> {
    const helloTimeoutMs = opts.helloTimeoutMs ?? 1500;
    const answer = await new Promise<ReadyAnswer>((resolve, reject) => {
      const timer = setTimeout(() => reject(new EvapiBulkUnavailableError(`Kamailio's evapi did not answer the bulk channel's hello within ${helloTimeoutMs} ms: regenerate the include with \`locmesh kamailio-cfg\` (it gained the bulk route) and restart Kamailio`)), helloTimeoutMs);
      onHello = (a) => {
        clearTimeout(timer);
        resolve(a);
      };
      sock.once("error", (err) => {
        clearTimeout(timer);
        reject(new EvapiBulkUnavailableError(`cannot open the evapi bulk channel to ${opts.host}:${opts.port}: ${err.message}`, { cause: err }));
      });
      sock.once("connect", () => {
        sock.setNoDelay(true);
        sock.write(encodeNetstring(`${BULK_HELLO}${opts.token}`));
      });
      sock.connect({ host: opts.host, port: opts.port, ...(opts.localAddress ? { localAddress: opts.localAddress } : {}) });
    }).catch((err: unknown) => {
      sock.destroy();
      throw err;
    });
    onHello = null;
    if (answer.event !== "locmesh-bulk-ready") {
      sock.destroy();
      throw new EvapiBulkTokenRefusedError("Kamailio refused the evapi bulk channel's token: the include was generated for another node or cluster key; regenerate it with `locmesh kamailio-cfg`");
    }
    // An include older than batch frames answers without "batch": the requests go frame by frame.
    if (isIndex(answer.batch)) batchConidx = answer.batch;
    if (isIndex(answer.chan) && answer.chan > 0) chan = answer.chan;
    opened = true;
  }

  return {
    call<T>(method: string, params?: RpcParams): Promise<T> {
      if (broken !== null) return Promise.reject(new KamailioUnavailableError("EPIPE", `the evapi bulk channel is closed (${broken.message})`));
      if (!(BULK_METHODS as readonly string[]).includes(method) || !Array.isArray(params)) {
        return Promise.reject(new KamailioRequestError(`the evapi bulk channel takes only ${BULK_METHODS.join(", ")} with positional params, not ${method}`));
      }
      const id = nextId++;
      let body: string;
      try {
        body = `${bulkRequestPrefix(method as BulkMethod)}${JSON.stringify(params).slice(1)},"id":${id}}`;
      } catch (err) {
        return Promise.reject(new KamailioRequestError(`cannot encode ${method}: ${(err as Error).message}`));
      }
      const bodyBytes = Buffer.byteLength(body, "utf8");
      if (bodyBytes > MAX_REQUEST_BYTES) {
        return Promise.reject(new KamailioUnavailableError("E2BIG", `${method} is ${bodyBytes} bytes, too large for the evapi bulk channel`));
      }
      stats.calls++;
      return new Promise<T>((resolve, reject) => {
        const call: PendingCall = { id, method, body, bodyBytes, settled: false, resolve: resolve as (v: unknown) => void, reject };
        flow.push(call);
      });
    },
    async close() {
      if (broken === null) {
        broken = new KamailioUnavailableError("EPIPE", "the evapi bulk channel was closed");
        flow.failPending(broken);
      }
      if (!sock.destroyed) {
        await new Promise<void>((resolve) => {
          sock.once("close", () => resolve());
          sock.end();
          setTimeout(() => sock.destroy(), 1000).unref();
        });
      }
    },
    usable: () => broken === null,
    stats: () => ({ ...stats, batched: batchConidx !== null }),
  };
}
