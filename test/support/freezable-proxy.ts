/**
 * A TCP proxy in front of a real server (a test's PostgreSQL, an agent's peer port) that can be
 * frozen the way a network partition freezes a path: every socket stays open, no byte moves either
 * way and nobody is told. Connections made while frozen are accepted and held the same way (an
 * address that takes TCP and never answers). Thawing moves what was held, in order, and passes on
 * the closes that happened meanwhile, as TCP does once the path is back. Or reset: every
 * connection ends at once, so that both ends connect again.
 */
import { connect, createServer, type Socket } from "node:net";

export interface FreezableProxy {
  /** The port to dial instead of the server's. */
  readonly port: number;
  freeze(): void;
  thaw(): void;
  /** Ends every connection through it at once, both ways (a firewall that lost its state); new ones pass as before. */
  reset(): void;
  close(): Promise<void>;
}

export async function startFreezableProxy(targetPort: number, targetHost = "127.0.0.1"): Promise<FreezableProxy> {
  const sockets = new Set<Socket>();
  let frozen = false;
  /** What a frozen path keeps from happening until it thaws. */
  let held: (() => void)[] = [];
  const whenThawed = (fn: () => void) => (frozen ? held.push(fn) : fn());

  /** Moves `from`'s bytes to `to`, pausing for back-pressure; a frozen path moves nothing. */
  function forward(from: Socket, to: Socket): void {
    from.on("data", (chunk: Buffer) => {
      if (!to.write(chunk)) from.pause();
    });
    to.on("drain", () => {
      if (!frozen) from.resume();
    });
    // 'end' comes only after every byte was read, so it never overtakes the data.
    from.on("end", () => to.end());
    from.on("close", () => whenThawed(() => to.end()));
    from.on("error", () => undefined);
  }

  const server = createServer((client) => {
    const upstream = connect(targetPort, targetHost);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on("close", () => sockets.delete(s));
      if (frozen) s.pause();
    }
    forward(client, upstream);
    forward(upstream, client);
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });

  return {
    port: (server.address() as { port: number }).port,
    freeze() {
      frozen = true;
      for (const s of sockets) s.pause();
    },
    thaw() {
      frozen = false;
      for (const s of sockets) s.resume();
      const pending = held;
      held = [];
      // After the bytes that were held: resume() hands them on in a later tick.
      setImmediate(() => pending.forEach((fn) => fn()));
    },
    reset() {
      for (const s of sockets) s.destroy();
    },
    async close() {
      held = [];
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
