/**
 * TCP client for Kamailio's evapi (kamailio-5.6.md §6): receives the netstring-framed JSON events
 * that locmesh's cfg include sends (register-event.ts) and hands them to `onEvent`.
 *
 * Rules evapi imposes:
 * - Kamailio's accepted evapi sockets are blocking and one dispatcher process writes to every
 *   client, so a client that stops reading stalls the dispatcher, and once the dispatcher's queue
 *   (a socketpair) is full, the include's drain process waiting to hand it events, and once the
 *   include's queue holds 5,000 REGISTERs, the SIP workers (cfg-include.ts). Every complete frame
 *   is parsed and passed to `onEvent` synchronously; the consumer stops reading only on purpose,
 *   with `pause()` when it cannot keep up (registrar-intake.ts), and `resume()`s soon after.
 * - Delivery is at-most-once with no queue: events sent while we are disconnected are gone. After
 *   every (re)connect `onConnect` fires so the agent can reconcile from ul.dump.
 * - There is no authentication; the include closes clients from other addresses at once. A
 *   connection that Kamailio closes within `stableMs` is therefore logged as a likely address
 *   mismatch (set `localAddress` to the agentAddress the include allows).
 * Garbled framing drops the connection and reconnects (the stream cannot be resynchronised); a
 * well-framed but malformed event is counted, logged at most every 10 s, and skipped.
 */
import { Socket } from "node:net";
import type { Logger } from "../ops/logger.js";
import { createNetstringDecoder, type NetstringDecoder } from "./netstring.js";
import { MAX_EVENT_BYTES, eventNumberOf, parseKamailioEvent, registerAorOf, type KamailioEvent } from "./register-event.js";

export interface EvapiClientOptions {
  /** evapi's bind_addr host and port. */
  host: string;
  port: number;
  /** Source address to connect from: must be the include's agentAddress. */
  localAddress?: string;
  log: Logger;
  onEvent(ev: KamailioEvent): void;
  /**
   * A payload that is not a valid event but carries the drain's number `n` (register-event.ts
   * eventNumberOf), or a register event's AoR (registerAorOf), or both (null: it does not).
   */
  onUnreadable?(n: number | null, aor: string | null): void;
  onConnect?(): void;
  /**
   * The connection was lost (err is null when Kamailio closed it cleanly), after `livedMs` connected.
   * Not called for close().
   */
  onDisconnect?(err: Error | null, livedMs: number): void;
  maxFrameBytes?: number;
  retry?: { minMs?: number; maxMs?: number };
  connectTimeoutMs?: number;
  /** A connection that lives shorter than this does not reset the back-off. */
  stableMs?: number;
  random?: () => number;
}

export interface EvapiClientStats {
  connects: number;
  disconnects: number;
  events: number;
  /** Well-framed payloads that were not valid events. */
  malformed: number;
  /** Broken framing: the connection was dropped. */
  framingErrors: number;
  /** Errors thrown by onEvent/onConnect/onDisconnect. */
  callbackErrors: number;
  bytes: number;
}

export interface EvapiClient {
  start(): void;
  /** Stops reading the socket (also a reconnected one) until resume(): TCP back-pressure to Kamailio. */
  pause(): void;
  resume(): void;
  /** Waiting out a back-off after a failed connect? Then try again now (one attempt; back-off continues if it fails). */
  retryNow(): void;
  close(): Promise<void>;
  connected(): boolean;
  stats(): EvapiClientStats;
}

const MALFORMED_LOG_INTERVAL_MS = 10_000;

