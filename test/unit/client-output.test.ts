import { describe, expect, it } from "vitest";
import { describeReload } from "../../agent/cli/client-output.js";
import type { KamailioStatus } from "../../agent/contract/protocol.js";

const base: KamailioStatus["reload"] = {
  state: "done", reason: "kamailio restarted", total: 100, done: 100, unchanged: 3, startedAt: "2026-11-22T10:00:00.000Z",
  finishedAt: "2026-11-22T10:00:03.000Z", rate: 33, channel: "evapi", error: null,
};

describe("describeReload", () => {
  it("says which way the reload went (the README's status section promises it)", () => {
    expect(describeReload(base)).toBe("done: 100 writes, 3 already right, 33/s over evapi, finished 2026-11-22T10:00:03.000Z");
    expect(describeReload({ ...base, state: "running", done: 40, channel: "jsonrpcs" })).toBe("running (kamailio restarted): 40 of 100 writes over jsonrpcs");
    expect(describeReload({ ...base, state: "failed", done: 40, error: "Kamailio is unreachable" })).toBe("failed after 40 of 100 writes: Kamailio is unreachable");
  });
});
