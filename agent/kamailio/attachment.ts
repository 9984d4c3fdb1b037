/**
 * The agent's Kamailio side, wired from config: registrar events in (evapi-events.ts), journal
 * changes out (sink → writer → jsonrpcs or database, kamailio-links.ts), reconciliation with
 * `ul.dump` (reconcile-run.ts), and a watch that notices a restarted Kamailio (instance-watch.ts)
 * and puts its state back (due-reload.ts) before it lets REGISTERs through (register-gate.ts).
 * None of it runs against a Kamailio whose usrloc keys AoRs without their domain (usrloc-keys.ts):
 * the agent then refuses to attach, says why in status and the log, and replicates the rest.
 * agent.ts creates one when `kamailio` is configured.
 */
import { join } from "node:path";
import type { KamailioConfig } from "../config/agent-config.js";
import type { ListParams } from "../contract/api-protocol.js";
import type { KamailioContact, KamailioListResult, KamailioStatus } from "../contract/kamailio-status.js";
import { hlcToMillis } from "../contract/records.js";
import type { Hlc } from "../core/hlc.js";
import type { JournalBehind } from "../core/journal-behind.js";
import type { Replica } from "../core/replica.js";
import type { ReplicaStore } from "../core/store.js";
import type { KeySet } from "../journal/sqlite-key-set.js";
import type { Logger } from "../ops/logger.js";
import type { Metrics } from "../ops/metrics.js";
import { ACKED_SHV } from "./cfg-include-names.js";
import { createDueReload } from "./due-reload.js";
import { createEvapiEvents } from "./evapi-events.js";
import { openInstallCursor } from "./install-cursor.js";
import type { InstallOp } from "./install-plan.js";
import { createApiEditBatches } from "./api-edit-batches.js";
import { createWaitingApiEdits } from "./api-edits-waiting.js";
import { createInstanceWatch } from "./instance-watch.js";
import { createJournalGate } from "./journal-gate.js";
import type { BulkToken } from "./bulk-tokens.js";
import { openKamailioLinks } from "./kamailio-links.js";
import { readKamailioAlias, type KamailioAliasView } from "./kamailio-alias.js";
import { createKamailioLiveness, lastErrorOf } from "./kamailio-liveness.js";
import { createKamailioSink } from "./kamailio-sink.js";
import { missedByRunningKamailio } from "./kamailio-writer.js";
import { createKamailioTable, toKamailioContact } from "./kamailio-table.js";
import { createKamailioTimes } from "./kamailio-times.js";
import { createReconcileRun } from "./reconcile-run.js";
import { createAorLookups } from "./aor-lookups.js";
import { createRegisterGate } from "./register-gate.js";
import type { ReloadStatus } from "./reload.js";
import { openReloadMark, type ReloadNotes } from "./reload-mark.js";
import type { OnStored } from "./stale-writes.js";
import { createSipPeerList } from "./sip-peer-list.js";
import type { SipPeers } from "./sip-peers.js";
import { createUsrlocKeys } from "./usrloc-keys.js";
import { createWildcardSocketCheck } from "./wildcard-sockets.js";

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
  /** The config's list of nodes that may relay calls through Kamailio changed (SIGHUP): sets it now. */
  setSipPeers(next: SipPeers): void;
  /** The AoR's contacts as this Kamailio holds them (ul.lookup over jsonrpcs). */
  lookup(aor: string): Promise<KamailioContact[]>;
  /**
   * These bindings of this node changed through the local API (location.publish), each with the
   * stamp of that edit: the sink never writes this node's own bindings, so Kamailio is brought in
   * line for them now, as a reconcile would (reconcile-run.ts runFor). Edits arriving meanwhile
   * join one batch, one at a time. Null when done, else why it did not happen now.
   */
  applyApiEdits(edits: readonly { aor: string; contact: string; hlc: number }[]): Promise<string | null>;
  /** What this Kamailio holds for an alias (usrloc's aliases domain or alias_db's table, kamailio-alias.ts). */
  alias(alias: string): Promise<KamailioAliasView>;
  /** A page of this Kamailio's whole location table, compared with the journal (kamailio-table.ts). */
  list(p: Required<ListParams>): Promise<KamailioListResult>;
  drained(): Promise<void>;
  close(): Promise<void>;
}

