/** What `locmesh status` says about the local Kamailio, and the sink's retry when it comes back. */
import { describe, expect, it } from "vitest";
import { NOT_CHECKED_YET, createKamailioLiveness, lastErrorOf } from "../../agent/kamailio/kamailio-liveness.js";
import { createMetrics } from "../../agent/ops/metrics.js";

function setup() {
  let retries = 0;
  let now = Date.parse("2026-11-22T10:00:00.000Z");
  const metrics = createMetrics({ defaults: false });
  const liveness = createKamailioLiveness({ sink: { retryNow: () => void retries++ }, metrics, nowMs: () => now });
  const gauge = async () => (await metrics.kamailioUp.get()).values[0]?.value;
  return { liveness, retries: () => retries, later: (ms: number) => (now += ms), gauge };
}

describe("kamailio liveness", () => {
  it("is down with a reason until the first probe answers, then up and retries the sink once", async () => {
    const { liveness, retries, gauge } = setup();
    expect(liveness.isUp()).toBe(false);
    expect(liveness.downReason()).toEqual({ error: NOT_CHECKED_YET, at: "2026-11-22T10:00:00.000Z" });
    expect(await gauge()).toBe(0);
    expect(liveness.up()).toBe(true);
    expect([liveness.isUp(), liveness.downReason(), retries(), await gauge()]).toEqual([true, null, 1, 1]);
    // Answering again while up is not news: the sink is left to its own back-off.
    expect(liveness.up()).toBe(false);
    expect(retries()).toBe(1);
  });

  it("says why it is down (the last probe or connection error) and retries the sink when it answers again", async () => {
    const { liveness, retries, later, gauge } = setup();
    liveness.up();
    later(5000);
    liveness.down("Kamailio closed the evapi connection: it stopped or restarted; waiting for it to come back");
    later(5000);
    liveness.down("Kamailio is unreachable over jsonrpcs (ENXIO)");
    expect(liveness.downReason()).toEqual({ error: "Kamailio is unreachable over jsonrpcs (ENXIO)", at: "2026-11-22T10:00:10.000Z" });
    expect(await gauge()).toBe(0);
    expect(liveness.up()).toBe(true);
    expect(retries()).toBe(2);
  });
});

describe("the error status shows for Kamailio", () => {
  const down = { error: "Kamailio closed the evapi connection: it stopped or restarted; waiting for it to come back", at: "2026-11-22T10:00:05.000Z" };
  const old = { lastError: "Kamailio is unreachable through jsonrpcs (timed out)", lastErrorAt: "2026-11-22T09:00:00.000Z" };

  const none = { aliasesWaiting: null };
  it("is why Kamailio is down while no write waits, even when the sink's last error is older or none", () => {
    expect(lastErrorOf({ state: "idle", lastError: null, lastErrorAt: null, ...none }, down)).toEqual({ lastError: down.error, lastErrorAt: down.at });
    expect(lastErrorOf({ state: "idle", ...old, ...none }, down)).toEqual({ lastError: down.error, lastErrorAt: down.at });
  });

  it("is the failed write's while writes wait, and the sink's while Kamailio is up", () => {
    expect(lastErrorOf({ state: "waiting", ...old, ...none }, down)).toEqual(old);
    expect(lastErrorOf({ state: "idle", ...old, ...none }, null)).toEqual(old);
  });

  it("says aliases wait for alias_db's database while Kamailio is up and no other write waits, and yields to both", () => {
    const aliasesWaiting = { count: 2, error: "alias_db's database is unreachable (connect ECONNREFUSED 127.0.0.1:5432)", at: Date.parse("2026-11-22T10:00:07.000Z") };
    expect(lastErrorOf({ state: "idle", ...old, aliasesWaiting }, null)).toEqual({
      lastError: "2 aliases wait for alias_db's database: alias_db's database is unreachable (connect ECONNREFUSED 127.0.0.1:5432)",
      lastErrorAt: "2026-11-22T10:00:07.000Z",
    });
    expect(lastErrorOf({ state: "idle", ...old, aliasesWaiting: { count: 1, error: null, at: null } }, null)).toEqual({
      lastError: "1 alias waits for alias_db's database: tried again shortly",
      lastErrorAt: old.lastErrorAt,
    });
    expect(lastErrorOf({ state: "idle", ...old, aliasesWaiting }, down)).toEqual({ lastError: down.error, lastErrorAt: down.at });
    expect(lastErrorOf({ state: "waiting", ...old, aliasesWaiting }, down)).toEqual(old);
  });
});
