/**
 * The Kamailio side of the issue-3 benchmarks: three ways to run Kamailio 5.6 nodes on 127.0.0.1,
 * all with the same base cfg (kamailio-cfg.ts), `-m 512` shared memory and `debug=0` (no per-REGISTER
 * log line to pipe through node):
 *   - plain: `save("location")` only, no replication;
 *   - locmesh: the include (`route(LOCMESH_REGISTER)` → evapi) with an agent attached to each node
 *     (test/support/kamailio-cluster.ts);
 *   - dmq: Kamailio's own dmq + dmq_usrloc (`sync=1`, `batch_msg_contacts=50`, kamailio-5.6.md §7).
 * Every node also serves jsonrpcs over UDP; the bench reads counts (`stats.fetch`, O(1)) and checks
 * AoRs (`ul.lookup`, one datagram each) over it, never with the quadratic `ul.dump`.
 */
import { execFile } from "node:child_process";
import { createSocket } from "node:dgram";
import { connect, type Socket } from "node:net";
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { LOCMESH_QUEUE, READY_SHV } from "../../agent/kamailio/cfg-include-names.js";
import { createCoreRpc } from "../../agent/kamailio/core-rpc.js";
import { createDgramClient } from "../../agent/kamailio/dgram-client.js";
import { KamailioRpcError, type KamailioRpc } from "../../agent/kamailio/jsonrpcs-wire.js";
import { createUsrlocRpc, type UsrlocRpc } from "../../agent/kamailio/usrloc-rpc.js";
import { silentLogger } from "../../agent/ops/logger.js";
import type { AgentProcess } from "../support/agent-process.js";
import { startKamailioCluster, TEST_DOMAIN } from "../support/kamailio-cluster.js";
import { freeUdpPort, startKamailio, type KamailioProcess } from "../support/kamailio-process.js";
import { SIPP_BIN } from "../support/sipp.js";
import { cpuSecondsOfPid } from "./bench-cluster.js";
import { bindingEdit } from "./workload.js";

const run = promisify(execFile);

/**
 * "hook": locmesh's include in the cfg but no agent attached (what the cfg route alone costs): a
 * bare TCP reader that discards what evapi sends stands in for the agent, since the include holds
 * its queue while no one is connected (cfg-include.ts) and the drain would not run.
 * "floor": after save(), one UDP datagram holding the AoR (corex send_data) to a socket of the
 * bench's: the least a hook that sends each REGISTER from the SIP worker can do.
 */
export type Flavour = "plain" | "hook" | "locmesh" | "dmq" | "floor";

export interface BenchNode {
  id: string;
  kam: KamailioProcess;
  /** jsonrpcs over UDP to this node. */
  rpc: KamailioRpc;
  usrloc: UsrlocRpc;
  /** The attached agent (locmesh only). */
  agent: AgentProcess | null;
}

export interface BenchNodes {
  flavour: Flavour;
  nodes: BenchNode[];
  /** Datagrams the "floor" flavour's socket received so far (0 for the others). */
  notified(): number;
  close(): Promise<void>;
}

export interface NodesOptions {
  n: number;
  baseDir: string;
  shmMb: number;
  /** Kamailio dgram_workers (the agent's writes go there). */
  dgramWorkers: number;
  /** Merged into each agent's kamailio config (locmesh only), e.g. { window: 64 }. */
  agentKamailio?: Record<string, unknown>;
  /** Flags for the agents' node (locmesh only), e.g. --cpu-prof. */
  nodeArgs?: readonly string[];
}

/** Same on every flavour: counts come from kex's stats, and nothing is logged per REGISTER. */
const COMMON_CFG = ['loadmodule "kex.so"', "debug=0"].join("\n");

/** Socket buffers of sipp and of the floor flavour's receiver (the kernel caps them at rmem_max). */
const SIPP_SOCKET_BUFFER = 4 << 20;

