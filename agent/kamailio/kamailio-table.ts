/**
 * `kamailio.list` (`locmesh location ls --kamailio`): the local Kamailio's whole location table as
 * `ul.dump` gives it, each binding compared with the journal, paged and searched like
 * `location.list`, with a summary of the whole table: what an on-call engineer reads to tell
 * whether a reload or reconcile is complete.
 *
 * A dump is heavy: Kamailio builds the whole reply in its single FIFO process, at a cost that
 * grows with the square of the table (usrloc-rpc.ts), and the agent holds it whole. So the table
 * is listed only up to kamailio.reconcileMaxContacts contacts, the size the reconcile allows itself
 * a dump for. Kamailio's own count (a cheap statistic) is checked first, and the reply is read up
 * to a byte budget for that many contacts, so a table that grew meanwhile cannot take the agent's
 * memory either. A first page takes a new dump; the pages after it are served from that snapshot
 * (for SNAPSHOT_TTL_MS), so `--all` costs one dump, not one per page.
 */
import { ErrorCode, RpcError } from "../contract/errors.js";
import type { ListParams } from "../contract/api-protocol.js";
import type { KamailioBinding, KamailioContact, KamailioListResult, KamailioTableSummary } from "../contract/kamailio-status.js";
import { isLive, type BindingValue } from "../contract/records.js";
import { foldAscii } from "../contract/sip-uri.js";
import { listSearch } from "../core/list-search.js";
import type { ReplicaStore } from "../core/store.js";
import { ulBinding } from "./install-plan.js";
import { KamailioReplyTooLargeError } from "./jsonrpcs-wire.js";
import { routingDifferences } from "./reconciler.js";
import { UL_ADD_CALLID } from "./registrar-input.js";
import type { UsrlocContact } from "./usrloc-contact.js";

/** How long the pages after a first one are served from its dump. */
export const SNAPSHOT_TTL_MS = 60_000;
/**
 * Reply bytes allowed per contact. A contact prints as about 0.55 KB (kamailio-5.6.md §2.2: 2,005
 * AoRs in 1.19 MB); 2 KB leaves room for long paths, user agents and Call-IDs.
 */
const REPLY_BYTES_PER_CONTACT = 2048;
const REPLY_BYTES_BASE = 64 * 1024;
/** Contacts compared per turn of the event loop. */
const COMPARE_CHUNK = 1000;

/** What to use when the table is too large to list (README "When a node comes back"). */
export const TABLE_TOO_LARGE_REMEDY =
  "to check single phones use `locmesh location show --kamailio <aor>`; to check that a reload is complete, `locmesh status` " +
  "(its `kamailio reload` line and pending writes); to put the journal's state into Kamailio, `locmesh resync --kamailio`; " +
  "or raise kamailio.reconcileMaxContacts if Kamailio's FIFO can afford the dump";

export interface KamailioTableDeps {
  store: ReplicaStore;
  nodeId: string;
  locationTable: string;
  /** Above this many contacts the table is not dumped (kamailio.reconcileMaxContacts). */
  maxContacts: number;
  /** How many contacts Kamailio holds; null when it cannot say (the journal's live count stands in). */
  countContacts(): Promise<number | null>;
  /** Kamailio's contacts, every table; a reply larger than `maxReplyBytes` fails with KamailioReplyTooLargeError. */
  dump(maxReplyBytes: number): Promise<UsrlocContact[]>;
  /** Changes not yet written into Kamailio. */
  pendingWrites(): number;
  /** Why Kamailio's table must not be dumped now (a reload is writing it), or null. */
  busy?(): string | null;
  nowMs?: () => number;
}

export interface KamailioTable {
  list(p: Required<ListParams>): Promise<KamailioListResult>;
  close(): void;
}

interface Snapshot {
  takenMs: number;
  /** Sorted by AoR, then contact. */
  rows: KamailioBinding[];
  summary: KamailioTableSummary;
}

/** A usrloc contact as the API shows it (kamailio.lookup, kamailio.list). */
export function toKamailioContact(c: UsrlocContact): KamailioContact {
  return {
    contact: c.contact, expires: c.expires, q: c.q, path: c.path, received: c.received, socket: c.socket,
    callid: c.callid, cseq: c.cseq, userAgent: c.userAgent, ruid: c.ruid, installedByAgent: c.callid === UL_ADD_CALLID,
  };
}