export function createEvapiClient(opts: EvapiClientOptions): EvapiClient {
  const log = opts.log.child({ part: "evapi", evapi: `${opts.host}:${opts.port}` });
  const minMs = opts.retry?.minMs ?? 200;
  const maxMs = opts.retry?.maxMs ?? 10_000;
  const stableMs = opts.stableMs ?? 5_000;
  const random = opts.random ?? Math.random;
  const maxFrameBytes = opts.maxFrameBytes ?? MAX_EVENT_BYTES;
  const utf8 = new TextDecoder("utf-8", { fatal: true });
  const stats: EvapiClientStats = { connects: 0, disconnects: 0, events: 0, malformed: 0, framingErrors: 0, callbackErrors: 0, bytes: 0 };

  let started = false;
  let closed = false;
  let socket: Socket | null = null;
  let isUp = false;
  let attempt = 0;
  let timer: NodeJS.Timeout | null = null;
  let lastMalformedLog = 0;
  let suppressedMalformed = 0;
  let readPaused = false;

  function safely(what: string, fn: () => void): void {
    try {
      fn();
    } catch (err) {
      stats.callbackErrors++;
      log.error({ err }, `${what} threw; the evapi client carries on`);
    }
  }

  function connect(): void {
    timer = null;
    if (closed) return;
    const decoder = createNetstringDecoder({ maxFrameBytes });
    const sock = new Socket();
    socket = sock;
    let upSince = 0;
    let failure: Error | null = null;
    sock.setTimeout(opts.connectTimeoutMs ?? 5_000, () => sock.destroy(new Error(`connect to evapi ${opts.host}:${opts.port} timed out`)));
    sock.on("connect", () => {
      sock.setTimeout(0);
      // A dead host behind a silent network would otherwise look connected for hours.
      sock.setKeepAlive(true, 15_000);
      if (readPaused) sock.pause();
      isUp = true;
      upSince = Date.now();
      stats.connects++;
      log.info("connected to Kamailio evapi");
      safely("onConnect", () => opts.onConnect?.());
    });
    sock.on("data", (chunk: Buffer) => onData(sock, decoder, chunk));
    sock.on("error", (err) => {
      failure = err;
    });
    sock.on("close", () => {
      if (socket === sock) socket = null;
      const wasUp = upSince > 0;
      isUp = false;
      if (closed) return;
      if (wasUp) {
        stats.disconnects++;
        const lived = Date.now() - upSince;
        if (lived >= stableMs) attempt = 0;
        // The include's address filter closes within milliseconds; seconds mean Kamailio stopped.
        else if (failure === null && lived < 1000) log.warn({ livedMs: lived }, "Kamailio closed the evapi connection at once: is this host's address the include's agentAddress?");
        log.warn({ err: failure, livedMs: lived }, "lost the Kamailio evapi connection; events are dropped until it is back");
        safely("onDisconnect", () => opts.onDisconnect?.(failure, lived));
      } else {
        log.debug({ err: failure }, "could not connect to Kamailio evapi");
      }
      schedule();
    });
    sock.connect({ host: opts.host, port: opts.port, ...(opts.localAddress ? { localAddress: opts.localAddress } : {}) });
  }

  function onData(sock: Socket, decoder: NetstringDecoder, chunk: Buffer): void {
    stats.bytes += chunk.length;
    let frames: Buffer[];
    try {
      frames = decoder.push(chunk);
    } catch (err) {
      // Only NetstringError is expected; anything else is handled the same way rather than crash.
      stats.framingErrors++;
      log.error({ err }, "evapi stream is not netstring-framed (is netstring_format 1?); reconnecting");
      sock.destroy(err as Error);
      return;
    }
    for (const frame of frames) deliver(frame);
  }

  function deliver(frame: Buffer): void {
    let ev: KamailioEvent;
    try {
      ev = parseKamailioEvent(utf8.decode(frame));
    } catch (err) {
      // EventFormatError, or TypeError from invalid UTF-8.
      stats.malformed++;
      logMalformed(err as Error, frame);
      if (opts.onUnreadable) {
        const n = eventNumberOf(frame.subarray(0, 24).toString("latin1"));
        const aor = registerAorOf(frame.toString("utf8"));
        if (n !== null || aor !== null) safely("onUnreadable", () => opts.onUnreadable!(n, aor));
      }
      return;
    }
    stats.events++;
    safely("onEvent", () => opts.onEvent(ev));
  }

  function logMalformed(err: Error, frame: Buffer): void {
    const now = Date.now();
    if (now - lastMalformedLog < MALFORMED_LOG_INTERVAL_MS) {
      suppressedMalformed++;
      return;
    }
    log.warn({ err: err.message, bytes: frame.length, head: frame.subarray(0, 200).toString("utf8"), suppressed: suppressedMalformed }, "skipping a malformed evapi event");
    lastMalformedLog = now;
    suppressedMalformed = 0;
  }

  function schedule(): void {
    if (closed || timer) return;
    // Capped exponential back-off with jitter, so several agents do not reconnect in step.
    const base = Math.min(maxMs, minMs * 2 ** Math.min(attempt, 20));
    attempt++;
    timer = setTimeout(connect, Math.round(base * (0.5 + random() / 2)));
  }

  return {
    start() {
      if (started || closed) return;
      started = true;
      connect();
    },
    retryNow() {
      if (!started || closed || timer === null) return;
      clearTimeout(timer);
      connect();
    },
    async close() {
      closed = true;
      if (timer) clearTimeout(timer);
      timer = null;
      const sock = socket;
      socket = null;
      isUp = false;
      if (sock && !sock.destroyed) {
        await new Promise<void>((resolve) => {
          sock.once("close", () => resolve());
          sock.destroy();
        });
      }
    },
    pause() {
      readPaused = true;
      socket?.pause();
    },
    resume() {
      readPaused = false;
      socket?.resume();
    },
    connected: () => isUp,
    stats: () => ({ ...stats }),
  };
}
