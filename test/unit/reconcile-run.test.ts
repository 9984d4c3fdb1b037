/**
 * One reconcile run (agent/kamailio/reconcile-run.ts) whose repairs Kamailio refuses in part: the
 * refused one is skipped and counted, the others still go in, and the run does not fail. Before,
 * one binding with a value Kamailio cannot take (q -0.5, let in by the API) failed every reconcile,
 * and the first one after an agent's start crashed it (the hostile-input dry run).
 */
import { describe, expect, it } from "vitest";
import type { Replica } from "../../agent/core/replica.js";
import { openSqliteStore } from "../../agent/journal/sqlite-store.js";
import type { InstallOp } from "../../agent/kamailio/install-plan.js";
import { createKamailioTimes } from "../../agent/kamailio/kamailio-times.js";
import { KamailioWriteRejectedError, type KamailioWriter } from "../../agent/kamailio/kamailio-writer.js";
import { createReconcileRun } from "../../agent/kamailio/reconcile-run.js";
import type { KamailioLinks } from "../../agent/kamailio/kamailio-links.js";
import { silentLogger } from "../../agent/ops/logger.js";
import { createMetrics } from "../../agent/ops/metrics.js";
import { batchOf, binding, locDraft, remoteChange } from "../support/fixtures.js";

describe("a reconcile whose repairs Kamailio refuses in part", () => {
  it("skips and counts the refused one, writes the others, and finishes", async () => {
    const store = openSqliteStore({ path: ":memory:", nodeId: "n1" });
    const expires = Math.floor(Date.now() / 1000) + 3600;
    const hlc = (Date.now() - 60_000) * 1024;
    await store.applyRemote(batchOf("n2~aaaaaaaaaaaa", 0, 2, [
      remoteChange("n2~aaaaaaaaaaaa", 1, hlc, locDraft("bad@example.com", "sip:bad@192.0.2.1", binding({ owner: "n2", expires, q: -0.5 }))),
      remoteChange("n2~aaaaaaaaaaaa", 2, hlc + 1, locDraft("good@example.com", "sip:good@192.0.2.2", binding({ owner: "n2", expires }))),
    ]));
    const written: string[] = [];
    const writer: KamailioWriter = {
      async write(op: InstallOp) {
        if (op.op === "add" && op.binding.q === -0.5) throw new KamailioWriteRejectedError("Kamailio refused binding bad@example.com: ul.add q must be -1 or 0..1, got -0.5");
        written.push(op.op === "add" ? op.aor : op.op);
        return "rpc";
      },
    };
    const metrics = createMetrics({ defaults: false });
    metrics.exportKamailioSeries();
    const links = { writer, dump: async () => [], aliasTable: null, usrloc: { ulLookup: async () => [] } } as unknown as KamailioLinks;
    const run = createReconcileRun({
      config: { locationTable: "location", reconcileMaxContacts: 20_000 }, nodeId: "n1", store,
      replica: { commit: async () => [] } as unknown as Replica, links,
      plan: { nodeId: "n1", replicaId: store.replicaId, locationTable: "location" },
      watch: { observe: async () => undefined, reloadNeeded: () => false },
      sink: { isPending: () => false, writtenAt: () => undefined }, times: createKamailioTimes(), onStored: () => () => undefined,
      clockLeadMs: () => 0, journal: { held: () => false, waitedForSeed: () => true, seeded: () => true }, log: silentLogger(), metrics,
    });
    await run.run();
    expect(written).toEqual(["good@example.com"]);
    expect(run.last()).toMatchObject({ outcome: "done", repaired: 1 });
    expect(await metrics.registry.metrics()).toMatch(/^locmesh_kamailio_write_failures_total\{reason="rejected"\} 1$/m);
    await store.close();
  });
});
