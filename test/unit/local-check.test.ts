/**
 * Local changes pass the peers' check before they are journaled (agent/core/local-check.ts): one a
 * peer would refuse is not journaled, is logged with what to fix and counted, and the node's other
 * changes go in and still make batches every peer takes. The operator's dry run: a Kamailio with
 * usrloc use_domain 0 made the reconcile journal AoRs without @domain, and both peers refused
 * every batch of that node from then on.
 */
import { describe, expect, it } from "vitest";
import { recordProblem } from "../../agent/contract/change-check.js";
import { batchParams } from "../../agent/contract/protocol.js";
import { createHlc } from "../../agent/core/hlc.js";
import { nextBatch } from "../../agent/core/outbound.js";
import { createReplica } from "../../agent/core/replica.js";
import { openSqliteStore } from "../../agent/journal/sqlite-store.js";
import { createLogger } from "../../agent/ops/logger.js";
import { createMetrics } from "../../agent/ops/metrics.js";
import { aliasDraft, binding, locDraft } from "../support/fixtures.js";

function setup() {
  const lines: Record<string, unknown>[] = [];
  const log = createLogger({ level: "info", nodeId: "n1", destination: { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) } });
  const metrics = createMetrics({ defaults: false });
  metrics.exportAgentSeries(); // an agent: its refused-change counter is exported
  const store = openSqliteStore({ path: ":memory:", nodeId: "n1" });
  const replica = createReplica({ store, hlc: createHlc({ wallMillis: Date.now }), log, metrics });
  const refused = async (source: string) =>
    (await metrics.registry.getSingleMetricAsString("locmesh_changes_refused_total")).split("\n").find((l) => l.includes(`source="${source}"`));
  return { replica, store, lines, refused };
}

const good = locDraft("alice@example.com", "sip:alice@192.0.2.1", binding({ owner: "n1" }));
/** What the reconcile drafted from ul.dump for a Kamailio with use_domain 0. */
const domainless = locDraft("alice", "sip:alice@192.0.2.1", binding({ owner: "n1" }));

describe("recordProblem: what a peer would refuse, said as the peer says it", () => {
  it("names the field and the value", () => {
    expect(recordProblem(domainless)).toBe('key: AoR "alice" must look like user@domain (with or without sip:), without parameters');
    expect(recordProblem(locDraft("bob@example.com", "sip:bob@h", binding({ userAgent: "u".repeat(300) })))).toMatch(/^value\.userAgent: /);
    expect(recordProblem(aliasDraft("a@x", "not a uri"))).toMatch(/^value\.target: SIP URI "not a uri"/);
  });

  it("refuses a key a peer would store under another one (it normalises upper case and sip:)", () => {
    expect(recordProblem(locDraft("Alice@Example.com", "sip:a@h", binding()))).toBe(
      'key: AoR "Alice@Example.com" is not as usrloc keys it ("alice@example.com": lower case, without sip:)',
    );
  });

  it("takes what every peer takes, removals included", () => {
    expect(recordProblem(good)).toBeNull();
    expect(recordProblem({ ...good, value: null })).toBeNull();
    expect(recordProblem(aliasDraft("a@x", "sip:b@x"))).toBeNull();
  });
});

describe("replica.commit: local changes the peers would refuse", () => {
  it("are not journaled, while the others of the same commit are; logged with what to fix, and counted", async () => {
    const { replica, store, lines, refused } = setup();
    const [bad, ok] = await replica.commit([domainless, good], { source: "reconcile" });
    expect(bad).toBeNull();
    expect(ok?.key).toBe("alice@example.com");
    expect(await store.get("loc", "alice", "sip:alice@192.0.2.1")).toBeNull();
    expect((await replica.versionVector())[replica.replicaId]).toBe(1);
    expect(await refused("reconcile")).toMatch(/ 1$/);
    expect(await refused("event")).toMatch(/ 0$/);
    const line = lines.find((l) => l["level"] === "error");
    expect(line).toMatchObject({ source: "reconcile", key: "alice", sub: "sip:alice@192.0.2.1" });
    expect(String(line?.["msg"])).toContain('key: AoR "alice" must look like user@domain');
    expect(String(line?.["msg"])).toContain('modparam("usrloc", "use_domain", 1)');
    await replica.close();
  });

  it("leave the node's batches ones a peer takes whole", async () => {
    const { replica, store } = setup();
    await replica.commit([domainless], { source: "reconcile" });
    await replica.commit([aliasDraft("probe2@example.com", "sip:bob@example.com")]);
    const batch = await nextBatch(store, replica.replicaId, 0, 10, 100);
    expect(batch?.changes.map((c) => c.key)).toEqual(["probe2@example.com"]);
    expect(batchParams.safeParse(batch).success).toBe(true);
    await replica.close();
  });

  it("resolve to null alone when nothing of a commit is fit, and commitChecked leaves them out too", async () => {
    const { replica, refused } = setup();
    expect(await replica.commit([domainless, { ...domainless, sub: "sip:alice@192.0.2.2" }], { source: "event" })).toEqual([null, null]);
    const results = await replica.commitChecked(async () => [aliasDraft("Nick@x", "sip:b@x"), aliasDraft("nick@x", "sip:b@x")]);
    expect(results.map((c) => c?.key ?? null)).toEqual([null, "nick@x"]);
    expect(await refused("event")).toMatch(/ 2$/);
    expect(await refused("api")).toMatch(/ 1$/);
    await replica.close();
  });
});