async function attach(id: string, kam: KamailioProcess, agent: AgentProcess | null): Promise<BenchNode> {
  const rpc = await createDgramClient({ host: "127.0.0.1", port: kam.dgramPort!, timeoutMs: 5000, log: silentLogger(), maxInFlight: 64 });
  return { id, kam, rpc, usrloc: createUsrlocRpc({ rpc }), agent };
}

/** Kamailios and agents started and not yet closed, for killAllNow(). */
const live = new Set<{ kams: () => KamailioProcess[]; agents: () => AgentProcess[] }>();

/**
 * Last resort for an exiting bench (a signal, a crash): SIGTERM every Kamailio attendant still
 * running (it takes its workers down) and SIGKILL every agent, synchronously.
 */
export function killAllNow(): void {
  for (const l of live) {
    for (const k of l.kams()) if (k.pid()) try { process.kill(k.pid(), "SIGTERM"); } catch { /* gone */ }
    for (const a of l.agents()) if (a.child && a.child.exitCode === null && a.child.signalCode === null) a.child.kill("SIGKILL");
  }
}

export async function startNodes(flavour: Flavour, o: NodesOptions): Promise<BenchNodes> {
  const started = await startNodesUntracked(flavour, o);
  const entry = { kams: () => started.nodes.map((x) => x.kam), agents: () => started.nodes.flatMap((x) => (x.agent ? [x.agent] : [])) };
  live.add(entry);
  return { ...started, close: () => started.close().finally(() => live.delete(entry)) };
}

async function startNodesUntracked(flavour: Flavour, o: NodesOptions): Promise<BenchNodes> {
  const nodes: BenchNode[] = [];
  const closeRpcs = () => Promise.allSettled(nodes.map((x) => x.rpc.close()));
  if (flavour === "locmesh") {
    const cluster = await startKamailioCluster({
      baseDir: o.baseDir,
      n: o.n,
      kamailio: { shmMb: o.shmMb, dgramWorkers: o.dgramWorkers, extraCfg: COMMON_CFG },
      // No periodic ul.dump (quadratic in the table): the bench measures replication, not reconciling.
      agentKamailio: { reconcileIntervalSec: 0, timeoutMs: 5000, ...o.agentKamailio },
      agentConfig: { log: { level: "warn" } },
      ...(o.nodeArgs ? { agentNodeArgs: o.nodeArgs } : {}),
    });
    for (const c of cluster.nodes) nodes.push(await attach(c.id, c.kamailio, c.agent));
    return { flavour, nodes, notified: () => 0, close: async () => { await closeRpcs(); await cluster.close(); } };
  }
  const ports = await Promise.all(Array.from({ length: o.n }, () => freeUdpPort()));
  const kams: KamailioProcess[] = [];
  const sink = flavour === "floor" ? await datagramCounter() : null;
  const readers: Socket[] = [];
  const close = async () => {
    await closeRpcs();
    for (const r of readers) r.destroy();
    await Promise.allSettled(kams.map((k) => k.close()));
    sink?.close();
  };
  try {
    for (const [i, port] of ports.entries()) {
      kams.push(await startKamailio({
        sipPort: port, shmMb: o.shmMb, dgramWorkers: o.dgramWorkers,
        extraCfg: [`alias="${TEST_DOMAIN}"`, COMMON_CFG].join("\n"),
        ...(flavour === "hook" ? { locmesh: { aliasMode: "usrloc" as const } } : {}),
        ...(flavour === "dmq" ? { dmq: { peerPorts: ports.filter((_, j) => j !== i), batchMsgContacts: 50 } } : {}),
        ...(sink ? { afterSave: { modules: ["corex"], lines: `send_data("sip:127.0.0.1:${sink.port}", "$tu");` } } : {}),
      }));
    }
    for (const [i, kam] of kams.entries()) nodes.push(await attach(`n${i + 1}`, kam, null));
    if (flavour === "dmq") await waitDmqMesh(nodes);
    // No agent opens the include's REGISTER gate or reads evapi here: do what it would.
    if (flavour === "hook") {
      for (const node of nodes) {
        readers.push(await discardingReader(node.kam.evapiPort as number));
        await createCoreRpc({ rpc: node.rpc }).setReady(READY_SHV);
      }
    }
  } catch (err) {
    await close();
    throw err;
  }
  return { flavour, nodes, notified: () => sink?.count() ?? 0, close };
}

