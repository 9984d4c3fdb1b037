/**
 * What SIGHUP does with a re-read config (main.ts applies it): `mesh.peers`, within hub mode
 * `hub.urls` and `hub.failbackAfterSec`, the other Kamailio nodes' SIP source IPs
 * (kamailio/sip-peers.ts: `kamailio.sipPeers`, or mesh.peers' hosts), and the keys and tokens
 * (ops/key-ring.ts) take effect now, and mesh.tls's files are read again; every other changed setting waits for a restart, which the
 * operator is told rather than left to find out. A peer list that would cut the node off until that
 * restart is held back, in part or whole (peersToApply). No I/O here.
 */
import { sipPeersOf, type SipPeers } from "../kamailio/sip-peers.js";
import { AGENT_RELOADED_SETTINGS, settingsNeedingRestart, type AgentConfig } from "./agent-config.js";

export interface ReloadPlan {
  /** The peer list to apply now: the config's, or the running one kept whole or in part (`peersHeld`). */
  peers: AgentConfig["mesh"]["peers"];
  /**
   * Why the config's mesh.peers is not applied as written, for an error in the log: the ids of the
   * running peers kept against it, and what to do. Null when it is applied as written.
   */
  peersHeld: { kept: string[]; message: string } | null;
  /** The hub list to apply now; null when it did not change or cannot change without a restart. */
  hubUrls: string[] | null;
  /** Why a changed `hub.urls` is not applied (it would switch the agent into or out of hub mode). */
  hubUrlsRefused: string | null;
  /** The nodes that may relay calls through this node's Kamailio, as the config now gives them. */
  sipPeers: SipPeers;
  /**
   * The hub.failbackAfterSec to apply now; null when it did not change, or when the agent is not in
   * hub mode or leaves it (then it waits for the restart with the rest, in `restartNeeded`).
   */
  hubFailbackAfterSec: number | null;
  /**
   * mesh.tls to read again now (a renewed certificate keeps its path: read on every SIGHUP); null
   * when TLS is off, or turned on or off (a restart: the peer port's server is HTTP or HTTPS).
   */
  tls: NonNullable<AgentConfig["mesh"]["tls"]> | null;
  /** Other changed settings (dotted paths, never values: secrets), applied at the next restart. */
  restartNeeded: string[];
  /** The config as it runs once the plan is applied: what the next SIGHUP compares with. */
  running: AgentConfig;
}

export const LEAVING_HUB_MODE =
  "SIGHUP: hub.urls is now empty, but taking this agent out of hub mode (to the mesh alone) needs a restart; it keeps dialing the hubs of its running hub.urls until restarted";
export const ENTERING_HUB_MODE =
  "SIGHUP: hub.urls now lists hubs, but putting this agent in hub mode needs a restart; until restarted it dials no hub and keeps replicating over mesh.peers alone " +
  "(a peer the same change drops from mesh.peers is kept until then). Restart the agent (systemctl restart) to move it to its hubs";

/** Why the peers a change drops are kept (peersToApply), by the part of the change that waits for a restart. */
const KEPT_BECAUSE = {
  acceptUnlisted: "mesh.acceptUnlisted was turned on in the same change: it takes effect only when the agent restarts, and until then this agent would close their sessions and refuse them as unknown nodes",
  hubMode: "hub.urls was set in the same change: hub mode takes effect only when the agent restarts, and until then this agent dials no hub, so without them it would replicate with nobody",
} as const;

/**
 * mesh.tls's files as a SIGHUP reads them again: on every one while TLS stays on (a renewed
 * certificate keeps its path); null when TLS is off, or turned on or off (a restart). Agents and hubs.
 */
export function tlsToReread<T extends { cert: string; key: string }>(running: { mesh: { tls: T | null } }, next: { mesh: { tls: T | null } }): T | null {
  return running.mesh.tls !== null && next.mesh.tls !== null ? next.mesh.tls : null;
}

