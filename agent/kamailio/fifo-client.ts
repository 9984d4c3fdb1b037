/**
 * JSON-RPC client for Kamailio's jsonrpcs FIFO transport (kamailio-5.6.md §1.3).
 *
 * Per call: take a reply FIFO from the pool, open it O_RDONLY|O_NONBLOCK *before* writing the
 * request (else Kamailio waits out 4 × 80 ms of retries per reply, §10: 47 calls/s), write the
 * request, read the reply to EOF. On Linux a FIFO opened for reading reports neither data nor
 * hang-up until a writer has come and gone, so reading through a libuv pipe handle (net.Socket)
 * waits for Kamailio without a spurious EOF.
 *
 * Kamailio serves the FIFO from one process, one request at a time (surprise 1), but requests can
 * be written back to back: several calls in flight, each with its own reply FIFO, hide the round
 * trip (pipelining). Never leave a reply unread: a reader that stops reading blocks that process
 * with no time limit. On timeout the reply FIFO is unlinked (a late reply then fails fast with
 * ENOENT in Kamailio) and whatever Kamailio already started writing is drained and dropped.
 *
 * Reply FIFO permissions: the FIFOs are created with `replyFifoMode` (default 0600, right when
 * Kamailio runs as the same user). The Debian service runs as user kamailio (§1.2): then use a
 * `fifo_reply_dir` only the agent and Kamailio can enter and a mode Kamailio can write, e.g. 0622.
 */
import { openSync, constants } from "node:fs";
import { Socket } from "node:net";
import type { Logger } from "../ops/logger.js";
import { createFifoWriter, RESYNC_SPACES } from "./fifo-writer.js";
import {
  encodeRequest, decodeReply, FIFO_MAX_REQUEST_BYTES, KamailioProtocolError, KamailioReplyTooLargeError, KamailioRpcError, KamailioUnavailableError,
  type CallOptions, type KamailioRpc, type RpcParams,
} from "./jsonrpcs-wire.js";
import { createReplyFifoPool, type ReplySlot } from "./reply-fifo-pool.js";

export interface FifoClientOptions {
  /** Kamailio's request FIFO (`modparam("jsonrpcs","fifo_name",...)`). */
  fifoPath: string;
  /** Kamailio's `fifo_reply_dir`: reply FIFOs must live there. */
  replyDir: string;
  /** Default per-call timeout, from call() to the end of the reply, queueing included. */
  timeoutMs: number;
  log: Logger;
  /** Requests in flight at once, one reply FIFO each. */
  maxInFlight?: number;
  replyFifoMode?: number;
  replyNamePrefix?: string;
  /** Whose reply FIFOs these are (the node id): see ReplyFifoPoolOptions.owner. */
  replyOwner?: string;
  /** Give each reply FIFO to this user and group (root only; see ReplyFifoPoolOptions.chownTo). */
  replyFifoChownTo?: { uid: number; gid: number };
  /** After a timeout or a garbled reply, write spaces to reset Kamailio's reader (surprise 2). */
  autoResync?: boolean;
  nowMs?: () => number;
}

export interface FifoClient extends KamailioRpc {
  /**
   * Resets Kamailio's FIFO reader: 8200 spaces overflow its buffer from any state (surprise 2), and
   * a `core.version` probe written in the same write absorbs the leftover spaces and proves the
   * stream works again. Tries three times; false when the probe never answered.
   */
  resync(): Promise<boolean>;
}

const DRAIN_GRACE_MS = 10_000;
const RESYNC_MIN_INTERVAL_MS = 5_000;

