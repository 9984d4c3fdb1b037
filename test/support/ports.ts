/** Free ports on 127.0.0.1 for the real processes the tests start. */
import { createSocket } from "node:dgram";
import { createServer } from "node:net";

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
  });
}

export async function freeUdpPort(): Promise<number> {
  const sock = createSocket("udp4");
  await new Promise<void>((resolve, reject) => {
    sock.once("error", reject);
    sock.bind(0, "127.0.0.1", resolve);
  });
  const { port } = sock.address();
  await new Promise<void>((resolve) => sock.close(resolve));
  return port;
}
