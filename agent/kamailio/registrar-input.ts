/**
 * Turns Kamailio's registrar events (register-event.ts) into journal edits.
 *
 * A register event carries the AoR's whole contact list after `save()`. Comparing that snapshot
 * with the journal finds new and refreshed contacts and, as contacts that vanished, every kind of
 * removal: de-registration (expires 0, `Contact: *`) and contacts that `save()` replaced under
 * flag 0x04, which raise no event of their own (kamailio-5.6.md §8; max_contacts in 5.6 refuses
 * the REGISTER instead, registrar save.c test_max_contacts).
 *
 * These rules keep the agent from fooling itself:
 * - A contact the agent installed itself (`ul.add` stamps the fixed Call-ID below, §2.1) is not a
 *   registration: it is never learned as new. A real REGISTER that refreshes it replaces that
 *   Call-ID, and from then on it is this node's binding.
 * - A contact missing from the snapshot is removed if the request named it (by its URI, or by its
 *   +sip.instance as usrloc matches it). Otherwise only if the
 *   request added a contact (so save() may have dropped others to make room) and Kamailio really
 *   held it when the event was made: this node's own bindings (registered here), and other nodes'
 *   bindings that the agent had finished writing before the event's timestamp. A binding still
 *   waiting in the sink, or written after the snapshot was taken, is left alone.
 * Versions newer than the event (a later REGISTER already seen) are never overwritten, and a
 * contact the journal removed after Kamailio last changed it is not learned back (staleCopy).
 * "Newer" and "after" are judged on this host's clock, the one Kamailio stamps events with: a
 * version the agent learned from an earlier event is as old as that event, not as its (later)
 * commit (kamailio-times.ts); any other version's stamp follows the fastest clock in the cluster,
 * so it is first moved back by how far the hybrid logical clock runs ahead of this host
 * (`clockLeadMs`). Without that, a node whose clock is behind another's takes every refresh or
 * de-registration made within that gap for older than the version it replaces, and ignores it.
 *
 * The event's `ts` is when the REGISTER was taken, and the contact list is read later, when the
 * include's drain sends the event: milliseconds later as a rule, but minutes or hours for the
 * REGISTERs the include held while the agent was away (cfg-include.ts). Every comparison with `ts`
 * above errs towards leaving a binding alone when the snapshot is younger than `ts`; the one that
 * would not, "expired anyway", is judged at the later of `ts` and when the agent read the event
 * (`nowMs`), so a binding that expired in between is not taken for one save() dropped.
 */
import type { BindingValue, Change } from "../contract/records.js";
import type { Draft } from "../core/store.js";
import { hostClockMs } from "./kamailio-times.js";
import { bareInstance } from "./contact-header.js";
import type { EventContact, RegisterEvent } from "./register-event.js";

/** The Call-ID `ul.add` gives every contact it creates (kamailio-5.6.md §2.1). */
export const UL_ADD_CALLID = "dfjrewr12386fd6-343@kamailio.rpc";
/** The CSeq `ul.add` gives every contact it writes (kamailio-5.6.md §2.1). */
export const UL_ADD_CSEQ = 1;

export interface RegistrarInputContext {
  nodeId: string;
  /** The AoR's current journal versions (tombstones included). */
  current: readonly Change[];
  /** True while the sink has not yet written this version into Kamailio. */
  isPending(change: Change): boolean;
  /** When the sink last finished writing this binding into Kamailio (ms), if recently. */
  writtenAt(aor: string, contact: string): number | undefined;
  /** How far this node's hybrid logical clock ran ahead of its wall clock when the event came (ms, ≥ 0). */
  clockLeadMs: number;
  /** Kamailio's own time (ms) for a version the agent learned from Kamailio (kamailio-times.ts), if known. */
  kamailioMs?(change: Change): number | undefined;
  /**
   * False while Kamailio does not hold the whole live state (it restarted and the reload into it
   * has not finished): a binding missing from the event may just not be back in it yet, so none is
   * taken as dropped by the request. Removals the request names still count. Default true.
   */
  kamailioWhole?: boolean;
  /** True when the binding was last written into a database the running Kamailio does not read (db_mode 1/2). */
  unseenByKamailio?(aor: string, contact: string): boolean;
  /** When the agent read the event (ms, this host's clock): its snapshot is no younger. Default: the event's ts. */
  nowMs?: number;
}

export function bindingFromEvent(c: EventContact, nodeId: string): BindingValue {
  return {
    expires: c.expires, q: c.q, path: c.path, received: c.received, socket: c.socket,
    callid: c.callid, cseq: c.cseq, userAgent: c.userAgent, flags: c.flags, cflags: c.cflags,
    methods: c.methods, instance: c.instance, regId: c.regId, owner: nodeId, ruid: c.ruid,
  };
}

