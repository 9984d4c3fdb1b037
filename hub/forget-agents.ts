/**
 * `locmesh hub forget <nodeId...>`: drop agents from `hub_agents`, the record of which hub each
 * agent was last on. With `mesh.acceptUnlisted` that record is how hubs know an agent that is down
 * (agent-placement.ts): a decommissioned agent keeps reading 0, and firing "a peer or hub link
 * down", until it is forgotten; and the purge keeps the tombstones it lacks (for
 * journal.holdForAgentsDays after it was last seen). An agent on a hub now is left alone: its hub would record it again
 * within a second. Nor is an agent listed in `mesh.agents`: hubs report every listed agent (0
 * while it is down) whatever the record says, so forgetting it would change nothing.
 */
import type pg from "pg";

export interface ForgetOutcome {
  forgotten: string[];
  /** In the hub config's mesh.agents: reported by every hub until taken out of it there. */
  listed: string[];
  /** Still on a hub (recorded within the staleness window): stop the agent first. */
  connected: { nodeId: string; hubNode: string }[];
  /** The staleness window (s): an agent stopped less than this ago still reads as connected. */
  staleSec: number;
  /** No hub ever recorded them (or they were forgotten already). */
  unknown: string[];
}

const FORGET = `DELETE FROM hub_agents WHERE node_id = ANY($1::text[]) AND seen_at <= now() - make_interval(secs => $2)
  RETURNING node_id`;
const REMAINING = `SELECT node_id, hub_node FROM hub_agents WHERE node_id = ANY($1::text[])`;

export async function forgetAgents(client: pg.ClientBase, nodeIds: readonly string[], staleSec: number, meshAgents: readonly string[] = []): Promise<ForgetOutcome> {
  const listed = [...new Set(nodeIds)].filter((id) => meshAgents.includes(id));
  const ids = [...new Set(nodeIds)].filter((id) => !meshAgents.includes(id));
  const forgotten = (await client.query<{ node_id: string }>(FORGET, [ids, staleSec])).rows.map((r) => r.node_id);
  const connected = (await client.query<{ node_id: string; hub_node: string }>(REMAINING, [ids])).rows.map((r) => ({ nodeId: r.node_id, hubNode: r.hub_node }));
  const seen = new Set([...forgotten, ...connected.map((c) => c.nodeId)]);
  return { forgotten: ids.filter((id) => forgotten.includes(id)), listed, connected, unknown: ids.filter((id) => !seen.has(id)), staleSec };
}

/** What the command prints: one line per agent, saying what to do about those it left. */
export function describeForget(o: ForgetOutcome): string {
  return [
    ...o.forgotten.map((id) => `forgot ${id}: no hub reports it any more`),
    ...o.listed.map((id) => `${id} is still listed in mesh.agents: hubs keep reporting it (0 while it is down); remove it from mesh.agents on every hub and send them SIGHUP (systemctl reload)`),
    ...o.connected.map((c) =>
      `${c.nodeId} is connected to hub ${c.hubNode} now (recorded within the last ${o.staleSec} s): stop it (or take it out of service) first, then forget it; ` +
      `if it has just stopped, run this again in ${o.staleSec} s`),
    ...o.unknown.map((id) => `${id}: no hub has recorded it; nothing to forget`),
  ].join("\n");
}
