/**
 * The agent list a hub's SIGHUP applies (hub/main.ts). Checked against the running hub's nodeId,
 * not the config's: a changed nodeId takes effect only at a restart (the loader checked the list
 * against the new one, hub-config.ts), and a list naming the running hub would admit an agent
 * under the hub's own id, which the hub's changes are stamped with: refused whole, as an agent
 * refuses a peer list naming itself (agent/config/reload-plan.ts). mesh.acceptUnlisted also takes
 * effect only at a restart: until then the hub takes mesh.agents alone, so a list emptied for it
 * keeps the agents it drops (those it adds are taken).
 */
import type { HubConfig } from "./hub-config.js";

export interface AgentsToApply {
  /** The list to apply (the running one when nothing changes). */
  agents: readonly string[];
  /** Set when part of the change is held until a restart: what is kept, and the line to log (error). */
  held: { kept: readonly string[]; message: string } | null;
}

export function agentsToApply(running: Pick<HubConfig, "nodeId" | "mesh">, next: Pick<HubConfig, "nodeId" | "mesh">, current: readonly string[]): AgentsToApply {
  const wanted = next.mesh.agents;
  if (wanted.includes(running.nodeId)) {
    return {
      agents: current,
      held: {
        kept: current,
        message:
          `SIGHUP: not applying mesh.agents: it lists ${running.nodeId}, the id this hub runs as (the config's nodeId ${next.nodeId} takes effect only when the hub restarts), ` +
          "and a hub takes no session from itself; the running mesh.agents stay. If the file is another hub's config, put this hub's back and send SIGHUP again; to rename this hub, restart it",
      },
    };
  }
  const dropped = current.filter((id) => !wanted.includes(id));
  if (next.mesh.acceptUnlisted && !running.mesh.acceptUnlisted && dropped.length > 0) {
    return {
      agents: [...current, ...wanted.filter((id) => !current.includes(id))],
      held: {
        kept: dropped,
        message:
          "SIGHUP: keeping the agents this change drops from mesh.agents, because mesh.acceptUnlisted was turned on in the same change: acceptUnlisted takes " +
          "effect only when the hub restarts, and until then this hub would refuse them. Agents the change adds are taken. Restart the hub (systemctl restart) to take every agent",
      },
    };
  }
  return { agents: wanted, held: null };
}
