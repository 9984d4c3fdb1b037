/**
 * Aliases set through each agent of a hub cluster, counted, so that a test can check that every
 * agent ends up holding all of them and applied every other agent's once: nothing lost across a
 * failover or a move, nothing applied twice. Tests only: it asserts with vitest (benchmarks and
 * drills import the other support files).
 */
import { expect } from "vitest";
import { waitFor, type AgentProcess } from "./agent-process.js";
import { aliasCount, dumpAliases, publishAliases } from "./aliases.js";
import { changesApplied, changesReceived } from "./hub-process.js";

export function aliasLedger(agents: () => readonly AgentProcess[]) {
  const published = new Map<AgentProcess, number>();
  const total = () => [...published.values()].reduce((a, b) => a + b, 0);
  return {
    total,
    /** Sets `n` aliases through agent `i`, tagged so no two rounds collide. */
    async publish(i: number, n: number, tag: string): Promise<void> {
      const a = agents()[i]!;
      await publishAliases(a, 0, n, `${tag}-a${i + 1}-`);
      published.set(a, (published.get(a) ?? 0) + n);
    },
    async expectEachChangeOnce(timeoutMs = 45_000): Promise<void> {
      const all = agents();
      await waitFor(`${total()} aliases everywhere`, async () => (await Promise.all(all.map(aliasCount))).every((c) => c === total()), timeoutMs);
      for (const a of all) {
        expect(await changesApplied(a)).toBe(total() - (published.get(a) ?? 0));
        expect(await changesReceived(a)).toBe(await changesApplied(a));
      }
      const reference = await dumpAliases(all[0]!);
      for (const a of all.slice(1)) expect(await dumpAliases(a)).toEqual(reference);
    },
  };
}