/** Past this many waiting edits of the local API, more are left to the next reconcile or reload. */
const API_BATCH_MAX = 20_000;
/** Turns of the AoR lookups (a chunk each, aor-lookups.ts) between two checks of Kamailio. */
const LOOKUP_TURNS = 8;

export interface KamailioAttachmentDeps {
  config: KamailioConfig;
  nodeId: string;
  dataDir: string;
  replica: Replica;
  /** The replica's clock: Kamailio's times are compared with version stamps in its frame. */
  hlc: Hlc;
  store: ReplicaStore;
  /** The evapi bulk channel's tokens, one per cluster key (bulk-tokens.ts); null: reloads go over jsonrpcs only. */
  bulkTokens: (() => readonly BulkToken[]) | null;
  /**
   * Set once this node's journal is found behind its peers (stale): from then on nothing is written
   * into Kamailio (no sink writes, reload or reconcile) until the agent is started afresh.
   */
  journalBehind: Pick<JournalBehind, "isSet" | "onSet">;
  /** The other nodes' SIP source IPs as the config gives them (sip-peers.ts), kept in Kamailio (sip-peer-list.ts). */
  sipPeers: SipPeers;
  /** The journal's notes: where a reload under way is kept (reload-mark.ts). */
  notes: ReloadNotes;
  /** The journal's kamailio_unseen set: writes that went into a database the running Kamailio does not read (sink-pass.ts). */
  unseen: KeySet;
  /** The journal's kamailio_api_waiting set: the local API's edits that wait to go into Kamailio (api-edits-waiting.ts). */
  apiWaiting: KeySet;
  /** The journal's kamailio_aliases_waiting set: aliases that wait for alias_db's database (sink-pass.ts). */
  aliasesWaiting: KeySet;
  log: Logger;
  metrics: Metrics;
  /**
   * False while the journal, started empty, has not caught up with any peer or hub (agent.ts).
   * Until then it lacks what the cluster holds: the reload into a restarted Kamailio, the
   * reconcile (which would take every binding the journal lacks for gone) and the REGISTER gate
   * wait, and journalSeeded() lets them go. Defaults to seeded.
   */
  seeded?: () => boolean;
  /**
   * Resolves when registrar events may be read (default: at once). agent.ts waits for the mesh's
   * first session (or a few seconds): the handshake is what finds a journal restored from an older
   * copy (a peer holds more of this node's changes), and registrar events journaled before it would
   * take sequence numbers the cluster already holds, until this journal holds more than any peer
   * and nothing shows it went back. Meanwhile the include holds the REGISTERs in Kamailio.
   */
  eventsAfter?: () => Promise<void>;
}