/** A TCP connection to evapi from the include's agent address that reads and drops everything. */
async function discardingReader(port: number): Promise<Socket> {
  const sock = connect({ host: "127.0.0.1", port, localAddress: "127.0.0.1" });
  sock.on("data", () => undefined);
  await new Promise<void>((resolve, reject) => {
    sock.once("error", reject);
    sock.once("connect", () => resolve());
  });
  sock.on("error", () => undefined); // closed with its Kamailio
  await sleep(100); // evapi's connection-new route runs after accept
  return sock;
}

/** A UDP socket on 127.0.0.1 that counts what it receives (the "floor" flavour's receiver). */
async function datagramCounter(): Promise<{ port: number; count(): number; close(): void }> {
  const socket = createSocket({ type: "udp4", recvBufferSize: SIPP_SOCKET_BUFFER });
  let received = 0;
  socket.on("message", () => received++);
  await new Promise<void>((resolve, reject) => {
    socket.once("error", reject);
    socket.bind(0, "127.0.0.1", () => resolve());
  });
  return { port: socket.address().port, count: () => received, close: () => socket.close() };
}

/** Until every dmq node lists all n nodes as active (notifications go both ways at startup). */
export async function waitDmqMesh(nodes: readonly BenchNode[], timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const lists = await Promise.all(nodes.map((x) => x.rpc.call<{ status: string }[]>("dmq.list_nodes")));
    if (lists.every((l) => l.filter((e) => e.status === "active").length === nodes.length)) return;
    if (Date.now() > deadline) throw new Error(`dmq nodes did not all see each other: ${JSON.stringify(lists)}`);
    await sleep(100);
  }
}

/** CPU seconds (user + system) used so far by a node's Kamailio processes and by its agent. */
export async function cpuOf(node: BenchNode): Promise<{ kamailio: number; agent: number }> {
  const pids = [node.kam.pid(), ...(await node.kam.processes()).map((p) => p.pid)];
  const agentPid = node.agent?.child?.pid;
  return { kamailio: pids.reduce((sum, pid) => sum + cpuSecondsOf(pid), 0), agent: agentPid ? cpuSecondsOf(agentPid) : 0 };
}

/** A process that is gone counts 0 (a Kamailio child may exit between listing and reading). */
function cpuSecondsOf(pid: number): number {
  try {
    return cpuSecondsOfPid(pid);
  } catch {
    return 0;
  }
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Waits until the include's queue of REGISTERs (cfg-include.ts, mqueue "locmesh") is empty on
 * every node, so that CPU read afterwards includes the drain's work for the REGISTERs just sent.
 * Nodes without the include have no such queue and count as drained.
 */
export async function queuesDrained(nodes: readonly BenchNode[], timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (const node of nodes) {
    for (;;) {
      let size: number;
      try {
        size = (await node.rpc.call<{ size: number }>("mqueue.get_size", [LOCMESH_QUEUE])).size;
      } catch (err) {
        if (err instanceof KamailioRpcError) break; // no mqueue module or no such queue: nothing to drain
        throw err;
      }
      if (size === 0) break;
      if (Date.now() > deadline) throw new Error(`${node.id}: the locmesh REGISTER queue still holds ${size} after ${timeoutMs} ms`);
      await sleep(10);
    }
  }
}

/** Contacts in the node's `location` domain (usrloc's own counter, O(1)). */
export async function contactCount(node: BenchNode): Promise<number> {
  const s = await node.rpc.call<Record<string, string>>("stats.fetch", ["usrloc:"]);
  return Number(s["usrloc.location_contacts"] ?? NaN);
}

/**
 * Polls every node's count every `pollMs` until each reaches `want[i]`; returns performance.now()
 * at the poll that saw the last one arrive, or null at the deadline, and the last counts.
 */
/**
 * Polls until every node holds at least `want`; `at` is when (performance.now()), null on timeout.
 * `lastChangeAt` is when the counts last moved: for a node that never gets there, when it stopped.
 */
export async function waitCounts(
  nodes: readonly BenchNode[], want: readonly number[], timeoutMs: number, pollMs = 20,
): Promise<{ at: number | null; counts: number[]; lastChangeAt: number }> {
  const deadline = performance.now() + timeoutMs;
  let counts: number[] = [];
  let lastChangeAt = performance.now();
  for (;;) {
    const prev = counts;
    counts = await Promise.all(nodes.map(contactCount));
    const now = performance.now();
    if (counts.some((c, i) => c !== prev[i])) lastChangeAt = now;
    if (counts.every((c, i) => c >= want[i]!)) return { at: now, counts, lastChangeAt };
    if (now > deadline) return { at: null, counts, lastChangeAt };
    await sleep(pollMs);
  }
}

/** Runs `fn(i)` for i in [0, count) with `window` calls in flight. */
export async function pipelined(count: number, window: number, fn: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < count) await fn(next++);
  };
  await Promise.all(Array.from({ length: Math.min(window, count) }, worker));
}

