/**
 * What the agent says of its local Kamailio: its state in cluster.status (writes, events, reload,
 * reconcile), and its contacts, location table and aliases beside the journal (kamailio.lookup,
 * kamailio.list, kamailio.alias).
 * No Node imports here: the web UI imports this file.
 */
import type { ListResult } from "./api-protocol.js";
import type { BindingValue } from "./records.js";

/** One contact as the local Kamailio holds it (kamailio.lookup); expires absolute, 0 = permanent. */
export interface KamailioContact extends Pick<BindingValue, "expires" | "q" | "path" | "received" | "socket" | "callid" | "cseq" | "userAgent" | "ruid"> {
  contact: string;
  /** Set by the agent (ul.add's fixed Call-ID) rather than by a phone's REGISTER here. */
  installedByAgent: boolean;
}

/**
 * What the local Kamailio holds for one alias (kamailio.alias), beside the journal. `agreement`:
 * "present" (Kamailio holds just what the agent writes for the journal's target), "missing" (the
 * journal has a target, Kamailio none), "differs" (Kamailio holds another target, or several),
 * "extra" (Kamailio holds a target, the journal none), "absent" (neither has the alias).
 */
export interface KamailioAliasResult {
  alias: string;
  /** Where this node's aliases live: usrloc's SER-style domain (`aliases: usrloc`) or alias_db's table. */
  store: "usrloc" | "dbaliases";
  /** That domain's or table's name. */
  table: string;
  /** The targets Kamailio holds, as it holds them (alias_db: sip:username@domain, no parameters). */
  kamailio: string[];
  /** The journal's live target; null: none. */
  journal: string | null;
  agreement: "present" | "missing" | "differs" | "extra" | "absent";
  /** Writes into this Kamailio still waiting (an alias set a moment ago may be among them). */
  pendingWrites: number;
}

/**
 * One binding of the local Kamailio's location table (kamailio.list), and what the journal says of
 * it: "present" (a live binding with the same routing fields), "missing" (no live binding: a
 * REGISTER the agent has not learned, or a contact the journal no longer has) or "differs" (the
 * routing fields in `differences` are not what the agent would write).
 */
/** kamailio.lookup's answer. */
export interface KamailioLookupResult {
  aor: string;
  contacts: KamailioContact[];
  /** The agent's clock when it answered (Unix s), to count the expiries down with (ListResult's nowSec). */
  nowSec: number;
}

export interface KamailioBinding extends KamailioContact {
  aor: string;
  journal: "present" | "missing" | "differs";
  /** For "differs": which of expires, q, path and received disagree; else empty. */
  differences: string[];
}

/**
 * The whole table against the journal, whatever page or search was asked for. A reload or
 * reconcile is complete when `differs`, `onlyInKamailio` and `onlyInJournal` are 0 (changes still
 * on their way, `pendingWrites`, show here for a moment).
 */
export interface KamailioTableSummary {
  /** When the ul.dump (or, in db_mode 3, the read of Kamailio's database) was taken (ISO 8601). */
  takenAt: string;
  /** Live contacts in Kamailio's location table. */
  kamailio: number;
  /** Live bindings in the journal. */
  journal: number;
  present: number;
  differs: number;
  /** In Kamailio, not live in the journal ("missing"). */
  onlyInKamailio: number;
  /** Live in the journal, not in Kamailio. */
  onlyInJournal: number;
  /** Changes not yet written into Kamailio when the dump was compared. */
  pendingWrites: number;
}

export interface KamailioListResult extends ListResult<KamailioBinding> {
  summary: KamailioTableSummary;
}

/** Putting the live state back into a Kamailio that lost it (restart, or `locmesh resync --kamailio`). */
export interface KamailioReloadStatus {
  state: "idle" | "running" | "done" | "failed";
  reason: string | null;
  /** Writes to do and done (for a Kamailio that preloads from its database: only the difference, unless `whole`). */
  total: number;
  /**
   * Every live record was written, not only the difference with a preloading Kamailio's database
   * (`locmesh resync --kamailio`, or the redo of one cut short). Absent from agents before it.
   */
  whole?: boolean;
  done: number;
  /** Records found already right in Kamailio's database. */
  unchanged: number;
  /** Writes Kamailio refused outright, skipped (the log's "reload skipped" lines name them); absent from agents before it. */
  refused?: number;
  /**
   * Aliases alias_db's database did not take (counted among the writes done): left to the sink,
   * which writes them once it answers (`kamailio.lastError` says how many still wait). Absent when none.
   */
  aliasesWaiting?: number;
  startedAt: string | null;
  finishedAt: string | null;
  /** Writes per second over the run. */
  rate: number;
  /** How the writes went in: the evapi bulk channel, or jsonrpcs (an include without the bulk route, or no event connection open). */
  channel: "evapi" | "jsonrpcs" | null;
  error: string | null;
  /**
   * A reload the agent's previous run left unfinished: it was running when the agent stopped
   * (restarted, killed, crashed), or it had failed and was not redone before. Which of its writes
   * went in was unknown, so this run reloads Kamailio again (the fields above). Null when there was
   * none; absent from agents before it was added.
   */
  interrupted?: KamailioReloadInterrupted | null;
}

