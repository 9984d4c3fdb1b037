/**
 * Which SIP source IPs may relay calls through this node's Kamailio to its phones (the include's
 * route(LOCMESH_INBOUND)), as the agent config says: `kamailio.sipPeers`, else the hosts of
 * `mesh.peers` when they are IP addresses. `locmesh kamailio-cfg` writes the list into the include,
 * and the agent keeps it current in the running Kamailio (sip-peer-list.ts). No I/O here.
 */
import { isIP } from "node:net";
import type { AgentConfig } from "../config/agent-config.js";

export type SipPeers =
  | { peers: string[]; from: "kamailio.sipPeers" | "mesh.peers" }
  /** The config does not say: `why`, and what to set. */
  | { peers: null; why: string };

export const SIP_PEERS_HINT = "set kamailio.sipPeers to the other nodes' Kamailio SIP source IPs";

export function sipPeersOf(c: Pick<AgentConfig, "mesh" | "hub" | "kamailio">): SipPeers {
  if (c.kamailio?.sipPeers) return { peers: canonicalSipPeers(c.kamailio.sipPeers), from: "kamailio.sipPeers" };
  // Through a hub, nodes the config does not name send changes too (and their phones' calls).
  if (c.hub.urls.length > 0) {
    return { peers: null, why: `the agent config uses a hub, through which nodes it does not name take part; ${SIP_PEERS_HINT}` };
  }
  const hosts = c.mesh.peers.map((p) => ({ id: p.id, host: new URL(p.url).hostname.replace(/^\[|\]$/g, "") }));
  const named = hosts.filter((h) => isIP(h.host) === 0);
  if (named.length > 0) {
    const which = named.map((h) => `${h.id} (${h.host})`).join(", ");
    return { peers: null, why: `mesh.peers ${which}: not an IP address, and Kamailio matches requests by source IP; ${SIP_PEERS_HINT}` };
  }
  return { peers: unique(hosts.map((h) => h.host)), from: "mesh.peers" };
}

/** The same addresses, in any order. */
export function sameSipPeers(a: readonly string[], b: readonly string[]): boolean {
  const sorted = (l: readonly string[]) => [...l].sort().join(",");
  return sorted(a) === sorted(b);
}

/**
 * Each address once, IPv6 in the compact lower-case form Kamailio prints `$si` in (its default
 * ipv6_hex_style "c"): the include compares strings, and `2001:DB8:0::3` would never match.
 */
export function canonicalSipPeers(ips: readonly string[]): string[] {
  return unique(ips.map((ip) => (isIP(ip) === 6 ? new URL(`http://[${ip}]`).hostname.slice(1, -1) : ip)));
}

function unique(ips: readonly string[]): string[] {
  return [...new Set(ips)];
}