export async function createKamailioAttachment(deps: KamailioAttachmentDeps): Promise<KamailioAttachment> {
  const { config, nodeId, replica, store, metrics } = deps;
  // Only now: a hub, or an agent without `kamailio`, has no Kamailio for these series to describe.
  metrics.exportKamailioSeries();
  const seeded = deps.seeded ?? (() => true);
  /**
   * How far the hybrid logical clock runs ahead of this host's clock (ms, never below 0). Stamps
   * follow the fastest clock seen in the cluster; Kamailio, on this host, follows this one.
   */
  const clockLeadMs = (): number => Math.max(0, hlcToMillis(deps.hlc.last()) - Date.now());
  const log = deps.log.child({ component: "kamailio" });
  const journal = createJournalGate({ journalBehind: deps.journalBehind, seeded, log });
  const links = await openKamailioLinks({ config, bulkTokens: deps.bulkTokens, nodeId, log });
  const keys = createUsrlocKeys({ usrloc: links.usrloc, table: config.locationTable, log });
  /** Kamailio keys AoRs without their domain: nothing is written into it, learned from it or reconciled with it. */
  const refused = (): boolean => keys.refusal() !== null;
  /** The first probe at start() has answered or failed. */
  let probed = false;
  /** After the first probe, not after the whole first check: its reconcile or reload may take seconds. */
  const sinkMayStart = (): void => {
    if (probed) return;
    probed = true;
    sink.start();
  };
  const plan = { nodeId, replicaId: store.replicaId, locationTable: config.locationTable };
  const sink = createKamailioSink({
    store, writer: links.writer, plan, log, metrics, window: config.window,
    cursor: openInstallCursor(join(deps.dataDir, "kamailio-cursor.json")), aliasesWaiting: deps.aliasesWaiting, aliasesInDatabaseOnly: links.aliasTable === null,
    ...(links.preloadDb !== null
      ? { databaseWritesUnseen: (op: InstallOp) => missedByRunningKamailio(op, links.aliasTable), unseen: deps.unseen }
      : {}),
    // Also until the first probe has answered: whether this Kamailio keys AoRs with their domain,
    // and whether a reload into a restarted one takes over what waits, are known only then.
    held: () => journal.held() || refused() || !probed,
    // Asked from sink.start() on, when `reload` is there.
    leftToReload: () => reload.leftToReload(),
    beforeRetry: () => probe().then(() => undefined, () => undefined),
  });
  /** Every change stored, local or a peer's: planned writes older than one are not sent (stale-writes.ts). */
  const onStored: OnStored = (listener) => replica.onApplied(listener);
  const mark = openReloadMark({ notes: deps.notes, instance: () => watch.current(), log });
  const watch = createInstanceWatch({
    core: links.core, file: join(deps.dataDir, "kamailio-instance.json"), unfinished: mark.previous?.instance ?? null, log, metrics,
  });
  const reload = createDueReload({
    config, store, links, plan, watch, mark, sink, onStored, clockLeadMs, journal, kamailioUp: () => liveness.isUp(), log, metrics,
    aliasesWaiting: deps.aliasesWaiting,
    // Bulk channels only beside an open event connection (bulk-after-events.ts): `events` below.
    eventsOpen: () => events.listening(),
  });
  const liveness = createKamailioLiveness({ sink, metrics });
  const table = createKamailioTable({
    store, nodeId, locationTable: config.locationTable, maxContacts: config.reconcileMaxContacts,
    countContacts: links.countContacts,
    // Not beside a reload or reconcile: Kamailio has one FIFO process, and each of them dumps too.
    dump: (maxReplyBytes) => exclusive(() => links.dump(maxReplyBytes)),
    pendingWrites: () => sink.lastPending(),
    busy() {
      const r = reload.status();
      if (r.state !== "running") return null;
      return `a reload into this node's Kamailio is running (${r.done} of ${r.total} writes, as \`locmesh status\` counts them): its table is half written, and a dump ` +
        "would hold its only FIFO process meanwhile. Follow the reload with `locmesh status`, and list the table once it is done";
    },
  });
  const times = createKamailioTimes();
  const reconciles = createReconcileRun({
    config, nodeId, store, replica, links, plan, watch, sink, times, onStored, clockLeadMs, journal, log, metrics,
    onDomainless: (reason) => keys.refuse(reason),
  });
  const sockets = createWildcardSocketCheck({ log });
  // Not against usrloc db_mode 3: its ul.lookup reads the database, and finds nothing while that
  // is down, which would read as de-registrations. Its reconcile reads the database itself, and
  // fails while it is down.
  const aorLookups = links.dumpReadsDatabase ? undefined : createAorLookups({
    log,
    onOverflow: () => void reconcile().catch((err: unknown) => log.warn({ err: (err as Error).message }, "reconcile for the AoRs past what the lookups keep failed")),
  });
  const events = createEvapiEvents({
    config, nodeId, store, replica, sink, times, liveness, clockLeadMs, log, metrics, sockets, ...(aorLookups ? { aorLookups } : {}),
    kamailioWhole: () => !watch.reloadNeeded(),
    admit: () => keys.admit(),
    acknowledge: (n) => links.core.setShvInt(ACKED_SHV, n),
    onConnect: () => {
      // Maybe another Kamailio: its events wait for the answer (keys.admit()).
      keys.forget();
      void reconcile().catch((err: unknown) => log.warn({ err: (err as Error).message }, "reconcile after evapi connect failed"));
    },
  });
  const gate = createRegisterGate({
    core: links.core, instance: () => watch.current(), log,
    whole: () => !watch.reloadNeeded() && seeded() && events.listening(),
  });
  const peerList = createSipPeerList({ core: links.core, instance: () => watch.current(), initial: deps.sipPeers, log });
  const unsubscribe: (() => void)[] = [];
  const timers: NodeJS.Timeout[] = [];
  let closed = false;

  /** Reload, check and reconcile never overlap: each waits for the one before. */
  let serial: Promise<unknown> = Promise.resolve();
  function exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = serial.then(fn, fn);
    serial = run.catch(() => undefined);
    return run;
  }

  /**
   * watch.observe(), telling the liveness how it went, and, once per instance, how Kamailio keys
   * AoRs; true when Kamailio came back (it was down).
   */
  async function probe(): Promise<void> {
    try {
      await watch.observe();
    } catch (err) {
      if (liveness.isUp()) log.warn({ err: (err as Error).message }, "Kamailio does not answer over jsonrpcs");
      liveness.down((err as Error).message);
      throw err;
    }
    await keys.check(watch.current());
    if (liveness.up()) cameBackUnseen = true;
    await peerList.sync();
  }
  /** Kamailio came back since check() or reconcile() last looked, whoever probed it (the sink's retries probe too). */
  let cameBackUnseen = false;
  function takeCameBack(): boolean {
    const back = cameBackUnseen;
    cameBackUnseen = false;
    return back;
  }

  function reconcile(): Promise<void> {
    return exclusive(async () => {
      await probe();
      if (refused()) return;
      takeCameBack(); // the reconcile (or reload) below is the come-back's too
      if (watch.reloadNeeded()) await reload.runIfDue();
      else await reconciles.run();
      await gate.openIfWhole();
    });
  }

  /** The watch: notices restarts (and reloads), and reconciles when Kamailio comes back. */
  function check(): Promise<void> {
    return exclusive(async () => {
      // Kamailio just went away (evapi dropped): a probe now would likely go into the FIFO of a
      // Kamailio on its way out and wait out its timeout, and the reconnect's reconcile (which
      // notices the new instance at once) would queue behind it: 1.3-1.4 s later in 1 of 3
      // restarts measured. While evapi's reconnect is retried (evapi-events.ts), probing waits.
      if (events.reconnecting()) return;
      try {
        await probe();
      } catch {
        sinkMayStart();
        return;
      }
      sinkMayStart();
      if (refused()) return;
      const cameBack = takeCameBack();
      if (watch.reloadNeeded()) await reload.runIfDue();
      else if (cameBack) await reconciles.run();
      await gate.openIfWhole();
      sink.kick();
    });
  }

  /**
   * The local API's edits of this node's bindings (location.publish), a batch at a time beside no due
   * reload, check or reconcile (a reload on demand, locmesh resync --kamailio, runs on its own; both
   * writes are idempotent): each writes too, and Kamailio has one FIFO process.
   */
  const apiEdits = createApiEditBatches({
    exclusive,
    max: API_BATCH_MAX,
    async run(edits) {
      await probe(); // which Kamailio runs, and how it keys AoRs
      if (refused()) return "the agent does not attach to this Kamailio (locmesh status says why): nothing is written into it";
      return reconciles.runFor(edits);
    },
  });
  const waitingApiEdits = createWaitingApiEdits({ set: deps.apiWaiting, store, log, max: API_BATCH_MAX });
  /** After a check: the API's edits that wait for Kamailio, tried again while it answers. */
  function retryApiEdits(): Promise<void> {
    if (waitingApiEdits.size() === 0 || !scopedRunsMayGo()) return Promise.resolve();
    return waitingApiEdits.retry((edits) => apiEdits.add(edits)).then(() => undefined);
  }
  /**
   * Runs over a few AoRs (the API's waiting edits, the AoR lookups) may go now: Kamailio answers and
   * is attached, and their answer is not known to be "not now" (held, not seeded, a reload due),
   * when each round would look its AoRs up in Kamailio's one FIFO process for nothing.
   */
  function scopedRunsMayGo(): boolean {
    return !closed && liveness.isUp() && !refused() && !journal.held() && journal.seeded() && !watch.reloadNeeded();
  }
  /**
   * After a check: the AoRs whose events did not say all (aor-lookups.ts), looked up while Kamailio
   * answers, a chunk a turn of its FIFO process, up to LOOKUP_TURNS turns before the next check.
   */
  async function lookUpAors(): Promise<void> {
    for (let turn = 0; turn < LOOKUP_TURNS; turn++) {
      if (!aorLookups?.due() || !scopedRunsMayGo()) return;
      await exclusive(() => aorLookups.repair((aors) => reconciles.runForAors(aors)));
    }
  }
  const checkThenRetry = (): Promise<void> => check().finally(() => retryApiEdits()).finally(() => lookUpAors());

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
      reload.redoUnfinished();
      // onApplied carries this node's own commits too (replica.ts).
      unsubscribe.push(replica.onApplied(() => sink.kick()));
      unsubscribe.push(deps.journalBehind.onSet(() => {
        log.error("this node's journal is behind its peers: nothing more is written into Kamailio (no writes, reloads or reconciles) until the agent is started afresh");
      }));
      if (deps.eventsAfter) {
        const go = () => events.start();
        void deps.eventsAfter().then(go, go);
      } else events.start();
      // The sink is held until this first check's probe has answered (or failed: Kamailio down,
      // the sink then goes to its database fallback as before).
      void check().catch((err: unknown) => log.warn({ err: (err as Error).message }, "first check of Kamailio failed")).finally(() => {
        sinkMayStart();
        void retryApiEdits().catch((err: unknown) => log.warn({ err: (err as Error).message }, "could not try the waiting API edits again"));
      });
      every(config.checkIntervalSec * 1000, checkThenRetry);
      if (config.reconcileIntervalSec > 0) every(config.reconcileIntervalSec * 1000, () => (liveness.isUp() ? reconcile() : Promise.resolve()));
    },
    async status() {
      const pending = await sink.pending();
      const s = sink.status();
      const refusal = keys.refusal();
      return {
        up: liveness.isUp(),
        writer: refusal ? "refused" : s.state === "held" ? "held" : s.state === "waiting" ? "pending" : (s.lastRoute ?? "idle"),
        pendingWrites: pending,
        ...(s.aliasesWaiting ? { aliasesWaiting: s.aliasesWaiting.count } : {}),
        ...(refusal ? { lastError: refusal.reason, lastErrorAt: refusal.at } : lastErrorOf(s, liveness.downReason())),
        rejected: s.rejected,
        events: events.status(),
        reload: reload.status(),
        lastReconcile: reconciles.last(),
        restarts: watch.restarts(),
        sipPeers: peerList.status(),
        ...warningsOf([sockets.warning()]),
      };
    },
    pendingWrites: () => sink.lastPending(),
    reload: (reason) => reload.run(reason),
    setSipPeers(next) {
      peerList.want(next);
      void peerList.sync();
    },
    async lookup(aor) {
      return (await links.usrloc.ulLookup(config.locationTable, aor)).map(toKamailioContact);
    },
    applyApiEdits: (edits) => waitingApiEdits.track(edits, () => apiEdits.add(edits)),
    alias: (alias) => readKamailioAlias(links, alias),
    list: (p) => table.list(p),
    reconcile,
    journalSeeded() {
      log.info("the journal has caught up with the cluster: bringing Kamailio in line (a reload if it needs one, else a reconcile)");
      // The snapshot's records go into Kamailio first, so the reconcile compares against them.
      void sink.drained().then(() => (closed ? undefined : reconcile()))
        .catch((err: unknown) => log.warn({ err: (err as Error).message }, "reconcile after the first catch-up failed"));
    },
    drained: () => sink.drained(),
    async close() {
      closed = true;
      table.close();
      for (const t of timers) clearInterval(t);
      for (const u of unsubscribe) u();
      // A reload of a large table runs for minutes (longer with reloadRate): it stops before its
      // next write, rather than hold the stop past its timeout (the next start redoes it).
      reload.stop();
      await events.close();
      await sink.close();
      await serial;
      await links.close();
    },
  };
}

/** The status's `warnings`, absent when there are none. */
const warningsOf = (found: readonly (string | null)[]): { warnings?: string[] } => {
  const warnings = found.filter((w): w is string => w !== null);
  return warnings.length > 0 ? { warnings } : {};
};