/** The reload an earlier run of the agent left unfinished (kept in the journal's meta table). */
export interface KamailioReloadInterrupted {
  reason: string | null;
  startedAt: string;
  /** Writes done and to do as last saved (about once a second: a few more may have gone in). */
  done: number;
  total: number;
  /** Why it failed, when it had failed (and not been redone) rather than being cut short. */
  error: string | null;
  /** It wrote every live record (`locmesh resync --kamailio`): so does its redo. Absent from agents before it. */
  whole?: boolean;
}

/** The agent's view of its local Kamailio. */
export interface KamailioStatus {
  /** Kamailio answered over jsonrpcs at the last check. */
  up: boolean;
  /**
   * Where writes go: "rpc", "database" (fallback), "pending" (neither works: retrying), "idle",
   * "held": nothing is written into Kamailio because this node's journal is behind (journalBehind),
   * or "refused": the agent does not attach to this Kamailio (its usrloc keys AoRs without their
   * domain, use_domain 0; `lastError` says what to set). Nothing is written into it, learned from
   * it or reconciled with it then; the agent replicates everything else.
   */
  writer: "rpc" | "database" | "pending" | "idle" | "held" | "refused";
  pendingWrites: number;
  /**
   * Of those, aliases that wait for alias_db's database (`kamailio.aliases: dbaliases`), while the
   * other writes go on; `lastError` says why while Kamailio is up and no other write waits. Absent
   * when none waits, and from agents before it.
   */
  aliasesWaiting?: number;
  /**
   * While the agent refuses to attach ("refused"), why and what to set; else, while writes are
   * pending, why the last one failed; else, while Kamailio is down (`up` false), why: the last
   * probe's error or the evapi connection closing; else, while aliases wait for alias_db's database
   * (counted in pendingWrites, the other writes going on), how many and why; else the last write error.
   */
  lastError: string | null;
  lastErrorAt: string | null;
  /** Writes Kamailio refused outright (logged and skipped). */
  rejected: number;
  /**
   * The registrar event input (evapi); null when not configured. `received`: events read;
   * `failed`: events that could not be journaled; `malformed`: well-framed payloads that were not
   * valid events (skipped); `framingErrors`: broken netstring framing (the connection was dropped).
   */
  events: {
    connected: boolean;
    received: number;
    /** Events that could not be journaled (a full disk, an I/O error). */
    failed: number;
    malformed: number;
    framingErrors: number;
    /**
     * AoRs still to be looked up in Kamailio and brought in line (aor-lookups.ts): those of events
     * that could not be journaled (looked up once the journal takes writes again) or read.
     * Absent from agents before it.
     */
    aorsToLookUp?: number;
  } | null;
  reload: KamailioReloadStatus;
  /** The last reconcile with Kamailio (`ul.dump`); null before the first. */
  lastReconcile: KamailioReconcileStatus | null;
  restarts: number;
  /** Which nodes may relay calls through this Kamailio to its phones (sip-peer-list.ts). Absent from agents before it. */
  sipPeers?: SipPeersStatus;
  /**
   * Setup problems seen in what Kamailio reports, each saying what to change (a TCP listener on a
   * wildcard address: wildcard-sockets.ts). Absent when there are none, and from agents before it.
   */
  warnings?: string[];
}

/**
 * The include's list of nodes that may relay calls ($shv(locmesh_peers)) as the agent keeps it:
 * "set": this Kamailio holds `peers`, set by the agent; "pending": not set yet in this Kamailio
 * (down, or the set failed: `note`); "fixed": the include's list was given with --peers, and the
 * agent leaves it; "old include": the include has no such list (`note` says to regenerate it);
 * "not managed": the config gives no list (`note` says why and what to set).
 */
export interface SipPeersStatus {
  state: "set" | "pending" | "fixed" | "old include" | "not managed";
  /** The list the agent sets (state "set" or "pending"); null otherwise. */
  peers: string[] | null;
  note: string | null;
}

/** How the agent's last reconcile with its Kamailio went. */
export interface KamailioReconcileStatus {
  /** When it ended (ISO 8601). */
  at: string;
  /**
   * "done": compared, and the differences learned or repaired; "skipped": more live bindings than
   * kamailio.reconcileMaxContacts; "failed": the dump or a write failed. Absent (done) from agents
   * before it was added.
   */
  outcome: "done" | "skipped" | "failed";
  /** Bindings learned from Kamailio into the journal. */
  learned: number;
  /** Writes that put Kamailio back in line with the journal. */
  repaired: number;
  /** Contacts Kamailio listed (0 unless done). */
  contacts: number;
  /**
   * Why it was skipped or failed, e.g. "34166 live bindings above kamailio.reconcileMaxContacts
   * (20000)"; when done, a warning about what it found in Kamailio (a usrloc setting locmesh does
   * not support), else null.
   */
  reason: string | null;
}
