/**
 * Brings the journal and the local Kamailio into agreement from a full `ul.dump`. The include
 * holds at most 20,000 REGISTERs while the agent is not connected (cfg-include.ts; evapi itself
 * drops events then, kamailio-5.6.md §6), a Kamailio that restarts loses those it held, and some
 * removals raise no event at all (§8), so the agent runs this after it connects and then periodically.
 *
 * Per binding (AoR, contact):
 * - Kamailio holds a real registration (a Call-ID other than ul.add's) the journal lacks, or one
 *   Kamailio changed after the journal's version: learned, as this node's binding.
 * - Kamailio holds a contact the agent installed (ul.add's Call-ID) that the journal no longer has
 *   live: removed from Kamailio. One whose routing fields differ from the journal: rewritten.
 * - The journal has a live binding Kamailio lacks: another node's is written back; this node's own
 *   from a REGISTER is gone from its registrar without an event (a missed de-registration), so it
 *   is removed from the journal; this node's own published through the local API (no REGISTER's
 *   Call-ID: madeByRegistrar) is written back. (A restarted Kamailio is never reconciled before
 *   the reload has refilled it.)
 * Nothing that changed after the dump began is touched: versions newer than the dump, versions the
 * sink has not written yet, and writes the sink finished after the dump began. Nor is anything
 * decided on an AoR that is not as the journal keys it: a table with AoRs without '@' (usrloc
 * use_domain 0, usrloc-keys.ts) is refused whole, since then none of the journal's bindings would
 * be found in it; any other such AoR (upper case with the registrar's case_sensitive, a user part
 * the journal cannot hold) is left alone, and a journal binding it stands for is not taken for gone.
 * Times from this
 * host's clock (the dump's start, Kamailio's Last-Modified) are moved into the hybrid logical
 * clock's frame (`clockLeadMs`) before they are compared with version stamps.
 */
import { hlcToMillis, isLive, type AliasValue, type BindingValue, type Change } from "../contract/records.js";
import { normalizeAor } from "../contract/sip-uri.js";
import type { Draft, ReplicaStore } from "../core/store.js";
import { aliasKey, bindingKey, planRestore, recordKey, ulBinding, type InstallOp } from "./install-plan.js";
import { hostClockMs } from "./kamailio-times.js";
import { UL_ADD_CALLID, bindingFromEvent } from "./registrar-input.js";
import type { UsrlocContact } from "./usrloc-contact.js";
import { UsrlocKeysError, domainlessAor, useDomainProblem } from "./usrloc-keys.js";

export interface ReconcileInput {
  nodeId: string;
  dump: readonly UsrlocContact[];
  /** When the dump was requested (ms): anything newer is left to the next run. */
  dumpStartMs: number;
  /**
   * How far this node's hybrid logical clock ran ahead of its wall clock at dumpStartMs (ms, ≥ 0):
   * stamps follow the fastest clock in the cluster, Kamailio's times this host's.
   */
  clockLeadMs: number;
  /**
   * How long ul.dump took (s). Kamailio prints seconds remaining as it builds the reply, and the
   * dump's absolute expiries count from when the reply arrived, so they may read up to this late.
   */
  dumpSec?: number;
  locationTable: string;
  /** usrloc domain holding SER-style aliases, or null (aliases live in dbaliases). */
  aliasTable: string | null;
  nowSec: number;
  isPending(change: Change): boolean;
  writtenAt(key: string): number | undefined;
  /** Kamailio's time for a version the agent learned from this Kamailio (kamailio-times.ts). */
  kamailioTime?(change: Change): number | undefined;
  /**
   * Only these bindings (AoR and contact), which the local API just changed: `dump` holds their
   * AoRs' contacts (ul.lookup of each). Nothing else is decided: other bindings of those AoRs are
   * the full reconcile's, and this node's own edited bindings Kamailio lacks are written in,
   * whatever their Call-ID (the API was given them).
   */
  only?: ApiEdits;
  /**
   * Only these AoRs, whose registrar events did not say all (aor-lookups.ts): `dump` holds their
   * contacts (ul.lookup of each), and the journal's side of them is decided as a full reconcile
   * decides it (learned, or removed as de-registered). Nothing is written into Kamailio, and no
   * alias is decided.
   */
  aors?: ReadonlySet<string>;
}