/** Same registration as far as routing and refresh go; expiry may differ by rounding (±1 s). */
export function sameBinding(a: BindingValue, b: BindingValue): boolean {
  return (
    Math.abs(a.expires - b.expires) <= 1 && (a.expires === 0) === (b.expires === 0) &&
    a.q === b.q && a.path === b.path && a.received === b.received && a.socket === b.socket &&
    a.callid === b.callid && a.cseq === b.cseq && a.userAgent === b.userAgent && a.flags === b.flags &&
    a.cflags === b.cflags && a.methods === b.methods && a.instance === b.instance && a.regId === b.regId &&
    a.owner === b.owner && a.ruid === b.ruid
  );
}

/**
 * The request de-registered this binding: by its URI, or by its `+sip.instance`, as usrloc
 * matches a contact that has an instance (get_ucontact_by_instance, which also compares reg-id
 * under the registrar's use_regid): a phone whose address changed removes its old binding with
 * `<sip:u@new-ip>;+sip.instance=…;expires=0`. Only asked of bindings missing from the snapshot, so
 * matching the instance alone never removes one Kamailio kept.
 */
function named(ev: RegisterEvent, sub: string, v: BindingValue): boolean {
  if (ev.requestContacts === "*") return true;
  const instance = v.instance === "" ? "" : bareInstance(v.instance);
  return ev.requestContacts.some(
    (c) => (c.expires ?? ev.requestExpires) === 0 && (c.uri === sub || (c.instance !== undefined && instance !== "" && c.instance === instance)),
  );
}

/**
 * The request registered or refreshed a contact that is in the snapshot. Only then can save() have
 * dropped other contacts to make room (max_contacts, flag 0x04). A request that added nothing (a
 * de-registration, a query) cannot have pushed contacts out: when its snapshot lacks some anyway,
 * Kamailio could not read them, e.g. a db_mode 3 Kamailio whose database is down still answers a
 * de-registration and reports an empty snapshot (found by the fifo-and-db drill). The periodic
 * reconcile judges those instead.
 */
function addedByRequest(ev: RegisterEvent): boolean {
  if (ev.requestContacts === "*") return false;
  const inSnapshot = new Set(ev.contacts.map((c) => c.contact));
  return ev.requestContacts.some((c) => (c.expires ?? ev.requestExpires) !== 0 && inSnapshot.has(c.uri));
}

/**
 * The journal removed this contact after Kamailio last changed it, so Kamailio's copy is stale:
 * the removal is still on its way into Kamailio, or Kamailio acknowledged a de-registration it
 * could not carry out (a db_mode 3 Kamailio whose database is down answers 200 and keeps the row;
 * found by the fifo-and-db drill). Learning it back would undo an acknowledged removal; the sink
 * or the reconcile takes it out of Kamailio instead. `modified` has whole seconds: one is allowed.
 */
function staleCopy(cur: Change | undefined, c: EventContact, hostMs: (c: Change) => number): boolean {
  return cur !== undefined && cur.value === null && c.modified !== undefined && c.modified > 0 && hostMs(cur) >= (c.modified + 1) * 1000;
}

export function draftsFromRegister(ev: RegisterEvent, ctx: RegistrarInputContext): Draft[] {
  const drafts: Draft[] = [];
  const byContact = new Map(ctx.current.map((c) => [c.sub, c]));
  const seen = new Set<string>();
  const hostMs = (c: Change): number => hostClockMs(c, ctx.kamailioMs?.(c), ctx.clockLeadMs);
  const newerThanEvent = (c: Change | undefined) => c !== undefined && hostMs(c) > ev.tsMs;

  for (const c of ev.contacts) {
    seen.add(c.contact);
    if (c.callid === UL_ADD_CALLID) continue;
    const cur = byContact.get(c.contact);
    if (newerThanEvent(cur) || staleCopy(cur, c, hostMs)) continue;
    const value = bindingFromEvent(c, ctx.nodeId);
    if (cur?.value && sameBinding(cur.value as BindingValue, value)) continue;
    drafts.push({ kind: "loc", key: ev.aor, sub: c.contact, value });
  }

  // A held event's snapshot was read long after its ts (see the header): Kamailio may have expired
  // a binding in between, and a removal stamped now would win over a refresh still on its way.
  const readSec = Math.max(ev.tsMs, ctx.nowMs ?? 0) / 1000;
  const mayHaveDropped = addedByRequest(ev);
  for (const cur of ctx.current) {
    if (cur.value === null || seen.has(cur.sub) || newerThanEvent(cur)) continue;
    const v = cur.value as BindingValue;
    if (v.expires !== 0 && v.expires <= readSec) continue; // expired anyway: nothing to tell the others
    if (named(ev, cur.sub, v)) {
      drafts.push({ kind: "loc", key: ev.aor, sub: cur.sub, value: null });
      continue;
    }
    if (ctx.kamailioWhole === false) continue;
    const heldByKamailio = v.owner === ctx.nodeId ||
      (!ctx.isPending(cur) && !((ctx.writtenAt(ev.aor, cur.sub) ?? 0) > ev.tsMs) && !(ctx.unseenByKamailio?.(ev.aor, cur.sub) ?? false));
    if (mayHaveDropped && heldByKamailio) drafts.push({ kind: "loc", key: ev.aor, sub: cur.sub, value: null });
  }
  return drafts;
}
