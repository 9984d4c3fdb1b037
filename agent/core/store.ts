/**
 * What the replication core needs from a journal. The agent implements it on SQLite
 * (agent/journal/sqlite-store.ts), the hub on PostgreSQL; one contract suite tests both.
 * Methods are async so that a networked store fits the same shape.
 */
import type { Change, RecordKind, RecordValue, VersionVector } from "../contract/records.js";

/** A local edit before it has a version. */
export interface Draft {
  kind: RecordKind;
  key: string;
  sub: string;
  value: RecordValue | null;
}

export interface RemoteBatch {
  origin: string;
  after: number;
  upTo: number;
  changes: readonly Change[];
}

export interface ApplyOutcome {
  /** Changes that won and were written (what downstream writers must apply). */
  applied: Change[];
  /** The store's version-vector entry for the batch's origin afterwards. */
  have: number;
}

export interface PageQuery {
  search: string;
  after: string;
  limit: number;
  nowSec: number;
  /** Count every match for `total` (default true); a full scan, which walking the whole table page by page need not repeat. */
  countTotal?: boolean;
}

export interface Page {
  items: Change[];
  next: string | null;
  /** Every match; null when the query said countTotal: false. */
  total: number | null;
}

export interface StoreCounts {
  locations: number;
  aliases: number;
  tombstones: number;
}

/** For each origin (replica id), the highest seq of its changes that every peer holds (ReplicaStore.purge). */
export type PurgeFloor = Readonly<Record<string, number>>;

/** A peer's batch that breaks the protocol (out of order, outside its range, wrong origin). */
export class InvalidBatchError extends Error {
  override readonly name = "InvalidBatchError";
}

export interface ReplicaStore {
  readonly nodeId: string;
  /** `node~epoch`: a new epoch whenever the journal starts empty. */
  readonly replicaId: string;
  versionVector(): Promise<VersionVector>;
  /** The newest HLC stamp held, so a restarted clock never goes backwards. */
  maxHlc(): Promise<number>;
  /**
   * Writes local edits as new versions of this replica, in order, in one durable transaction.
   * A removal of a record that is absent or already removed writes nothing. `stamp` gives each
   * written version its HLC. Resolves with one entry per draft: the version written, or null.
   */
  commitLocal(drafts: readonly Draft[], stamp: () => number): Promise<(Change | null)[]>;
  /** Applies a peer's batch by last-writer-wins in one durable transaction. */
  applyRemote(batch: RemoteBatch): Promise<ApplyOutcome>;
  /**
   * Applies several batches in order, each as applyRemote would, with one outcome per batch. A
   * batch that breaks the protocol is refused alone (its InvalidBatchError in its place) and the
   * others still apply; any other failure fails them all. The agent's journal makes them one
   * durable transaction: a commit's fsync costs more CPU than its rows, so a busy agent keeps up
   * by applying what queued up meanwhile in one go.
   */
  applyRemoteGroup(batches: readonly RemoteBatch[]): Promise<(ApplyOutcome | InvalidBatchError)[]>;
  /**
   * `origin`'s changes with after < seq ≤ upTo, in seq order, at most `limit`; with `kind`, only
   * that kind's (the others in the range are passed over, not counted against `limit`).
   */
  readRange(origin: string, after: number, upTo: number, limit: number, kind?: RecordKind): Promise<Change[]>;
  /** Number of changes held for `origin` with seq > after (for progress estimates). */
  countAfter(origin: string, after: number): Promise<number>;
  /** HLC of the first change held for `origin` with seq > after, or null. */
  firstHlcAfter(origin: string, after: number): Promise<number | null>;
  get(kind: RecordKind, key: string, sub: string): Promise<Change | null>;
  /** Every current version under one key (all contacts of an AoR), tombstones included. */
  listKey(kind: RecordKind, key: string): Promise<Change[]>;
  /** Live records, ordered by (key, sub), filtered by a search as core/list-search.ts defines it. */
  page(kind: RecordKind, q: PageQuery): Promise<Page>;
  counts(nowSec: number): Promise<StoreCounts>;
  /**
   * Deletes tombstones older than `tombstoneBeforeHlc` and bindings that expired before
   * `expiredBeforeSec`. Returns how many rows went. With `held` (an agent), only rows every peer
   * (or the hub) holds go, however old the others are: a row of origin o with seq above held[o]
   * stays, and so does every row of an origin `held` does not list. A peer that lacks it would
   * otherwise never hear of the removal (or of the expiring version that replaced a permanent
   * one), neither from this node nor relayed through it: its copy of the record would stay live.
   * Null keeps every such row (a peer has not said what it holds); a hub, whose own rule lives in
   * its SQL, leaves it out and purges by age alone.
   */
  purge(tombstoneBeforeHlc: number, expiredBeforeSec: number, held?: PurgeFloor | null): Promise<number>;
  close(): Promise<void>;
}
