/** What `locmesh hub forget` prints (hub/forget-agents.ts describeForget): one line per agent, with what to do. */
import { describe, expect, it } from "vitest";
import { describeForget } from "../../hub/forget-agents.js";

describe("describeForget", () => {
  it("says an agent that reads as connected may have just stopped, and when to try again", () => {
    const text = describeForget({ forgotten: ["a4"], listed: [], connected: [{ nodeId: "a3", hubNode: "hub2" }], unknown: ["a9"], staleSec: 3 });
    expect(text.split("\n")).toEqual([
      "forgot a4: no hub reports it any more",
      "a3 is connected to hub hub2 now (recorded within the last 3 s): stop it (or take it out of service) first, then forget it; if it has just stopped, run this again in 3 s",
      "a9: no hub has recorded it; nothing to forget",
    ]);
  });
});
