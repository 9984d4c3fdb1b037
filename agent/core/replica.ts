/**
 * The replication core around a store: local edits are group-committed (many concurrent callers
 * share one durable transaction), remote batches are applied in arrival order, one store write at
 * a time, and listeners hear about what changed. Shared by the agent and the hub.
 *
 * Remote batches that arrived while the store was busy are applied together
 * (store.applyRemoteGroup: one transaction on the agent's journal), so an agent fed many small
 * batches (a hub relaying single changes to it) pays one commit per group.
 *
 * A durable commit costs about 50 µs of CPU however little it holds (its fsync: alone, one row
 * costs ~70 µs; in a commit of 100 rows, ~4 µs). A caller nobody waits on, such as a registrar
 * event, may therefore let its edits linger a few milliseconds so that the events of a busy
 * registrar share one commit (`lingerMs`). An edit someone waits on (an API call) is committed at
 * the next turn of the event loop, and takes every lingering edit with it.
 */
import { hlcToMillis, isLive, type Change, type RecordKind, type VersionVector } from "../contract/records.js";
import type { Logger } from "../ops/logger.js";
import type { ChangeSource, Metrics } from "../ops/metrics.js";
import { farAhead, type Hlc } from "./hlc.js";
import { createLocalCheck, spread } from "./local-check.js";
import { InvalidBatchError, type ApplyOutcome, type Draft, type RemoteBatch, type ReplicaStore } from "./store.js";

const asError = (e: unknown): Error => (e instanceof Error ? e : new Error(String(e)));

export type ChangeListener = (changes: readonly Change[], source: { peer: string | null }) => void;

export interface Replica {
  readonly store: ReplicaStore;
  readonly nodeId: string;
  readonly replicaId: string;
  /**
   * Journals local edits durably; resolves per draft with the written version, or null if nothing
   * changed or the peers would refuse the draft (local-check.ts: not journaled, logged and counted
   * as from `source`, default "api"). `lingerMs`: how long these edits may wait for others to share
   * their commit (default 0). `outdated`: asked in the write turn, right before the group commits;
   * true leaves these drafts out and rejects with OutdatedDraftsError (the caller decided them on
   * reads that a write since has made old, and decides again).
   */
  commit(drafts: readonly Draft[], opts?: { lingerMs?: number; source?: ChangeSource; outdated?: () => boolean }): Promise<(Change | null)[]>;
  /**
   * Journals the drafts `prepare` returns after reading the store, with no other write of this
   * replica (local commit or remote batch) between its reads and the commit: a precondition it
   * checks still holds when the drafts land. It may throw to refuse; nothing is written then. Not
   * group-committed: for the rare edit that needs it (an admin's conditional alias.set). Drafts the
   * peers would refuse are left out as commit() leaves them out.
   */
  commitChecked(prepare: (store: ReplicaStore) => Promise<readonly Draft[]>, opts?: { source?: ChangeSource }): Promise<(Change | null)[]>;
  /** Applies a peer's batch durably; resolves once it is on disk. */
  apply(batch: RemoteBatch, fromPeer: string): Promise<ApplyOutcome>;
  versionVector(): Promise<VersionVector>;
  /** Own changes were committed (wakes the push pumps). */
  onCommitted(listener: ChangeListener): () => void;
  /** Any change won and was stored, local or remote (feeds Kamailio writers and live UIs). */
  onApplied(listener: ChangeListener): () => void;
  /**
   * Expands "remove every contact of this AoR" into one removal per contact with a value; with
   * `nowSec`, per live one (an expired binding is the purge's, and removing it changes nothing).
   */
  draftsForKeyRemoval(kind: RecordKind, key: string, nowSec?: number): Promise<Draft[]>;
  close(): Promise<void>;
}

export interface ReplicaDeps {
  store: ReplicaStore;
  hlc: Hlc;
  /** Where a listener's exception goes (it never stops the other listeners or the callers), and local changes the peers would refuse. */
  log: Pick<Logger, "error">;
  /** Counts local changes the peers would refuse (locmesh_changes_refused_total). */
  metrics?: Pick<Metrics, "changesRefused">;
}

interface Pending {
  drafts: readonly Draft[];
  outdated?: () => boolean;
  resolve: (r: (Change | null)[]) => void;
  reject: (e: unknown) => void;
}

/** commit()'s drafts were left out: `outdated` said a write since their reads made them old. */
export class OutdatedDraftsError extends Error {
  override readonly name = "OutdatedDraftsError";
  constructor() {
    super("the drafts were decided on reads that a later write made old; decide them again");
  }
}

interface PendingApply {
  batch: RemoteBatch;
  fromPeer: string;
  resolve: (r: ApplyOutcome) => void;
  reject: (e: unknown) => void;
}

