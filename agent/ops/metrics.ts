/** Prometheus metrics for one agent or hub; a registry per instance, no global state. */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics, type Metric } from "prom-client";
import { AGENTS_GO_ELSEWHERE } from "../contract/postgres-standing.js";
import type { KeyRole } from "./key-ring.js";

/** One peer's (or, in hub mode, the hub link's) state, read at every scrape. */
export interface PeerGauge {
  peer: string;
  connected: boolean;
  /** Changes it has not acknowledged; null while it is not connected (then nobody knows). */
  behindChanges: number | null;
}

/**
 * Where the gauges that describe state come from, read when Prometheus scrapes, so that they are
 * current without anyone polling `cluster.status`, a peer never reached has its series (at 0), and a
 * peer taken out of the config loses it. Set by the composition root once the parts exist.
 */
export interface ScrapeSources {
  peers?: () => Promise<PeerGauge[]>;
  records?: () => Promise<{ locations: number; aliases: number }>;
  /** Hubs only: whether the hub's PostgreSQL answers (hub/pg-watch.ts); giving it exports locmesh_hub_postgres_up. */
  postgresUp?: () => boolean;
}

const HUB_POSTGRES_UP = "locmesh_hub_postgres_up";

/**
 * Every reason a peer or API authentication is refused for, each exported at 0 from the start: a
 * counter series that first appears already at 5 gives `increase()` nothing, so a first burst of
 * wrong keys would never alert (README, "What to alert on").
 */
export const AUTH_FAILURE_REASONS = [
  "wrong key", "unknown node id", "replica id does not match node id", "a node cannot peer with itself (duplicate nodeId?)",
  "server proof", "timeout", "peer locked out", "api no token", "api wrong token", "api not signed in", "api locked out",
] as const;
export type AuthFailureReason = (typeof AUTH_FAILURE_REASONS)[number];

/** Which of its keys a peer or API client used (ops/key-ring.ts), each series at 0 from the start too. */
const KEY_ROLES: readonly KeyRole[] = ["own", "accepted"];
/** Where a local change comes from: a registrar event, the reconcile with Kamailio, or the API. Each refused one is counted by it (series at 0 from the start). */
export const CHANGE_SOURCES = ["event", "reconcile", "api"] as const;
export type ChangeSource = (typeof CHANGE_SOURCES)[number];
/** Why a write into Kamailio failed: it waits and is retried (unavailable), or it was skipped (rejected). */
const KAMAILIO_WRITE_FAILURES = ["unavailable", "rejected"] as const;

