/**
 * The drills' cluster: 3 real Kamailio 5.6 nodes with their agents (test/support's cluster), every
 * mesh link through a cuttable relay, plus traffic (sipp REGISTERs and API alias churn) and the
 * full-dump check against the ledger. In hub mode (`hubs`) the agents have no mesh peers and reach
 * each other through hubs on one PostgreSQL (drill-hubs.ts), whose store is checked as well.
 */
import { mkdirSync } from "node:fs";
import type { UsrlocContact } from "../../agent/kamailio/usrloc-contact.js";
import { startKamailioCluster, TEST_DOMAIN, type ClusterNode, type KamailioCluster, type KamailioClusterOptions } from "../support/kamailio-cluster.js";
import { sleep, waitFor, type AgentProcess } from "../support/agent-process.js";
import type { HubProcess } from "../support/hub-process.js";
import type { PostgresProcess } from "../support/postgres-process.js";
import { startAliasTraffic, type AliasTraffic } from "./alias-traffic.js";
import { Ledger } from "./ledger.js";
import { startDrillHubs, type DrillHubs } from "./drill-hubs.js";
import { createLinkProxy, type LinkProxy } from "./link-proxy.js";
import { startSipTraffic, type SipTraffic, type SipTrafficOptions } from "./sip-traffic.js";
import { verify, viewOf, type Verdict, type View } from "./verify.js";

export { TEST_DOMAIN };

export interface DrillCluster {
  nodes: ClusterNode[];
  node(id: string): ClusterNode;
  links: LinkProxy;
  /** Hub mode only (else empty / null): the hubs, and the PostgreSQL they share. */
  hubs: HubProcess[];
  postgres: PostgresProcess | null;
  ledger: Ledger;
  /** Every node's journal and Kamailio (and in hub mode the hubs' store), the drill's records only. */
  views(): Promise<View[]>;
  /** Polls views() until they all match the ledger, or `timeoutMs` passes. */
  converge(timeoutMs: number): Promise<{ verdict: Verdict; seconds: number; views: View[] }>;
  close(): Promise<void>;
}

export type DrillClusterOptions = Omit<KamailioClusterOptions, "peerUrl" | "baseDir"> & {
  dir: string;
  /** Hub mode: this many hubs on one PostgreSQL, and agents configured with `hub.urls` instead of peers. */
  hubs?: number;
  /**
   * How to read a node's Kamailio, when `ul.dump` cannot: e.g. usrloc db_mode 3 keeps no cache, so
   * its dump is always empty (kamailio-5.6.md surprise 7). Null: use `ul.dump`.
   */
  kamailioContacts?: (node: ClusterNode, ledger: Ledger) => Promise<UsrlocContact[] | null>;
};

/** Keys the drills write: sipp users "d<node>u…" and aliases "da…". */
export const drillKey = (key: string): boolean => /^d/.test(key);

export async function startDrillCluster(o: DrillClusterOptions): Promise<DrillCluster> {
  mkdirSync(o.dir, { recursive: true });
  const links = createLinkProxy();
  let hubs: DrillHubs | null = null;
  let cluster: KamailioCluster;
  try {
    hubs = o.hubs ? await startDrillHubs(o.dir, o.hubs) : null;
    cluster = await startKamailioCluster({
      ...o,
      baseDir: o.dir,
      agentKamailio: { reconcileIntervalSec: 5, ...o.agentKamailio },
      ...(hubs ? { node: hubNode(hubs, o.node) } : { peerUrl: (from: string, to: string, port: number) => links.urlFor(from, to, port) }),
    });
  } catch (err) {
    await hubs?.close();
    await links.close();
    throw err;
  }
  const ledger = new Ledger();
  const views = async (): Promise<View[]> => {
    const out: View[] = [];
    for (const n of cluster.nodes) {
      out.push(await journalView(`${n.id} journal`, n.agent));
      const dump = ((await o.kamailioContacts?.(n, ledger)) ?? (await n.dump())).filter((c) => c.status !== "expired" && c.status !== "deleted");
      out.push(
        viewOf(
          `${n.id} kamailio`,
          dump.filter((c) => c.table === "location"),
          dump.filter((c) => c.table === "aliases").map((c) => ({ alias: c.aor, target: c.contact })),
          drillKey,
        ),
      );
    }
    // The hubs share one database: one view of it, through the first hub that is up.
    const hub = hubs?.hubs.find((h) => h.child !== null && h.child.exitCode === null && h.child.signalCode === null);
    if (hubs && !hub) throw new Error("no hub is running to read PostgreSQL through");
    if (hub) out.push(await journalView(`postgres (${hub.spec.id})`, hub));
    return out;
  };
  return {
    nodes: cluster.nodes,
    node(id) {
      const n = cluster.nodes.find((x) => x.id === id);
      if (!n) throw new Error(`no node ${id}`);
      return n;
    },
    links,
    hubs: hubs?.hubs ?? [],
    postgres: hubs?.postgres ?? null,
    ledger,
    views,
    async converge(timeoutMs) {
      const start = Date.now();
      let verdict: Verdict | null = null;
      let last: View[] = [];
      for (;;) {
        try {
          last = await views();
          verdict = verify(ledger, last);
          if (verdict.ok) break;
        } catch (err) {
          // A node still restarting: try again until the deadline.
          if (Date.now() - start > timeoutMs) throw err;
        }
        if (Date.now() - start > timeoutMs) break;
        await sleep(1000);
      }
      return { verdict: verdict!, seconds: (Date.now() - start) / 1000, views: last };
    },
    async close() {
      await cluster.close();
      await hubs?.close();
      await links.close();
    },
  };
}

