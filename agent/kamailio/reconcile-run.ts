/**
 * One reconcile with Kamailio: reads what it holds (ul.dump, or its database in db_mode 3),
 * journals what it learned (planReconcile, reconciler.ts) and repairs what Kamailio lacks, and
 * reports how it went (reconcile-report.ts). Skipped until the journal is seeded, while it is held,
 * and past reconcileMaxContacts.
 */
import type { KamailioConfig } from "../config/agent-config.js";
import type { KamailioReconcileStatus } from "../contract/kamailio-status.js";
import type { Replica } from "../core/replica.js";
import type { ReplicaStore } from "../core/store.js";
import type { Logger } from "../ops/logger.js";
import type { Metrics } from "../ops/metrics.js";
import { bindingKey, recordKey, type PlanContext } from "./install-plan.js";
import type { JournalGate } from "./journal-gate.js";
import type { InstanceWatch } from "./instance-watch.js";
import type { KamailioLinks } from "./kamailio-links.js";
import type { KamailioSink } from "./kamailio-sink.js";
import type { KamailioTimes } from "./kamailio-times.js";
import { isTransient } from "../core/transient.js";
import { planReconcile, type ApiEdits, type CopyMark, type ReconcilePlan } from "./reconciler.js";
import type { UsrlocContact } from "./usrloc-contact.js";
import { createReconcileReport, type ReconcileDone } from "./reconcile-report.js";
import { watchChanges, writeUnlessStale, type OnStored } from "./stale-writes.js";
import { UsrlocKeysError } from "./usrloc-keys.js";

const LOOKUPS_AT_ONCE = 16;
const HELD = "this node's journal is held (locmesh status says why): nothing is written into Kamailio until it is repaired";
/** AoRs of the bindings a full reconcile would remove or write for lacking them that are looked up first (checkDump). */
const LACKING_CHECKED = 3;

/**
 * The dump did not list a contact Kamailio holds: the reconcile would have taken it for a
 * de-registration and removed it from the cluster, or written it again. Nothing is changed; the
 * run fails saying so.
 */
export class KamailioDumpIncompleteError extends Error {
  override readonly name = "KamailioDumpIncompleteError";
}

/**
 * What the error says: the contact, and the likely cause: usrloc db_mode 3 without kamailio.db
 * (ul.dump), or a kamailio.db that does not match Kamailio's (the location table as read).
 */
export function dumpIncompleteMessage(aor: string, contact: string, from: "ul.dump" | "database"): string {
  const lacked = `${from === "ul.dump" ? "ul.dump" : "Kamailio's location table, as the agent reads it through kamailio.db,"} did not list ${aor}'s contact ${contact}, ` +
    "which Kamailio holds (ul.lookup finds it): the reconcile would have taken it for gone, so it changed nothing. ";
  return lacked + (from === "ul.dump"
    ? "ul.dump lists usrloc's memory only, which is empty when usrloc runs db_mode 3 (database only): then give the agent kamailio.db (its url, and dbMode: 3) so that it reads the location table"
    : "Check that kamailio.db's url is the database of usrloc's db_url, and its timeZone Kamailio's (a wrong one reads live rows as expired)");
}

export interface ReconcileRun {
  /** Reconciles now, unless it must wait or be skipped; throws when it failed (reported too). */
  run(): Promise<void>;
  /**
   * Reconciles only these bindings, their AoRs read with ul.lookup: what the local API just changed
   * of this node's own bindings, which the sink never writes (install-plan.ts). Null when done, else why it may not
   * run now (the journal not seeded or held, or Kamailio due a reload); throws when Kamailio cannot
   * be read or written. Not reported as a reconcile.
   */
  runFor(edits: ApiEdits): Promise<string | null>;
  /**
   * Brings the journal in line with these AoRs as Kamailio holds them, each read with ul.lookup:
   * AoRs whose registrar events did not say all (aor-lookups.ts). Writes nothing into Kamailio.
   * Null when done, else why it may not run now (as runFor); throws when Kamailio cannot be read
   * or the journal not written. Not reported as a reconcile.
   */
  runForAors(aors: ReadonlySet<string>): Promise<string | null>;
  /** The last reconcile; null before the first. */
  last(): KamailioReconcileStatus | null;
}

