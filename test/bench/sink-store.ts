/**
 * The store behind the hub bench's sink agents (sink-process.ts). It keeps a version vector and
 * counts what arrives, and writes nothing: a sink agent costs the machine its protocol work (the
 * WebSocket, JSON-RPC, checking every change, acknowledgements) but no journal. The bench uses it
 * to time the hub and its PostgreSQL apart from the receiving agents' own journals, which on a
 * 2-core machine share the CPUs with the hub; the end-to-end figures still come from real agents.
 *
 * A batch is taken as the SQLite journal takes it (in order, within its range, from its origin;
 * anything else is refused); a change counts once, however often a failover resends it.
 *
 * A sink agent may also publish (the `hub.many` part): its own changes are kept in memory, in seq
 * order, and served to its push pump as a journal would serve them.
 */
import type { Change } from "../../agent/contract/records.js";
import { InvalidBatchError, type ApplyOutcome, type RemoteBatch, type ReplicaStore } from "../../agent/core/store.js";

export interface SinkStore extends ReplicaStore {
  /** Changes taken so far, each counted once. */
  taken(): number;
  /**
   * From now on, note when each change whose key is `${prefix}${7-digit index}…` first arrives
   * (indexes below `total`), as milliseconds since the epoch; earlier notes are dropped.
   */
  track(prefix: string, total: number): void;
  /** How many of the tracked changes have arrived. */
  trackedSeen(): number;
  /** Arrival times of the tracked changes by index; null for those not yet seen. */
  arrivals(): (number | null)[];
}

export function createSinkStore(nodeId: string, nowMs: () => number = () => performance.timeOrigin + performance.now()): SinkStore {
  const haves = new Map<string, number>();
  let taken = 0;
  let tracking: { prefix: string; at: (number | null)[]; seen: number } | null = null;
  const replicaId = `${nodeId}~00000000`;
  /** This agent's own changes, seq n at n - 1. */
  const own: Change[] = [];

  const note = (changes: readonly Change[]) => {
    if (!tracking) return;
    const at = nowMs();
    const { prefix } = tracking;
    for (const c of changes) {
      if (!c.key.startsWith(prefix)) continue;
      const i = Number(c.key.slice(prefix.length, prefix.length + 7));
      if (Number.isInteger(i) && i < tracking.at.length && tracking.at[i] === null) {
        tracking.at[i] = at;
        tracking.seen++;
      }
    }
  };

  const applyOne = (batch: RemoteBatch): ApplyOutcome => {
    let last = batch.after;
    for (const c of batch.changes) {
      if (c.origin !== batch.origin || c.seq <= last || c.seq > batch.upTo) {
        throw new InvalidBatchError(`batch for ${batch.origin} (${batch.after}, ${batch.upTo}] holds ${c.origin}#${c.seq} out of order or range`);
      }
      last = c.seq;
    }
    const have = haves.get(batch.origin) ?? 0;
    // A batch that starts beyond what we hold would leave a gap; one wholly below it is a resend.
    if (batch.after > have || batch.upTo <= have) return { applied: [], have };
    const applied = batch.changes.filter((c) => c.seq > have);
    haves.set(batch.origin, batch.upTo);
    taken += applied.length;
    note(applied);
    return { applied, have: batch.upTo };
  };

  const nothing = () => Promise.resolve([]);
  return {
    nodeId,
    replicaId,
    versionVector: () => Promise.resolve({ ...Object.fromEntries(haves), ...(own.length > 0 ? { [replicaId]: own.length } : {}) }),
    maxHlc: () => Promise.resolve(own.at(-1)?.hlc ?? 0),
    commitLocal: (drafts, stamp) =>
      Promise.resolve(drafts.map((d) => {
        const c: Change = { ...d, hlc: stamp(), origin: replicaId, seq: own.length + 1 };
        own.push(c);
        return c;
      })),
    applyRemote: (batch) => Promise.resolve().then(() => applyOne(batch)),
    applyRemoteGroup: (batches) =>
      Promise.resolve(batches.map((b) => {
        try {
          return applyOne(b);
        } catch (err) {
          if (err instanceof InvalidBatchError) return err;
          throw err;
        }
      })),
    readRange: (origin, after, upTo, limit) => Promise.resolve(origin === replicaId ? own.slice(after, Math.min(upTo, after + limit)) : []),
    countAfter: (origin, after) => Promise.resolve(origin === replicaId ? Math.max(0, own.length - after) : 0),
    firstHlcAfter: (origin, after) => Promise.resolve(origin === replicaId ? (own[after]?.hlc ?? null) : null),
    get: () => Promise.resolve(null),
    listKey: nothing,
    page: () => Promise.resolve({ items: [], next: null, total: 0 }),
    counts: () => Promise.resolve({ locations: 0, aliases: 0, tombstones: 0 }),
    purge: () => Promise.resolve(0),
    close: () => Promise.resolve(),
    taken: () => taken,
    track(prefix, total) {
      tracking = { prefix, at: new Array<number | null>(total).fill(null), seen: 0 };
    },
    trackedSeen: () => tracking?.seen ?? 0,
    arrivals: () => tracking?.at ?? [],
  };
}