export function planReload(running: AgentConfig, next: AgentConfig): ReloadPlan {
  const was = running.hub.urls;
  const now = next.hub.urls;
  const changed = JSON.stringify(was) !== JSON.stringify(now);
  // Hub mode decides what the agent's mesh is (a hub dialer, its peer port, its status rows):
  // switching it is a restart, not a reload.
  const switchesMode = changed && (was.length === 0) !== (now.length === 0);
  const hubUrls = changed && !switchesMode ? [...now] : null;
  const { peers, held: peersHeld } = peersToApply(running, next, switchesMode && now.length > 0);
  // The hub dialer's failback policy is replaced (dialer.ts renewFailback): only an agent that
  // dials hubs and goes on doing so has one.
  const staysOnHubs = was.length > 0 && now.length > 0;
  const failback = next.hub.failbackAfterSec;
  const hubFailbackAfterSec = staysOnHubs && failback !== running.hub.failbackAfterSec ? failback : null;
  const tls = tlsToReread(running, next);
  const reloaded = [...AGENT_RELOADED_SETTINGS, ...(staysOnHubs ? ["hub.failbackAfterSec"] : []), ...(tls ? ["mesh.tls"] : [])];
  const kamailio = running.kamailio && next.kamailio ? { ...running.kamailio, sipPeers: next.kamailio.sipPeers } : running.kamailio;
  const applied: AgentConfig = {
    ...running,
    mesh: { ...running.mesh, peers, tls: tls ?? running.mesh.tls },
    hub: { ...running.hub, urls: hubUrls ?? was, failbackAfterSec: hubFailbackAfterSec ?? running.hub.failbackAfterSec },
    kamailio,
  };
  return {
    peers,
    peersHeld,
    hubUrls,
    hubUrlsRefused: switchesMode ? (now.length === 0 ? LEAVING_HUB_MODE : ENTERING_HUB_MODE) : null,
    hubFailbackAfterSec,
    tls,
    sipPeers: sipPeersOf(applied),
    restartNeeded: settingsNeedingRestart(running, next, reloaded),
    running: applied,
  };
}

/**
 * The peer list a SIGHUP applies. It is checked against the running nodeId, not the config's: a
 * changed nodeId waits for a restart (the loader checked the list against the new one, cross-field.ts),
 * and a list naming the running node would have it dial itself in place of a real peer (another
 * node's config, most likely): refused whole. A change that also holds a part the shorter list
 * counts on but that waits for a restart (mesh.acceptUnlisted turned on, hub mode entered) keeps the
 * peers it drops until that restart, as a hub keeps its agents (hub/main.ts): applied alone, the
 * shorter list would cut this node off from them. The peers it adds, or gives a new URL, apply.
 */
function peersToApply(running: AgentConfig, next: AgentConfig, entersHubMode: boolean): { peers: AgentConfig["mesh"]["peers"]; held: ReloadPlan["peersHeld"] } {
  const self = next.mesh.peers.find((p) => p.id === running.nodeId);
  if (self) {
    return {
      peers: running.mesh.peers,
      held: {
        kept: running.mesh.peers.map((p) => p.id),
        message:
          `SIGHUP: not applying mesh.peers: it lists ${self.id}, the id this agent runs as (the config's nodeId ${next.nodeId} takes effect only when the agent restarts), ` +
          "and a node does not peer with itself; the running mesh.peers stay. If the file is another node's config, put this node's back and send SIGHUP again; to rename this node, restart it",
      },
    };
  }
  const nextIds = new Set(next.mesh.peers.map((p) => p.id));
  const dropped = running.mesh.peers.filter((p) => !nextIds.has(p.id));
  const reasons = [
    ...(next.mesh.acceptUnlisted && !running.mesh.acceptUnlisted ? [KEPT_BECAUSE.acceptUnlisted] : []),
    ...(entersHubMode ? [KEPT_BECAUSE.hubMode] : []),
  ];
  if (dropped.length === 0 || reasons.length === 0) return { peers: next.mesh.peers, held: null };
  return {
    peers: [...next.mesh.peers, ...dropped],
    held: {
      kept: dropped.map((p) => p.id),
      message:
        `SIGHUP: keeping the peers this change drops from mesh.peers, because ${reasons.join("; and because ")}. ` +
        "Peers the change adds are dialed. Restart the agent (systemctl restart) to apply the whole change",
    },
  };
}
