/**
 * The wire contract: method names, parameter and result shapes, and their validators. Peers speak
 * JSON-RPC 2.0 over WebSocket; the local API speaks the same over HTTP POST and WebSocket.
 * No Node imports here: the web UI imports this file.
 */
import { z } from "zod";
import { NODE_ID_RE, REPLICA_ID_RE } from "./ids.js";
import { LIMITS, checkSipUri, checkSocket, normalizeAor, unstorable } from "./sip-uri.js";
import type { BindingValue, Change, RecordKind, VersionVector } from "./records.js";

/** Bumped on any incompatible change to the peer protocol. */
export const PROTOCOL_VERSION = 1;

export const PeerMethod = {
  /** server → client notification, first message on a peer connection. */
  Challenge: "auth.challenge",
  /** client → server request: proves the cluster key and exchanges version vectors. */
  Hello: "auth.hello",
  /** a run of one origin's changes; the receiver acks after it is durable. */
  Batch: "repl.batch",
  /** ask a peer for what it holds beyond a version vector (relay catch-up, full resync). */
  Pull: "repl.pull",
  /** periodic notification: the sender's version vector and pending writes. */
  Status: "repl.status",
} as const;

export const ApiMethod = {
  LocationPublish: "location.publish",
  LocationLookup: "location.lookup",
  LocationList: "location.list",
  AliasSet: "alias.set",
  AliasRemove: "alias.remove",
  AliasList: "alias.list",
  ClusterStatus: "cluster.status",
  ClusterResync: "cluster.resync",
  /** Write the whole live state into the local Kamailio again; progress in cluster.status. */
  KamailioReload: "kamailio.reload",
  /** What the local Kamailio itself holds for an AoR (ul.lookup), beside the journal's view. */
  KamailioLookup: "kamailio.lookup",
  /** The local Kamailio's whole location table (ul.dump), paged, each binding compared with the journal. */
  KamailioList: "kamailio.list",
  AuthLogin: "auth.login",
  /** WebSocket only: from now on, receive `changes.applied` notifications. */
  ChangesSubscribe: "changes.subscribe",
} as const;

/** Notifications the API sends to subscribed WebSocket clients. */
export const ApiNotification = {
  /** params: { changes: Change[] }: versions that won and were stored here, local or replicated. */
  ChangesApplied: "changes.applied",
} as const;

// ---- shared pieces ---------------------------------------------------------------------------

/** A stored text field: bounded, and only what Kamailio can hold as it is (sip-uri.ts unstorable). */
const text = (max: number) =>
  z.string().max(max).superRefine((v, ctx) => {
    const problem = unstorable(v);
    if (problem) ctx.addIssue({ code: "custom", message: problem });
  });
const uint32 = z.number().int().min(0).max(4294967295);
const nodeId = z
  .string()
  .regex(NODE_ID_RE, "node ids are 1-63 letters, digits, '.', '_' or '-'");
const replicaId = z.string().regex(REPLICA_ID_RE, "not a replica id");

export const sipUri = z.string().superRefine((v, ctx) => {
  const problem = checkSipUri(v);
  if (problem) ctx.addIssue({ code: "custom", message: `SIP URI ${JSON.stringify(v.slice(0, 80))} ${problem}` });
});

export const aor = z.string().transform((v, ctx) => {
  const r = normalizeAor(v);
  if ("error" in r) {
    ctx.addIssue({ code: "custom", message: `AoR ${JSON.stringify(v.slice(0, 80))} ${r.error}` });
    return z.NEVER;
  }
  return r.aor;
});

const socketText = z.string().superRefine((v, ctx) => {
  const problem = checkSocket(v);
  if (problem) ctx.addIssue({ code: "custom", message: `socket ${JSON.stringify(v.slice(0, 80))} ${problem}` });
});

export const bindingValueSchema = z.strictObject({
  expires: z.number().int().min(0).max(2 ** 40),
  q: z.number().min(-1).max(1),
  path: text(LIMITS.path),
  received: text(LIMITS.received),
  socket: socketText,
  callid: text(LIMITS.callid),
  cseq: uint32,
  userAgent: text(LIMITS.userAgent),
  flags: uint32,
  cflags: uint32,
  methods: uint32,
  instance: text(LIMITS.instance),
  regId: uint32,
  owner: nodeId,
  ruid: text(64),
});