/** Agent `index`'s options with the hub section added and no mesh peers. */
function hubNode(hubs: DrillHubs, own: KamailioClusterOptions["node"]): NonNullable<KamailioClusterOptions["node"]> {
  return (i) => {
    const mine = own?.(i);
    const config = mine?.agentConfig ?? {};
    return { ...mine, agentConfig: { ...config, ...hubs.agentConfig(i), mesh: { ...(config["mesh"] as object | undefined), peers: [] } } };
  };
}

async function journalView(name: string, daemon: AgentProcess): Promise<View> {
  const [bindings, aliases] = await Promise.all([listAll<{ aor: string; contact: string }>(daemon, "location.list"), listAll<{ alias: string; target: string }>(daemon, "alias.list")]);
  return viewOf(name, bindings, aliases, drillKey);
}

/** Waits until each of `ids` (default: every node) reports a live session with every peer. */
export async function waitConnected(c: DrillCluster, timeoutMs: number, ids: readonly string[] = c.nodes.map((n) => n.id)): Promise<void> {
  await waitFor(`${ids.join(", ")} to be connected to every peer`, async () => {
    const all = await Promise.all(ids.map((id) => c.node(id).agent.call<{ peers: { connected: boolean }[] }>("cluster.status")));
    return all.every((s) => s.peers.every((p) => p.connected));
  }, timeoutMs, 100);
}

/** Every item of a paged list method (location.list, alias.list) of one agent or hub. */
export async function listAll<T>(daemon: AgentProcess, method: string): Promise<T[]> {
  const out: T[] = [];
  let after = "";
  for (;;) {
    const page = await daemon.call<{ items: T[]; next: string | null }>(method, { after, limit: 1000 });
    out.push(...page.items);
    if (page.next === null) return out;
    after = page.next;
  }
}

export interface TrafficOptions {
  /** REGISTERs per second per node. */
  registerRate: number;
  seconds: number;
  /** alias calls per second over all nodes (0: none). */
  aliasRate: number;
  /** Distinct aliases the calls pick from (default 200); a small pool makes edits collide. */
  aliasPool?: number;
  /** Only these nodes get REGISTERs (default: all). */
  registerNodes?: readonly string[];
  tag?: string;
  /** sipp settings beyond rate and count (e.g. a storm's contact pool and outstanding limit). */
  sipp?: Pick<SipTrafficOptions, "contacts" | "users" | "limit" | "recvTimeoutMs">;
}

export interface Traffic {
  /** Waits for sipp to finish, stops alias churn, and writes both into the ledger. */
  finish(): Promise<TrafficFigures>;
}

export interface TrafficFigures {
  registers: { sent: number; acked: number; doubt: number };
  aliases: { calls: number; acked: number; failed: number; doubt: number };
}

export async function startTraffic(c: DrillCluster, dir: string, o: TrafficOptions): Promise<Traffic> {
  const sipps: SipTraffic[] = [];
  for (const n of c.nodes) {
    if (o.registerNodes && !o.registerNodes.includes(n.id)) continue;
    sipps.push(
      await startSipTraffic({ dir, node: n.id, sipPort: n.kamailio.sipPort, domain: TEST_DOMAIN, count: Math.max(1, Math.round(o.registerRate * o.seconds)), rate: o.registerRate, ...o.sipp, ...(o.tag ? { tag: o.tag } : {}) }),
    );
  }
  const aliases: AliasTraffic | null =
    o.aliasRate > 0
      ? startAliasTraffic(c.ledger, {
          nodes: c.nodes.map((n) => ({ id: n.id, apiUrl: n.agent.apiUrl, token: n.agent.spec.token })),
          domain: TEST_DOMAIN,
          rate: o.aliasRate,
          ...(o.aliasPool ? { pool: o.aliasPool } : {}),
          ...(o.tag ? { tag: `${o.tag}a` } : {}),
        })
      : null;
  const aliasStop = (async () => {
    await Promise.all(sipps.map((s) => s.done));
    return aliases ? aliases.stop() : { calls: 0, acked: 0, failed: 0, doubt: 0 };
  })();
  return {
    async finish() {
      const a = await aliasStop;
      const r = { sent: 0, acked: 0, doubt: 0 };
      for (const s of sipps) {
        const f = s.record(c.ledger);
        r.sent += f.sent;
        r.acked += f.acked;
        r.doubt += f.doubt;
      }
      return { registers: r, aliases: a };
    },
  };
}
