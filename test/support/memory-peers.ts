/**
 * Peer sessions over in-memory journals, for unit tests that drive agent/mesh/peer-session.ts
 * itself: a replica per node, and every replica and session made closed after each test.
 */
import { afterEach } from "vitest";
import { createHlc } from "../../agent/core/hlc.js";
import { createReplica, type Replica } from "../../agent/core/replica.js";
import { openSqliteStore } from "../../agent/journal/sqlite-store.js";
import type { PeerSession } from "../../agent/mesh/peer-session.js";
import { silentLogger } from "../../agent/ops/logger.js";

/** Call at a test file's top level: registers the afterEach that closes what `replica` and `keep` were given. */
export function memoryPeers() {
  const replicas: Replica[] = [];
  const sessions: PeerSession[] = [];
  afterEach(async () => {
    for (const s of sessions.splice(0)) s.close(1000, "test done");
    for (const r of replicas.splice(0)) await r.close();
  });
  return {
    /** A replica of `nodeId` over a journal in memory. */
    replica(nodeId: string): Replica {
      const r = createReplica({ store: openSqliteStore({ path: ":memory:", nodeId }), hlc: createHlc({ wallMillis: Date.now }), log: silentLogger() });
      replicas.push(r);
      return r;
    },
    keep(...s: PeerSession[]): void {
      sessions.push(...s);
    },
  };
}
