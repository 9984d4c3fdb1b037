import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import type { KamailioInstance } from "../../agent/kamailio/core-rpc.js";
import { FIRST_CONTACT, createInstanceWatch } from "../../agent/kamailio/instance-watch.js";
import { silentLogger } from "../../agent/ops/logger.js";
import { createMetrics } from "../../agent/ops/metrics.js";

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe("the Kamailio instance watch", () => {
  it("calls a reload at first contact by that name, and a restart after a redo a restart", async () => {
    const dir = mkdtempSync(join(tmpdir(), "locmesh-watch-"));
    dirs.push(dir);
    let now: KamailioInstance = { mainPid: 100, upSince: "Mon Nov 23 01:00:00 2026", uptimeSec: 5 };
    const metrics = createMetrics({ defaults: false });
    const watch = createInstanceWatch({ core: { instance: async () => now }, file: join(dir, "kamailio-instance.json"), unfinished: null, log: silentLogger(), metrics });
    await watch.observe();
    expect([watch.reloadNeeded(), watch.reloadReason(), watch.restarts()]).toEqual([true, FIRST_CONTACT, 0]);
    // No instance was ever whole: another one before the first reload finished is still a first contact.
    now = { mainPid: 150, upSince: "Mon Nov 23 01:02:00 2026", uptimeSec: 1 };
    await watch.observe();
    expect([watch.reloadReason(), watch.restarts()]).toEqual([FIRST_CONTACT, 0]);
    watch.reloaded();
    // A reload redone (the agent's last run left one unfinished), then a real restart.
    watch.redo("redo: the agent's last run left a reload unfinished");
    now = { mainPid: 200, upSince: "Mon Nov 23 01:05:00 2026", uptimeSec: 1 };
    await watch.observe();
    expect([watch.reloadNeeded(), watch.reloadReason(), watch.restarts()]).toEqual([true, "kamailio restarted", 1]);
  });
});
