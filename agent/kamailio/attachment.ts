/**
 * The agent's Kamailio side, wired from config: registrar events in (evapi), journal changes out
 * (sink → writer → jsonrpcs or database), reconciliation with `ul.dump`, and a watch that notices
 * a restarted Kamailio and puts its state back. agent.ts creates one when `kamailio` is configured.
 */
import { join } from "node:path";
import type { KamailioConfig } from "../config/agent-config.js";
import type { KamailioContact, KamailioListResult, KamailioStatus, ListParams } from "../contract/protocol.js";
import { hlcToMillis } from "../contract/records.js";
import type { Hlc } from "../core/hlc.js";
import type { JournalBehind } from "../core/journal-behind.js";
import type { Replica } from "../core/replica.js";
import type { ReplicaStore } from "../core/store.js";
import type { Logger } from "../ops/logger.js";
import type { Metrics } from "../ops/metrics.js";
import { READY_SHV } from "./cfg-include.js";
import { createCoreRpc, sameInstance, type KamailioInstance } from "./core-rpc.js";
import { createInstanceMemory } from "./instance-memory.js";
import { dumpFromDb } from "./db-state.js";
import { createDgramClient } from "./dgram-client.js";
import { openEvapiBulkChannels } from "./evapi-bulk.js";
import { createEvapiClient, type EvapiClient } from "./evapi-client.js";
import { createFifoClient } from "./fifo-client.js";
import { openInstallCursor } from "./install-cursor.js";
import { openKamailioDb, type KamailioDb } from "./kamailio-db.js";
import { createKamailioTimes } from "./kamailio-times.js";
import { createKamailioLiveness, lastErrorOf } from "./kamailio-liveness.js";
import { createKamailioSink } from "./kamailio-sink.js";
import { createKamailioTable, toKamailioContact } from "./kamailio-table.js";
import { createKamailioWriter } from "./kamailio-writer.js";
import type { KamailioRpc } from "./jsonrpcs-wire.js";
import { planReconcile } from "./reconciler.js";
import { createReconcileReport } from "./reconcile-report.js";
import type { KamailioEvent } from "./register-event.js";
import { createRegistrarIntake } from "./registrar-intake.js";
import { createReloader, type BulkSession, type ReloadStatus } from "./reload.js";
import { openReloadMark, type ReloadNotes, type UnfinishedReload } from "./reload-mark.js";
import { createUsrlocRpc } from "./usrloc-rpc.js";
import type { UsrlocContact } from "./usrloc-contact.js";
import { watchChanges, writeUnlessStale, type OnStored } from "./stale-writes.js";


/** Reload writes in flight through the bulk channels: enough to fill their chunks (each bounds the bytes on the wire itself). */
const BULK_RELOAD_WINDOW = 512;
/**
 * Bulk channels opened for a reload. Two kept Kamailio busy through the agent's longer turns: a
 * scripted client that stalls 5 ms every 1,000 writes put 100,000 into Kamailio in 3.11 s over
 * one channel and 2.68 s over two (2.77 and 2.62 s without the stalls); three gave 2.67 s.
 */
const BULK_CHANNELS = 2;
/**
 * After evapi drops, the watch leaves noticing a restart to evapi's reconnect for this long, and
 * the reconnect is tried every EVAPI_RESTART_POLL_MS (a refused connect to a local port is cheap):
 * with its doubling back-off alone, a Kamailio back after 0.6 s was noticed up to 0.6 s late.
 */
const EVAPI_RECONNECT_GRACE_MS = 5000;
const EVAPI_RESTART_POLL_MS = 50;
/** An evapi connection that lived this long was Kamailio's: the include's address filter closes within milliseconds. */
const EVAPI_STABLE_MS = 1000;

export interface KamailioAttachment {
  start(): Promise<void>;
  status(): Promise<KamailioStatus>;
  /** Pending writes as of the sink's last run (cheap). */
  pendingWrites(): number;
  /** Writes the whole live state into Kamailio now (locmesh resync --kamailio). */
  reload(reason: string): Promise<ReloadStatus>;
  /** One reconcile run now. */
  reconcile(): Promise<void>;
  /** The journal, started empty, has caught up with a peer: what waited for it goes ahead (seeded). */
  journalSeeded(): void;
  /** The AoR's contacts as this Kamailio holds them (ul.lookup over jsonrpcs). */
  lookup(aor: string): Promise<KamailioContact[]>;
  /** A page of this Kamailio's whole location table, compared with the journal (kamailio-table.ts). */
  list(p: Required<ListParams>): Promise<KamailioListResult>;
  drained(): Promise<void>;
  close(): Promise<void>;
}

