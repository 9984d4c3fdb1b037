import { describe, expect, it } from "vitest";
import { resyncSource, type ResyncCandidates } from "../../agent/mesh/resync-source.js";

const meshNode: ResyncCandidates = { ready: [{ nodeId: "n2", isHub: false }], peers: ["n2", "n3"], hubs: [], hubMode: false };
const hubAgent: ResyncCandidates = { ready: [{ nodeId: "hub1", isHub: true }], peers: [], hubs: ["hub1"], hubMode: true };
const refusal = (peerId: string | undefined, c: ResyncCandidates) => {
  try {
    return `picked ${resyncSource(peerId, c)}`;
  } catch (err) {
    return (err as Error).message;
  }
};

describe("which peer a resync pulls from (locmesh resync [--peer id])", () => {
  it("on a mesh node: the named peer when connected; one not connected says so; an id that is no peer names its peers", () => {
    expect(resyncSource(undefined, meshNode)).toBe("n2");
    expect(resyncSource("n2", meshNode)).toBe("n2");
    expect(refusal("n3", meshNode)).toBe("peer n3 is not connected: locmesh status says why its link is down; resync once it is");
    expect(refusal("n9", meshNode)).toBe("n9 is not a peer of this node (its peers: n2, n3)");
    expect(refusal(undefined, { ...meshNode, ready: [] })).toBe("no peer is connected: locmesh status says why each link is down; resync once one is");
    expect(refusal("n9", { ready: [], peers: [], hubs: [], hubMode: false })).toBe("n9 is not a peer of this node (its peers: none)");
  });

  it("on an agent in hub mode: another agent is no peer (agents never connect to each other), and the message says to resync from the hub", () => {
    expect(refusal("sip3", hubAgent)).toBe(
      "sip3 is not a peer of this node (its peers: hub hub1): in hub mode agents replicate through their hub and never connect to each other. " +
        "Resync from the hub: locmesh resync without --peer, or with --peer hub1",
    );
    expect(refusal("sip3", { ...hubAgent, ready: [] })).toBe(
      "sip3 is not a peer of this node (its peers: hub hub1): in hub mode agents replicate through their hub and never connect to each other. " +
        "Resync from the hub: locmesh resync without --peer once a hub is connected (none is now)",
    );
    expect(resyncSource(undefined, hubAgent)).toBe("hub1");
    expect(resyncSource("hub1", hubAgent)).toBe("hub1");
    // The hub row reads "hub" while no hub is connected; named so, it means whichever hub is.
    expect(resyncSource("hub", hubAgent)).toBe("hub1");
    expect(refusal("hub1", { ...hubAgent, ready: [] })).toBe("hub hub1 is not connected now: locmesh status says why the hub link is down; resync once a hub is (without --peer: from whichever hub it is on)");
    expect(refusal(undefined, { ...hubAgent, ready: [] })).toBe("no hub is connected now (nor a peer): locmesh status says why the hub link is down; resync once one is");
  });

  it("on an agent in hub mode with mesh.peers of its own: the hub without --peer, a listed peer by name", () => {
    const both: ResyncCandidates = { ready: [{ nodeId: "sip2", isHub: false }, { nodeId: "hub2", isHub: true }], peers: ["sip2", "sip5"], hubs: ["hub1", "hub2"], hubMode: true };
    expect(resyncSource(undefined, both)).toBe("hub2");
    expect(resyncSource("sip2", both)).toBe("sip2");
    expect(refusal("sip5", both)).toBe("peer sip5 is not connected: locmesh status says why its link is down; resync once it is");
    expect(refusal("hub1", both)).toBe("hub hub1 is not connected: this node is on hub hub2; resync from it: locmesh resync without --peer, or with --peer hub2");
    expect(refusal("hub", { ...both, ready: [] })).toBe("no hub is connected now: locmesh status says why the hub link is down; resync once a hub is (without --peer: from whichever hub it is on)");
    expect(refusal("sip3", both)).toMatch(/^sip3 is not a peer of this node \(its peers: hub hub1, hub hub2, sip2, sip5\): in hub mode /);
  });
});
