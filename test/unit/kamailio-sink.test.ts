/**
 * The Kamailio sink while the agent's disk is full: Kamailio unreachable and the write cursor
 * unsavable at once must leave the writes pending, not crash the agent (the retry path saved the
 * cursor unguarded; a throw there was an unhandled rejection). Found by the disk-full drill.
 */
import { afterEach, describe, expect, it } from "vitest";
import { TransientError } from "../../agent/core/transient.js";
import { openSqliteStore } from "../../agent/journal/sqlite-store.js";
import type { InstallCursor } from "../../agent/kamailio/install-cursor.js";
import { createKamailioSink, type KamailioSink } from "../../agent/kamailio/kamailio-sink.js";
import { silentLogger } from "../../agent/ops/logger.js";
import { createMetrics } from "../../agent/ops/metrics.js";

/** A cursor in memory whose save() fails as a full disk makes it fail. */
function fullDiskCursor(): InstallCursor & { saves: number } {
  let vv: Record<string, number> = {};
  return {
    saves: 0,
    get: () => vv,
    advance(origin, seq) {
      if (seq > (vv[origin] ?? 0)) vv[origin] = seq;
    },
    reset(next) {
      vv = { ...next };
    },
    save() {
      this.saves++;
      throw Object.assign(new Error("ENOSPC: no space left on device, write"), { code: "ENOSPC" });
    },
  };
}

let sink: KamailioSink | null = null;
afterEach(async () => {
  await sink?.close();
  sink = null;
});

describe("kamailio sink on a full disk", () => {
  it("keeps writes pending while Kamailio is unreachable and the cursor cannot be saved", async () => {
    const store = openSqliteStore({ path: ":memory:", nodeId: "n2" });
    await store.commitLocal([{ kind: "alias", key: "nick@example.com", sub: "", value: { target: "sip:alice@example.com" } }], () => 1);
    const cursor = fullDiskCursor();
    let attempts = 0;
    const unhandled: unknown[] = [];
    const onUnhandled = (err: unknown) => unhandled.push(err);
    process.on("unhandledRejection", onUnhandled);
    try {
      sink = createKamailioSink({
        store, cursor, log: silentLogger(), metrics: createMetrics({ defaults: false }),
        plan: { nodeId: "n2", replicaId: store.replicaId, locationTable: "location" },
        writer: {
          async write() {
            attempts++;
            throw new TransientError("Kamailio is unreachable");
          },
        },
        retry: { minMs: 5, maxMs: 5 },
      });
      sink.start();
      await new Promise((r) => setTimeout(r, 100));
      expect(attempts).toBeGreaterThan(2);
      expect(cursor.saves).toBeGreaterThan(0);
      expect(sink.status()).toMatchObject({ state: "waiting", lastError: "Kamailio is unreachable" });
      expect(await sink.pending()).toBe(1);
      expect(unhandled).toEqual([]);
    } finally {
      process.off("unhandledRejection", onUnhandled);
    }
  });
});
