/**
 * Which peer `cluster.resync` (`locmesh resync [--peer id]`) pulls from, or why none, said so that
 * the operator knows what to type next. Found by an operator's dry run: on an agent in hub mode
 * `--peer sip3` (another agent) said "peer sip3 is not connected", as if it might connect, and an
 * id that is no peer at all said the same. In hub mode an agent replicates through its hub and
 * never connects to another agent (only to its own mesh.peers, if it has any): it resyncs from the
 * hub. Pure, so every case is tested without sockets.
 */
import { HUB } from "./mesh-reload.js";

export interface ResyncCandidates {
  /** Ready sessions, in the order the mesh holds them. */
  ready: readonly { nodeId: string; isHub: boolean }[];
  /** This node's peers that are not hubs: mesh.peers, a hub's agents, and whoever has a session now. */
  peers: readonly string[];
  /** The hubs this node has had a session with since it started (an agent in hub mode). */
  hubs: readonly string[];
  /** An agent in hub mode (hub.urls). */
  hubMode: boolean;
}

/** The node id to resync from; throws an Error that says why none and what to do. */
export function resyncSource(peerId: string | undefined, c: ResyncCandidates): string {
  const hub = c.ready.find((s) => s.isHub);
  // In hub mode the hub is the source unless a peer is named: it holds every agent's changes. "hub"
  // (the hub row's name in locmesh status while none is connected) means whichever hub is.
  const anyHub = c.hubMode && (peerId === undefined || peerId === HUB);
  if (anyHub && hub) return hub.nodeId;
  if (peerId === undefined) {
    const first = c.ready[0];
    if (first) return first.nodeId;
    throw new Error(c.hubMode
      ? "no hub is connected now (nor a peer): locmesh status says why the hub link is down; resync once one is"
      : "no peer is connected: locmesh status says why each link is down; resync once one is");
  }
  if (c.ready.some((s) => s.nodeId === peerId)) return peerId;
  if (c.hubMode && (anyHub || c.hubs.includes(peerId))) {
    throw new Error(hub === undefined
      ? `${peerId === HUB ? "no hub is" : `hub ${peerId} is not`} connected now: locmesh status says why the hub link is down; resync once a hub is (without --peer: from whichever hub it is on)`
      : `hub ${peerId} is not connected: this node is on hub ${hub.nodeId}; resync from it: locmesh resync without --peer, or with --peer ${hub.nodeId}`);
  }
  if (c.peers.includes(peerId)) throw new Error(`peer ${peerId} is not connected: locmesh status says why its link is down; resync once it is`);
  const known = [...(c.hubMode ? c.hubs.map((h) => `hub ${h}`) : []), ...c.peers];
  const its = `its peers: ${known.length > 0 ? known.join(", ") : "none"}`;
  if (!c.hubMode) throw new Error(`${peerId} is not a peer of this node (${its})`);
  return hubModeRefusal(peerId, its, hub?.nodeId);
}

/** An id that is no peer of an agent in hub mode: most likely another agent, which it never connects to. */
function hubModeRefusal(peerId: string, its: string, hub: string | undefined): never {
  const how = hub === undefined
    ? "locmesh resync without --peer once a hub is connected (none is now)"
    : `locmesh resync without --peer, or with --peer ${hub}`;
  throw new Error(
    `${peerId} is not a peer of this node (${its}): in hub mode agents replicate through their hub and never connect to each other. ` +
      `Resync from the hub: ${how}`,
  );
}