export function createFifoClient(opts: FifoClientOptions): FifoClient {
  const log = opts.log.child({ part: "fifo" });
  const nowMs = opts.nowMs ?? Date.now;
  const writer = createFifoWriter({ fifoPath: opts.fifoPath, nowMs });
  const pool = createReplyFifoPool({
    dir: opts.replyDir, max: opts.maxInFlight ?? 16, prefix: opts.replyNamePrefix, mode: opts.replyFifoMode,
    ...(opts.replyOwner === undefined ? {} : { owner: opts.replyOwner }),
    ...(opts.replyFifoChownTo === undefined ? {} : { chownTo: opts.replyFifoChownTo }),
  });
  const autoResync = opts.autoResync ?? true;
  /** Kamailio appends the reply FIFO's name to fifo_reply_dir as it is: without the slash, replies go astray. */
  const replyDirAsKamailioNeedsIt = JSON.stringify(opts.replyDir.endsWith("/") ? opts.replyDir : `${opts.replyDir}/`);
  const aborters = new Set<(err: Error) => void>();
  const draining = new Set<Socket>();
  let nextId = 0;
  let closed = false;
  let resyncing: Promise<boolean> | null = null;
  let lastResyncAt = -Infinity;

  function drain(sock: Socket): void {
    // Kamailio may be mid-write in blocking mode: keep reading until it closes, drop the bytes.
    draining.add(sock);
    sock.removeAllListeners("data");
    sock.on("data", () => undefined);
    sock.on("error", () => undefined);
    const done = (): void => {
      clearTimeout(timer);
      draining.delete(sock);
      sock.destroy();
    };
    const timer = setTimeout(done, DRAIN_GRACE_MS).unref();
    sock.once("end", done);
    sock.resume();
  }

  /** One request/reply exchange on one reply FIFO. `prefix` goes into the same write (resync). */
  function exchange<T>(slot: ReplySlot, method: string, params: RpcParams | undefined, deadline: number, prefix?: Buffer, maxReplyBytes = Infinity): Promise<T> {
    const id = ++nextId;
    let request: Buffer;
    try {
      if (closed) throw new Error("Kamailio FIFO client is closed");
      request = encodeRequest({ method, params, id, replyName: slot.name }, FIFO_MAX_REQUEST_BYTES);
    } catch (err) {
      pool.release(slot);
      throw err;
    }
    let fd: number;
    try {
      fd = openSync(slot.path, constants.O_RDONLY | constants.O_NONBLOCK);
    } catch (err) {
      pool.discard(slot); // someone removed it; the pool makes a new one next time
      throw new KamailioUnavailableError((err as NodeJS.ErrnoException).code ?? "EIO", `cannot open reply FIFO ${slot.path}`, { cause: err });
    }
    const sock = new Socket({ fd, readable: true, writable: false });
    return new Promise<T>((resolve, reject) => {
      const chunks: Buffer[] = [];
      let written = false;
      const settle = (err: Error | null, value?: T, slotFate: "release" | "discard" = "release"): void => {
        if (!aborters.delete(abort)) return;
        clearTimeout(timer);
        if (slotFate === "release") pool.release(slot);
        else pool.discard(slot);
        if (err) reject(err);
        else resolve(value as T);
      };
      const abort = (err: Error): void => {
        if (!aborters.has(abort)) return;
        drain(sock);
        settle(err, undefined, "discard");
      };
      aborters.add(abort);
      const timer = setTimeout(() => {
        abort(new KamailioUnavailableError("ETIMEDOUT", `Kamailio ${method} got no reply in time on ${opts.fifoPath} (Kamailio busy, stopped, or FIFO framing lost; ` +
          `or jsonrpcs' fifo_reply_dir is not ${replyDirAsKamailioNeedsIt} with its trailing slash, and Kamailio writes its replies elsewhere)`));
        if (written && prefix === undefined) suspectFraming(`${method} timed out`);
      }, Math.max(0, deadline - nowMs()));
      let replyBytes = 0;
      sock.on("data", (c: Buffer) => {
        replyBytes += c.length;
        // Kamailio writes the reply in blocking mode: drain() reads on to its end, so it is not held.
        if (replyBytes > maxReplyBytes) abort(new KamailioReplyTooLargeError(method, maxReplyBytes));
        else chunks.push(c);
      });
      sock.on("error", (err) => abort(new KamailioUnavailableError((err as NodeJS.ErrnoException).code ?? "EIO", `reading reply FIFO ${slot.path} failed`, { cause: err })));
      sock.on("end", () => {
        sock.destroy();
        try {
          settle(null, decodeReply<T>(Buffer.concat(chunks).toString("utf8"), id, method));
        } catch (err) {
          const garbled = err instanceof KamailioProtocolError;
          settle(err as Error, undefined, garbled ? "discard" : "release");
          if (garbled) suspectFraming((err as Error).message);
        }
      });
      writer.write(prefix ? Buffer.concat([prefix, request]) : request, deadline).then(
        () => { written = true; },
        (err: KamailioUnavailableError) => {
          sock.destroy();
          // Nothing reached Kamailio unless the write was cut short, so the reply FIFO stays clean.
          settle(err, undefined, err.code === "EPARTIAL" ? "discard" : "release");
          if (err.code === "EPARTIAL") suspectFraming(err.message);
        },
      );
    });
  }

  async function acquireBy(deadline: number, method: string): Promise<ReplySlot> {
    let timer: NodeJS.Timeout | undefined;
    let expired = false;
    const pending = pool.acquire();
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        expired = true;
        // The slot may still arrive later: hand it straight back.
        void pending.then((s) => pool.release(s), () => undefined);
        reject(new KamailioUnavailableError("ETIMEDOUT", `Kamailio ${method} timed out waiting for a free reply FIFO (all in flight)`));
      }, Math.max(0, deadline - nowMs()));
    });
    try {
      return await Promise.race([pending, timeout]);
    } finally {
      if (!expired) clearTimeout(timer);
    }
  }

  async function call<T>(method: string, params?: RpcParams, callOpts?: CallOptions): Promise<T> {
    if (closed) throw new Error("Kamailio FIFO client is closed");
    const deadline = nowMs() + (callOpts?.timeoutMs ?? opts.timeoutMs);
    const slot = await acquireBy(deadline, method);
    return exchange<T>(slot, method, params, deadline, undefined, callOpts?.maxReplyBytes);
  }

  function suspectFraming(reason: string): void {
    if (!autoResync || closed || resyncing || nowMs() - lastResyncAt < RESYNC_MIN_INTERVAL_MS) return;
    log.warn({ reason }, "Kamailio FIFO may have lost its framing; resyncing");
    void resync();
  }

  function resync(): Promise<boolean> {
    resyncing ??= (async () => {
      const spaces = Buffer.alloc(RESYNC_SPACES, 0x20);
      for (let attempt = 1; attempt <= 3 && !closed; attempt++) {
        try {
          const deadline = nowMs() + opts.timeoutMs;
          await exchange(await acquireBy(deadline, "core.version"), "core.version", undefined, deadline, spaces);
          log.info({ attempt }, "Kamailio FIFO answers again after resync");
          return true;
        } catch (err) {
          if (err instanceof KamailioRpcError) return true; // any answer proves the stream works
          log.warn({ attempt, err: (err as Error).message }, "Kamailio FIFO resync probe failed");
        }
      }
      log.error("Kamailio FIFO did not answer after resync; check that Kamailio runs, or restart it");
      return false;
    })().finally(() => {
      resyncing = null;
      lastResyncAt = nowMs();
    });
    return resyncing;
  }

  return {
    call,
    resync,
    async close() {
      closed = true;
      pool.close(); // first: rejects callers waiting for a reply FIFO, and creates none after this
      for (const abort of [...aborters]) abort(new Error("Kamailio FIFO client closed"));
      await resyncing?.catch(() => undefined);
      for (const sock of draining) sock.destroy();
      draining.clear();
    },
  };
}
