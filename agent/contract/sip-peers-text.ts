/**
 * What a node's `cluster.status` says of the nodes that may relay calls through its Kamailio
 * (`kamailio.sipPeers`: SipPeersStatus, kamailio/sip-peer-list.ts), written once for both places
 * that show it: `locmesh status` (agent/cli/client-output.ts) and the web UI's Kamailio card
 * (web/src/pages/cluster-cards.tsx). Pure, and free of Node: the web build imports it.
 */
import type { SipPeersStatus } from "./kamailio-status.js";

export function sipPeersText(p: SipPeersStatus): string {
  const list = (p.peers ?? []).join(", ") || "none";
  switch (p.state) {
    case "set":
      return `${list} (may relay calls to this node's phones; kept current by the agent)`;
    case "pending":
      return `${list}: not set in Kamailio yet${p.note ? ` (${p.note})` : ""}; retried at every check`;
    default:
      return `left as it is in Kamailio (the include's list, or the last one this agent set): ${p.note ?? ""}`;
  }
}
