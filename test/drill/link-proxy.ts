/**
 * A TCP relay on each mesh link, so a drill can cut links between agents (a partition) and heal
 * them again. Cutting destroys the live connections and refuses new ones, as a dead switch would
 * from the agents' point of view; healing accepts again.
 */
import { createServer, connect, type Server, type Socket } from "node:net";

export interface LinkProxy {
  /** ws:// URL agent `from` should dial to reach `to`. */
  urlFor(from: string, to: string, targetPort: number): Promise<string>;
  /** Cuts every link that touches one of `nodes`. */
  cut(nodes: readonly string[]): void;
  /** Restores every link. */
  heal(): void;
  close(): Promise<void>;
}

interface Link {
  from: string;
  to: string;
  server: Server;
  sockets: Set<Socket>;
  cut: boolean;
}

export function createLinkProxy(): LinkProxy {
  const links: Link[] = [];
  const drop = (l: Link) => {
    for (const s of l.sockets) s.destroy();
    l.sockets.clear();
  };
  return {
    async urlFor(from, to, targetPort) {
      const link: Link = { from, to, server: createServer(), sockets: new Set(), cut: false };
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
        client.pipe(upstream);
        upstream.pipe(client);
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
    async close() {
      for (const l of links) drop(l);
      await Promise.all(links.map((l) => new Promise<void>((r) => l.server.close(() => r()))));
    },
  };
}