export const aliasValueSchema = z.strictObject({ target: sipUri });

const changeBase = {
  hlc: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
  origin: replicaId,
  seq: z.number().int().min(1).max(Number.MAX_SAFE_INTEGER),
};

const locRecord = { kind: z.literal("loc"), key: aor, sub: sipUri, value: bindingValueSchema.nullable() };
const aliasRecord = { kind: z.literal("alias"), key: aor, sub: z.literal(""), value: aliasValueSchema.nullable() };

/**
 * A change without its version (kind, key, sub, value): what a peer checks of a record. Told apart
 * by `kind`, so a refusal names the field and value at fault ("key: AoR "alice" must look like
 * user@domain…") rather than a plain union's "Invalid input".
 */
export const recordSchema = z.discriminatedUnion("kind", [z.strictObject(locRecord), z.strictObject(aliasRecord)]);

export const changeSchema: z.ZodType<Change> = z.discriminatedUnion("kind", [
  z.strictObject({ ...locRecord, ...changeBase }),
  z.strictObject({ ...aliasRecord, ...changeBase }),
]) as z.ZodType<Change>;

export const versionVectorSchema: z.ZodType<VersionVector> = z
  .record(replicaId, z.number().int().min(0).max(Number.MAX_SAFE_INTEGER))
  .refine((v) => Object.keys(v).length <= 10_000, "version vector has too many origins");

// ---- peer protocol ---------------------------------------------------------------------------

export const challengeParams = z.strictObject({
  protocol: z.number().int(),
  nodeId,
  nonce: z.string().regex(/^[0-9a-f]{32,64}$/),
});
export type ChallengeParams = z.infer<typeof challengeParams>;

export const helloParams = z.strictObject({
  protocol: z.number().int(),
  nodeId,
  replicaId,
  nonce: z.string().regex(/^[0-9a-f]{32,64}$/),
  mac: z.string().regex(/^[0-9a-f]{64}$/),
  vv: versionVectorSchema,
});
export type HelloParams = z.infer<typeof helloParams>;

/** What a server answers to auth.hello; checked by the client like any other peer input. */
export const helloResult = z.strictObject({
  nodeId,
  replicaId,
  mac: z.string().regex(/^[0-9a-f]{64}$/),
  vv: versionVectorSchema,
});
export type HelloResult = z.infer<typeof helloResult>;

/**
 * A run of one origin's changes. `after`..`upTo` is the sequence range the sender covers: every
 * change of `origin` in that range that the sender still holds (superseded versions are skipped).
 * The receiver may raise its version vector to `upTo` only if it already held `after`.
 */
export const batchParams = z.strictObject({
  origin: replicaId,
  after: z.number().int().min(0),
  upTo: z.number().int().min(0),
  changes: z.array(changeSchema).max(5000),
});
export type BatchParams = z.infer<typeof batchParams>;

export interface BatchResult {
  /** The receiver's version-vector entry for the batch's origin after applying it. */
  have: number;
}

export const pullParams = z.strictObject({
  vv: versionVectorSchema,
  limit: z.number().int().min(1).max(5000),
  /** Origins the caller does not want (it gets them directly from their owners). */
  skip: z.array(replicaId).max(10_000).default([]),
  /** Ask for an estimate of how many changes are still to come (costs a count; once per pull run). */
  count: z.boolean().default(false),
});
export type PullParams = z.infer<typeof pullParams>;

export interface PullResult {
  /** Empty when the caller is up to date with everything the sender holds. */
  batch: BatchParams | null;
  /** Changes still to come after this batch (an estimate for progress display). */
  remaining: number;
}

/** A pull's answer, checked by the puller as a pushed batch is checked by its receiver. */
export const pullResult: z.ZodType<PullResult> = z.strictObject({
  batch: batchParams.nullable(),
  remaining: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
});

