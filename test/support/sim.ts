/**
 * A cluster of replicas in one process, for convergence tests. Each node is a real SQLite journal
 * (":memory:") behind createReplica with its own HLC on a skewed fake wall clock. Batches are
 * computed exactly as the agent computes them (nextBatch for a push, servePull for a relay pull)
 * and handed to the test, which decides whether, when and how often they are delivered.
 */
import { silentLogger } from "../../agent/ops/logger.js";
import { compareVersions, isLive, type Change, type VersionVector } from "../../agent/contract/records.js";
import { createHlc } from "../../agent/core/hlc.js";
import { nextBatch, servePull } from "../../agent/core/outbound.js";
import { createReplica, type Replica } from "../../agent/core/replica.js";
import type { Draft, RemoteBatch } from "../../agent/core/store.js";
import { openSqliteStore } from "../../agent/journal/sqlite-store.js";
import { identity } from "./fixtures.js";

export const SIM_START_MS = 1_800_000_000_000;

export interface SimNode {
  name: string;
  replica: Replica;
}

export type Dump = ReturnType<typeof identity>[];

export function createSim(skewsMs: readonly number[]) {
  const clock = { ms: SIM_START_MS };
  /** Every version any node ever wrote: the reference model's input. */
  const history: Change[] = [];
  /** Per link and origin, the upTo of the last batch pushed (the push pump's `sentUpTo`). */
  const sent = new Map<string, number>();
  const nodes: SimNode[] = skewsMs.map((skew, i) => {
    const name = `node${i}`;
    const store = openSqliteStore({ path: ":memory:", nodeId: name });
    const replica = createReplica({ store, hlc: createHlc({ wallMillis: () => clock.ms + skew }), log: silentLogger() });
    replica.onCommitted((changes) => history.push(...changes));
    return { name, replica };
  });
  const node = (i: number) => nodes[i % nodes.length]!;
  const vv = (i: number) => node(i).replica.versionVector();

  return {
    nodes,
    clock,
    history,

    async edit(i: number, draft: Draft): Promise<void> {
      await commitAfterSeen(node(i), [draft]);
    },

    async removeKey(i: number, key: string): Promise<void> {
      const r = node(i).replica;
      await commitAfterSeen(node(i), await r.draftsForKeyRemoval("loc", key));
    },

    /**
     * What `from` pushes to `to` for its own origin (relay 0) or the relay-th other origin it holds,
     * wrapping around. Like the agent's push pump, it continues
     * after the last batch it sent on this link (so a lost or late batch leaves a gap at `to`),
     * unless `resume` restarts it from what `to` holds, less `lag` (a stale acknowledgement).
     */
    async push(from: number, to: number, relay: number, limit: number, resume = true, lag = 0): Promise<RemoteBatch | null> {
      const self = node(from).replica.replicaId;
      const mine = await vv(from);
      const others = Object.keys(mine).filter((o) => o !== self).sort();
      const origin = relay === 0 || others.length === 0 ? self : others[(relay - 1) % others.length]!;
      if (!mine[origin]) return null;
      const link = `${from % nodes.length}>${to % nodes.length}>${origin}`;
      const after = resume || !sent.has(link) ? Math.max(0, ((await vv(to))[origin] ?? 0) - lag) : sent.get(link)!;
      const batch = await nextBatch(node(from).replica.store, origin, after, mine[origin]!, limit);
      if (batch) sent.set(link, batch.upTo);
      return batch;
    },

    /** What `from` serves when `to` pulls with its current vector. */
    async pull(from: number, to: number, limit: number): Promise<RemoteBatch | null> {
      const params = { vv: await vv(to), limit, skip: [], count: false };
      return (await servePull(node(from).replica.store, params)).batch;
    },

    async deliver(batch: RemoteBatch, from: number, to: number): Promise<void> {
      await node(to).replica.apply(batch, node(from).name);
    },

    /** Pulls between every ordered pair until all vectors agree; returns the rounds it took. */
    async heal(limit: number, maxRounds = 6): Promise<number> {
      for (let round = 1; round <= maxRounds; round++) {
        for (let to = 0; to < nodes.length; to++) {
          for (let from = 0; from < nodes.length; from++) {
            if (from === to) continue;
            for (let guard = 0; ; guard++) {
              if (guard > 100_000) throw new Error(`pull ${from}→${to} does not finish`);
              const batch = await this.pull(from, to, limit);
              if (!batch) break;
              await this.deliver(batch, from, to);
            }
          }
        }
        const vectors = await Promise.all(nodes.map((_, i) => vv(i)));
        if (vectors.every((v) => sameVector(v, vectors[0]!))) return round;
      }
      throw new Error(`the cluster did not quiesce within ${maxRounds} rounds`);
    },

    /** Every live record of node i at `atSec`, in a stable order. */
    async dump(i: number, atSec: number): Promise<Dump> {
      const store = node(i).replica.store;
      const q = { search: "", after: "", limit: 1_000_000, nowSec: atSec };
      const pages = [await store.page("loc", q), await store.page("alias", q)];
      for (const p of pages) if (p.next !== null) throw new Error("dump did not fit one page");
      return pages.flatMap((p) => p.items.map(identity));
    },

    vectors: () => Promise.all(nodes.map((_, i) => vv(i))),

    async close(): Promise<void> {
      for (const n of nodes) await n.replica.close();
    },
  };
}

export type Sim = ReturnType<typeof createSim>;

/**
 * Commits local edits, and checks the hybrid logical clock's promise on each: its stamp is greater
 * than every stamp the node holds for that key (what it has seen of it, tombstones included). The
 * reference model takes its stamps from the system under test, so without this a clock that
 * failed to move past what it had seen would only reorder the model with it, and go unnoticed.
 */
async function commitAfterSeen(n: SimNode, drafts: readonly Draft[]): Promise<void> {
  const seen = new Map<string, number>();
  for (const d of drafts) {
    const id = `${d.kind}\u0000${d.key}`;
    if (seen.has(id)) continue;
    seen.set(id, Math.max(0, ...(await n.replica.store.listKey(d.kind, d.key)).map((c) => c.hlc)));
  }
  const written = await n.replica.commit(drafts);
  for (const c of written) {
    if (c === null) continue;
    const before = seen.get(`${c.kind}\u0000${c.key}`)!;
    if (!(c.hlc > before)) throw new Error(`${n.name} stamped its edit of ${c.kind} ${c.key} ${c.sub} with hlc ${c.hlc}, not after the ${before} it held for that key`);
  }
}

export function sameVector(a: VersionVector, b: VersionVector): boolean {
  const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
  return [...keys].every((k) => (a[k] ?? 0) === (b[k] ?? 0));
}

/** The state LWW must reach: per record, the greatest (hlc, origin) version ever written, if live. */
export function referenceState(history: readonly Change[], atSec: number): Dump {
  const winners = new Map<string, Change>();
  for (const c of history) {
    const id = `${c.kind === "loc" ? 0 : 1}\u0000${c.key}\u0000${c.sub}`;
    const held = winners.get(id);
    if (!held || compareVersions(c, held) > 0) winners.set(id, c);
  }
  return [...winners.entries()]
    .filter(([, c]) => isLive(c, atSec))
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([, c]) => identity(c));
}
