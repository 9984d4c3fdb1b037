/** Which hub each agent is on, as a hub's link gauges and cluster status show it. */
import { describe, expect, it } from "vitest";
import type { PeerStatus } from "../../agent/contract/cluster-status.js";
import { clusterPeers, hubLinkGauges, type AgentRow } from "../../hub/agent-placement.js";

const row = (nodeId: string, hubNode: string, fresh: boolean, seenAt = "2026-11-22T10:00:00.000Z"): AgentRow => ({
  nodeId, replicaId: `${nodeId}~1`, hubNode, behindChanges: 0, behindSeconds: 0, pendingWrites: 0, fresh, seenAt,
});
const down = (nodeId: string): PeerStatus => ({
  nodeId, url: null, direction: null, connected: false, replicaId: null, behindChanges: null, behindSeconds: null,
  lastError: null, connectedSince: null, pendingWrites: null,
});
const listed = { hubNode: "hub1", includeRecorded: false };
const unlisted = { hubNode: "hub1", includeRecorded: true };
const up = (nodeId: string): PeerStatus => ({ ...down(nodeId), direction: "inbound", connected: true, replicaId: `${nodeId}~1`, behindChanges: 0, behindSeconds: 0 });

describe("a hub's link gauges with two hubs on one database", () => {
  // hub1 lists a1..a4: a1 is on hub1, a2 on hub2, a3 was on hub2 and is on no hub now, a4 never came.
  const local = [
    { peer: "a1", connected: true, behindChanges: 0 },
    { peer: "a2", connected: false, behindChanges: null },
    { peer: "a3", connected: false, behindChanges: null },
    { peer: "a4", connected: false, behindChanges: null },
  ];
  const rows = [row("a1", "hub1", true), row("a2", "hub2", true), row("a3", "hub2", false)];

  it("has 1 for agents on this hub, no series for agents on the other hub, 0 for agents on no hub", () => {
    expect(hubLinkGauges(local, rows, listed).map((g) => [g.peer, g.connected])).toEqual([["a1", true], ["a3", false], ["a4", false]]);
  });

  it("reads an agent that just left this hub as down until another hub records it", () => {
    expect(hubLinkGauges([{ peer: "a1", connected: false, behindChanges: null }], [row("a1", "hub1", true)], listed)).toEqual([{ peer: "a1", connected: false, behindChanges: null }]);
  });

  it("shows an agent on the other hub as connected there, and one on no hub as disconnected", () => {
    const peers = clusterPeers([up("a1"), down("a2"), down("a3"), down("a4")], rows, listed);
    expect(peers.map((p) => [p.nodeId, p.connected, p.url])).toEqual([["a1", true, null], ["a2", true, "via hub hub2"], ["a3", false, null], ["a4", false, null]]);
  });
});

describe("a hub that cannot read the rows now (its PostgreSQL does not answer)", () => {
  // Rows read at 10:05:00, before PostgreSQL stopped answering: a2 was on hub2 then.
  const rows = [row("a1", "hub1", true), row("a2", "hub2", true), row("a3", "hub2", false)];
  const asOf = "2026-11-22T10:05:00.000Z";

  it("shows every agent not on this hub as unknown as of the last read, not as connected on another hub or down", () => {
    const peers = clusterPeers([up("a1"), down("a2"), down("a3"), down("a4")], rows, listed, asOf);
    expect(peers.map((p) => [p.nodeId, p.connected, p.hub, p.asOf, p.behindChanges])).toEqual([
      ["a1", true, "hub1", undefined, 0], ["a2", null, "hub2", asOf, null], ["a3", null, null, asOf, null], ["a4", null, null, asOf, null],
    ]);
  });

  it("shows an agent this hub has just released (its row still says this hub) on this hub as of the last read, not on none", () => {
    const peers = clusterPeers([down("a1")], [row("a1", "hub1", true)], listed, asOf);
    expect(peers.map((p) => [p.nodeId, p.connected, p.hub, p.asOf])).toEqual([["a1", null, "hub1", asOf]]);
  });

  it("keeps the gauges as the rows say: no series for an agent last on another hub, so no false 'link down' for it", () => {
    const local = [{ peer: "a1", connected: false, behindChanges: null }, { peer: "a2", connected: false, behindChanges: null }];
    expect(hubLinkGauges(local, rows, listed).map((g) => [g.peer, g.connected])).toEqual([["a1", false]]);
  });
});

describe("a hub with mesh.acceptUnlisted", () => {
  // Only a1's session is live here; a2 is on hub2, a3 was recorded once and is on no hub now.
  const rows = [row("a1", "hub1", true), row("a2", "hub2", true), row("a3", "hub2", false)];

  it("keeps a 0 for every agent a hub recorded that is on no hub now, until it is forgotten", () => {
    const local = [{ peer: "a1", connected: true, behindChanges: 0 }];
    expect(hubLinkGauges(local, rows, unlisted).map((g) => [g.peer, g.connected])).toEqual([["a1", true], ["a3", false]]);
    expect(hubLinkGauges(local, rows.slice(0, 2), unlisted).map((g) => g.peer)).toEqual(["a1"]);
  });

  it("lists those agents as disconnected in its status", () => {
    expect(clusterPeers([up("a1")], rows, unlisted).map((p) => [p.nodeId, p.connected])).toEqual([["a1", true], ["a2", true], ["a3", false]]);
  });
});

describe("when an agent on no hub was last up", () => {
  it("is the later of this hub's own session closing and the last time any hub recorded it", () => {
    const rows = [row("a1", "hub2", false, "2026-11-22T10:00:00.000Z"), row("a2", "hub1", false, "2026-11-22T10:00:00.000Z"), row("a3", "hub2", true)];
    const a2 = { ...down("a2"), lastSeen: "2026-11-22T10:00:07.500Z" }; // its session here closed after the last row
    const peers = clusterPeers([down("a1"), a2, down("a3"), down("a4")], rows, listed);
    expect(peers.map((p) => [p.nodeId, p.connected, p.lastSeen])).toEqual([
      ["a1", false, "2026-11-22T10:00:00.000Z"], // only hub2 ever had it
      ["a2", false, "2026-11-22T10:00:07.500Z"],
      ["a3", true, undefined], // on hub2 now
      ["a4", false, undefined], // never seen
    ]);
    // An older local close than the row: the row's time.
    const older = clusterPeers([{ ...down("a1"), lastSeen: "2026-11-22T09:00:00.000Z" }], rows.slice(0, 1), listed);
    expect(older[0]!.lastSeen).toBe("2026-11-22T10:00:00.000Z");
  });

  it("is given for recorded agents too (mesh.acceptUnlisted)", () => {
    expect(clusterPeers([], [row("a5", "hub2", false, "2026-11-22T08:00:00.000Z")], unlisted)[0]).toMatchObject({ nodeId: "a5", connected: false, lastSeen: "2026-11-22T08:00:00.000Z" });
  });
});