export const statusParams = z.strictObject({
  vv: versionVectorSchema,
  /** Changes the sender still has to write into its Kamailio (temporary failures show here). */
  pendingWrites: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER).optional(),
});
export type StatusParams = z.infer<typeof statusParams>;

// ---- local API -------------------------------------------------------------------------------

/** A binding as a registrar integration publishes it. Missing optional fields take Kamailio's defaults. */
export const bindingInput = z.strictObject({
  aor,
  contact: sipUri,
  expires: z.number().int().min(0).max(2 ** 40),
  q: z.number().min(-1).max(1).default(-1),
  path: text(LIMITS.path).default(""),
  received: text(LIMITS.received).default(""),
  socket: socketText.default(""),
  callid: text(LIMITS.callid).default(""),
  cseq: uint32.default(0),
  userAgent: text(LIMITS.userAgent).default(""),
  flags: uint32.default(0),
  cflags: uint32.default(0),
  methods: uint32.default(4294967295),
  instance: text(LIMITS.instance).default(""),
  regId: uint32.default(0),
  ruid: text(64).default(""),
  /** Defaults to the agent's own node id: the node whose Kamailio took the REGISTER. */
  owner: nodeId.optional(),
});
export type BindingInput = z.input<typeof bindingInput>;

export const locationEdit = z.discriminatedUnion("op", [
  z.strictObject({ op: z.literal("upsert"), binding: bindingInput }),
  z.strictObject({ op: z.literal("remove"), aor, contact: sipUri }),
  z.strictObject({ op: z.literal("remove-aor"), aor }),
]);
export type LocationEdit = z.input<typeof locationEdit>;

export const publishParams = z.strictObject({ edits: z.array(locationEdit).min(1).max(5000) });
export interface PublishResult {
  /** Changes written to the journal (a remove of an unknown binding writes nothing). */
  accepted: number;
}

export const lookupParams = z.strictObject({ aor });
/**
 * The longest cursor text a real row can make: its AoR and contact with every character written as
 * a 6-character JSON escape (JSON.stringify escapes control characters, which a contact may hold:
 * sip-uri.ts), plus brackets, quotes, a comma and some room for whitespace.
 */
const CURSOR_MAX_TEXT = 6 * (LIMITS.aor + LIMITS.contact) + 16;

/**
 * A paging cursor is "" (first page) or the `next` value of the previous page: the JSON pair
 * [key, sub] of the last row it showed. What is bounded is the pair (an AoR and a contact, as any
 * stored row), not the JSON text: a cap of 1,100 characters on the text refused the cursor after a
 * legal contact with control characters, so "Next" failed on such a row.
 */
const cursor = z
  .string()
  .max(CURSOR_MAX_TEXT)
  .refine((v) => {
    if (v === "") return true;
    let c: unknown;
    try {
      c = JSON.parse(v);
    } catch {
      return false;
    }
    return (
      Array.isArray(c) && c.length === 2 &&
      typeof c[0] === "string" && c[0].length <= LIMITS.aor &&
      typeof c[1] === "string" && c[1].length <= LIMITS.contact
    );
  }, "is not a cursor from a previous page's `next`");

export const listParams = z.strictObject({
  search: z.string().max(256).default(""),
  after: cursor.default(""),
  limit: z.number().int().min(1).max(1000).default(100),
});
export type ListParams = z.input<typeof listParams>;
export interface ListResult<T> {
  items: T[];
  /** Pass as `after` to get the next page; null on the last page. */
  next: string | null;
  total: number;
  /**
   * The agent's clock when it answered (Unix s). What is live was decided by it: a reader counting
   * expiries down should use it rather than its own clock (a browser's may be minutes off).
   */
  nowSec?: number;
}

/**
 * Without a precondition, alias.set creates or replaces. `ifAbsent`: only create; an alias that
 * exists is refused with Conflict (an "add" must not overwrite what another admin made).
 * `expectTarget`: only replace that target; an alias changed or removed meanwhile is refused with
 * Conflict (an "edit" must not undo a change it never saw). Both are checked on this node, in the
 * same write turn as the commit (agent/api/alias-preconditions.ts).
 */
