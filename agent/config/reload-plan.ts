/**
 * What SIGHUP does with a re-read config (main.ts applies it): `mesh.peers`, within hub mode
 * `hub.urls` and `hub.failbackAfterSec`, the other Kamailio nodes' SIP source IPs
 * (kamailio/sip-peers.ts: `kamailio.sipPeers`, or mesh.peers' hosts), and the keys and tokens
 * (ops/key-ring.ts) take effect now, and mesh.tls's files are read again; every other changed setting waits for a restart, which the
 * operator is told rather than left to find out. No I/O here.
 */
import { sipPeersOf, type SipPeers } from "../kamailio/sip-peers.js";
import { AGENT_RELOADED_SETTINGS, settingsNeedingRestart, type AgentConfig } from "./agent-config.js";

export interface ReloadPlan {
  peers: AgentConfig["mesh"]["peers"];
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
  "SIGHUP: hub.urls now lists hubs, but putting this agent in hub mode needs a restart; it keeps replicating over mesh.peers alone until restarted";

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
    mesh: { ...running.mesh, peers: next.mesh.peers, tls: tls ?? running.mesh.tls },
    hub: { ...running.hub, urls: hubUrls ?? was, failbackAfterSec: hubFailbackAfterSec ?? running.hub.failbackAfterSec },
    kamailio,
  };
  return {
    peers: next.mesh.peers,
    hubUrls,
    hubUrlsRefused: switchesMode ? (now.length === 0 ? LEAVING_HUB_MODE : ENTERING_HUB_MODE) : null,
    hubFailbackAfterSec,
    tls,
    sipPeers: sipPeersOf(applied),
    restartNeeded: settingsNeedingRestart(running, next, reloaded),
    running: applied,
  };
}