/** How many of the AoRs `<prefix><n>@domain` (n = 1..count) have no contact on the node (ul.lookup each). */
export async function missingAors(node: BenchNode, prefix: string, count: number, domain = TEST_DOMAIN): Promise<number> {
  let missing = 0;
  await pipelined(count, 32, async (i) => {
    if ((await node.usrloc.ulLookup("location", `${prefix}${i + 1}@${domain}`)).length === 0) missing++;
  });
  return missing;
}

/**
 * The bench workload's bindings (workload.ts) as ul.add writes, `window` in flight, into one node;
 * resolves with how many Kamailio refused (dmq_usrloc under a burst: "500 Can't insert contact").
 */
/**
 * ul.add of `count` bindings into one Kamailio, `window` in flight, at most `perSecond` started
 * per second when given (dmq_usrloc replicates each insert live and refuses inserts with "Can't
 * insert contact" when it falls behind). Returns how many Kamailio refused.
 */
export async function ulAddBulk(node: BenchNode, prefix: string, count: number, window: number, perSecond?: number): Promise<number> {
  const nowSec = Math.floor(Date.now() / 1000);
  let refused = 0;
  const start = Date.now();
  await pipelined(count, window, async (i) => {
    if (perSecond !== undefined) {
      const wait = start + (i * 1000) / perSecond - Date.now();
      if (wait > 0) await sleep(wait);
    }
    const edit = bindingEdit(prefix, i, nowSec);
    if (edit.op !== "upsert") throw new Error("workload.ts makes upserts only");
    const b = edit.binding;
    await node.usrloc.ulAdd("location", b.aor.replace(/^sip:/, ""), {
      contact: b.contact, expires: b.expires, q: b.q ?? -1, path: b.path ?? "", received: b.received ?? "", socket: b.socket ?? "",
      flags: b.flags ?? 0, cflags: b.cflags ?? 0, methods: b.methods ?? 0,
    }, nowSec).catch((err: unknown) => {
      if (!(err instanceof KamailioRpcError)) throw err;
      refused++;
      return "refused";
    });
  });
  return refused;
}

export interface SippOutcome {
  /** REGISTERs answered 200 OK, by sipp's own count. */
  successful: number;
  failed: number;
  /** sipp's elapsed time from its first REGISTER to its end (including the wait for lost ones). */
  seconds: number;
  /**
   * From sipp's start to its last 200 OK (from its per-call response-time trace, 1 ms steps).
   * successful/answeredSeconds is the rate the registrar answered at: a REGISTER lost on the way
   * does not stretch it by the recv_timeout that sipp waits for it before it gives up.
   */
  answeredSeconds: number;
  ok: boolean;
  output: string;
}

/**
 * `count` REGISTERs (`<prefix>1..count@example.com`, one contact each, from one local port) at
 * `rate`/s with at most `limit` unanswered; no retransmission (a lost REGISTER counts as failed
 * after `timeoutSec`). successful/answeredSeconds is the registrar's throughput when `rate`
 * exceeds it.
 */