export const aliasSetParams = z
  .strictObject({ alias: aor, target: sipUri, ifAbsent: z.boolean().optional(), expectTarget: sipUri.optional() })
  .refine((p) => !(p.ifAbsent === true && p.expectTarget !== undefined), {
    message: "ifAbsent and expectTarget exclude each other: ifAbsent adds a new alias, expectTarget edits an existing one",
  });
/**
 * `expectTarget`: only remove the alias while it forwards to that target; one changed meanwhile is
 * refused with Conflict (a "remove" must not throw away a change it never saw).
 */
export const aliasRemoveParams = z.strictObject({ alias: aor, expectTarget: sipUri.optional() });
export const resyncParams = z.strictObject({ peer: nodeId.optional() });
export const loginParams = z.strictObject({ token: z.string().max(4096) });
const noParams = z.strictObject({});
/**
 * summary: instead of every change, `changes.applied` with `{ counts: { loc, alias } }` at most
 * every SUMMARY_INTERVAL_MS: what a screen needs to know it should refresh, a few bytes however
 * many changes a resync brings (the whole changes would pile up unread on a slow link).
 */
export const subscribeParams = z.strictObject({ summary: z.boolean().default(false) });
export const SUMMARY_INTERVAL_MS = 250;

/**
 * Each method's params schema: the servers validate with these (agent/api/local-api.ts,
 * agent/mesh/peer-session.ts), and so does whatever else must know what a well-formed call is (the
 * fuzz drill's judge).
 */
export const API_PARAMS = {
  [ApiMethod.LocationPublish]: publishParams,
  [ApiMethod.LocationLookup]: lookupParams,
  [ApiMethod.LocationList]: listParams,
  [ApiMethod.AliasSet]: aliasSetParams,
  [ApiMethod.AliasRemove]: aliasRemoveParams,
  [ApiMethod.AliasList]: listParams,
  [ApiMethod.ClusterStatus]: noParams,
  [ApiMethod.ClusterResync]: resyncParams,
  [ApiMethod.KamailioReload]: noParams,
  [ApiMethod.KamailioLookup]: lookupParams,
  [ApiMethod.KamailioList]: listParams,
  [ApiMethod.AuthLogin]: loginParams,
  [ApiMethod.ChangesSubscribe]: subscribeParams,
} as const satisfies Record<(typeof ApiMethod)[keyof typeof ApiMethod], z.ZodType>;

export const PEER_PARAMS = {
  [PeerMethod.Challenge]: challengeParams,
  [PeerMethod.Hello]: helloParams,
  [PeerMethod.Batch]: batchParams,
  [PeerMethod.Pull]: pullParams,
  [PeerMethod.Status]: statusParams,
} as const satisfies Record<(typeof PeerMethod)[keyof typeof PeerMethod], z.ZodType>;

export interface PeerStatus {
  nodeId: string;
  url: string | null;
  direction: "outbound" | "inbound" | null;
  /**
   * Null on a hub for an agent not connected to it while the hub cannot read where the agents
   * are (its PostgreSQL does not answer): unknown since `asOf`.
   */
  connected: boolean | null;
  /** Set with `connected` null: when the hub last read where the agents are (ISO 8601). */
  asOf?: string;
  replicaId: string | null;
  /** Changes this node holds that the peer has not acknowledged yet; null while not connected (unknown). */
  behindChanges: number | null;
  /** Age of the oldest change the peer has not acknowledged, in seconds; null while not connected (unknown). */
  behindSeconds: number | null;
  lastError: string | null;
  connectedSince: string | null;
  /** Changes the peer reports it has not yet written into its Kamailio; null when unknown. */
  pendingWrites: number | null;
  /**
   * Hub mode only (absent for mesh peers). On a hub: the hub the agent is on now (this one, or
   * another on the same database), null while it is on none. On an agent: its hub's node id, null
   * while it has no hub session.
   */
  hub?: string | null;
}

