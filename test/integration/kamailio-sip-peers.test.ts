/**
 * The list of nodes that may relay calls through a Kamailio to its phones (the include's
 * route(LOCMESH_INBOUND), $shv(locmesh_peers)), kept current by the agent over jsonrpcs
 * (agent/kamailio/sip-peer-list.ts): with real Kamailio 5.6 and agent processes. Before it, a node
 * added to the cluster needed a new include and a restart of every other node's Kamailio.
 */
import { createSocket, type Socket as UdpSocket } from "node:dgram";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ClusterStatus } from "../../agent/contract/cluster-status.js";
import type { SipPeersStatus } from "../../agent/contract/kamailio-status.js";
import { createCoreRpc } from "../../agent/kamailio/core-rpc.js";
import { createFifoClient } from "../../agent/kamailio/fifo-client.js";
import { KamailioRpcError } from "../../agent/kamailio/jsonrpcs-wire.js";
import { silentLogger } from "../../agent/ops/logger.js";
import { waitFor } from "../support/agent-process.js";
import { startKamailioCluster, type ClusterNode, type KamailioCluster } from "../support/kamailio-cluster.js";
import { relayInvite } from "../support/relay-invite.js";

let dir: string;
let cluster: KamailioCluster;
let n1: ClusterNode;
let n2: ClusterNode;
let phone: UdpSocket;
const received: string[] = [];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "locmesh-sippeers-"));
  phone = createSocket("udp4");
  phone.on("message", (m) => received.push(m.toString()));
  await new Promise<void>((resolve) => phone.bind(0, "127.0.0.1", resolve));
  cluster = await startKamailioCluster({
    baseDir: dir,
    n: 2,
    node: (i) => (i === 0
      // n1's agent sets the list its config gives.
      ? { agentKamailio: { sipPeers: ["127.0.0.1"] } }
      // n2's include was generated with `kamailio-cfg --peers 127.0.0.3`: fixed.
      : { kamailio: { locmesh: { meshPeers: ["127.0.0.3"], peersFixed: true } } }),
  });
  [n1, n2] = cluster.nodes as [ClusterNode, ClusterNode];
}, 90_000);

afterAll(async () => {
  await cluster?.close();
  await new Promise<void>((resolve) => phone?.close(() => resolve()));
  if (dir) rmSync(dir, { recursive: true, force: true });
});

async function withCore<T>(n: ClusterNode, fn: (core: ReturnType<typeof createCoreRpc>) => Promise<T>): Promise<T> {
  const rpc = createFifoClient({ fifoPath: n.kamailio.fifoPath, replyDir: n.kamailio.replyDir, timeoutMs: 2000, log: silentLogger(), maxInFlight: 1, autoResync: false });
  try {
    return await fn(createCoreRpc({ rpc }));
  } finally {
    await rpc.close();
  }
}
const peersShv = (n: ClusterNode) => withCore(n, (core) => core.getShv("locmesh_peers"));

/** Whether n's Kamailio relayed an INVITE from `from` to the phone (else it answered 403, the test cfg's answer to anything else). */
async function relays(n: ClusterNode, from: string, callId: string): Promise<boolean> {
  const replies = await relayInvite({
    from, callId, sipPort: n.kamailio.sipPort, phonePort: phone.address().port,
    done: (r) => received.some((m) => m.includes(`Call-ID: ${callId}`)) || r.some((m) => /^SIP\/2\.0 403/.test(m)),
  });
  const relayed = received.some((m) => m.includes(`Call-ID: ${callId}`));
  if (!relayed) expect(replies).toMatch(/^SIP\/2\.0 403/m);
  return relayed;
}

async function sipPeersStatus(n: ClusterNode): Promise<SipPeersStatus | undefined> {
  return (await n.agent.call<ClusterStatus>("cluster.status")).kamailio?.sipPeers;
}

function setSipPeers(n: ClusterNode, sipPeers: string[]): void {
  const config = n.agent.spec.config ?? {};
  n.agent.spec.config = { ...config, kamailio: { ...(config["kamailio"] as object), sipPeers } };
  n.agent.reload();
}

describe("the nodes that may relay calls through Kamailio", () => {
  it("change on SIGHUP without a Kamailio restart, and come back after one", async () => {
    await waitFor("n1's list set by its agent", async () => (await peersShv(n1)) === "127.0.0.1");
    expect(await relays(n1, "127.0.0.2", "sp-before")).toBe(false);

    // A node at 127.0.0.2 joins: the operator adds it to kamailio.sipPeers and reloads the agent.
    setSipPeers(n1, ["127.0.0.1", "127.0.0.2"]);
    await waitFor("the new list in n1's Kamailio", async () => (await peersShv(n1)) === "127.0.0.1,127.0.0.2");
    expect(await relays(n1, "127.0.0.2", "sp-added")).toBe(true);
    expect(readFileSync(n1.agent.logPath, "utf8")).toContain("Kamailio lets these nodes relay calls to its phones: 127.0.0.1, 127.0.0.2");
    expect((await sipPeersStatus(n1))).toEqual({ state: "set", peers: ["127.0.0.1", "127.0.0.2"], note: null });

    // Kamailio restarts with the include's list (127.0.0.1); the agent puts its own back.
    await n1.kamailio.kill9();
    await n1.kamailio.start();
    await waitFor("the list back in n1's restarted Kamailio", async () => (await peersShv(n1).catch(() => null)) === "127.0.0.1,127.0.0.2", 20_000, 100);
    expect(await relays(n1, "127.0.0.2", "sp-restarted")).toBe(true);

    // And a node taken out may no longer relay.
    setSipPeers(n1, ["127.0.0.1"]);
    await waitFor("127.0.0.2 out of n1's list", async () => (await peersShv(n1)) === "127.0.0.1");
    expect(await relays(n1, "127.0.0.2", "sp-removed")).toBe(false);
  }, 60_000);

  it("leaves a list fixed with --peers alone until the config sets kamailio.sipPeers", async () => {
    await waitFor("n2's agent saying it leaves the fixed list", async () => readFileSync(n2.agent.logPath, "utf8").includes("fixed with `locmesh kamailio-cfg --peers`"));
    // Its mesh.peers' host (127.0.0.1) did not replace the include's list.
    expect(await peersShv(n2)).toBe("127.0.0.3");
    expect(await sipPeersStatus(n2)).toMatchObject({ state: "fixed", peers: null });
    expect(await relays(n2, "127.0.0.1", "sp-fixed")).toBe(false);
    setSipPeers(n2, ["127.0.0.1"]);
    await waitFor("n2's list from kamailio.sipPeers", async () => (await peersShv(n2)) === "127.0.0.1");
    expect(await relays(n2, "127.0.0.1", "sp-unfixed")).toBe(true);
  }, 60_000);

  it("compares whole addresses, and a variable the include lacks answers 404 (what the agent takes for an old include)", async () => {
    await withCore(n2, (core) => core.setShvString("locmesh_peers", "127.0.0.10,127.0.0.100"));
    expect(await relays(n2, "127.0.0.1", "sp-prefix")).toBe(false);
    await withCore(n2, (core) => core.setShvString("locmesh_peers", "127.0.0.1"));
    const missing = await withCore(n2, (core) => core.getShv("locmesh_no_such_variable")).catch((e: unknown) => e);
    expect(missing).toBeInstanceOf(KamailioRpcError);
    expect(missing).toMatchObject({ code: 404 });
  }, 30_000);
});