export function createReplica({ store, hlc, log, metrics }: ReplicaDeps): Replica {
  const check = createLocalCheck({ log, ...(metrics ? { metrics } : {}) });
  /** The newest stamp the journal held when this process began (its clock's start: agent.ts, hub.ts). */
  const clockAtStart = hlc.last();
  const committed = new Set<ChangeListener>();
  const appliedListeners = new Set<ChangeListener>();
  let queue: Pending[] = [];
  /** A flush is due at the next turn of the event loop. */
  let flushSoon = false;
  /** A lingering flush, and when it is due (performance.now()). */
  let lingering: NodeJS.Timeout | null = null;
  let lingerDue = Infinity;
  let closed = false;
  /** Remote batches waiting for the store, in arrival order; one drain is queued while non-empty. */
  let applies: PendingApply[] = [];
  // Serialises every store write: local commits and remote batches never interleave.
  let tail: Promise<unknown> = Promise.resolve();
  const serial = <T>(fn: () => Promise<T>): Promise<T> => {
    const run = tail.then(fn, fn);
    tail = run.catch(() => undefined);
    return run;
  };

  // A listener that throws must not leave the callers' promises unsettled (the peer's session
  // would wait for an answer forever) nor keep the change from the listeners after it.
  const emit = (set: Set<ChangeListener>, changes: readonly Change[], peer: string | null) => {
    if (changes.length === 0) return;
    for (const l of set) {
      try {
        l(changes, { peer });
      } catch (err) {
        log.error({ err, peer }, "a change listener failed; the change is stored and the other listeners heard of it");
      }
    }
  };

  function schedule(lingerMs: number): void {
    if (flushSoon) return;
    if (lingerMs <= 0) {
      flushSoon = true;
      setImmediate(() => void flush());
      return;
    }
    const due = performance.now() + lingerMs;
    if (lingering !== null && lingerDue <= due) return;
    if (lingering !== null) clearTimeout(lingering);
    lingerDue = due;
    lingering = setTimeout(() => void flush(), lingerMs);
  }

  async function flush(): Promise<void> {
    flushSoon = false;
    if (lingering !== null) clearTimeout(lingering);
    lingering = null;
    lingerDue = Infinity;
    const queued = queue;
    queue = [];
    if (queued.length === 0) return;
    let batch = queued;
    try {
      const results = await serial(() => {
        // In the write turn: nothing lands between this check and the commit.
        batch = queued.filter((p) => {
          if (!p.outdated?.()) return true;
          p.reject(new OutdatedDraftsError());
          return false;
        });
        return batch.length === 0 ? Promise.resolve([]) : store.commitLocal(batch.flatMap((p) => p.drafts), () => hlc.now());
      });
      let i = 0;
      for (const p of batch) {
        p.resolve(results.slice(i, i + p.drafts.length));
        i += p.drafts.length;
      }
      const written = results.filter((c): c is Change => c !== null);
      emit(committed, written, null);
      emit(appliedListeners, written, null);
    } catch (err) {
      for (const p of batch) p.reject(err);
    }
  }

  async function drainApplies(): Promise<void> {
    // A change stamped far ahead would become this node's clock (hlc.ts farAhead): its batch is
    // refused, pushed or pulled, on an agent or a hub. Ahead of the newest stamp the journal held at
    // start too, so that a node whose own clock is behind (booted before NTP) does not refuse the
    // cluster's changes. Not of the newest seen since: each batch taken would move the bar, and a
    // peer stamping each batch just under a year past its last would carry the clock to 2^53.
    const ref = Math.max(Date.now(), hlcToMillis(clockAtStart));
    const group = applies.filter((p) => {
      const far = farAhead(p.batch.changes, ref);
      if (far) p.reject(new InvalidBatchError(far));
      return !far;
    });
    applies = [];
    for (const p of group) for (const c of p.batch.changes) hlc.observe(c.hlc);
    let outcomes: (ApplyOutcome | Error)[];
    try {
      outcomes = group.length === 1 ? [await store.applyRemote(group[0]!.batch).catch((e: unknown) => asError(e))] : await store.applyRemoteGroup(group.map((p) => p.batch));
    } catch (err) {
      for (const p of group) p.reject(err);
      return;
    }
    group.forEach((p, i) => {
      const o = outcomes[i]!;
      if (o instanceof Error) return p.reject(o);
      emit(appliedListeners, o.applied, p.fromPeer);
      p.resolve(o);
    });
  }

  return {
    store,
    nodeId: store.nodeId,
    replicaId: store.replicaId,
    commit(drafts, opts) {
      if (closed) return Promise.reject(new Error("the journal is closed"));
      if (drafts.length === 0) return Promise.resolve([]);
      const { fit, at } = check.screen(drafts, opts?.source ?? "api");
      if (fit.length === 0) return Promise.resolve(drafts.map(() => null));
      return new Promise<(Change | null)[]>((resolve, reject) => {
        queue.push({ drafts: fit, ...(opts?.outdated ? { outdated: opts.outdated } : {}), resolve, reject });
        schedule(opts?.lingerMs ?? 0);
      }).then((results) => (fit.length === drafts.length ? results : spread(results, at, drafts.length)));
    },
    async commitChecked(prepare, opts) {
      if (closed) throw new Error("the journal is closed");
      // Inside `serial`, the store writes nothing else until this settles.
      const results = await serial(async (): Promise<(Change | null)[]> => {
        const drafts = await prepare(store);
        const { fit, at } = check.screen(drafts, opts?.source ?? "api");
        return fit.length === 0 ? drafts.map(() => null) : spread(await store.commitLocal(fit, () => hlc.now()), at, drafts.length);
      });
      const written = results.filter((c): c is Change => c !== null);
      emit(committed, written, null);
      emit(appliedListeners, written, null);
      return results;
    },
    apply(batch, fromPeer) {
      if (closed) return Promise.reject(new Error("the journal is closed"));
      return new Promise((resolve, reject) => {
        applies.push({ batch, fromPeer, resolve, reject });
        if (applies.length === 1) void serial(drainApplies);
      });
    },
    versionVector: () => store.versionVector(),
    onCommitted(l) {
      committed.add(l);
      return () => committed.delete(l);
    },
    onApplied(l) {
      appliedListeners.add(l);
      return () => appliedListeners.delete(l);
    },
    async draftsForKeyRemoval(kind, key, nowSec) {
      const current = await store.listKey(kind, key);
      return current
        .filter((c) => (nowSec === undefined ? c.value !== null : isLive(c, nowSec)))
        .map((c) => ({ kind, key, sub: c.sub, value: null }));
    },
    async close() {
      closed = true;
      await flush();
      await tail;
      await store.close();
    },
  };
}
