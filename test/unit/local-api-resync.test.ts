/**
 * cluster.resync (agent/api/local-api.ts): one full resync at a time. Asked for while one runs, it
 * joins that one and says so; a peer that cannot be pulled from is refused at once. In process: the
 * API's own JSON-RPC dispatch over an in-memory journal, with the mesh's resync scripted.
 */
import { afterEach, describe, expect, it } from "vitest";
import { createLocalApi, type ApiContext } from "../../agent/api/local-api.js";
import { ApiMethod } from "../../agent/contract/api-protocol.js";
import type { ResyncStatus } from "../../agent/contract/cluster-status.js";
import { ErrorCode } from "../../agent/contract/errors.js";
import { createHlc } from "../../agent/core/hlc.js";
import { createReplica, type Replica } from "../../agent/core/replica.js";
import { openSqliteStore } from "../../agent/journal/sqlite-store.js";
import type { Mesh } from "../../agent/mesh/mesh.js";
import { silentLogger } from "../../agent/ops/logger.js";
import { createMetrics } from "../../agent/ops/metrics.js";

const idle: ResyncStatus = { state: "idle", peer: null, received: 0, expected: 0, startedAt: null, finishedAt: null, error: null };
const ctx: ApiContext = { authenticated: true, signIn: () => null };

let replica: Replica | null = null;
afterEach(async () => {
  await replica?.close();
  replica = null;
});

function apiOver(resync: Mesh["resync"]) {
  const mesh = {
    resync, resyncStatus: () => idle, status: async () => [], hubUnacknowledged: async () => undefined, purgeFloor: async () => null, batchRefusals: () => [],
  } as unknown as Mesh;
  replica = createReplica({ store: openSqliteStore({ path: ":memory:", nodeId: "n1" }), hlc: createHlc({ wallMillis: Date.now }), log: silentLogger() });
  const rpc = createLocalApi({ replica, mesh, log: silentLogger(), metrics: createMetrics({ defaults: false }), startedAtMs: Date.now(), version: "test" });
  return async (params: unknown = {}) => {
    const answer = await rpc.receive({ jsonrpc: "2.0", id: 1, method: ApiMethod.ClusterResync, params }, ctx);
    if (answer === null || Array.isArray(answer)) throw new Error("expected one answer");
    return answer;
  };
}

describe("cluster.resync", () => {
  it("starts a resync, and says when it joined the one under way instead", async () => {
    const never = new Promise<void>(() => undefined);
    let runs = 0;
    const call = apiOver(() => ({ joined: runs++ > 0, done: never }));
    expect((await call()).result).toEqual({ started: true, running: true });
    expect((await call()).result).toEqual({ started: false, running: true });
  });

  it("refuses a peer it cannot pull from, saying why, and a resync that fails at once", async () => {
    const none = apiOver(() => {
      throw new Error("n9 is not a peer of this node (its peers: n2)");
    });
    expect((await none({ peer: "n9" })).error).toEqual({ code: ErrorCode.NotFound, message: "n9 is not a peer of this node (its peers: n2)" });
    const refused = apiOver(() => ({ joined: false, done: Promise.reject(new Error("n2 answered pull with a malformed result")) }));
    expect((await refused()).error).toMatchObject({ code: ErrorCode.NotFound, message: "n2 answered pull with a malformed result" });
  });
});
