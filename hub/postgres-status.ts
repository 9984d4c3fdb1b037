/**
 * What a hub's `cluster.status` says of its PostgreSQL: whether it answers (pg-watch.ts) and why
 * not, and the record counts, which come from PostgreSQL. The status answers either way: while
 * PostgreSQL counts as unreachable it is not asked, and otherwise a count gets `waitMs`; the
 * status then shows the last counts with their age (counts-cache.ts), or none yet.
 */
import type { PostgresStatus } from "../agent/contract/protocol.js";
import type { StoreCounts } from "../agent/core/store.js";
import type { PgStore } from "./pg-store.js";
import type { PgWatch } from "./pg-watch.js";
import { valueWithin } from "./value-within.js";

export interface PostgresStatusDeps {
  store: Pick<PgStore, "counts" | "lastCounts">;
  watch: Pick<PgWatch, "state">;
  /** host:port (pg-connection.ts pgAddress). */
  address: string;
  /** How long a status waits for a count. */
  waitMs?: number;
  nowMs?: () => number;
}

export type PostgresStatusSource = (nowSec: number) => Promise<{ counts: StoreCounts; postgres: PostgresStatus }>;

export function createPostgresStatus(deps: PostgresStatusDeps): PostgresStatusSource {
  const nowMs = deps.nowMs ?? Date.now;
  const waitMs = deps.waitMs ?? 2000;
  return async (nowSec) => {
    const state = deps.watch.state();
    if (state.reachable) await valueWithin(deps.store.counts(nowSec), waitMs);
    const last = deps.store.lastCounts();
    return {
      counts: last?.counts ?? { locations: 0, aliases: 0, tombstones: 0 },
      postgres: {
        address: deps.address,
        reachable: state.reachable,
        error: state.error,
        since: new Date(state.sinceMs).toISOString(),
        countsAgeSeconds: last === null ? null : Math.max(0, Math.round((nowMs() - last.countedAtMs) / 1000)),
      },
    };
  };
}
