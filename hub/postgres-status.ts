/**
 * What a hub's `cluster.status` says of its PostgreSQL: whether it answers (pg-watch.ts), since
 * when it fails and why, when it last answered, and the record counts, which come from
 * PostgreSQL. The status answers either way: while PostgreSQL counts as unreachable, or its
 * checks fail, it is not asked, and otherwise a count gets `waitMs`; the status then shows the last counts with their
 * age (counts-cache.ts), or none yet, and marks them stale when PostgreSQL fails, the recount
 * failed, or they are older than counts are ever reused for (the README's bound).
 */
import type { PostgresStatus } from "../agent/contract/cluster-status.js";
import type { StoreCounts } from "../agent/core/store.js";
import { COUNTS_MAX_REUSE_MS } from "./counts-cache.js";
import type { PgStore } from "./pg-store.js";
import type { PgWatch } from "./pg-watch.js";
import { valueWithin } from "./value-within.js";

export interface PostgresStatusDeps {
  store: Pick<PgStore, "counts" | "lastCounts">;
  watch: Pick<PgWatch, "state">;
  /** host:port (pg-connection.ts pgAddress). */
  address: string;
  /** postgres.unreachableAfterMs: how long checks fail before the hub releases its agents. */
  unreachableAfterMs: number;
  /** How long a status waits for a count. */
  waitMs?: number;
  /** Counts older than this are stale (ms); counts-cache.ts reuses none longer by default. */
  countsMaxAgeMs?: number;
  nowMs?: () => number;
}

export type PostgresStatusSource = (nowSec: number) => Promise<{ counts: StoreCounts; postgres: PostgresStatus }>;

const seconds = (ms: number) => Math.max(0, Math.round(ms / 1000));

export function createPostgresStatus(deps: PostgresStatusDeps): PostgresStatusSource {
  const nowMs = deps.nowMs ?? Date.now;
  const waitMs = deps.waitMs ?? 2000;
  const countsMaxAgeMs = deps.countsMaxAgeMs ?? COUNTS_MAX_REUSE_MS;
  return async (nowSec) => {
    const state = deps.watch.state();
    // false: the recount failed; undefined: it did not end within waitMs (the last counts then).
    // Not asked while its checks fail either: a count would only wait out the query timeout.
    const failing = !state.reachable || state.failingSinceMs !== null;
    const recounted = failing ? undefined : await valueWithin(deps.store.counts(nowSec).then(() => true, () => false), waitMs);
    const last = deps.store.lastCounts();
    const ageMs = last === null ? null : nowMs() - last.countedAtMs;
    const countsStale =
      ageMs === null ? null
      : failing ? "PostgreSQL does not answer"
      : recounted === false ? "the recount failed"
      : ageMs > countsMaxAgeMs ? `older than the ${seconds(countsMaxAgeMs)} s counts are reused for; the recount is slow`
      : null;
    return {
      counts: last?.counts ?? { locations: 0, aliases: 0, tombstones: 0 },
      postgres: {
        address: deps.address,
        reachable: state.reachable,
        error: state.error,
        since: new Date(state.sinceMs).toISOString(),
        countsAgeSeconds: ageMs === null ? null : seconds(ageMs),
        lastAnswered: new Date(state.lastAnsweredMs).toISOString(),
        lastAnsweredAgeSeconds: seconds(nowMs() - state.lastAnsweredMs),
        failingForSeconds: state.failingSinceMs === null ? null : seconds(nowMs() - state.failingSinceMs),
        releaseAfterSeconds: seconds(deps.unreachableAfterMs),
        countsStale,
      },
    };
  };
}