export interface KamailioAttachmentDeps {
  config: KamailioConfig;
  nodeId: string;
  dataDir: string;
  replica: Replica;
  /** The replica's clock: Kamailio's times are compared with version stamps in its frame. */
  hlc: Hlc;
  store: ReplicaStore;
  /** The evapi bulk channel's token (evapiBulkToken); null: reloads go over jsonrpcs only. */
  bulkToken: string | null;
  /**
   * Set once this node's journal is found behind its peers (stale): from then on nothing is written
   * into Kamailio (no sink writes, reload or reconcile) until the agent is started afresh.
   */
  journalBehind: Pick<JournalBehind, "isSet" | "onSet">;
  /** The journal's notes: where a reload under way is kept (reload-mark.ts). */
  notes: ReloadNotes;
  log: Logger;
  metrics: Metrics;
  /**
   * False while the journal, started empty, has not caught up with any peer or hub (agent.ts).
   * Until then it lacks what the cluster holds: the reload into a restarted Kamailio, the
   * reconcile (which would take every binding the journal lacks for gone) and the REGISTER gate
   * wait, and journalSeeded() lets them go. Defaults to seeded.
   */
  seeded?: () => boolean;
}

export async function createKamailioAttachment(deps: KamailioAttachmentDeps): Promise<KamailioAttachment> {
  const { config, nodeId, replica, store, metrics } = deps;
  const seeded = deps.seeded ?? (() => true);
  /**
   * How far the hybrid logical clock runs ahead of this host's clock (ms, never below 0). Stamps
   * follow the fastest clock seen in the cluster; Kamailio, on this host, follows this one.
   */
  const clockLeadMs = (): number => Math.max(0, hlcToMillis(deps.hlc.last()) - Date.now());
  const log = deps.log.child({ component: "kamailio" });
  /** The journal is stale: writing it into Kamailio would put old targets and removed bindings back. */
  const held = (): boolean => deps.journalBehind.isSet();
  const fifo = createFifoClient({
    fifoPath: config.fifo, replyDir: config.replyDir, timeoutMs: config.timeoutMs, log,
    maxInFlight: Math.min(32, config.window), replyFifoMode: config.replyFifoMode,
  });
  let dgram: KamailioRpc | null = null;
  if (config.dgram) {
    const m = /^udp:\[?([^\]]+?)\]?:(\d+)$/.exec(config.dgram)!;
    dgram = await createDgramClient({ host: m[1]!, port: Number(m[2]), timeoutMs: config.timeoutMs, log, maxInFlight: config.window });
  }
  const writes = failover(dgram, fifo);
  const db: KamailioDb | null = config.db ? openKamailioDb({
    url: config.db.url, timeZone: config.db.timeZone, aliasMode: config.aliases,
    locationTable: config.locationTable, aliasTable: config.aliasTable,
  }, { log }) : null;
  const aliasTable = config.aliases === "usrloc" ? (config.aliasTable ?? "aliases") : null;
  const plan = { nodeId, replicaId: store.replicaId, locationTable: config.locationTable };
  const writer = createKamailioWriter({ usrloc: createUsrlocRpc({ rpc: writes }), db, aliasTable, log });
  const dumper = createUsrlocRpc({ rpc: fifo, dumpTimeoutMs: Math.max(30_000, config.timeoutMs) });
  const lookups = createUsrlocRpc({ rpc: writes });
  // db_mode 3 keeps no cache (ul.dump is always empty): the database is what Kamailio holds.
  const dbOnly = db !== null && config.db!.dbMode === 3;
  const dumpKamailio = (maxReplyBytes?: number): Promise<UsrlocContact[]> => dbOnly
    ? dumpFromDb(db!, { locationTable: config.locationTable, aliasTable, nowSec: Math.floor(Date.now() / 1000) })
    : dumper.ulDump(maxReplyBytes === undefined ? undefined : { maxReplyBytes });
  const sink = createKamailioSink({
    store, writer, plan, log, metrics, window: config.window,
    cursor: openInstallCursor(join(deps.dataDir, "kamailio-cursor.json")),
    databaseWritesUnseen: config.db !== null && (config.db.dbMode === 1 || config.db.dbMode === 2),
    held,
  });
  const evapiConfig = config.evapi;
  const bulkToken = deps.bulkToken;
  const openBulk = evapiConfig && bulkToken !== null && config.bulkReload
    ? async (): Promise<BulkSession> => {
      const rpc = await openEvapiBulkChannels({ host: evapiConfig.host, port: evapiConfig.port, token: bulkToken, log, ackTimeoutMs: config.timeoutMs }, BULK_CHANNELS);
      // A write the channel could not vouch for goes the usual way (all of them are idempotent).
      const bulkWriter = createKamailioWriter({ usrloc: createUsrlocRpc({ rpc: failover(rpc, writes) }), db, aliasTable, log });
      return { writer: bulkWriter, window: BULK_RELOAD_WINDOW, close: () => rpc.close() };
    }
    : undefined;
  /** Every change stored, local or a peer's: planned writes older than one are not sent (stale-writes.ts). */
  const onStored: OnStored = (listener) => replica.onApplied(listener);
  /** When the Kamailio last probed started, on this host's clock (its uptime has whole seconds). */
  let kamailioStartedMs: number | null = null;
  const mark = openReloadMark({ notes: deps.notes, instance: () => instances.current(), log });
  const reloader = createReloader({
    store, writer, plan, log, metrics, window: config.window, rate: config.reloadRate, openBulk,
    preloadDb: db && (config.db!.dbMode === 1 || config.db!.dbMode === 2) ? db : null,
    onStored,
    kamailioStart: () => (kamailioStartedMs === null ? null : { startedMs: kamailioStartedMs, clockLeadMs: clockLeadMs() }),
    held,
    onStatus: (s) => mark.track(s),
  });
  // Two small replies: a second and a half is plenty even on a loaded host.
  const core = createCoreRpc({ rpc: fifo, probeTimeoutMs: Math.min(config.timeoutMs, 1500) });
  const instances = createInstanceMemory(join(deps.dataDir, "kamailio-instance.json"));
  const liveness = createKamailioLiveness({ sink, metrics });
  const table = createKamailioTable({
    store, nodeId, locationTable: config.locationTable, maxContacts: config.reconcileMaxContacts,
    // In db_mode 3 usrloc's statistics count nothing: the journal's count stands in.
    countContacts: () => (dbOnly ? Promise.resolve(null) : dumper.ulContactCount(config.locationTable)),
    dump: dumpKamailio,
    pendingWrites: () => sink.lastPending(),
  });
  let restarts = 0;
  const reconciles = createReconcileReport({ log });
  let evapi: EvapiClient | null = null;
  /** Retries evapi after Kamailio's connection dropped, for EVAPI_RECONNECT_GRACE_MS or until it is back. */
  let restartPoll: NodeJS.Timeout | null = null;
  let received = 0;
  let reloadNeeded = false;
  /** Why the due reload runs: a restart, or the agent's last run left one unfinished (start()). */
  let reloadReason = "kamailio restarted";
  const times = createKamailioTimes();
  const intake = createRegistrarIntake({
    nodeId, store, replica, sink, times, log, metrics, maxQueued: config.eventQueue, lingerMs: config.eventLingerMs, clockLeadMs,
    kamailioWhole: () => !reloadNeeded,
    flow: { pause: () => evapi?.pause(), resume: () => evapi?.resume() },
  });
  const unsubscribe: (() => void)[] = [];
  const timers: NodeJS.Timeout[] = [];
  let closed = false;

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
    intake.push(ev);
  }

  /**
   * Which Kamailio is this? Compared with the instance last reloaded, kept on disk
   * (instance-memory.ts): the agent may have been down while Kamailio restarted, or stopped in the
   * middle of a reload, and without that memory every binding Kamailio lacks would look
   * de-registered. An instance that is not known whole needs a reload before anything else.
   */
  async function observe(): Promise<void> {
    const inst = await core.instance();
    kamailioStartedMs = Date.now() - inst.uptimeSec * 1000;
    const previous = instances.current();
    const state = instances.observe(inst);
    if (state === "whole") return;
    reloadNeeded = true;
    if (previous !== null && sameInstance(previous, inst)) return; // noted already; the reload is due
    // The instance the agent's last run was reloading when it stopped: not a restart (start() said so).
    const unfinished = mark.previous?.instance;
    if (previous === null && unfinished && sameInstance(unfinished, inst)) return;
    if (state === "first contact") {
      log.info({ now: inst }, "first contact with this Kamailio; writing the live state into it");
      return;
    }
    restarts++;
    metrics.kamailioRestarts.inc();
    log.warn({ previous, now: inst }, "Kamailio restarted (or a reload into it did not finish); putting its state back");
  }

  /** Reload, check and reconcile never overlap: each waits for the one before. */
  let serial: Promise<unknown> = Promise.resolve();
  function exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = serial.then(fn, fn);
    serial = run.catch(() => undefined);
    return run;
  }

  /**
   * Opens the include's REGISTER gate (READY_SHV) once this Kamailio instance is whole: reloaded
   * if it needed it, and with the agent listening to evapi so no registrar event is dropped.
   * Set once per instance; a failed set is retried at the next check.
   */
  let readyFor: KamailioInstance | null = null;
  let gateWarnedFor: KamailioInstance | null = null;
  async function openGateIfWhole(): Promise<void> {
    const inst = instances.current();
    if (reloadNeeded || !seeded() || inst === null || (evapi !== null && !evapi.connected())) return;
    if (readyFor !== null && sameInstance(readyFor, inst)) return;
    try {
      await core.setReady(READY_SHV);
      readyFor = inst;
      log.info({ instance: inst }, "Kamailio is whole: REGISTERs are let through");
    } catch (err) {
      // Retried at the next check; until then (at most LOCMESH_READY_GRACE) REGISTERs get 503.
      if (gateWarnedFor === null || !sameInstance(gateWarnedFor, inst)) {
        gateWarnedFor = inst;
        log.warn({ err: (err as Error).message }, `could not set $shv(${READY_SHV}) in Kamailio; retrying at every check`);
      }
    }
  }

  async function reloadIfNeeded(): Promise<void> {
    // While held the restarted Kamailio stays without the cluster's state, and its REGISTER gate
    // closed (up to LOCMESH_READY_GRACE): a node that cannot be made whole should not look whole.
    if (!reloadNeeded || held() || !waitedForSeed()) return;
    const res = await reloader.run(reloadReason);
    if (res.state !== "done") return; // Kamailio went again; the next check retries
    reloadReason = "kamailio restarted";
    // No ul.dump check afterwards: the reload wrote the whole live state, and a dump of a large
    // table holds Kamailio's FIFO for tens of seconds (it grows with the square of the table).
    reloadNeeded = false;
    sink.kamailioLoadedItsDatabase();
    // Writes that failed while Kamailio was away wait for their retry timer otherwise.
    sink.retryNow();
    try {
      instances.whole();
    } catch (err) {
      // Only costs another full reload should the agent restart (e.g. a full disk).
      log.warn({ err: (err as Error).message }, "could not save which Kamailio instance this is");
    }
  }

  let waitingLogged = false;
  /** True once the journal is seeded; logs once that Kamailio waits for it. */
  function waitedForSeed(): boolean {
    if (seeded()) return true;
    if (!waitingLogged) {
      waitingLogged = true;
      log.warn("this node's journal started empty and has not caught up with a peer or hub yet: the reconcile with Kamailio, " +
        "a reload into it and letting REGISTERs through wait until it has (check that the peers or hubs are reachable)");
    }
    return false;
  }

  async function reconcileNow(): Promise<void> {
    if (!waitedForSeed()) return;
    // Against a stale journal the plan would "learn" removals of what Kamailio holds and "repair"
    // aliases back to old targets (both seen on a restored node): nothing is reconciled while held.
    if (held()) return;
    // ul.dump's cost grows with the square of the table (32,000 contacts: ~8 s, all of it in
    // Kamailio's single FIFO process): past the limit, reconciling would hurt more than help.
    const live = (await store.counts(Math.floor(Date.now() / 1000))).locations;
    if (live > config.reconcileMaxContacts) {
      reconciles.skipped(live, config.reconcileMaxContacts);
      return;
    }
    try {
      await compareAndRepair();
    } catch (err) {
      reconciles.failed(err as Error);
      throw err;
    }
  }

  async function compareAndRepair(): Promise<void> {
    const dumpStartMs = Date.now();
    const leadMs = clockLeadMs();
    const dump = await dumpKamailio();
    const dumpEndMs = Date.now();
    // A restart during the dump would make its emptiness look like removals.
    await observe();
    if (reloadNeeded) return;
    const nowSec = Math.floor(Date.now() / 1000);
    // Repairs go out one by one after the plan: one for a record changed meanwhile would be older
    // than the journal (the sink writes the newer version), and is skipped or followed by it.
    const watch = watchChanges(onStored);
    try {
      const p = await planReconcile(store, {
        nodeId, dump, dumpStartMs, dumpSec: (dumpEndMs - dumpStartMs) / 1000, clockLeadMs: leadMs, nowSec,
        locationTable: config.locationTable, aliasTable,
        isPending: (c) => sink.isPending(c), writtenAt: (k) => sink.writtenAt(k), kamailioTime: times.of,
      });
      // The dump takes seconds: the journal may have been found behind meanwhile.
      if (held()) return;
      if (p.drafts.length > 0) times.learned(await replica.commit(p.drafts), dumpStartMs);
      let repaired = 0;
      const fresh = { watch, writer, store, plan, nowSec: () => Math.floor(Date.now() / 1000) };
      for (const op of p.repairs) if (!held() && (await writeUnlessStale(op, fresh))) repaired++;
      metrics.kamailioLearned.inc({ source: "reconcile" }, p.drafts.length);
      metrics.kamailioRepairs.inc({ source: "reconcile" }, repaired);
      reconciles.done({ learned: p.drafts.length, repaired, contacts: dump.length });
    } finally {
      watch.close();
    }
  }

  /** observe(), telling the liveness how it went; true when Kamailio came back (it was down). */
  async function probe(): Promise<boolean> {
    try {
      await observe();
    } catch (err) {
      if (liveness.isUp()) log.warn({ err: (err as Error).message }, "Kamailio does not answer over jsonrpcs");
      liveness.down((err as Error).message);
      throw err;
    }
    return liveness.up();
  }

  function reconcile(): Promise<void> {
    return exclusive(async () => {
      await probe();
      if (reloadNeeded) await reloadIfNeeded();
      else await reconcileNow();
      await openGateIfWhole();
    });
  }

  /** The watch: notices restarts (and reloads), and reconciles when Kamailio comes back. */
  function check(): Promise<void> {
    return exclusive(async () => {
      // Kamailio just went away (evapi dropped): a probe now would likely go into the FIFO of a
      // Kamailio on its way out and wait out its timeout, and the reconnect's reconcile (which
      // notices the new instance at once) would queue behind it: 1.3-1.4 s later in 1 of 3
      // restarts measured. While evapi's reconnect is retried (see onDisconnect), probing waits.
      if (restartPoll !== null) return;
      let cameBack: boolean;
      try {
        cameBack = await probe();
      } catch {
        return;
      }
      if (reloadNeeded) await reloadIfNeeded();
      else if (cameBack) await reconcileNow();
      await openGateIfWhole();
      sink.kick();
    });
  }

  function every(ms: number, fn: () => Promise<void>): void {
    let busy = false;
    const t = setInterval(() => {
      if (busy || closed) return;
      busy = true;
      void fn().catch((err: unknown) => log.warn({ err: (err as Error).message }, "kamailio background task failed")).finally(() => (busy = false));
    }, ms);
    t.unref();
    timers.push(t);
  }

  return {
    async start() {
      if (mark.previous !== null) {
        // Some of its writes went in, which ones is unknown: Kamailio is reloaded before anything else.
        reloadNeeded = true;
        reloadReason = "redo: the agent's last run left a reload unfinished";
        log.warn({ unfinished: mark.previous }, `${describeUnfinished(mark.previous)}; reloading Kamailio again`);
      }
      // onApplied carries this node's own commits too (replica.ts).
      unsubscribe.push(replica.onApplied(() => sink.kick()));
      unsubscribe.push(deps.journalBehind.onSet(() => {
        log.error("this node's journal is behind its peers: nothing more is written into Kamailio (no writes, reloads or reconciles) until the agent is started afresh");
      }));
      sink.start();
      if (config.evapi) {
        evapi = createEvapiClient({
          host: config.evapi.host, port: config.evapi.port, log, onEvent, retry: { minMs: 100, maxMs: 1000 },
          // The back-off starts over after a connection that was Kamailio's, so a Kamailio restarted
          // shortly after its last restart is noticed as soon as one that ran for hours.
          stableMs: EVAPI_STABLE_MS,
          onConnect: () => void reconcile().catch((err: unknown) => log.warn({ err: (err as Error).message }, "reconcile after evapi connect failed")),
          onDisconnect: (_err, livedMs) => {
            // A connection closed within a second is the include's address filter (or worse), not
            // a Kamailio going away: left to the client's back-off.
            if (livedMs < EVAPI_STABLE_MS) return;
            // Down until a probe answers: status says why at once, not "up" until the next probe.
            liveness.down("Kamailio closed the evapi connection: it stopped or restarted; waiting for it to come back");
            const lostAt = Date.now();
            if (restartPoll !== null) clearInterval(restartPoll);
            restartPoll = setInterval(() => {
              if (closed || evapi === null || evapi.connected() || Date.now() - lostAt >= EVAPI_RECONNECT_GRACE_MS) {
                clearInterval(restartPoll!);
                restartPoll = null;
              } else evapi.retryNow();
            }, EVAPI_RESTART_POLL_MS);
            restartPoll.unref();
          },
        });
        evapi.start();
      }
      void check();
      every(config.checkIntervalSec * 1000, check);
      if (config.reconcileIntervalSec > 0) every(config.reconcileIntervalSec * 1000, () => (liveness.isUp() ? reconcile() : Promise.resolve()));
    },
    async status() {
      const pending = await sink.pending();
      const s = sink.status();
      return {
        up: liveness.isUp(),
        writer: s.state === "held" ? "held" : s.state === "waiting" ? "pending" : (s.lastRoute ?? "idle"),
        pendingWrites: pending,
        ...lastErrorOf(s, liveness.downReason()),
        rejected: s.rejected,
        events: evapi
          ? { connected: evapi.connected(), received, failed: intake.stats().failed, malformed: evapi.stats().malformed, framingErrors: evapi.stats().framingErrors }
          : null,
        reload: { ...reloader.status(), interrupted: unfinishedStatus(mark.previous) },
        lastReconcile: reconciles.last(),
        restarts,
      };
    },
    pendingWrites: () => sink.lastPending(),
    reload: (reason) => reloader.run(reason),
    async lookup(aor) {
      return (await lookups.ulLookup(config.locationTable, aor)).map(toKamailioContact);
    },
    list: (p) => table.list(p),
    reconcile,
    journalSeeded() {
      log.info("the journal has caught up with the cluster: reconciling with Kamailio");
      // The snapshot's records go into Kamailio first, so the reconcile compares against them.
      void sink.drained().then(() => (closed ? undefined : reconcile()))
        .catch((err: unknown) => log.warn({ err: (err as Error).message }, "reconcile after the first catch-up failed"));
    },
    drained: () => sink.drained(),
    async close() {
      closed = true;
      table.close();
      for (const t of timers) clearInterval(t);
      if (restartPoll !== null) clearInterval(restartPoll);
      for (const u of unsubscribe) u();
      await evapi?.close();
      await intake.settled();
      await sink.close();
      await serial;
      await dgram?.close();
      await fifo.close();
      await db?.close();
    },
  };
}

/** For the log: what the agent's last run left unfinished. */
function describeUnfinished(u: UnfinishedReload): string {
  const how = u.error === null ? "the agent stopped in the middle of it (restarted, killed or crashed)" : `it failed (${u.error}) and was not redone before the agent stopped`;
  return `the last reload into Kamailio (started ${u.startedAt}, ${u.reason ?? "no reason noted"}) did not finish: ${how}, after at least ${u.done} of ${u.total} writes`;
}

const unfinishedStatus = (u: UnfinishedReload | null) =>
  u === null ? null : { reason: u.reason, startedAt: u.startedAt, done: u.done, total: u.total, error: u.error };

/** Writes go over the datagram socket when configured, and over the FIFO when that fails. */
function failover(primary: KamailioRpc | null, secondary: KamailioRpc): KamailioRpc {
  if (primary === null) return secondary;
  return {
    async call(method, params, opts) {
      try {
        return await primary.call(method, params, opts);
      } catch (err) {
        if ((err as { transient?: unknown }).transient !== true) throw err;
        return secondary.call(method, params, opts);
      }
    },
    close: async () => undefined,
  };
}
