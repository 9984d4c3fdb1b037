/**
 * What cluster.status answers: the node, its peers' links, its resync, its journal's standing
 * (journal behind, batches refused, with what the operator does about them), the keys it takes,
 * and on a hub its PostgreSQL. The local Kamailio's part is in kamailio-status.ts.
 * No Node imports here: the web UI imports this file.
 */
import type { KamailioStatus } from "./kamailio-status.js";
import type { RecordKind, VersionVector } from "./records.js";

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
  /**
   * Set while not connected, when known: when the link to it was last up (ISO 8601). On an agent,
   * since its start; on a hub, on this hub or (from the rows every hub keeps) on any hub.
   */
  lastSeen?: string;
  /** Changes the peer reports it has not yet written into its Kamailio; null when unknown. */
  pendingWrites: number | null;
  /**
   * Hub mode only (absent for mesh peers). On a hub: the hub the agent is on now (this one, or
   * another on the same database), null while it is on none. On an agent: its hub's node id, null
   * while it has no hub session.
   */
  hub?: string | null;
  /**
   * The peer's batches this node fails to store (a hub whose PostgreSQL fails: the agent resends
   * them), since the last one it stored, in the current session; null while none failed. Absent
   * where unknown: an agent on another hub, and nodes older than the field.
   */
  batchesNotStored?: BatchesNotStored | null;
}

export interface BatchesNotStored {
  /** Batches of the peer's that failed to be stored (each resend counts) since the last one stored. */
  count: number;
  /** When the first of them failed (ISO 8601). */
  since: string;
  /** Why the last one failed, e.g. "PostgreSQL connection lost: Connection terminated unexpectedly". */
  reason: string;
}

export interface ResyncStatus {
  state: "idle" | "running" | "done" | "failed";
  /**
   * True for a full resync (`locmesh resync`, cluster.resync: everything a peer holds), false for
   * a relay catch-up (the changes of an origin that is not connected, pulled by the agent itself).
   * A full resync's end stays shown for FULL_RESYNC_SHOWN_MS even if a catch-up starts right after,
   * so that whoever follows it sees how it ended. Absent from older agents.
   */
  full?: boolean;
  peer: string | null;
  received: number;
  expected: number;
  startedAt: string | null;
  finishedAt: string | null;
  error: string | null;
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
  /**
   * Set when the peer held no more of this node's changes than the journal, but other ones under
   * the same numbers (mesh/own-history.ts): the first difference found, in a sentence.
   */
  conflict?: string;
}

/** What the peer showed, for the messages that report it (`count` formats the numbers). */
export function journalBehindFinding(b: JournalBehindInfo, count: (n: number) => string = String): string {
  return b.conflict === undefined
    ? `peer ${b.peer} holds ${count(b.peerHolds)} of this node's own changes, its journal only ${count(b.journalHas)}`
    : `peer ${b.peer} holds other changes of this node's own than its journal under the same numbers (${b.conflict})`;
}

/**
 * A peer (or hub) refused a batch of changes from this node for good, not as a passing failure:
 * every later change of that origin waits behind the refused one, tried again every minute. The
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
  "stop the agent, move everything in its dataDir aside (the journal.sqlite* files and the two kamailio-*.json, which describe a Kamailio written from the stale journal) and start it (it gets a snapshot from its peers under a new epoch, reloads its Kamailio, and learns its Kamailio's registrations back)";

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
  /**
   * An agent: false while its journal, made empty (a new node, a lost disk, a journal moved aside),
   * has not yet caught up with a peer or hub once: what it lists may be a fraction of the cluster's.
   * Absent on hubs and older agents.
   */
  journalSeeded?: boolean;
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

/** A hub's status: it reports its PostgreSQL, which no agent has (a hub has no Kamailio and makes no changes). */
export const isHubStatus = (s: Pick<ClusterStatus, "postgres">): boolean => s.postgres !== undefined;

/** What `locmesh status` and the web UI say while an agent's new journal has not caught up (ClusterStatus.journalSeeded). */
export const JOURNAL_NOT_SEEDED =
  "this node's journal was made empty (a new node, a lost disk or a journal moved aside) and has not yet caught up with a peer or hub: " +
  "what it lists may be a fraction of the cluster's. " +
  "It catches up by itself once one answers (the log then says \"the new journal has caught up with the cluster\")";

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
