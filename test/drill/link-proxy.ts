/**
 * A TCP relay on each mesh link, so a drill can cut links between agents (a partition) and heal
 * them again. Cutting destroys the live connections and refuses new ones, as a dead switch would
 * from the agents' point of view; healing accepts again. A link can also be made slow (a long
 * distance link): every chunk then reaches the other side `delayMs` after it was sent.
 */
import { createServer, connect, type Server, type Socket } from "node:net";

export interface LinkProxy {
  /** ws:// URL agent `from` should dial to reach `to`. */
  urlFor(from: string, to: string, targetPort: number): Promise<string>;
  /** Cuts every link that touches one of `nodes`. */
  cut(nodes: readonly string[]): void;
  /** Restores every link. */
  heal(): void;
  /**
   * Delays every chunk on the links that touch one of `nodes` by `ms` each way (0: no delay).
   * Connections made while a link is slow keep going through the delaying relay until they close.
   */
  delay(nodes: readonly string[], ms: number): void;
  close(): Promise<void>;
}

interface Link {
  from: string;
  to: string;
  server: Server;
  sockets: Set<Socket>;
  cut: boolean;
  delayMs: number;
}

/**
 * Relays `from` to `to`, each chunk `link.delayMs` (as it is when the chunk arrives) after it came,
 * in order: one queue and one timer per direction, so chunks never overtake each other.
 */
function forwardDelayed(link: Link, from: Socket, to: Socket): void {
  const queue: { at: number; chunk: Buffer }[] = [];
  let timer: NodeJS.Timeout | null = null;
  let ended = false;
  const drain = () => {
    timer = null;
    while (queue.length > 0 && queue[0]!.at <= Date.now()) to.write(queue.shift()!.chunk);
    if (queue.length > 0) timer = setTimeout(drain, queue[0]!.at - Date.now());
    else if (ended) to.end();
  };
  from.on("data", (chunk: Buffer) => {
    // Never before a chunk already queued, even if the delay was lowered meanwhile.
    const at = Math.max(Date.now() + link.delayMs, queue.at(-1)?.at ?? 0);
    queue.push({ at, chunk });
    timer ??= setTimeout(drain, queue[0]!.at - Date.now());
  });
  from.on("end", () => {
    ended = true;
    timer ??= setTimeout(drain, 0);
  });
  from.on("close", () => {
    if (timer) clearTimeout(timer);
  });
}

export function createLinkProxy(): LinkProxy {
  const links: Link[] = [];
  const drop = (l: Link) => {
    for (const s of l.sockets) s.destroy();
    l.sockets.clear();
  };
  return {
    async urlFor(from, to, targetPort) {
      const link: Link = { from, to, server: createServer(), sockets: new Set(), cut: false, delayMs: 0 };
      link.server.on("connection", (client) => {
        if (link.cut) {
          client.destroy();
          return;
        }
        const upstream = connect(targetPort, "127.0.0.1");
        for (const s of [client, upstream]) {
          link.sockets.add(s);
          s.on("error", () => undefined);
          s.on("close", () => {
            link.sockets.delete(s);
            client.destroy();
            upstream.destroy();
          });
        }
        if (link.delayMs > 0) {
          forwardDelayed(link, client, upstream);
          forwardDelayed(link, upstream, client);
        } else {
          client.pipe(upstream);
          upstream.pipe(client);
        }
      });
      await new Promise<void>((resolve, reject) => {
        link.server.once("error", reject);
        link.server.listen(0, "127.0.0.1", () => resolve());
      });
      links.push(link);
      const port = (link.server.address() as { port: number }).port;
      return `ws://127.0.0.1:${port}`;
    },
    cut(nodes) {
      for (const l of links) {
        if (nodes.includes(l.from) || nodes.includes(l.to)) {
          l.cut = true;
          drop(l);
        }
      }
    },
    heal() {
      for (const l of links) l.cut = false;
    },
    delay(nodes, ms) {
      for (const l of links) if (nodes.includes(l.from) || nodes.includes(l.to)) l.delayMs = ms;
    },
    async close() {
      for (const l of links) drop(l);
      await Promise.all(links.map((l) => new Promise<void>((r) => l.server.close(() => r()))));
    },
  };
}
