import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { WebSocketServer } from "ws";
import { ListenError, listenOn } from "../../agent/ops/listen.js";

const servers: Server[] = [];
const later: Error[] = [];
const noLater = (err: Error) => void later.push(err);
afterEach(async () => {
  for (const s of servers.splice(0)) await new Promise((r) => s.close(r));
});

function server(): { server: Server; wss: WebSocketServer } {
  const s = createServer();
  servers.push(s);
  return { server: s, wss: new WebSocketServer({ server: s }) };
}

describe("listenOn", () => {
  it("listens, and refuses a port in use with a ListenError naming the port and the setting (the process does not crash)", async () => {
    const a = server();
    await listenOn(a.server, a.wss, { host: "127.0.0.1", port: 0 }, "peer mesh", "mesh.listen.port", noLater);
    const port = (a.server.address() as AddressInfo).port;
    const b = server();
    const err = await listenOn(b.server, b.wss, { host: "127.0.0.1", port }, "peer mesh", "mesh.listen.port", noLater).then(() => null, (e: unknown) => e);
    expect(err).toBeInstanceOf(ListenError);
    expect((err as ListenError).code).toBe("EADDRINUSE");
    // The failed bind reached the caller as the rejection, not as a later server error.
    expect(later).toEqual([]);
    expect((err as Error).message).toBe(`the peer mesh port 127.0.0.1:${port} is already in use (another locmesh, or another program, holds it): stop that, or set mesh.listen.port to a free port`);
  });

  it("says which setting to change for an address this host does not have", async () => {
    const a = server();
    const err = await listenOn(a.server, a.wss, { host: "192.0.2.1", port: 0 }, "local API", "api.listen.port", noLater).then(() => null, (e: unknown) => e);
    expect((err as ListenError).code).toBe("EADDRNOTAVAIL");
    expect((err as Error).message).toContain("set api.listen.host to one of its addresses");
  });
});
