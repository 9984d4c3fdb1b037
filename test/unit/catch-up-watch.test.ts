import { afterEach, describe, expect, it } from "vitest";
import { createHlc } from "../../agent/core/hlc.js";
import { createReplica, type Replica } from "../../agent/core/replica.js";
import { openSqliteStore } from "../../agent/journal/sqlite-store.js";
import { createCatchUpWatch } from "../../agent/mesh/catch-up-watch.js";
import { silentLogger } from "../../agent/ops/logger.js";
import { REPLICA_A, REPLICA_B, aliasDraft, batchOf, remoteChange } from "../support/fixtures.js";

const replicas: Replica[] = [];
afterEach(async () => {
  for (const r of replicas.splice(0)) await r.close();
});

function setup() {
  const store = openSqliteStore({ path: ":memory:", nodeId: "n1" });
  const replica = createReplica({ store, hlc: createHlc({ wallMillis: () => 1_700_000_000_000 }), log: silentLogger() });
  replicas.push(replica);
  const caughtUp: string[] = [];
  const watch = createCatchUpWatch({ replica, onCaughtUp: (p) => caughtUp.push(p), onError: (e) => { throw e; } });
  return { replica, watch, caughtUp };
}

const settle = () => new Promise((r) => setTimeout(r, 10));

describe("createCatchUpWatch", () => {
  it("tells once, when the journal holds every origin the peer held at the session's start but this node's own", async () => {
    const { replica, watch, caughtUp } = setup();
    watch.peerReady("n2", { [REPLICA_A]: 2, [REPLICA_B]: 1, [replica.replicaId]: 9 });
    await settle();
    expect(caughtUp).toEqual([]);
    await replica.apply(batchOf(REPLICA_A, 0, 2, [remoteChange(REPLICA_A, 1, 5, aliasDraft("a@x", "sip:a@x")), remoteChange(REPLICA_A, 2, 6, aliasDraft("b@x", "sip:b@x"))]), "n2");
    await settle();
    expect(caughtUp).toEqual([]); // REPLICA_B still missing
    await replica.apply(batchOf(REPLICA_B, 0, 1, [remoteChange(REPLICA_B, 1, 7, aliasDraft("c@x", "sip:c@x"))]), "n2");
    await settle();
    expect(caughtUp).toEqual(["n2"]);
    await replica.apply(batchOf(REPLICA_B, 1, 2, [remoteChange(REPLICA_B, 2, 8, aliasDraft("d@x", "sip:d@x"))]), "n2");
    watch.peerReady("n3", {});
    await settle();
    expect(caughtUp).toEqual(["n2"]);
  });

  it("is caught up at once with an empty peer, and forgets a peer that went", async () => {
    const { watch, caughtUp } = setup();
    watch.peerReady("n2", { [REPLICA_A]: 1 });
    watch.peerGone("n2");
    await settle();
    expect(caughtUp).toEqual([]);
    watch.peerReady("n3", {});
    await settle();
    expect(caughtUp).toEqual(["n3"]);
  });
});
