/**
 * JSON-RPC client for Kamailio's jsonrpcs datagram transport (kamailio-5.6.md §1.4), over UDP.
 *
 * Why UDP and not the unix socket the doc measured: Node 20 has no unix *datagram* sockets. `dgram`
 * speaks only udp4/udp6, `net` only stream sockets, and there is no built-in way to create and bind
 * an AF_UNIX SOCK_DGRAM socket, which the client needs in order to get replies. That would take a
 * native addon. Kamailio's `dgram_socket` also accepts "udp:IP:PORT" (same jsonrpcs_sock.c code,
 * same one-datagram replies), which Node can use. Trade-off: a unix socket is guarded by file
 * permissions (0660), while any local user can send RPCs to a loopback UDP port, core.kill
 * included. Use it only on a host where every local user is trusted, or keep to the FIFO.
 *
 * Each request is one datagram with no reply_name; replies are matched by id. Several requests can
 * be in flight; with `dgram_workers` > 1 Kamailio serves them in parallel and replies can arrive out of
 * order. A reply that does not fit one datagram (a big `ul.dump`) is never sent (surprise 11), so it
 * shows here as a timeout: dump through the FIFO.
 */
import { createSocket, type Socket } from "node:dgram";
import type { Logger } from "../ops/logger.js";
import {
  DGRAM_MAX_REQUEST_BYTES, encodeRequest, KamailioUnavailableError, parseReply, resultOf,
  type CallOptions, type JsonRpcReply, type KamailioRpc, type RpcParams,
} from "./jsonrpcs-wire.js";

export interface DgramClientOptions {
  /** Kamailio's `dgram_socket` "udp:HOST:PORT". */
  host: string;
  port: number;
  timeoutMs: number;
  log: Logger;
  /** Requests in flight at once; more wait. Keeps bursts inside Kamailio's socket buffer. */
  maxInFlight?: number;
}

interface Pending {
  method: string;
  resolve: (reply: JsonRpcReply) => void;
  reject: (err: Error) => void;
}

export async function createDgramClient(opts: DgramClientOptions): Promise<KamailioRpc> {
  const log = opts.log.child({ part: "dgram" });
  const sock: Socket = createSocket(opts.host.includes(":") ? "udp6" : "udp4");
  // A connected UDP socket takes datagrams only from Kamailio's address, and an ICMP "port
  // unreachable" (Kamailio not running) surfaces as ECONNREFUSED instead of a silent timeout.
  await new Promise<void>((resolve, reject) => {
    sock.once("error", reject);
    sock.connect(opts.port, opts.host, () => {
      sock.off("error", reject);
      resolve();
    });
  });
  const pending = new Map<number, Pending>();
  const waiting: (() => void)[] = [];
  const maxInFlight = opts.maxInFlight ?? 32;
  let inFlight = 0;
  let nextId = 0;
  let closed = false;

  sock.on("message", (msg) => {
    let reply: JsonRpcReply;
    try {
      reply = parseReply(msg.toString("utf8"), "(datagram)");
    } catch {
      return log.warn({ bytes: msg.length }, "dropping a datagram that is not a JSON-RPC reply");
    }
    const p = typeof reply.id === "number" ? pending.get(reply.id) : undefined;
    if (!p) return log.debug({ bytes: msg.length }, "dropping a reply nobody waits for (late, after a timeout)");
    pending.delete(reply.id as number);
    p.resolve(reply);
  });
  sock.on("error", (err) => {
    log.warn({ code: (err as NodeJS.ErrnoException).code ?? "EIO" }, "Kamailio datagram socket error");
    failAll(err);
  });

  /** ECONNREFUSED cannot be tied to one request: fails them all, they are retryable. */
  function failAll(err: Error): void {
    const code = (err as NodeJS.ErrnoException).code ?? "EIO";
    for (const [id, p] of pending) {
      pending.delete(id);
      p.reject(new KamailioUnavailableError(code, `Kamailio ${p.method} over udp:${opts.host}:${opts.port} failed (${code}): is Kamailio running with this dgram_socket?`, { cause: err }));
    }
  }

  async function slot(): Promise<void> {
    if (inFlight < maxInFlight) {
      inFlight++;
      return;
    }
    await new Promise<void>((resolve) => waiting.push(resolve));
  }
  function freeSlot(): void {
    const next = waiting.shift();
    if (next) next();
    else inFlight--;
  }

  async function call<T>(method: string, params?: RpcParams, callOpts?: CallOptions): Promise<T> {
    if (closed) throw new Error("Kamailio datagram client is closed");
    const id = ++nextId;
    const request = encodeRequest({ method, params, id }, DGRAM_MAX_REQUEST_BYTES);
    await slot();
    try {
      const reply = await new Promise<JsonRpcReply>((resolve, reject) => {
        const timer = setTimeout(() => {
          pending.delete(id);
          reject(new KamailioUnavailableError("ETIMEDOUT", `Kamailio ${method} got no reply over udp:${opts.host}:${opts.port} in time (Kamailio down or busy, or the reply exceeded one datagram: use the FIFO for ul.dump)`));
        }, callOpts?.timeoutMs ?? opts.timeoutMs);
        pending.set(id, {
          method,
          resolve: (b) => { clearTimeout(timer); resolve(b); },
          reject: (e) => { clearTimeout(timer); reject(e); },
        });
        sock.send(request, (err) => {
          if (!err) return;
          // Linux reports the port-unreachable of an earlier datagram on the next send, which then
          // goes nowhere: nobody listens, and the requests sent before it wait for replies that never
          // come (a burst of 32 to a stopped Kamailio: 16 failed at once, 16 waited out timeoutMs).
          if ((err as NodeJS.ErrnoException).code === "ECONNREFUSED") return failAll(err);
          pending.get(id)?.reject(new KamailioUnavailableError((err as NodeJS.ErrnoException).code ?? "EIO", `sending ${method} to Kamailio failed`, { cause: err }));
          pending.delete(id);
        });
      });
      return resultOf<T>(reply, id, method);
    } finally {
      freeSlot();
    }
  }

  return {
    call,
    async close() {
      closed = true;
      for (const [id, p] of pending) {
        pending.delete(id);
        p.reject(new Error("Kamailio datagram client closed"));
      }
      await new Promise<void>((resolve) => sock.close(() => resolve()));
    },
  };
}
