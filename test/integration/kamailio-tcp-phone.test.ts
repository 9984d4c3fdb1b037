/**
 * Phones on TCP, with real Kamailio 5.6 nodes, their agents and sipp. Such a phone is reached only
 * down the connection it registered over, so the other nodes get its binding with a Path through
 * the node it registered at (install-plan.ts ownerRoute), whose route(LOCMESH_INBOUND) relays the
 * call on to the phone. (Whether it goes down the phone's own connection or a new one to the
 * phone's port is Kamailio's, and is not told apart here: sipp takes both.) A node whose TCP listener is a wildcard (0.0.0.0) gives the others a
 * Path that points nowhere: its agent says so, and what to change (wildcard-sockets.ts).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ClusterStatus } from "../../agent/contract/cluster-status.js";
import { waitFor } from "../support/agent-process.js";
import { TEST_DOMAIN, startKamailioCluster, type ClusterNode, type KamailioCluster } from "../support/kamailio-cluster.js";
import { sippCall } from "../support/sipp-call.js";
import { startTcpPhone, type TcpPhone } from "../support/sipp-tcp-phone.js";

let dir: string;
let cluster: KamailioCluster;
let n1: ClusterNode;
let n2: ClusterNode;
let n3: ClusterNode;
const phones: TcpPhone[] = [];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "locmesh-tcpphone-"));
  cluster = await startKamailioCluster({
    baseDir: dir,
    n: 3,
    // Every node listens on TCP (a node sends over a Path's transport from a listener of its own);
    // n3's listener is a wildcard.
    node: (i) => ({ kamailio: { sipTcp: { host: i === 2 ? "0.0.0.0" : "127.0.0.1" } } }),
  });
  [n1, n2, n3] = cluster.nodes as [ClusterNode, ClusterNode, ClusterNode];
}, 60_000);

afterAll(async () => {
  await Promise.allSettled(phones.map((p) => p.stop()));
  await cluster?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const status = (n: ClusterNode) => n.agent.call<ClusterStatus>("cluster.status");

describe("a phone on TCP", () => {
  it("registered at n1, answers a call sent to n2, which n2 relays through n1 by the Path it holds", async () => {
    const phone = await startTcpPhone({ dir, proxyPort: n1.kamailio.sipTcpPort!, user: "tina", domain: TEST_DOMAIN });
    phones.push(phone);
    await waitFor("tina in n1's Kamailio", async () => (await n1.lookup(`tina@${TEST_DOMAIN}`)).length === 1, 15_000, 100);
    expect((await n1.lookup(`tina@${TEST_DOMAIN}`))[0]).toMatchObject({ contact: phone.contact, socket: `tcp:127.0.0.1:${n1.kamailio.sipTcpPort}` });
    const atN2 = await waitFor("tina in n2's Kamailio", async () => (await n2.lookup(`tina@${TEST_DOMAIN}`))[0], 15_000, 100);
    expect(atN2.path).toBe(`<sip:127.0.0.1:${n1.kamailio.sipTcpPort};transport=tcp;lr>`);
    await sippCall({ dir, proxyPort: n2.kamailio.sipPort, to: `sip:tina@${TEST_DOMAIN}` });
    await waitFor("tina's phone to note its answer", async () => phone.answered() === 1, 5_000, 50);
    expect((await status(n1)).kamailio?.warnings).toBeUndefined();
  });

  it("registered at a node whose TCP listener is a wildcard, makes that node's agent say what to change", async () => {
    const phone = await startTcpPhone({ dir, proxyPort: n3.kamailio.sipTcpPort!, user: "uma", domain: TEST_DOMAIN });
    phones.push(phone);
    const socket = `tcp:0.0.0.0:${n3.kamailio.sipTcpPort}`;
    await waitFor("uma in n3's Kamailio", async () => (await n3.lookup(`uma@${TEST_DOMAIN}`)).length === 1, 15_000, 100);
    expect((await n3.lookup(`uma@${TEST_DOMAIN}`))[0]?.socket).toBe(socket);
    // The Path the others get points at 0.0.0.0: no address.
    const atN1 = await waitFor("uma in n1's Kamailio", async () => (await n1.lookup(`uma@${TEST_DOMAIN}`))[0], 15_000, 100);
    expect(atN1.path).toBe(`<sip:0.0.0.0:${n3.kamailio.sipTcpPort};transport=tcp;lr>`);
    const warnings = (await status(n3)).kamailio?.warnings ?? [];
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(new RegExp(`^phones registered over TCP, TLS or WebSocket on Kamailio's wildcard listener ${socket.replace(/\./g, "\\.")}: .*calls to these phones through other nodes fail`));
    await n3.agent.waitForLog(/wildcard listener tcp:0\.0\.0\.0:\d+.*Repeated hourly while such registrations come/);
    expect((await status(n1)).kamailio?.warnings).toBeUndefined();
  });
});