export function createReconcileRun(deps: {
  config: Pick<KamailioConfig, "locationTable" | "reconcileMaxContacts">;
  nodeId: string;
  store: ReplicaStore;
  replica: Replica;
  links: Pick<KamailioLinks, "writer" | "dump" | "dumpReadsDatabase" | "aliasTable" | "usrloc">;
  plan: Omit<PlanContext, "nowSec">;
  watch: Pick<InstanceWatch, "observe" | "reloadNeeded">;
  sink: Pick<KamailioSink, "isPending" | "writtenAt">;
  times: KamailioTimes;
  onStored: OnStored;
  clockLeadMs: () => number;
  journal: JournalGate;
  log: Logger;
  metrics: Metrics;
  /** The dump showed that Kamailio keys AoRs without their domain (usrloc-keys.ts refuse()). */
  onDomainless?: (reason: string) => void;
}): ReconcileRun {
  const { config, nodeId, store, replica, links, plan, watch, sink, times, metrics } = deps;
  const held = (): boolean => deps.journal.held();
  const reconciles = createReconcileReport({ log: deps.log });

  /** ul.lookup of each AoR, a few at a time (a location.publish may name thousands). */
  async function lookupAll(aors: readonly string[]) {
    const out = [];
    for (let i = 0; i < aors.length; i += LOOKUPS_AT_ONCE) {
      const page = await Promise.all(aors.slice(i, i + LOOKUPS_AT_ONCE).map((aor) => links.usrloc.ulLookup(config.locationTable, aor)));
      out.push(...page.flat());
    }
    return out;
  }

  /**
   * Compares and repairs: the whole table (ul.dump), or a scope read with ul.lookup instead: the
   * bindings the local API edited (`only`), or whole AoRs (`aors`). Null when Kamailio is due a reload.
   */
  async function compareAndRepair(scope: { only?: ApiEdits; aors?: ReadonlySet<string> } = {}): Promise<ReconcileDone | null> {
    const { only, aors } = scope;
    const dumpStartMs = Date.now();
    const leadMs = deps.clockLeadMs();
    const dump = only !== undefined ? await lookupAll([...new Set([...only.keys.values()].map((k) => k.aor))])
      : aors !== undefined ? await lookupAll([...aors])
      : await links.dump();
    const dumpEndMs = Date.now();
    // A restart during the dump would make its emptiness look like removals.
    await watch.observe();
    if (watch.reloadNeeded()) return null;
    const nowSec = Math.floor(Date.now() / 1000);
    // Repairs go out one by one after the plan: one for a record changed meanwhile would be older
    // than the journal (the sink writes the newer version), and is skipped or followed by it.
    const changes = watchChanges(deps.onStored);
    try {
      const p = await planReconcile(store, {
        nodeId, dump, dumpStartMs, dumpSec: (dumpEndMs - dumpStartMs) / 1000, clockLeadMs: leadMs, nowSec,
        locationTable: config.locationTable, aliasTable: links.aliasTable,
        // The sink never writes this node's own bindings: the API's edits of them are not waiting for it.
        isPending: only === undefined ? (c) => sink.isPending(c) : (c) => !(c.kind === "loc" && c.origin === store.replicaId) && sink.isPending(c),
        writtenAt: (k) => sink.writtenAt(k), kamailioTime: times.of,
        ...(only === undefined ? {} : { only }),
        ...(aors === undefined ? {} : { aors }),
      });
      // The dump takes seconds: the journal may have been found behind meanwhile.
      if (held()) return null;
      if (only === undefined && aors === undefined) await checkDump(dump, p, dumpStartMs);
      // Each edit only if its record has not changed since the plan began: a registrar event that
      // lingered in the journal's group commit (eventLingerMs) is newer than the dump, and appended
      // behind it in one flush the reconcile's removal (or learning) would win over it.
      const written = p.drafts.length > 0
        ? await replica.commitChecked(async () => p.drafts.filter((d) => !changes.changedAfter(recordKey(d), 0)), { source: "reconcile" })
        : [];
      times.learned(written, dumpStartMs);
      const learned = written.filter((c) => c !== null).length;
      let repaired = 0;
      // One copy of a contact held more than once; nothing else is written for it in this run (the
      // plan's Copies says why). Over jsonrpcs only: the database fallback would delete the
      // contact's every row, not one copy.
      let removedCopies = 0;
      for (const d of p.duplicates) {
        if (held()) break;
        // Changed since the plan (a phone's refresh updates the first copy, which this would remove): left to the next run.
        if (changes.changedAfter(bindingKey(d.aor, d.contact), 0)) continue;
        try {
          // The same, when the refresh's event has not reached the journal yet: Kamailio's first copy is not the one the dump listed.
          if (!sameCopy((await links.usrloc.ulLookup(config.locationTable, d.aor)).find((c) => c.contact === d.contact), d.first)) continue;
          if (await links.usrloc.ulRmContact(config.locationTable, d.aor, d.contact)) removedCopies++;
        } catch (err) {
          if (isTransient(err)) throw err;
          deps.log.error({ err: (err as Error).message, aor: d.aor, contact: d.contact }, "Kamailio refused to remove a second copy of a contact it holds twice");
        }
      }
      if (removedCopies > 0) {
        deps.log.warn({ copies: removedCopies, first: p.duplicates[0] },
          "removed second copies of contacts Kamailio held twice under one AoR (two rows of one contact loaded from its database at its start); one copy goes per reconcile, and one of each stays");
      }
      repaired += removedCopies;
      const fresh = { watch: changes, writer: links.writer, store, plan, nowSec: () => Math.floor(Date.now() / 1000) };
      for (const op of p.repairs) {
        if (held()) break;
        try {
          if (await writeUnlessStale(op, fresh)) repaired++;
        } catch (err) {
          // Refused outright (a value Kamailio cannot take): skipped, as the sink does; the rest goes on.
          if (isTransient(err)) throw err;
          metrics.kamailioWriteFailures.inc({ reason: "rejected" });
          deps.log.error({ err: (err as Error).message }, "skipped a repair Kamailio refused");
        }
      }
      const source = only !== undefined ? "api" : aors !== undefined ? "retry" : "reconcile";
      metrics.kamailioLearned.inc({ source }, learned);
      if (aors === undefined) metrics.kamailioRepairs.inc({ source }, repaired); // the AoR scope writes nothing into Kamailio
      return { learned, repaired, contacts: dump.length, keptApart: p.keptApart };
    } finally {
      changes.close();
    }
  }

  /**
   * Before the reconcile acts on bindings the dump lacked (removes this node's own as
   * de-registrations whose event never came, writes other nodes' in again), ul.lookup of a few of
   * their AoRs: a contact that is still there, and was there before the dump began, means the dump
   * is not Kamailio's table (usrloc db_mode 3, whose ul.dump is always empty, with no kamailio.db to
   * read instead). Kamailio's Last-Modified has whole seconds: a phone that registered again since
   * the dump began is not taken for that. ul.lookup lists valid contacts only.
   */
  async function checkDump(dump: readonly UsrlocContact[], p: ReconcilePlan, dumpStartMs: number): Promise<void> {
    const listed = new Set(dump.filter((k) => k.table === config.locationTable).map((k) => bindingKey(k.aor, k.contact)));
    const lacking = [
      ...p.drafts.filter((d) => d.kind === "loc" && d.value === null).map((d) => ({ aor: d.key, contact: d.sub })),
      ...p.repairs.flatMap((op) => (op.op === "add" && op.table === config.locationTable ? [{ aor: op.aor, contact: op.binding.contact }] : [])),
    ].filter((b) => !listed.has(bindingKey(b.aor, b.contact)));
    const aors = [...new Set(lacking.map((b) => b.aor))].slice(0, LACKING_CHECKED);
    for (const aor of aors) {
      const held = await links.usrloc.ulLookup(config.locationTable, aor);
      const missed = new Set(lacking.filter((b) => b.aor === aor).map((b) => b.contact));
      const still = held.find((k) => missed.has(k.contact) && k.lastModified * 1000 < dumpStartMs - 1000);
      if (still) throw new KamailioDumpIncompleteError(dumpIncompleteMessage(aor, still.contact, links.dumpReadsDatabase ? "database" : "ul.dump"));
    }
  }

  async function runScoped(scope: { only?: ApiEdits; aors?: ReadonlySet<string> }, what: string): Promise<string | null> {
    if (held()) return HELD;
    if (!deps.journal.waitedForSeed()) return `this node's journal has not caught up with the cluster yet: ${what} tried again once it has`;
    const done = await compareAndRepair(scope);
    // Found behind meanwhile: the repairs stopped where they were.
    if (held()) return HELD;
    return done === null ? `a reload into it is due (Kamailio restarted): ${what} tried again after it` : null;
  }

  return {
    async run() {
      if (!deps.journal.waitedForSeed()) return;
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
        const done = await compareAndRepair();
        if (done !== null) reconciles.done(done);
      } catch (err) {
        reconciles.failed(err as Error);
        if (err instanceof UsrlocKeysError) deps.onDomainless?.(err.message);
        throw err;
      }
    },
    runFor: (edits) => runScoped({ only: edits }, "the edit is"),
    runForAors: (aors) => runScoped({ aors }, "the AoRs are"),
    last: () => reconciles.last(),
  };
}

/** Kamailio's first copy of a contact now is still the one the dump listed first, unchanged. */
function sameCopy(now: UsrlocContact | undefined, listed: CopyMark): boolean {
  return now !== undefined && now.ruid === listed.ruid && now.callid === listed.callid && now.cseq === listed.cseq && now.lastModified === listed.lastModified;
}