export function createMetrics(opts: { defaults?: boolean } = {}) {
  const registry = new Registry();
  const sources: ScrapeSources = {};
  /**
   * A gauge's collect(): reads its source at each scrape and refills the gauge from it. A source
   * that fails (PostgreSQL away) leaves the gauge as it was; one not set yet leaves it empty.
   */
  const refill = <T>(source: () => (() => Promise<T>) | undefined, fill: (gauge: Gauge, value: T) => void) =>
    async function collect(this: Gauge): Promise<void> {
      const read = source();
      if (!read) return;
      let value: T;
      try {
        value = await read();
      } catch {
        return;
      }
      this.reset();
      fill(this, value);
    };
  // Under the names every Node exporter uses (process_*, nodejs_*), as dashboards expect them.
  if (opts.defaults !== false) collectDefaultMetrics({ register: registry });
  const r = [registry];
  // Series only some nodes have, registered once the node says it has what they describe (README,
  // "Operations"). A hub exported the Kamailio series at 0, as if it had a Kamailio that was in line
  // and never restarted: a 0 for something a node does not have reads as a fact on dashboards and
  // in alert rules. Each group is registered once, however often it is asked for.
  const group = () => {
    const members: Metric[] = [];
    let registered = false;
    return {
      /** A series of this group: made unregistered, exported once the group is. */
      add: <M extends Metric>(metric: M): M => (members.push(metric), metric),
      register() {
        if (registered) return;
        registered = true;
        for (const m of members) registry.registerMetric(m);
      },
    };
  };
  /** Agents only: a hub makes no changes of its own, so it has none to commit and no journal of them to go back in time. */
  const agentOnly = group();
  /** Only on agents attached to a Kamailio: a hub, or an agent without `kamailio`, has no Kamailio to write into or be down. */
  const kamailioOnly = group();
  // Registered only once a hub gives its source (scrapeFrom): an agent has no PostgreSQL to be down.
  const hubPostgresUp = new Gauge({
    name: HUB_POSTGRES_UP,
    help: `1 while this hub's PostgreSQL answers its health checks, 0 once none has for postgres.unreachableAfterMs (the hub then refuses agents: they ${AGENTS_GO_ELSEWHERE}; otherwise they keep journaling locally); only on hubs`,
    registers: [],
    collect(this: Gauge) {
      if (sources.postgresUp) this.set(sources.postgresUp() ? 1 : 0);
    },
  });
  return {
    registry,
    /** Fill in once the mesh and the store exist (see ScrapeSources). */
    scrapeFrom(next: ScrapeSources) {
      Object.assign(sources, next);
      if (next.postgresUp && registry.getSingleMetric(HUB_POSTGRES_UP) === undefined) registry.registerMetric(hubPostgresUp);
    },
    buildInfo: new Gauge({ name: "locmesh_build_info", help: "Always 1; the labels say which locmesh release and peer protocol this process runs", labelNames: ["version", "protocol"], registers: r }),
    changesCommitted: agentOnly.add(new Counter({ name: "locmesh_changes_committed_total", help: "Local changes written to the journal (only on agents)", registers: [] })),
    changesRefused: agentOnly.add(zeroed(new Counter({
      name: "locmesh_changes_refused_total",
      help: "Local changes not journaled because the peers would refuse them (each logged with what to fix), by source: event, reconcile or api (only on agents)",
      labelNames: ["source"],
      registers: [],
    }), CHANGE_SOURCES, "source")),
    changesSent: new Counter({ name: "locmesh_changes_sent_total", help: "Changes sent to a peer", labelNames: ["peer"], registers: r }),
    pushesSent: new Counter({
      name: "locmesh_pushes_sent_total",
      help: "Pushes (frames of batches, a hub's carrying several origins) sent to a peer; each costs the peer a message and a journal commit at most",
      labelNames: ["peer"], registers: r,
    }),
    changesReceived: new Counter({ name: "locmesh_changes_received_total", help: "Changes received from a peer", labelNames: ["peer"], registers: r }),
    changesApplied: new Counter({ name: "locmesh_changes_applied_total", help: "Received changes that won and were stored", labelNames: ["peer"], registers: r }),
    batchSeconds: new Histogram({
      name: "locmesh_batch_round_trip_seconds",
      help: "Time from sending a batch to its acknowledgement",
      labelNames: ["peer"],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5],
      registers: r,
    }),
    replicationDelay: new Histogram({
      name: "locmesh_replication_delay_seconds",
      help: "Per change received from a peer or hub and stored here: this node's clock minus the time its origin stamped it (as good as NTP)",
      buckets: [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 30, 60, 300],
      registers: r,
    }),
    journalBehind: agentOnly.add(new Gauge({
      name: "locmesh_journal_behind",
      help: "1 once a peer held more of this node's own changes than its journal (restored from an older copy, or lost commits): the node stops replicating until its journal is moved aside (only on agents)",
      registers: [],
    })),
    peerConnected: new Gauge({
      name: "locmesh_peer_connected",
      help: "1 while the session with a configured peer (or, in hub mode, a hub) is up, 0 while it is not",
      labelNames: ["peer"],
      registers: r,
      collect: refill(() => sources.peers, (g, rows) => {
        for (const row of rows) g.set({ peer: row.peer }, row.connected ? 1 : 0);
      }),
    }),
    peerBehind: new Gauge({
      name: "locmesh_peer_behind_changes",
      help: "Changes a connected peer has not acknowledged; in hub mode with no hub connected, peer=\"hub\": this node's changes no hub has acknowledged",
      labelNames: ["peer"],
      registers: r,
      collect: refill(() => sources.peers, (g, rows) => {
        for (const row of rows) if (row.behindChanges !== null) g.set({ peer: row.peer }, row.behindChanges);
      }),
    }),
    peerRetries: new Counter({ name: "locmesh_peer_retries_total", help: "Connection or delivery attempts that failed and were retried", labelNames: ["peer"], registers: r }),
    authFailures: zeroed(new Counter({ name: "locmesh_auth_failures_total", help: "Refused peer or API authentications", labelNames: ["reason"], registers: r }), AUTH_FAILURE_REASONS),
    peerHandshakes: zeroed(new Counter({
      name: "locmesh_peer_handshakes_total",
      help: "Peer handshakes this node accepted, by the key the peer proved itself with: key=\"own\" this node's mesh.secret, key=\"accepted\" one of its mesh.acceptedSecrets (a key rotation is under way)",
      labelNames: ["key"],
      registers: r,
    }), KEY_ROLES, "key"),
    apiAuthentications: zeroed(new Counter({
      name: "locmesh_api_authentications_total",
      help: "API requests and sign-ins whose token was taken, by which: token=\"own\" api.token, token=\"accepted\" one of api.acceptedTokens (a token rotation is under way)",
      labelNames: ["token"],
      registers: r,
    }), KEY_ROLES, "token"),
    rpcErrors: new Counter({ name: "locmesh_rpc_errors_total", help: "JSON-RPC requests answered with an error", labelNames: ["surface", "code"], registers: r }),
    records: new Gauge({
      name: "locmesh_records",
      help: "Live records in the journal",
      labelNames: ["kind"],
      registers: r,
      collect: refill(() => sources.records, (g, counts) => {
        g.set({ kind: "loc" }, counts.locations);
        g.set({ kind: "alias" }, counts.aliases);
      }),
    }),
    pendingWrites: kamailioOnly.add(new Gauge({ name: "locmesh_pending_kamailio_writes", help: "Changes waiting to be written into the local Kamailio", registers: [] })),
    kamailioWrites: kamailioOnly.add(new Counter({ name: "locmesh_kamailio_writes_total", help: "Writes into the local Kamailio, by route (rpc or database)", labelNames: ["route"], registers: [] })),
    // Both series at 0 from the start: the first write Kamailio refuses must alert too.
    kamailioWriteFailures: kamailioOnly.add(zeroed(new Counter({
      name: "locmesh_kamailio_write_failures_total",
      help: "Kamailio writes that had to wait (unavailable) or were refused (rejected)",
      labelNames: ["reason"],
      registers: [],
    }), KAMAILIO_WRITE_FAILURES)),
    kamailioEvents: kamailioOnly.add(new Counter({ name: "locmesh_kamailio_events_total", help: "Registrar events read from Kamailio, by outcome", labelNames: ["outcome"], registers: [] })),
    kamailioEventsQueued: kamailioOnly.add(new Gauge({ name: "locmesh_kamailio_events_queued", help: "Registrar events read from Kamailio and not yet journaled", registers: [] })),
    kamailioEventPauses: kamailioOnly.add(new Counter({
      name: "locmesh_kamailio_event_pauses_total",
      help: "Times the agent stopped reading registrar events because kamailio.eventQueue was full (Kamailio waits meanwhile)",
      registers: [],
    })),
    // Every source at 0 from the start: a reconcile's first repair must alert too (README, drift).
    kamailioLearned: kamailioOnly.add(zeroed(new Counter({ name: "locmesh_kamailio_learned_total", help: "Local changes learned from Kamailio, by source (event, reconcile, api: the check after a local API edit of this node's bindings, or retry: an AoR whose registrar event did not say all, looked up in Kamailio)", labelNames: ["source"], registers: [] }), ["event", "reconcile", "api", "retry"], "source")),
    kamailioRepairs: kamailioOnly.add(zeroed(new Counter({ name: "locmesh_kamailio_repairs_total", help: "Writes that put Kamailio back in line with the journal (reconcile, reload, or api: a local API edit of this node's bindings written in)", labelNames: ["source"], registers: [] }), ["reconcile", "reload", "api"], "source")),
    kamailioRestarts: kamailioOnly.add(new Counter({ name: "locmesh_kamailio_restarts_total", help: "Restarts of the local Kamailio noticed", registers: [] })),
    kamailioUp: kamailioOnly.add(new Gauge({ name: "locmesh_kamailio_up", help: "1 while the local Kamailio answers over jsonrpcs (only on agents attached to a Kamailio)", registers: [] })),
    /** This node is an agent: export the series of its own changes and journal from now on (idempotent). */
    exportAgentSeries: agentOnly.register,
    /** This node is attached to a Kamailio: export locmesh_kamailio_up and the other Kamailio series from now on (idempotent). */
    exportKamailioSeries: kamailioOnly.register,
    purged: new Counter({ name: "locmesh_purged_total", help: "Tombstones and expired bindings purged from the journal", registers: r }),
  };
}

export type Metrics = ReturnType<typeof createMetrics>;

/**
 * A peer taken out of the config (SIGHUP): drop its counters and round-trip histogram, as its link
 * gauges go, so no series of a decommissioned node is left until the next restart.
 */
export function forgetPeerSeries(m: Metrics, peer: string): void {
  for (const metric of [m.changesSent, m.pushesSent, m.changesReceived, m.changesApplied, m.batchSeconds, m.peerRetries]) metric.remove({ peer });
}

/** Starts a counter's series for each value of its one label at 0 (see AUTH_FAILURE_REASONS). */
function zeroed<L extends string>(counter: Counter<L>, values: readonly string[], label = "reason" as L): Counter<L> {
  for (const value of values) counter.inc({ [label]: value } as Partial<Record<L, string>>, 0);
  return counter;
}