/** What the local API just committed: each binding's key, its AoR and the stamp the API gave it. */
export interface ApiEdits {
  /**
   * bindingKey(aor, contact) → its AoR and the stamp of the API's edit of it: a version stamped
   * after that came after the edit (a REGISTER meanwhile), and is left to the reconcile.
   */
  keys: ReadonlyMap<string, { aor: string; hlc: number }>;
}

export interface ReconcilePlan {
  /** Journal edits: bindings learned from Kamailio, or own bindings it no longer holds. */
  drafts: Draft[];
  /** Writes that put Kamailio back in line with the journal. */
  repairs: InstallOp[];
  /**
   * A contact Kamailio holds more than once under one AoR, once per run: two rows of it loaded from
   * its database at a start (the agent's fallback row beside Kamailio's own, from before the settle
   * or an agent killed between the two). `ul.rm_contact` removes the first copy it finds; one copy
   * goes per run, and nothing else is written for that binding in the same run (Copies says why).
   * Copies with two different real Call-IDs are not listed: that is usrloc's matching_mode 1
   * (contact and Call-ID), which keeps them apart on purpose.
   */
  duplicates: { aor: string; contact: string; first: CopyMark }[];
  /**
   * Contacts held twice under two phones' Call-IDs: usrloc's matching_mode 1 (contact and Call-ID),
   * which locmesh does not support. How many, and the first found.
   */
  keptApart: { count: number; first: { aor: string; contact: string } | null };
}

/** What tells the copy ul.rm_contact would remove (the first) from the same copy changed since the dump (a REGISTER's refresh). */
export type CopyMark = Pick<UsrlocContact, "ruid" | "callid" | "cseq" | "lastModified">;

type Live = Map<string, Change>;

/** Every live record of a kind, page by page (bounded memory per page). */
export async function loadLive(store: ReplicaStore, kind: "loc" | "alias", nowSec: number): Promise<Live> {
  const out: Live = new Map();
  let after = "";
  for (;;) {
    const page = await store.page(kind, { search: "", after, limit: 5000, nowSec, countTotal: false });
    for (const c of page.items) out.set(recordKey(c), c);
    if (page.next === null) return out;
    after = page.next;
  }
}


/**
 * The fields Kamailio routes by that are not as the agent would write them (ulBinding), in
 * UsrlocContact's names; empty when they agree. Expiries within `slackSec` agree.
 */
export function routingDifferences(k: Pick<UsrlocContact, "expires" | "q" | "path" | "received">, want: ReturnType<typeof ulBinding>, slackSec: number): string[] {
  const out: string[] = [];
  if (want.expires === 0 ? k.expires !== 0 : Math.abs(k.expires - want.expires) > slackSec) out.push("expires");
  if (Math.abs(k.q - want.q) > 0.001) out.push("q");
  if (k.path !== want.path) out.push("path");
  if (k.received !== want.received) out.push("received");
  return out;
}

const routingDiffers = (k: UsrlocContact, want: ReturnType<typeof ulBinding>, slackSec: number): boolean => routingDifferences(k, want, slackSec).length > 0;

