/**
 * Peers that refuse this node's batches for good (agent/mesh/batch-refusals.ts): kept with the change
 * they named until they take a batch of that origin again, logged when new and then at most every
 * ten minutes, and said at the top of `locmesh status` with what to do.
 */
import { describe, expect, it } from "vitest";
import { describeBatchesRefused } from "../../agent/cli/client-output.js";
import { createBatchRefusals, namedChange } from "../../agent/mesh/batch-refusals.js";
import { aliasDraft, binding, locDraft, remoteChange } from "../support/fixtures.js";

const ORIGIN = "n1~0123456789ab";
const batch = [
  remoteChange(ORIGIN, 7, 1000, aliasDraft("probe1@example.com", "sip:bob@example.com")),
  remoteChange(ORIGIN, 8, 1001, locDraft("alice", "sip:alice@192.0.2.1", binding())),
];
const REASON = 'invalid params: changes.1.key: AoR "alice" must look like user@domain (with or without sip:), without parameters';

function setup() {
  let now = Date.parse("2026-11-23T02:00:00Z");
  const logged: string[] = [];
  const log = { error: (_o: unknown, msg: string) => void logged.push(`error ${msg}`), info: (_o: unknown, msg: string) => void logged.push(`info ${msg}`) };
  const refusals = createBatchRefusals({ log: log as never, nowMs: () => now });
  return { refusals, logged, later: (ms: number) => (now += ms) };
}

describe("batch refusals", () => {
  it("names the change the peer named, by its index in the batch", () => {
    expect(namedChange(REASON, batch)).toEqual({ seq: 8, kind: "loc", key: "alice", sub: "sip:alice@192.0.2.1" });
    expect(namedChange("invalid params: changes.9.key: …", batch)).toBeNull();
    expect(namedChange("batch out of order", batch)).toBeNull();
  });

  it("keeps a refusal until the peer takes that origin's changes again, and logs it when new and every ten minutes", () => {
    const { refusals, logged, later } = setup();
    refusals.refused("n2", ORIGIN, REASON, batch);
    later(1000);
    refusals.refused("n2", ORIGIN, REASON, batch);
    expect(logged).toHaveLength(1);
    expect(logged[0]).toMatch(/^error n2 refuses a batch of n1~0123456789ab's changes: every later change of it waits behind the refused one .*What to do: the journal holds a change the peers refuse/);
    expect(refusals.list()).toEqual([{ peer: "n2", origin: ORIGIN, at: "2026-11-23T02:00:01.000Z", reason: REASON, change: { seq: 8, kind: "loc", key: "alice", sub: "sip:alice@192.0.2.1" } }]);
    later(10 * 60 * 1000);
    refusals.refused("n2", ORIGIN, REASON, batch);
    expect(logged).toHaveLength(2);
    refusals.acknowledged("n3", ORIGIN);
    refusals.acknowledged("n2", "n9~0123456789ab");
    expect(refusals.list()).toHaveLength(1);
    refusals.acknowledged("n2", ORIGIN);
    expect(refusals.list()).toEqual([]);
    expect(logged.at(-1)).toBe("info n2 takes n1~0123456789ab's changes again");
  });

  it("says at the top of locmesh status who refuses which change, what that holds back, and the fix", () => {
    const { refusals } = setup();
    refusals.refused("n2", ORIGIN, REASON, batch);
    expect(describeBatchesRefused(refusals.list())).toMatch(
      new RegExp(
        "^PEERS REFUSE THIS NODE'S CHANGES: n2 refuses n1~0123456789ab's changes since 2026-11-23T02:00:00.000Z: invalid params: changes.1.key: " +
          'AoR "alice" must look like user@domain \\(with or without sip:\\), without parameters \\(the change: n1~0123456789ab #8, loc "alice" ' +
          "sip:alice@192.0.2.1\\)\\. Every later change of that origin waits behind the refused one and reaches no node \\(an alias set here too\\), " +
          "tried again every minute\\. To repair it: the journal holds a change the peers refuse, .*move dataDir/journal.sqlite\\* aside",
      ),
    );
    const other = createBatchRefusals({ log: { error: () => undefined, info: () => undefined } as never });
    other.refused("n2", ORIGIN, "batch out of order", batch);
    expect(describeBatchesRefused(other.list())).toMatch(/tried again every minute\. The refusing node's log says why\.$/);
  });
});