export function createKamailioTable(deps: KamailioTableDeps): KamailioTable {
  const nowMs = deps.nowMs ?? Date.now;
  let last: Snapshot | null = null;
  let taking: Promise<Snapshot> | null = null;
  let release: NodeJS.Timeout | null = null;

  function tooLarge(contacts: number | null): RpcError {
    const held = contacts === null ? "more contacts than that" : `${contacts} contacts`;
    return new RpcError(
      ErrorCode.TooLarge,
      `this node's Kamailio holds ${held}, above kamailio.reconcileMaxContacts (${deps.maxContacts}): the table is too large to list ` +
        "(its ul.dump would hold Kamailio's only FIFO process for a time growing with the square of the table, and the agent's memory for the whole reply). Instead: " +
        TABLE_TOO_LARGE_REMEDY,
      { contacts, limit: deps.maxContacts },
    );
  }

  async function take(): Promise<Snapshot> {
    const busy = deps.busy?.() ?? null;
    if (busy !== null) throw new RpcError(ErrorCode.TemporaryFailure, busy);
    const nowSec = Math.floor(nowMs() / 1000);
    const journalLive = (await deps.store.counts(nowSec)).locations;
    const counted = await deps.countContacts();
    if ((counted ?? journalLive) > deps.maxContacts) throw tooLarge(counted ?? journalLive);
    const startMs = nowMs();
    let dump: UsrlocContact[];
    try {
      dump = await deps.dump(REPLY_BYTES_BASE + deps.maxContacts * REPLY_BYTES_PER_CONTACT);
    } catch (err) {
      if (err instanceof KamailioReplyTooLargeError) throw tooLarge(null);
      throw err;
    }
    // Both sides round to whole seconds; a slow dump adds its own duration (as in the reconcile).
    const slackSec = 2 + Math.ceil((nowMs() - startMs) / 1000);
    const rows = await compare(dump.filter((k) => k.table === deps.locationTable && (k.status === "active" || k.status === "permanent")), slackSec);
    rows.sort((a, b) => cmp(a.aor, b.aor) || cmp(a.contact, b.contact));
    const journal = (await deps.store.counts(Math.floor(nowMs() / 1000))).locations;
    const tally = { present: 0, differs: 0, missing: 0 };
    for (const r of rows) tally[r.journal]++;
    return {
      takenMs: startMs,
      rows,
      summary: {
        takenAt: new Date(startMs).toISOString(), kamailio: rows.length, journal, present: tally.present, differs: tally.differs,
        onlyInKamailio: tally.missing, onlyInJournal: Math.max(0, journal - tally.present - tally.differs), pendingWrites: deps.pendingWrites(),
      },
    };
  }

  async function compare(contacts: readonly UsrlocContact[], slackSec: number): Promise<KamailioBinding[]> {
    const out: KamailioBinding[] = [];
    const nowSec = Math.floor(nowMs() / 1000);
    for (let i = 0; i < contacts.length; i++) {
      // better-sqlite3 answers synchronously: give the event loop a turn now and then.
      if (i > 0 && i % COMPARE_CHUNK === 0) await new Promise((r) => setImmediate(r));
      const k = contacts[i]!;
      const j = await deps.store.get("loc", k.aor, k.contact);
      const base = { ...toKamailioContact(k), aor: k.aor };
      if (j === null || !isLive(j, nowSec)) {
        out.push({ ...base, journal: "missing", differences: [] });
        continue;
      }
      const differences = routingDifferences(k, ulBinding(k.contact, j.value as BindingValue, deps.nodeId), slackSec);
      out.push({ ...base, journal: differences.length > 0 ? "differs" : "present", differences });
    }
    return out;
  }

  /** A new dump (joining one under way), kept for the pages after it. */
  async function fresh(): Promise<Snapshot> {
    taking ??= take().finally(() => {
      taking = null;
    });
    const s = await taking;
    last = s;
    if (release !== null) clearTimeout(release);
    // Its memory goes once no `--all` can still be paging through it.
    release = setTimeout(() => {
      last = null;
      release = null;
    }, SNAPSHOT_TTL_MS);
    release.unref();
    return s;
  }

  return {
    async list(p) {
      const snap = p.after === "" || last === null || nowMs() - last.takenMs > SNAPSHOT_TTL_MS ? await fresh() : last;
      const s = listSearch(p.search);
      const matching = s.all ? snap.rows : snap.rows.filter((r) => (s.name !== "" && r.aor.includes(s.name)) || foldAscii(r.contact).includes(s.text));
      const [ak, as] = p.after === "" ? ["", ""] : cursor(p.after);
      const start = p.after === "" ? 0 : matching.findIndex((r) => (cmp(r.aor, ak) || cmp(r.contact, as)) > 0);
      const items = start < 0 ? [] : matching.slice(start, start + p.limit);
      const lastItem = items.at(-1);
      const more = start >= 0 && start + p.limit < matching.length;
      return {
        items,
        next: more && lastItem ? JSON.stringify([lastItem.aor, lastItem.contact]) : null,
        total: matching.length,
        nowSec: Math.floor(nowMs() / 1000),
        summary: snap.summary,
      };
    },
    close() {
      if (release !== null) clearTimeout(release);
      last = null;
    },
  };
}

const cmp = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

/** A page's `after`, as the `next` of the page before gives it: [aor, contact]. */
function cursor(after: string): [string, string] {
  let v: unknown;
  try {
    v = JSON.parse(after);
  } catch {
    v = null;
  }
  if (Array.isArray(v) && v.length === 2 && typeof v[0] === "string" && typeof v[1] === "string") return [v[0], v[1]];
  throw new RpcError(ErrorCode.InvalidParams, "after must be the next of an earlier kamailio.list page, or empty for the first page");
}