export async function planReconcile(store: ReplicaStore, input: ReconcileInput): Promise<ReconcilePlan> {
  const { nodeId, nowSec, locationTable } = input;
  // Both sides round to whole seconds; a slow dump adds its own duration (see dumpSec).
  const slackSec = 2 + Math.ceil(input.dumpSec ?? 0);
  const drafts: Draft[] = [];
  const repairs: InstallOp[] = [];
  const ctx = { nodeId, replicaId: store.replicaId, locationTable, nowSec };
  const dumpStartHlcMs = input.dumpStartMs + input.clockLeadMs;
  const only = input.only;
  // Limited to what the API committed: its own stamps tell what came after, not the clock (whose
  // lead would put them in the lookup's own millisecond).
  const newer = (c: Change) => (only ? c.hlc > (only.keys.get(recordKey(c))?.hlc ?? -1) : hlcToMillis(c.hlc) >= dumpStartHlcMs);
  const untouchable = (c: Change, k: string) =>
    input.isPending(c) || newer(c) || (input.writtenAt(k) ?? 0) >= input.dumpStartMs;

  const domainless = domainlessAor(input.dump, [locationTable, input.aliasTable]);
  if (domainless !== null) throw new UsrlocKeysError(useDomainProblem(domainless));
  const aors = input.aors;
  const locs = only !== undefined ? await loadLiveOf(store, only, nowSec) : aors !== undefined ? await loadLiveOfAors(store, aors, nowSec) : await loadLive(store, "loc", nowSec);
  const seen = new Set<string>();
  const duplicates: ReconcilePlan["duplicates"] = [];
  const copies = copiesOf(input.dump, locationTable);
  /** Copies of each binding met so far in the dump. */
  const met = new Map<string, number>();
  const keptApart: ReconcilePlan["keptApart"] = { count: 0, first: null };
  for (const k of input.dump) {
    if (k.table !== locationTable || k.status === "expired" || k.status === "deleted") continue;
    const keyed = normalizeAor(k.aor);
    if (!("aor" in keyed) || keyed.aor !== k.aor) {
      if ("aor" in keyed) seen.add(bindingKey(keyed.aor, k.contact));
      continue;
    }
    const id = bindingKey(k.aor, k.contact);
    if (only && !only.keys.has(id)) continue;
    if (aors && !aors.has(k.aor)) continue;
    seen.add(id);
    const j = locs.get(id) ?? (await store.get("loc", k.aor, k.contact));
    const jLive = j !== null && j !== undefined && j.value !== null && locs.has(id);
    if (j && untouchable(j, id)) continue;
    const group = copies.get(id);
    /** A copy of this binding goes in this run, or one removed lingers: nothing is written for it (Copies). */
    let noWrites = false;
    if (group !== undefined) {
      const at = met.get(id) ?? 0;
      met.set(id, at + 1);
      if (group.apart) {
        if (at === 0) {
          keptApart.count++;
          keptApart.first ??= { aor: k.aor, contact: k.contact };
        }
      } else {
        // ul.rm_contact would take the first copy, the phone's own registration, and the journal
        // does not hold it: learned from that copy in this run, and the copies go in a later one.
        const phoneFirst = group.phone !== -1 && group.phone !== group.n - 1 && !jLive;
        // Not while a removed copy lingers (listed first, it is what ul.rm_contact would find again).
        const removes = group.n > 1 && !phoneFirst && !group.lingering;
        if (at === 0 && removes) duplicates.push({ aor: k.aor, contact: k.contact, first: { ruid: k.ruid, callid: k.callid, cseq: k.cseq, lastModified: k.lastModified } });
        if (at !== (phoneFirst ? group.phone : group.n - 1)) continue;
        noWrites = removes || group.lingering;
      }
    }
    const repair = (op: InstallOp): void => {
      if (!noWrites) repairs.push(op);
    };
    if (k.callid === UL_ADD_CALLID) {
      if (!jLive) repair({ op: "rm-contact", table: locationTable, aor: k.aor, contact: k.contact });
      else {
        const want = ulBinding(k.contact, j.value as BindingValue, nodeId);
        if (routingDiffers(k, want, slackSec)) repair(planRestore(j, ctx)!);
      }
      continue;
    }
    // A real registration. Learn it unless the journal's version is at least as recent, judged on
    // this host's clock: Kamailio's own time for a version learned from it, else the stamp moved
    // back by the clock's lead. A removal the agent learned from this Kamailio is older than
    // whatever Kamailio holds now: Kamailio dropped the contact then, so holding it again means it
    // was registered again since (whose event may still be on its way; last_modified has whole
    // seconds only).
    const kamailioMs = k.lastModified * 1000;
    const learnedHere = j ? input.kamailioTime?.(j) : undefined;
    const journalMs = j ? hostClockMs(j, learnedHere, input.clockLeadMs) : 0;
    if (!j || (jLive && kamailioMs > journalMs + 1000 && changedByRegistrar(j, k, slackSec))) {
      drafts.push({ kind: "loc", key: k.aor, sub: k.contact, value: bindingFromEvent({ ...k }, nodeId) });
    } else if (!jLive && learnedHere === undefined && journalMs > kamailioMs) {
      repair({ op: "rm-contact", table: locationTable, aor: k.aor, contact: k.contact });
    } else if (!jLive) {
      drafts.push({ kind: "loc", key: k.aor, sub: k.contact, value: bindingFromEvent({ ...k }, nodeId) });
    } else if (routingDiffers(k, ulBinding(k.contact, j.value as BindingValue, nodeId), slackSec) && (j.value as BindingValue).owner !== nodeId) {
      repair(planRestore(j, ctx)!);
    }
  }

  for (const [id, j] of locs) {
    if (seen.has(id) || untouchable(j, id)) continue;
    const v = j.value as BindingValue;
    if (v.expires !== 0 && v.expires <= nowSec + 2) continue; // Kamailio may just have expired it
    // Limited to what the local API just changed, each binding is what it was given: written in.
    if (v.owner === nodeId && madeByRegistrar(v) && only === undefined) drafts.push({ kind: "loc", key: j.key, sub: j.sub, value: null });
    else repairs.push(planRestore(j, ctx)!);
  }

  // Limited to AoRs whose events did not say all, only the journal is brought in line: writes into
  // Kamailio are the sink's and the full reconcile's (ul.lookup lists no lingering copies, Copies).
  if (aors !== undefined) return { drafts, repairs: [], duplicates: [], keptApart };
  if (input.aliasTable !== null && only === undefined) repairs.push(...(await aliasRepairs(store, input)));
  return { drafts, repairs, duplicates, keptApart };
}