export interface ResyncStatus {
  state: "idle" | "running" | "done" | "failed";
  peer: string | null;
  received: number;
  expected: number;
  startedAt: string | null;
  finishedAt: string | null;
  error: string | null;
}

/** One contact as the local Kamailio holds it (kamailio.lookup); expires absolute, 0 = permanent. */
export interface KamailioContact extends Pick<BindingValue, "expires" | "q" | "path" | "received" | "socket" | "callid" | "cseq" | "userAgent" | "ruid"> {
  contact: string;
  /** Set by the agent (ul.add's fixed Call-ID) rather than by a phone's REGISTER here. */
  installedByAgent: boolean;
}

/**
 * One binding of the local Kamailio's location table (kamailio.list), and what the journal says of
 * it: "present" (a live binding with the same routing fields), "missing" (no live binding: a
 * REGISTER the agent has not learned, or a contact the journal no longer has) or "differs" (the
 * routing fields in `differences` are not what the agent would write).
 */
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
  /** Writes to do and done (for a Kamailio that preloads from its database: only the difference). */
  total: number;
  done: number;
  /** Records found already right in Kamailio's database. */
  unchanged: number;
  startedAt: string | null;
  finishedAt: string | null;
  /** Writes per second over the run. */
  rate: number;
  /** How the writes went in: the evapi bulk channel, or jsonrpcs when the include has no bulk route. */
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
   * While the agent refuses to attach ("refused"), why and what to set; else, while writes are
   * pending, why the last one failed; else, while Kamailio is down (`up` false), why: the last
   * probe's error or the evapi connection closing; else the last write error.
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
  events: { connected: boolean; received: number; failed: number; malformed: number; framingErrors: number } | null;
  reload: KamailioReloadStatus;
  /** The last reconcile with Kamailio (`ul.dump`); null before the first. */
  lastReconcile: KamailioReconcileStatus | null;
  restarts: number;
}

/**
 * A peer held more of this node's own changes than its journal does: the journal was restored from
 * an older copy or lost its last commits. Until the agent is started afresh it replicates with no
 * peer, refuses API writes and writes nothing into its Kamailio.
 */
export interface JournalBehindInfo {
  /** The peer that showed it, and how far this node's own changes go there and here. */
  peer: string;
  peerHolds: number;
  journalHas: number;
  /** When it was found (ISO 8601). */
  at: string;
}

/**
 * A peer (or hub) refused a batch of changes from this node for good, not as a passing failure:
 * every later change of that origin waits behind the refused one, retried at each reconnect. The
 * record stays until the peer acknowledges a batch of that origin again.
 */
export interface BatchRefusal {
  /** The peer or hub that refused. */
  peer: string;
  /** Whose changes: this node's replica (a hub: any origin it relays). */
  origin: string;
  /** When it last refused (ISO 8601). */
  at: string;
  /** What it said, e.g. 'invalid params: changes.0.key: AoR "alice" must look like user@domain…'. */
  reason: string;
  /** The change it named ("changes.N…" in the reason), when it named one. */
  change: { seq: number; kind: RecordKind; key: string; sub: string } | null;
}

/** What the operator does about a journal holding a change its peers refuse (logs, `locmesh status`, web UI). */
export const BATCH_REFUSED_REMEDY =
  "the journal holds a change the peers refuse, journaled before the agent checked its own changes (an AoR without @domain learned from a " +
  "Kamailio with usrloc use_domain 0). Fix its cause first (modparam(\"usrloc\", \"use_domain\", 1), then restart Kamailio). List what only this " +
  "node holds: `locmesh alias ls --all` here and on another node (an alias set here since the refusal reached no node). Then stop the agent, move " +
  "dataDir/journal.sqlite* aside and start it (it gets a snapshot from its peers under a new epoch, and learns its Kamailio's registrations " +
  "back), and set again, on any node, the aliases the other node lacked";

