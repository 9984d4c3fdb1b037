/**
 * What the purge may drop of this node's own removals (mesh-status.ts purgeFloor, for this node's origin): only what
 * every peer, or the hub, has said it holds. Before, an agent purged its own tombstones by age
 * alone, so a removal made during an outage longer than journal.retentionHours never reached the
 * cluster: the record stayed live everywhere else, and removing it again changed nothing.
 */
import { describe, expect, it } from "vitest";
import type { Replica } from "../../agent/core/replica.js";
import type { Dialer } from "../../agent/mesh/dialer.js";
import { createMeshStatus } from "../../agent/mesh/mesh-status.js";
import type { PeerSession } from "../../agent/mesh/peer-session.js";

const OWN = "n1~000000000001";

const OTHER = "n5~000000000005";

function session(held: number | undefined, ready = true, peerIsHub = false, other?: number): PeerSession {
  const vector = { ...(held === undefined ? {} : { [OWN]: held }), ...(other === undefined ? {} : { [OTHER]: other }) };
  return { isReady: () => ready, peerVector: () => vector, peerIsHub } as unknown as PeerSession;
}

function status(o: {
  peers?: string[];
  sessions?: [string, PeerSession][];
  peerHeld?: [string, number, number?][];
  hubMode?: boolean;
  hubHeld?: number | null;
  /** This node's own vector (what the purge floor lists). */
  mine?: Record<string, number>;
}) {
  const sessions = new Map(o.sessions ?? []);
  return createMeshStatus({
    replica: { replicaId: OWN, versionVector: async () => o.mine ?? { [OWN]: 100 } } as unknown as Replica,
    lists: { peers: (o.peers ?? []).map((id) => ({ id, url: `ws://${id}` })), allowed: [] },
    hubMode: o.hubMode ?? false,
    sessions,
    readyAt: new Map(),
    closedAt: new Map(),
    dialers: new Map<string, Dialer>(),
    hubSession: () => [...sessions.values()].find((s) => s.peerIsHub && s.isReady()),
    hubAcknowledged: { held: () => o.hubHeld ?? null },
    peerHeld: new Map((o.peerHeld ?? []).map(([id, own, other]) => [id, { [OWN]: own, ...(other === undefined ? {} : { [OTHER]: other }) }])),
  });
}

/** What the purge may drop of this node's own changes (its floor for this node's origin). */
const own = async (s: ReturnType<typeof status>): Promise<number | null> => {
  const floor = await s.purgeFloor();
  return floor === null ? null : (floor[OWN] ?? 0);
};

describe("this node's own changes every peer holds (what the purge may drop of its removals)", () => {
  it("is the least any configured peer holds, from live sessions and from what a peer said before it went away", async () => {
    const s = status({ peers: ["n2", "n3"], sessions: [["n2", session(40)]], peerHeld: [["n3", 25], ["n2", 10]] });
    expect(await own(s)).toBe(25); // n2 live at 40 (not its older 10), n3 away at 25
  });

  it("is unknown while a configured peer has not said since this agent started", async () => {
    expect(await own(status({ peers: ["n2", "n3"], sessions: [["n2", session(40)]] }))).toBeNull();
    // A session that is not ready yet has said nothing either.
    expect(await own(status({ peers: ["n2"], sessions: [["n2", session(40, false)]] }))).toBeNull();
  });

  it("counts a peer connected now that is not configured, and a peer holding none of ours as 0", async () => {
    expect(await own(status({ peers: ["n2"], sessions: [["n2", session(40)], ["n9", session(undefined)]] }))).toBe(0);
  });

  it("counts a peer seen this run that is neither configured nor connected now (admitted by mesh.acceptUnlisted)", async () => {
    expect(await own(status({ peers: ["n2"], sessions: [["n2", session(40)]], peerHeld: [["n9", 12]] }))).toBe(12);
  });

  it("waits for nobody on a node without peers", async () => {
    expect(await own(status({}))).toBe(Number.MAX_SAFE_INTEGER);
  });

  it("in hub mode is what the hub holds: the live session's, else the figure kept in the journal, else unknown", async () => {
    expect(await own(status({ hubMode: true, sessions: [["hub1", session(70, true, true)]], hubHeld: 50 }))).toBe(70);
    expect(await own(status({ hubMode: true, hubHeld: 50 }))).toBe(50);
    expect(await own(status({ hubMode: true }))).toBeNull();
  });
});

describe("what every peer holds of each origin (what the purge may drop of anyone's removals and expired versions)", () => {
  const mine = { [OWN]: 100, [OTHER]: 50 };

  it("is, per origin this node holds, the least any peer it knows holds, live or as last said this run", async () => {
    const s = status({ peers: ["n2", "n3"], sessions: [["n2", session(40, true, false, 30)]], peerHeld: [["n3", 25, 45]], mine });
    expect(await s.purgeFloor()).toEqual({ [OWN]: 25, [OTHER]: 30 });
    // A peer that holds none of an origin holds 0 of it: nothing of that origin goes.
    expect(await status({ peers: ["n2"], sessions: [["n2", session(40)]], mine }).purgeFloor()).toEqual({ [OWN]: 40, [OTHER]: 0 });
  });

  it("is unknown while a peer has not said since this agent started", async () => {
    expect(await status({ peers: ["n2", "n3"], sessions: [["n2", session(40, true, false, 30)]], mine }).purgeFloor()).toBeNull();
  });

  it("waits for nobody on a node without peers", async () => {
    expect(await status({ mine }).purgeFloor()).toEqual({ [OWN]: Number.MAX_SAFE_INTEGER, [OTHER]: Number.MAX_SAFE_INTEGER });
  });

  it("in hub mode is what the hub holds; with no hub connected, only this node's own by the figure kept, else unknown", async () => {
    expect(await status({ hubMode: true, sessions: [["hub1", session(70, true, true, 20)]], hubHeld: 50, mine }).purgeFloor()).toEqual({ [OWN]: 70, [OTHER]: 20 });
    expect(await status({ hubMode: true, hubHeld: 50, mine }).purgeFloor()).toEqual({ [OWN]: 50 });
    expect(await status({ hubMode: true, mine }).purgeFloor()).toBeNull();
  });

  it("in hub mode with mesh peers too (a move between the two), the least of the hub and every peer (found by review: the peers were left out)", async () => {
    const hub = session(70, true, true, 20);
    // n2 holds less than the hub of this node's own, more of the other origin.
    expect(await status({ hubMode: true, peers: ["n2"], sessions: [["hub1", hub], ["n2", session(40, true, false, 30)]], mine }).purgeFloor())
      .toEqual({ [OWN]: 40, [OTHER]: 20 });
    // A peer away, as last said this run; one not heard from this run keeps everything.
    expect(await status({ hubMode: true, peers: ["n2"], sessions: [["hub1", hub]], peerHeld: [["n2", 10, 5]], mine }).purgeFloor())
      .toEqual({ [OWN]: 10, [OTHER]: 5 });
    expect(await status({ hubMode: true, peers: ["n2"], sessions: [["hub1", hub]], mine }).purgeFloor()).toBeNull();
    // No hub session: the hub's floor covers this node's own only, so the others' rows are kept.
    expect(await status({ hubMode: true, peers: ["n2"], peerHeld: [["n2", 60, 45]], hubHeld: 50, mine }).purgeFloor())
      .toEqual({ [OWN]: 50, [OTHER]: 0 });
  });
});