/**
 * The bindings Kamailio lists more than once (same AoR and contact), with how many copies. They are
 * copies of one binding when at most one phone's Call-ID is among them (the others ul.add's, as the
 * agent's database rows and Kamailio's own rows of its writes have); two phones' Call-IDs are
 * usrloc's matching_mode 1 keeping two registrations apart (`apart`).
 */
function copiesOf(dump: readonly UsrlocContact[], locationTable: string): Map<string, Copies> {
  const callids = new Map<string, string[]>();
  /** Every entry of each binding, expired and deleted ones too. */
  const entries = new Map<string, number>();
  for (const k of dump) {
    if (k.table !== locationTable) continue;
    const id = bindingKey(k.aor, k.contact);
    entries.set(id, (entries.get(id) ?? 0) + 1);
    if (k.status === "expired" || k.status === "deleted") continue;
    const list = callids.get(id);
    if (list === undefined) callids.set(id, [k.callid]);
    else list.push(k.callid);
  }
  const out = new Map<string, Copies>();
  for (const [id, list] of callids) {
    const lingering = entries.get(id)! > list.length;
    if (list.length < 2 && !lingering) continue;
    out.set(id, {
      n: list.length,
      apart: new Set(list.filter((c) => c !== UL_ADD_CALLID)).size > 1,
      phone: list.findLastIndex((c) => c !== UL_ADD_CALLID),
      lingering,
    });
  }
  return out;
}

