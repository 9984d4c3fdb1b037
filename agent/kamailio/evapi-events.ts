/**
 * Registrar events in: Kamailio's evapi connection (evapi-client.ts) feeds the intake that
 * journals them (registrar-intake.ts), paused while its queue is full. A connection Kamailio drops
 * is also the first sign of a Kamailio going away: status says so at once, and the reconnect is
 * retried quickly for a while so that the restarted one is noticed (and reconciled) soon.
 */
import type { KamailioConfig } from "../config/agent-config.js";
import type { KamailioStatus } from "../contract/kamailio-status.js";
import type { Replica } from "../core/replica.js";
import type { ReplicaStore } from "../core/store.js";
import type { Logger } from "../ops/logger.js";
import type { Metrics } from "../ops/metrics.js";
import { createEvapiClient, type EvapiClient } from "./evapi-client.js";
import { createEventAcks } from "./event-acks.js";
import type { KamailioLiveness } from "./kamailio-liveness.js";
import type { KamailioSink } from "./kamailio-sink.js";
import type { KamailioTimes } from "./kamailio-times.js";
import type { KamailioEvent } from "./register-event.js";
import { createRegistrarIntake } from "./registrar-intake.js";
import type { AorLookups } from "./aor-lookups.js";
import type { WildcardSockets } from "./wildcard-sockets.js";

/**
 * After evapi drops, the watch leaves noticing a restart to evapi's reconnect for this long, and
 * the reconnect is tried every EVAPI_RESTART_POLL_MS (a refused connect to a local port is cheap):
 * with its doubling back-off alone, a Kamailio back after 0.6 s was noticed up to 0.6 s late.
 */
const EVAPI_RECONNECT_GRACE_MS = 5000;
const EVAPI_RESTART_POLL_MS = 50;
/** An evapi connection that lived this long was Kamailio's: the include's address filter closes within milliseconds. */
const EVAPI_STABLE_MS = 1000;

export interface EvapiEvents {
  /** Connects to evapi when it is configured. */
  start(): void;
  /** Connected to evapi, or it is not in use: no registrar event is dropped. */
  listening(): boolean;
  /** Kamailio's connection dropped and evapi's reconnect is retried (up to EVAPI_RECONNECT_GRACE_MS). */
  reconnecting(): boolean;
  status(): KamailioStatus["events"];
  /** Disconnects, and waits until every event read is journaled (or failed). */
  close(): Promise<void>;
}

