/** Alias helpers for integration tests: count, dump and publish aliases through an agent's API. */
import type { ListResult } from "../../agent/contract/api-protocol.js";
import type { Alias } from "../../agent/contract/records.js";
import type { AgentProcess } from "./agent-process.js";

export async function aliasCount(a: AgentProcess): Promise<number> {
  return (await a.call<ListResult<Alias>>("alias.list", { limit: 1 })).total;
}

export async function dumpAliases(a: AgentProcess): Promise<string[]> {
  const out: string[] = [];
  let after = "";
  for (;;) {
    const page = await a.call<ListResult<Alias>>("alias.list", { limit: 1000, after });
    out.push(...page.items.map((i) => `${i.alias}=>${i.target}`));
    if (!page.next) return out;
    after = page.next;
  }
}

/** The agent holds `alias` (as stored: no scheme), whatever its target. */
export async function hasAlias(a: AgentProcess, alias: string): Promise<boolean> {
  return (await dumpAliases(a)).some((line) => line.startsWith(`${alias}=>`));
}

/** Sets aliases `${prefix}${i}@example.com` for from ≤ i < to, 200 requests at a time; resolves when all are acknowledged. */
export async function publishAliases(a: AgentProcess, from: number, to: number, prefix: string): Promise<void> {
  const batch: Promise<unknown>[] = [];
  for (let i = from; i < to; i++) {
    batch.push(a.call("alias.set", { alias: `${prefix}${i}@example.com`, target: `sip:target${i}@example.com` }));
    if (batch.length === 200) await Promise.all(batch.splice(0));
  }
  await Promise.all(batch);
}