/** What the operator does about a journal that is behind (logs, API errors, `locmesh status`, web UI). */
export const JOURNAL_BEHIND_REMEDY =
  "stop the agent, move dataDir/journal.sqlite* aside and start it (it gets a snapshot from its peers under a new epoch, and learns its Kamailio's registrations back)";

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
  /** Why it was skipped or failed, e.g. "34166 live bindings above kamailio.reconcileMaxContacts (20000)"; null when done. */
  reason: string | null;
}

export interface ClusterStatus {
  nodeId: string;
  replicaId: string;
  /** The locmesh release this node runs (package.json). */
  version: string;
  protocol: number;
  uptimeSeconds: number;
  vv: VersionVector;
  counts: { locations: number; aliases: number; tombstones: number };
  peers: PeerStatus[];
  /** Changes waiting to be written into the local Kamailio. */
  pendingWrites: number;
  resync: ResyncStatus;
  /** Null when the agent is not attached to a Kamailio. */
  kamailio: KamailioStatus | null;
  /** Set once a peer showed this node's journal is behind (see JournalBehindInfo); null otherwise, and on a hub. */
  journalBehind: JournalBehindInfo | null;
  /** Peers that refuse batches of this node's changes (see BatchRefusal); empty when none. Absent from older nodes. */
  batchesRefused?: BatchRefusal[];
  /** A hub's PostgreSQL, and how old `counts` are; absent on agents. */
  postgres?: PostgresStatus;
  /**
   * An agent in hub mode: how many of its own changes no hub has acknowledged yet (they wait in
   * its journal), from what a hub last said, kept across restarts; null while no hub has answered
   * since its journal was made. Absent otherwise.
   */
  hubUnacknowledged?: number | null;
  /** The cluster keys and API tokens this node takes (absent from nodes older than it). */
  credentials?: CredentialsStatus;
}

/**
 * A node's keys of one kind, for rotating them (README, "Rotating the cluster key and API token").
 * Each is named by its id: a fingerprint that names the same key alike on every node and says
 * nothing of the key itself.
 */
export interface KeysStatus {
  /** The id of this node's own: mesh.secret (the key it proves itself with), or api.token. */
  own: string;
  /** The further ones it accepts (mesh.acceptedSecrets, api.acceptedTokens), in the config's order. */
  accepted: AcceptedKeyStatus[];
}

export interface AcceptedKeyStatus {
  id: string;
  /**
   * When a peer last proved itself with it here (an API client last used it), since the node
   * started (ISO 8601), by the node's clock, and how long ago in seconds; null: not since then.
   */
  lastUsedAt: string | null;
  lastUsedAgeSeconds: number | null;
  /** Who: the peer's node id, or the API client's address; null with lastUsedAt. */
  lastUsedBy: string | null;
}

export interface CredentialsStatus {
  clusterKeys: KeysStatus;
  apiTokens: KeysStatus;
}

/** A hub's PostgreSQL as its last checks found it (hub/pg-watch.ts). */
export interface PostgresStatus {
  /** host:port the hub connects to (never the password). */
  address: string;
  reachable: boolean;
  /**
   * Why checks fail (the last failed check, or "no answer for N s"): while unreachable, and while
   * reachable but failing (`failingForSeconds`); null while checks succeed.
   */
  error: string | null;
  /** Since when it has been reachable or unreachable (ISO 8601). */
  since: string;
  /**
   * How old `counts` are, in seconds: a hub counts in PostgreSQL, and shows the last counts while
   * it cannot count. Null when it has none yet (then `counts` are zeros that mean nothing).
   */
  countsAgeSeconds: number | null;
  /* The fields below are absent from hubs older than them. */
  /** When a check last succeeded (ISO 8601), and how long ago in seconds (by the hub's clock). */
  lastAnswered?: string;
  lastAnsweredAgeSeconds?: number;
  /**
   * While reachable: for how many seconds checks have failed or gone unanswered, not yet long
   * enough to count as unreachable (`releaseAfterSeconds`, when the hub closes its agents'
   * sessions); null while checks succeed.
   */
  failingForSeconds?: number | null;
  releaseAfterSeconds?: number;
  /** Why `counts` are stale (PostgreSQL does not answer, the recount failed, older than they may be reused); null when fresh. */
  countsStale?: string | null;
}