export function createEvapiEvents(deps: {
  config: Pick<KamailioConfig, "evapi" | "eventQueue" | "eventLingerMs">;
  nodeId: string;
  store: ReplicaStore;
  replica: Replica;
  sink: KamailioSink;
  times: KamailioTimes;
  liveness: Pick<KamailioLiveness, "down">;
  clockLeadMs: () => number;
  /** False while a reload into a restarted Kamailio is due or running (registrar-input.ts). */
  kamailioWhole: () => boolean;
  /** False: an event is not journaled (Kamailio keys AoRs without their domain, usrloc-keys.ts). */
  admit?: () => Promise<boolean>;
  /** A connection to evapi is up. */
  onConnect: () => void;
  /**
   * Tells the include how far the agent has journaled its events ($shv(ACKED_SHV), event-acks.ts);
   * without it nothing is acknowledged, and Kamailio sends again what it kept after each reconnect.
   */
  acknowledge?: (n: number) => Promise<void>;
  /** Shown the socket of each binding the events journal (wildcard-sockets.ts). */
  sockets?: Pick<WildcardSockets, "see">;
  /** Told the AoRs of events that could not be journaled or read (aor-lookups.ts). */
  aorLookups?: Pick<AorLookups, "add" | "failed" | "journalWorks" | "size">;
  log: Logger;
  metrics: Metrics;
}): EvapiEvents {
  const { config, log, metrics } = deps;
  let evapi: EvapiClient | null = null;
  /** Retries evapi after Kamailio's connection dropped, for EVAPI_RECONNECT_GRACE_MS or until it is back. */
  let restartPoll: NodeJS.Timeout | null = null;
  let received = 0;
  let closed = false;
  const intake = createRegistrarIntake({
    nodeId: deps.nodeId, store: deps.store, replica: deps.replica, sink: deps.sink, times: deps.times, log, metrics,
    maxQueued: config.eventQueue, lingerMs: config.eventLingerMs, clockLeadMs: deps.clockLeadMs,
    kamailioWhole: deps.kamailioWhole,
    ...(deps.admit ? { admit: deps.admit } : {}),
    ...(deps.sockets ? { sockets: deps.sockets } : {}),
    ...(deps.aorLookups ? { aorLookups: deps.aorLookups } : {}),
    flow: { pause: () => evapi?.pause(), resume: () => evapi?.resume() },
  });

  const acks = deps.acknowledge && config.evapi ? createEventAcks({ send: deps.acknowledge, log }) : null;

  /**
   * While the journal is behind, registrar events are still journaled, on purpose: the REGISTER
   * already wrote Kamailio's own usrloc, and the sink never writes this node's bindings back, so
   * nothing goes into Kamailio. Refusing them would gain nothing (the journal they go into is set
   * aside by the remedy, and the fresh one learns these registrations from Kamailio's ul.dump)
   * and would count failures and, with the intake's queue full, pause Kamailio's evapi for nothing.
   */
  function onEvent(ev: KamailioEvent): void {
    received++;
    if (ev.type !== "register") {
      metrics.kamailioEvents.inc({ outcome: "expired" });
      return; // the journal expires bindings by their own expiry time
    }
    intake.push(ev, ev.n === undefined || acks === null ? undefined : acks.taken(ev.n));
  }

  function onDisconnect(livedMs: number): void {
    // A connection closed within a second is the include's address filter (or worse), not
    // a Kamailio going away: left to the client's back-off.
    if (livedMs < EVAPI_STABLE_MS) return;
    // Down until a probe answers: status says why at once, not "up" until the next probe.
    deps.liveness.down("Kamailio closed the evapi connection: it stopped or restarted; waiting for it to come back");
    const lostAt = Date.now();
    if (restartPoll !== null) clearInterval(restartPoll);
    restartPoll = setInterval(() => {
      if (closed || evapi === null || evapi.connected() || Date.now() - lostAt >= EVAPI_RECONNECT_GRACE_MS) {
        clearInterval(restartPoll!);
        restartPoll = null;
      } else evapi.retryNow();
    }, EVAPI_RESTART_POLL_MS);
    restartPoll.unref();
  }

  return {
    start() {
      if (!config.evapi || closed) return;
      evapi = createEvapiClient({
        host: config.evapi.host, port: config.evapi.port, log, onEvent, retry: { minMs: 100, maxMs: 1000 },
        onUnreadable: (n, aor) => {
          if (n !== null) acks?.taken(n)();
          // Kamailio holds what the REGISTER did: the AoR is looked up there instead (a numbered event's: aor-lookups.ts).
          if (aor !== null && n !== null) deps.aorLookups?.add(aor);
        },
        // The back-off starts over after a connection that was Kamailio's, so a Kamailio restarted
        // shortly after its last restart is noticed as soon as one that ran for hours.
        stableMs: EVAPI_STABLE_MS,
        onConnect: () => {
          // Maybe a restarted Kamailio, numbering from 1 again; the include sends again what was not acknowledged.
          acks?.reset();
          deps.onConnect();
        },
        onDisconnect: (_err, livedMs) => {
          acks?.pause();
          onDisconnect(livedMs);
        },
      });
      evapi.start();
    },
    // Before start(), which may wait for the mesh's first session (agent.ts), events are not read yet.
    listening: () => !config.evapi || (evapi !== null && evapi.connected()),
    reconnecting: () => restartPoll !== null,
    status: () => config.evapi
      ? {
        connected: evapi?.connected() ?? false, received, failed: intake.stats().failed, malformed: evapi?.stats().malformed ?? 0, framingErrors: evapi?.stats().framingErrors ?? 0,
        aorsToLookUp: deps.aorLookups?.size() ?? 0,
      }
      : null,
    async close() {
      closed = true;
      if (restartPoll !== null) clearInterval(restartPoll);
      await evapi?.close();
      await intake.settled();
      intake.close();
      // What was journaled since the last acknowledgement is not sent again at the next start.
      await acks?.flush();
      acks?.close();
    },
  };
}