export async function sippRegisters(o: { dir: string; sipPort: number; count: number; rate: number; limit: number; prefix: string; timeoutSec?: number }): Promise<SippOutcome> {
  const localPort = await freeUdpPort();
  const scenario = join(o.dir, `register-${o.prefix}.xml`);
  writeFileSync(scenario, registerScenario(o.prefix, TEST_DOMAIN));
  const wall = Math.ceil(o.count / Math.min(o.rate, 2000)) + 30;
  const args = [
    "-sf", scenario, "-m", String(o.count), "-r", String(o.rate), "-l", String(o.limit),
    "-i", "127.0.0.1", "-p", String(localPort), "-nostdin", "-timeout", `${wall}s`, "-recv_timeout", `${(o.timeoutSec ?? 2) * 1000}`,
    // sipp's socket buffers default to 64 KB: a burst of `limit` 200 OKs overflows it on loopback
    // (RcvbufErrors in /proc/net/snmp), and each reply lost there became a "failed" REGISTER that
    // held the run open for the whole recv_timeout, 2 s added to a 0.5 s run.
    "-buff_size", String(SIPP_SOCKET_BUFFER),
    // One line per answered REGISTER: "<ms since start>;<response time>;<rtd>" (answeredSeconds).
    "-trace_rtt", "-rtt_freq", "1",
    `127.0.0.1:${o.sipPort}`,
  ];
  let output: string;
  let ok = true;
  try {
    output = (await run(SIPP_BIN, args, { cwd: o.dir, timeout: (wall + 10) * 1000, maxBuffer: 64 << 20 })).stdout;
  } catch (err) {
    ok = false;
    output = (err as { stdout?: string }).stdout ?? String(err);
  }
  const tail = output.slice(output.lastIndexOf("Statistics Screen"));
  const cumulative = (name: string) => Number(new RegExp(`${name}\\s*\\|\\s*\\d+\\s*\\|\\s*(\\d+)`).exec(tail)?.[1] ?? NaN);
  const time = (name: string) => Number(new RegExp(`${name}\\s*\\|[^|]*\\s(\\d+\\.\\d+)\\s*$`, "m").exec(tail)?.[1] ?? NaN);
  return {
    successful: cumulative("Successful call"),
    failed: cumulative("Failed call"),
    seconds: time("Current Time") - time("Start Time"),
    answeredSeconds: lastAnswerSeconds(o.dir, `register-${o.prefix}_`),
    ok,
    output: tail.slice(0, 3000),
  };
}

/** The latest "Date_ms" in sipp's -trace_rtt file(s) `<scenario>_<pid>_rtt.csv` in `dir`, in seconds. */
function lastAnswerSeconds(dir: string, scenarioPrefix: string): number {
  let lastMs = NaN;
  for (const name of readdirSync(dir)) {
    if (!name.startsWith(scenarioPrefix) || !name.endsWith("_rtt.csv")) continue;
    for (const line of readFileSync(join(dir, name), "utf8").split("\n").slice(1)) {
      const ms = Number.parseFloat(line.split(";")[0]!);
      if (Number.isFinite(ms) && !(ms <= lastMs)) lastMs = ms;
    }
  }
  return lastMs / 1000;
}

function registerScenario(prefix: string, domain: string): string {
  return `<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="locmesh bench register">
  <send start_rtd="1">
    <![CDATA[
REGISTER sip:${domain} SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
Max-Forwards: 70
From: <sip:${prefix}[call_number]@${domain}>;tag=[pid]SIPpTag[call_number]
To: <sip:${prefix}[call_number]@${domain}>
Call-ID: [call_id]
CSeq: 1 REGISTER
Contact: <sip:${prefix}[call_number]@[local_ip]:[local_port]>
Expires: 3600
User-Agent: sipp-bench
Content-Length: 0

    ]]>
  </send>
  <recv response="200" rtd="1"/>
</scenario>
`;
}