/**
 * One binding's copies in a dump (copiesOf): how many live ones, whether two phones' Call-IDs keep
 * them apart, the place (in dump order) of the last one under a phone's Call-ID (-1: none), and
 * whether expired or deleted entries of it are listed too.
 *
 * The plan judges the last copy, and lists one copy (the first: ul.rm_contact takes the first it
 * finds) for removal per run, writing nothing else for that binding in the same run: usrloc in
 * db_mode 2 (write-back) only marks a copy loaded from its database as expired, and leaves it first
 * in the list until its timer deletes it, so a second ul.rm_contact, or the ul.add of a repair,
 * finds that same copy again, and ul.add brings it back (usrloc urecord.c contact_match, ucontact.c
 * st_delete_ucontact; kamailio-usrloc-copies.test.ts). Such a copy is listed as deleted (or
 * expired) until then (`lingering`): while it is, nothing is written for the binding either. A
 * later run finds one copy fewer.
 * Not while a phone's own copy comes before the last one and the journal does not hold the binding
 * live (the phone registered while the agent was away): the removal would take the phone's
 * registration, and the plan would then judge an ul.add copy against that journal and remove it
 * too. That run learns the binding from the phone's copy instead; a later run removes copies.
 */
interface Copies {
  n: number;
  apart: boolean;
  phone: number;
  lingering: boolean;
}

/**
 * The binding came from a REGISTER (every SIP request has a Call-ID), not from the local API: one
 * published there has none, or ul.add's, which is what Kamailio gives it when it is written in.
 */
export const madeByRegistrar = (v: Pick<BindingValue, "callid">): boolean => v.callid !== "" && v.callid !== UL_ADD_CALLID;

/** The live versions of the edited bindings, as loadLive keys them. */
async function loadLiveOf(store: ReplicaStore, only: ApiEdits, nowSec: number): Promise<Live> {
  const live = await loadLiveOfAors(store, new Set([...only.keys.values()].map((k) => k.aor)), nowSec);
  for (const key of live.keys()) if (!only.keys.has(key)) live.delete(key);
  return live;
}

/** The live bindings of these AoRs, as loadLive keys them. */
async function loadLiveOfAors(store: ReplicaStore, aors: ReadonlySet<string>, nowSec: number): Promise<Live> {
  const out: Live = new Map();
  for (const aor of aors) for (const c of await store.listKey("loc", aor)) if (isLive(c, nowSec)) out.set(recordKey(c), c);
  return out;
}

/** Kamailio changed the binding itself (a REGISTER the agent did not hear about). */
function changedByRegistrar(j: Change, k: UsrlocContact, slackSec: number): boolean {
  const v = j.value as BindingValue;
  return v.callid !== k.callid || v.cseq !== k.cseq || Math.abs(v.expires - k.expires) > slackSec;
}

/** The aliases domain belongs to locmesh: it holds exactly the journal's live aliases. */
async function aliasRepairs(store: ReplicaStore, input: ReconcileInput): Promise<InstallOp[]> {
  const table = input.aliasTable!;
  const inKamailio = new Map<string, string[]>();
  for (const k of input.dump) if (k.table === table) inKamailio.set(k.aor, [...(inKamailio.get(k.aor) ?? []), k.contact]);
  const repairs: InstallOp[] = [];
  const dumpStartHlcMs = input.dumpStartMs + input.clockLeadMs;
  const live = await loadLive(store, "alias", input.nowSec);
  for (const j of live.values()) {
    if (input.isPending(j) || hlcToMillis(j.hlc) >= dumpStartHlcMs) continue;
    const target = (j.value as AliasValue).target;
    const have = inKamailio.get(j.key);
    if (!have || have.length !== 1 || have[0] !== target) repairs.push({ op: "alias-set", alias: j.key, target });
  }
  for (const alias of inKamailio.keys()) {
    if (live.has(aliasKey(alias))) continue;
    const j = await store.get("alias", alias, "");
    if (j && (input.isPending(j) || hlcToMillis(j.hlc) >= dumpStartHlcMs)) continue;
    repairs.push({ op: "alias-rm", alias });
  }
  return repairs;
}
