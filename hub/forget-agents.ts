/**
 * `locmesh hub forget <nodeId...>`: drop agents from `hub_agents`, the record of which hub each
 * agent was last on. With `mesh.acceptUnlisted` that record is how hubs know an agent that is down
 * (agent-placement.ts): a decommissioned agent keeps reading 0, and firing "a peer or hub link
 * down", until it is forgotten. An agent on a hub now is left alone: its hub would record it again
 * within a second.
 */
import type pg from "pg";

export interface ForgetOutcome {
  forgotten: string[];
  /** Still on a hub (recorded within the staleness window): stop the agent first. */
  connected: { nodeId: string; hubNode: string }[];
  /** No hub ever recorded them (or they were forgotten already). */
  unknown: string[];
}

const FORGET = `DELETE FROM hub_agents WHERE node_id = ANY($1::text[]) AND seen_at <= now() - make_interval(secs => $2)
  RETURNING node_id`;
const REMAINING = `SELECT node_id, hub_node FROM hub_agents WHERE node_id = ANY($1::text[])`;

export async function forgetAgents(client: pg.ClientBase, nodeIds: readonly string[], staleSec: number): Promise<ForgetOutcome> {
  const ids = [...new Set(nodeIds)];
  const forgotten = (await client.query<{ node_id: string }>(FORGET, [ids, staleSec])).rows.map((r) => r.node_id);
  const connected = (await client.query<{ node_id: string; hub_node: string }>(REMAINING, [ids])).rows.map((r) => ({ nodeId: r.node_id, hubNode: r.hub_node }));
  const seen = new Set([...forgotten, ...connected.map((c) => c.nodeId)]);
  return { forgotten: ids.filter((id) => forgotten.includes(id)), connected, unknown: ids.filter((id) => !seen.has(id)) };
}

/** What the command prints: one line per agent, saying what to do about those it left. */
export function describeForget(o: ForgetOutcome): string {
  return [
    ...o.forgotten.map((id) => `forgot ${id}: no hub reports it any more`),
    ...o.connected.map((c) => `${c.nodeId} is connected to hub ${c.hubNode} now: stop it (or take it out of service) first, then forget it`),
    ...o.unknown.map((id) => `${id}: no hub has recorded it; nothing to forget`),
  ].join("\n");
}
