/**
 * Free ports on 127.0.0.1 for the real processes the tests start.
 *
 * Chosen below the kernel's ephemeral range (ip_local_port_range), not by binding port 0: a port
 * from that range, free when chosen, could become the source port of one of the many connections
 * a run opens before the daemon bound it (a drill's agent died of EADDRINUSE on its mesh port so).
 * Below the range only another listener can take it, and this process never hands a port out twice.
 */
import { createSocket } from "node:dgram";
import { readFileSync } from "node:fs";
import { createServer } from "node:net";

const FLOOR = 20_000;
const handedOut = new Set<number>();

function ephemeralLow(): number {
  try {
    const low = Number(readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim().split(/\s+/)[0]);
    return Number.isInteger(low) && low > FLOOR ? low : 0;
  } catch {
    return 0;
  }
}
const CEILING = ephemeralLow();

/** Whether a TCP listener could take `port` on 127.0.0.1 right now. */
export const tcpFree = (port: number) =>
  new Promise<boolean>((resolve) => {
    const srv = createServer();
    srv.once("error", () => resolve(false));
    srv.listen(port, "127.0.0.1", () => srv.close(() => resolve(true)));
  });

/** Whether a UDP socket could take `port` on 127.0.0.1 right now. */
export const udpFree = (port: number) =>
  new Promise<boolean>((resolve) => {
    const sock = createSocket("udp4");
    sock.once("error", () => resolve(false));
    sock.bind(port, "127.0.0.1", () => sock.close(() => resolve(true)));
  });

async function pick(isFree: (port: number) => Promise<boolean>): Promise<number> {
  if (CEILING === 0) throw new Error("no port range below the ephemeral ports (ip_local_port_range starts at or below 20000)");
  for (let tries = 0; tries < 200; tries++) {
    const port = FLOOR + Math.floor(Math.random() * (CEILING - FLOOR));
    if (handedOut.has(port) || !(await isFree(port))) continue;
    handedOut.add(port);
    return port;
  }
  throw new Error(`no free port found between ${FLOOR} and ${CEILING} in 200 tries`);
}

export function freePort(): Promise<number> {
  return pick(tcpFree);
}

export function freeUdpPort(): Promise<number> {
  return pick(udpFree);
}
