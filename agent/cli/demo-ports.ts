/**
 * The demo's fixed ports on 127.0.0.1, checked before anything starts: a leftover demo or agent on
 * the same port would otherwise answer the readiness checks in place of the new one.
 */
import { createSocket } from "node:dgram";
import { createServer } from "node:net";

export interface DemoPorts {
  /** Agent mesh (WebSocket). */
  mesh: number;
  /** Agent local API (HTTP). */
  api: number;
  /** Kamailio SIP, udp and tcp. */
  sip: number;
  /** Kamailio jsonrpcs datagram socket (udp). */
  rpc: number;
  /** Kamailio evapi (tcp), where the agent takes registrar events from. */
  evapi: number;
}

/**
 * Node i (1-based): mesh basePort+i, API basePort+80+i; SIP sipBasePort+i, jsonrpcs
 * sipBasePort+100+i, evapi sipBasePort+200+i. Defaults 7100 and 5070 give 7101/7181 and
 * 5071/5171/5271 for node 1.
 */
export function demoPorts(i: number, basePort: number, sipBasePort: number): DemoPorts {
  return { mesh: basePort + i, api: basePort + 80 + i, sip: sipBasePort + i, rpc: sipBasePort + 100 + i, evapi: sipBasePort + 200 + i };
}

export function checkBasePorts(count: number, basePort: number, sipBasePort: number, kamailio: boolean): void {
  const problems: string[] = [];
  if (!Number.isInteger(basePort) || basePort < 1024 || basePort + 80 + count > 65535) {
    problems.push(`--base-port must be a whole number from 1024 to ${65535 - 80 - count}, got ${basePort}`);
  }
  if (kamailio && (!Number.isInteger(sipBasePort) || sipBasePort < 1024 || sipBasePort + 200 + count > 65535)) {
    problems.push(`--sip-base-port must be a whole number from 1024 to ${65535 - 200 - count}, got ${sipBasePort}`);
  }
  if (problems.length > 0) throw new Error(problems.join("; "));
}

/** Every port the demo will bind, free on 127.0.0.1 (TCP and, for SIP and jsonrpcs, UDP). */
export async function assertPortsFree(all: readonly DemoPorts[], kamailio: boolean): Promise<void> {
  for (const p of all) {
    await assertTcpFree(p.mesh);
    await assertTcpFree(p.api);
    if (!kamailio) continue;
    await assertTcpFree(p.sip);
    await assertUdpFree(p.sip);
    await assertUdpFree(p.rpc);
    await assertTcpFree(p.evapi);
  }
}

const inUse = (proto: string, port: number, err: NodeJS.ErrnoException) =>
  new Error(`${proto} port ${port} on 127.0.0.1 is in use (${err.code ?? err.message}); is another demo, agent or Kamailio running? Stop it first, or pick other ports with --base-port / --sip-base-port`);

function assertTcpFree(port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once("error", (err: NodeJS.ErrnoException) => reject(inUse("tcp", port, err)));
    probe.listen(port, "127.0.0.1", () => probe.close(() => resolve()));
  });
}

function assertUdpFree(port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const probe = createSocket("udp4");
    probe.once("error", (err: NodeJS.ErrnoException) => {
      probe.close();
      reject(inUse("udp", port, err));
    });
    probe.bind(port, "127.0.0.1", () => probe.close(() => resolve()));
  });
}
