/**
 * The replication core around a store: local edits are group-committed (many concurrent callers
 * share one durable transaction), remote batches are applied one at a time in arrival order, and
 * listeners hear about what changed. Shared by the agent and the hub.
 */
import type { Change, RecordKind, VersionVector } from "../contract/records.js";
import type { Hlc } from "./hlc.js";
import type { ApplyOutcome, Draft, RemoteBatch, ReplicaStore } from "./store.js";

export type ChangeListener = (changes: readonly Change[], source: { peer: string | null }) => void;

export interface Replica {
  readonly store: ReplicaStore;
  readonly nodeId: string;
  readonly replicaId: string;
  /** Journals local edits durably; resolves per draft with the written version, or null if nothing changed. */
  commit(drafts: readonly Draft[]): Promise<(Change | null)[]>;
  /** Applies a peer's batch durably; resolves once it is on disk. */
  apply(batch: RemoteBatch, fromPeer: string): Promise<ApplyOutcome>;
  versionVector(): Promise<VersionVector>;
  /** Own changes were committed (wakes the push pumps). */
  onCommitted(listener: ChangeListener): () => void;
  /** Any change won and was stored, local or remote (feeds Kamailio writers and live UIs). */
  onApplied(listener: ChangeListener): () => void;
  /** Expands "remove every contact of this AoR" into one removal per live contact. */
  draftsForKeyRemoval(kind: RecordKind, key: string): Promise<Draft[]>;
  close(): Promise<void>;
}

export interface ReplicaDeps {
  store: ReplicaStore;
  hlc: Hlc;
}

interface Pending {
  drafts: readonly Draft[];
  resolve: (r: (Change | null)[]) => void;
  reject: (e: unknown) => void;
}

export function createReplica({ store, hlc }: ReplicaDeps): Replica {
  const committed = new Set<ChangeListener>();
  const appliedListeners = new Set<ChangeListener>();
  let queue: Pending[] = [];
  let flushing = false;
  let closed = false;
  // Serialises every store write: local commits and remote batches never interleave.
  let tail: Promise<unknown> = Promise.resolve();
  const serial = <T>(fn: () => Promise<T>): Promise<T> => {
    const run = tail.then(fn, fn);
    tail = run.catch(() => undefined);
    return run;
  };

  const emit = (set: Set<ChangeListener>, changes: readonly Change[], peer: string | null) => {
    if (changes.length === 0) return;
    for (const l of set) l(changes, { peer });
  };

  async function flush(): Promise<void> {
    flushing = false;
    const batch = queue;
    queue = [];
    if (batch.length === 0) return;
    const all = batch.flatMap((p) => p.drafts);
    try {
      const results = await serial(() => store.commitLocal(all, () => hlc.now()));
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

  return {
    store,
    nodeId: store.nodeId,
    replicaId: store.replicaId,
    commit(drafts) {
      if (closed) return Promise.reject(new Error("the journal is closed"));
      if (drafts.length === 0) return Promise.resolve([]);
      return new Promise((resolve, reject) => {
        queue.push({ drafts, resolve, reject });
        if (!flushing) {
          flushing = true;
          setImmediate(() => void flush());
        }
      });
    },
    apply(batch, fromPeer) {
      return serial(async () => {
        for (const c of batch.changes) hlc.observe(c.hlc);
        const outcome = await store.applyRemote(batch);
        emit(appliedListeners, outcome.applied, fromPeer);
        return outcome;
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
    async draftsForKeyRemoval(kind, key) {
      const current = await store.listKey(kind, key);
      return current.filter((c) => c.value !== null).map((c) => ({ kind, key, sub: c.sub, value: null }));
    },
    async close() {
      closed = true;
      await flush();
      await tail;
      await store.close();
    },
  };
}
