/**
 * The local API of a node whose journal was found behind its peers (core/journal-behind.ts): it
 * refuses every change, since the remedy throws the journal away, and says what happened and what
 * to do; reads still work and cluster.status carries what was found. In process: the API's own
 * JSON-RPC dispatch over an in-memory journal.
 */
import { afterEach, describe, expect, it } from "vitest";
import { createLocalApi, type ApiContext } from "../../agent/api/local-api.js";
import { ErrorCode } from "../../agent/contract/errors.js";
import { ApiMethod } from "../../agent/contract/api-protocol.js";
import type { ClusterStatus, ResyncStatus } from "../../agent/contract/cluster-status.js";
import { createHlc } from "../../agent/core/hlc.js";
import { createJournalBehind } from "../../agent/core/journal-behind.js";
import { createReplica, type Replica } from "../../agent/core/replica.js";
import { openSqliteStore } from "../../agent/journal/sqlite-store.js";
import type { Mesh } from "../../agent/mesh/mesh.js";
import { silentLogger } from "../../agent/ops/logger.js";
import { createMetrics } from "../../agent/ops/metrics.js";

const idle: ResyncStatus = { state: "idle", peer: null, received: 0, expected: 0, startedAt: null, finishedAt: null, error: null };
const mesh: Mesh = {
  start: async () => undefined, port: () => 0, status: async () => [], gauges: async () => [], setPeers: () => undefined, setHubUrls: () => "", setHubFailback: () => "",
  setAllowed: () => undefined, setTls: () => "",
  resync: () => ({ joined: false, done: Promise.resolve() }), resyncStatus: () => idle, hubUnacknowledged: async () => undefined, purgeFloor: async () => null, firstSession: async () => undefined, peerVectors: () => new Map(), batchRefusals: () => [], wakePumps: () => undefined, refuseSessions: () => undefined, restartSessions: () => undefined,
  failBackToPreferredHub: async () => "", close: async () => undefined,
};
const ctx: ApiContext = { authenticated: true, signIn: () => null };
const found = { peer: "n1", peerHolds: 12, journalHas: 11, at: "2026-11-22T10:00:00.000Z" };

let replica: Replica | null = null;
afterEach(async () => {
  await replica?.close();
  replica = null;
});

function setup() {
  replica = createReplica({ store: openSqliteStore({ path: ":memory:", nodeId: "n3" }), hlc: createHlc({ wallMillis: Date.now }), log: silentLogger() });
  const journalBehind = createJournalBehind();
  const rpc = createLocalApi({ replica, mesh, log: silentLogger(), metrics: createMetrics({ defaults: false }), startedAtMs: Date.now(), version: "test", journalBehind });
  let id = 0;
  const call = async (method: string, params: unknown = {}) => {
    const answer = await rpc.receive({ jsonrpc: "2.0", id: ++id, method, params }, ctx);
    if (answer === null || Array.isArray(answer)) throw new Error("expected one answer");
    return answer;
  };
  return { call, journalBehind };
}

const binding = { aor: "sip:alice@example.com", contact: "sip:alice@192.0.2.1", expires: 0 };

describe("local API while the journal is behind", () => {
  it("refuses changes, a resync and a Kamailio reload with JournalBehind, saying what to do; reads go on", async () => {
    const { call, journalBehind } = setup();
    expect(await call(ApiMethod.AliasSet, { alias: "sip:a@example.com", target: "sip:t@example.com" })).toHaveProperty("result");
    journalBehind.set(found);

    for (const [method, params] of [
      [ApiMethod.AliasSet, { alias: "sip:b@example.com", target: "sip:t@example.com" }],
      [ApiMethod.AliasRemove, { alias: "sip:a@example.com" }],
      [ApiMethod.LocationPublish, { edits: [{ op: "upsert", binding }] }],
      [ApiMethod.ClusterResync, {}],
      [ApiMethod.KamailioReload, {}],
    ] as const) {
      const answer = await call(method, params);
      expect(answer.error, method).toMatchObject({ code: ErrorCode.JournalBehind, data: found });
      expect(answer.error?.message).toBe(
        "this node's journal is behind: peer n1 holds 12 of this node's own changes, its journal only 11 (restored from an older copy, or it lost its last commits). " +
          "It takes no changes until started afresh, as they would be lost then: make this change on another node, and repair this one: " +
          "stop the agent, move everything in its dataDir aside (the journal.sqlite* files and the two kamailio-*.json, which describe a Kamailio written from the stale journal) and start it (it gets a snapshot from its peers under a new epoch, reloads its Kamailio, and learns its Kamailio's registrations back)",
      );
    }
    // Nothing was committed, and reading still works.
    const list = await call(ApiMethod.AliasList, {});
    expect(list.result).toMatchObject({ total: 1, items: [{ alias: "a@example.com" }] });
    expect((await call(ApiMethod.LocationLookup, { aor: "sip:alice@example.com" })).result).toMatchObject({ bindings: [] });
    const status = (await call(ApiMethod.ClusterStatus, {})).result as ClusterStatus;
    expect(status.journalBehind).toEqual(found);
  });

  it("reports no journalBehind while the journal is fine", async () => {
    const { call } = setup();
    expect(((await call(ApiMethod.ClusterStatus, {})).result as ClusterStatus).journalBehind).toBeNull();
  });
});
