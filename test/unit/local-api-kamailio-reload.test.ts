/**
 * `kamailio.reload` through the local API (`locmesh resync --kamailio`): it writes every live record,
 * so it joins only a whole reload under way; one by difference (after a Kamailio restart) is not
 * what was asked for, and the whole one runs after it (reload.ts). Before, the API answered
 * "running" to any reload under way and the CLI followed the one by difference.
 */
import { afterEach, describe, expect, it } from "vitest";
import { createLocalApi, type ApiContext } from "../../agent/api/local-api.js";
import { ApiMethod } from "../../agent/contract/api-protocol.js";
import type { KamailioReloadStatus } from "../../agent/contract/kamailio-status.js";
import { createHlc } from "../../agent/core/hlc.js";
import { createJournalBehind } from "../../agent/core/journal-behind.js";
import { createReplica, type Replica } from "../../agent/core/replica.js";
import { openSqliteStore } from "../../agent/journal/sqlite-store.js";
import type { Mesh } from "../../agent/mesh/mesh.js";
import { silentLogger } from "../../agent/ops/logger.js";
import { createMetrics } from "../../agent/ops/metrics.js";

const ctx: ApiContext = { authenticated: true, signIn: () => null };
let replica: Replica | null = null;
afterEach(async () => {
  await replica?.close();
  replica = null;
});

function api(reload: KamailioReloadStatus) {
  replica = createReplica({ store: openSqliteStore({ path: ":memory:", nodeId: "n3" }), hlc: createHlc({ wallMillis: Date.now }), log: silentLogger() });
  const asked: string[] = [];
  const kamailio = { status: async () => ({ writer: "rpc", lastError: null, reload }), reload: async (reason: string) => void asked.push(reason) };
  const rpc = createLocalApi({
    replica, mesh: {} as Mesh, log: silentLogger(), metrics: createMetrics({ defaults: false }), startedAtMs: Date.now(), version: "test",
    journalBehind: createJournalBehind(), kamailio: kamailio as never,
  });
  const call = async () => {
    const answer = await rpc.receive({ jsonrpc: "2.0", id: 1, method: ApiMethod.KamailioReload, params: {} }, ctx);
    if (answer === null || Array.isArray(answer)) throw new Error("expected one answer");
    return answer.result;
  };
  return { call, asked };
}

const running = (whole: boolean): KamailioReloadStatus => ({
  state: "running", reason: whole ? "requested through the API" : "kamailio restarted", total: 100, whole, done: 10, unchanged: 0,
  startedAt: "2026-11-23T03:00:00.000Z", finishedAt: null, rate: 0, channel: "evapi", error: null,
});

describe("kamailio.reload while a reload runs", () => {
  it("asks for a whole one after a reload by difference under way, and joins a whole one", async () => {
    const byDiff = api(running(false));
    expect(await byDiff.call()).toEqual({ started: true, running: true, after: "kamailio restarted" });
    expect(byDiff.asked).toEqual(["requested through the API"]);
    await replica?.close();
    const whole = api(running(true));
    expect(await whole.call()).toEqual({ started: false, running: true });
    expect(whole.asked).toEqual([]);
  });
});
