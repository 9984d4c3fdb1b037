/**
 * Convergence is a property: whatever the interleaving of local edits and deliveries, with drops,
 * duplicates, late out-of-order arrivals and partitions, once the cluster heals every node holds
 * the same live records, and they are what last-writer-wins on (hlc, origin) says they must be.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { RemoteBatch } from "../../agent/core/store.js";
import { aliasDraft, binding, locDraft } from "../support/fixtures.js";
import { SIM_START_MS, createSim, referenceState, type Sim } from "../support/sim.js";

const NOW_SEC = SIM_START_MS / 1000;
const AORS = ["alice@x", "bob@x", "carol@x"];
const CONTACTS = ["sip:c1@10.0.0.1", "sip:c2@10.0.0.2"];
const ALIASES = ["sales@x", "help@x"];

type Fault = "ok" | "drop" | "dup" | "delay" | "dupLater";
type Command =
  | { t: "loc"; node: number; aor: number; contact: number; remove: boolean; expiry: number }
  | { t: "alias"; node: number; alias: number; remove: boolean }
  | { t: "removeAor"; node: number; aor: number }
  | { t: "push"; from: number; hop: number; relay: number; limit: number; resume: boolean; lag: number; faults: Fault[] }
  | { t: "pull"; from: number; hop: number; limit: number; fault: Fault }
  | { t: "late"; pick: number }
  | { t: "cut" | "mend"; a: number; b: number }
  | { t: "tick"; ms: number };

const nodeIx = fc.nat(7);
const fault = fc.constantFrom<Fault>("ok", "ok", "ok", "drop", "dup", "delay", "delay", "dupLater");
const command: fc.Arbitrary<Command> = fc.oneof(
  { arbitrary: fc.record({ t: fc.constant("loc" as const), node: nodeIx, aor: fc.nat(2), contact: fc.nat(1), remove: fc.boolean(), expiry: fc.nat(2) }), weight: 4 },
  { arbitrary: fc.record({ t: fc.constant("alias" as const), node: nodeIx, alias: fc.nat(1), remove: fc.boolean() }), weight: 2 },
  { arbitrary: fc.record({ t: fc.constant("removeAor" as const), node: nodeIx, aor: fc.nat(2) }), weight: 1 },
  {
    // A push pump run: up to four batches in a row on one link, each with its own fate.
    arbitrary: fc.record({
      t: fc.constant("push" as const),
      from: nodeIx,
      hop: nodeIx,
      relay: fc.constantFrom(0, 0, 0, 1, 2),
      limit: fc.integer({ min: 1, max: 3 }),
      resume: fc.boolean(),
      lag: fc.constantFrom(0, 0, 1, 3),
      faults: fc.array(fault, { minLength: 1, maxLength: 4 }),
    }),
    weight: 5,
  },
  { arbitrary: fc.record({ t: fc.constant("pull" as const), from: nodeIx, hop: nodeIx, limit: fc.integer({ min: 1, max: 4 }), fault }), weight: 3 },
  { arbitrary: fc.record({ t: fc.constant("late" as const), pick: fc.nat(99) }), weight: 2 },
  { arbitrary: fc.record({ t: fc.constantFrom("cut" as const, "mend" as const), a: nodeIx, b: nodeIx }), weight: 1 },
  { arbitrary: fc.record({ t: fc.constant("tick" as const), ms: fc.integer({ min: 0, max: 3000 }) }), weight: 1 },
);
/** Skews include a node far ahead (beyond the default drift tolerance) and equal clocks, so hlc ties happen. */
const skews = fc.array(fc.constantFrom(0, 0, 0, 1, -3, 250, -4_000, 90_000), { minLength: 3, maxLength: 5 });

interface InFlight {
  batch: RemoteBatch;
  from: number;
  to: number;
}

/** Runs the random phase: edits, deliveries with faults, partitions. Returns what is still in flight. */
async function play(sim: Sim, commands: readonly Command[], expiring: boolean): Promise<InFlight[]> {
  const n = sim.nodes.length;
  const cut = new Set<string>();
  const pair = (a: number, b: number) => [a % n, b % n].sort().join("-");
  const link = (from: number, hop: number) => [from % n, (from + 1 + (hop % (n - 1))) % n] as const;
  const queue: InFlight[] = [];
  let serial = 0;
  const expiries = expiring ? [0, NOW_SEC - 50, NOW_SEC + 50] : [0, 0, NOW_SEC + 10 ** 9];

  const send = async (batch: RemoteBatch | null, from: number, to: number, f: Fault) => {
    if (!batch || f === "drop") return;
    if (f === "delay") return void queue.push({ batch, from, to });
    await sim.deliver(batch, from, to);
    if (f === "dup") await sim.deliver(batch, from, to);
    if (f === "dupLater") queue.push({ batch, from, to });
  };

  for (const c of commands) {
    serial++;
    switch (c.t) {
      case "loc": {
        const value = c.remove ? null : binding({ expires: expiries[c.expiry]!, callid: `call-${serial}`, owner: `node${c.node % n}` });
        await sim.edit(c.node, locDraft(AORS[c.aor]!, CONTACTS[c.contact]!, value));
        break;
      }
      case "alias":
        await sim.edit(c.node, aliasDraft(ALIASES[c.alias]!, c.remove ? null : `sip:target${serial}@x`));
        break;
      case "removeAor":
        await sim.removeKey(c.node, AORS[c.aor]!);
        break;
      case "push": {
        const [from, to] = link(c.from, c.hop);
        if (cut.has(pair(from, to))) break;
        for (const [i, f] of c.faults.entries()) await send(await sim.push(from, to, c.relay, c.limit, c.resume && i === 0, c.lag), from, to, f);
        break;
      }
      case "pull": {
        const [from, to] = link(c.from, c.hop);
        if (!cut.has(pair(from, to))) await send(await sim.pull(from, to, c.limit), from, to, c.fault);
        break;
      }
      case "late": {
        const [m] = queue.splice(c.pick % Math.max(1, queue.length), 1);
        if (m) await sim.deliver(m.batch, m.from, m.to);
        break;
      }
      case "cut":
      case "mend":
        if (c.a % n !== c.b % n) {
          if (c.t === "cut") cut.add(pair(c.a, c.b));
          else cut.delete(pair(c.a, c.b));
        }
        break;
      case "tick":
        sim.clock.ms += c.ms;
        break;
    }
  }
  return queue;
}

/** Heals, then lets every batch still in flight arrive late (newest first), and checks agreement. */
async function healAndCheck(sim: Sim, inFlight: InFlight[], atSecs: readonly number[]): Promise<void> {
  await sim.heal(3);
  const settled = await sim.vectors();
  for (const m of inFlight.reverse()) await sim.deliver(m.batch, m.from, m.to);
  expect(await sim.vectors()).toEqual(settled);
  for (const at of atSecs) {
    const expected = referenceState(sim.history, at);
    for (let i = 0; i < sim.nodes.length; i++) expect(await sim.dump(i, at)).toEqual(expected);
  }
}

async function runScenario(skewsMs: number[], commands: Command[], expiring: boolean): Promise<void> {
  const sim = createSim(skewsMs);
  try {
    const inFlight = await play(sim, commands, expiring);
    await healAndCheck(sim, inFlight, expiring ? [NOW_SEC - 100, NOW_SEC, NOW_SEC + 100] : [NOW_SEC]);
  } finally {
    await sim.close();
  }
}

describe("convergence", () => {
  it("every node ends with the same live records, equal to the LWW reference", async () => {
    await fc.assert(
      fc.asyncProperty(skews, fc.array(command, { minLength: 10, maxLength: 100, size: "max" }), (s, cmds) => runScenario(s, cmds, false)),
      { numRuns: 200 },
    );
  });

  it("agrees on which bindings are live when some of them expire", async () => {
    await fc.assert(
      fc.asyncProperty(skews, fc.array(command, { minLength: 10, maxLength: 100, size: "max" }), (s, cmds) => runScenario(s, cmds, true)),
      { numRuns: 100 },
    );
  });

  it("reaches the reference state in a hand-written conflict scenario", async () => {
    const sim = createSim([0, 0, 90_000]);
    try {
      const [aor, contact] = [AORS[0]!, CONTACTS[0]!];
      // Concurrent writes of one binding on all three nodes at the same wall-clock millisecond:
      // node0 and node1 tie on hlc, node2's clock is far ahead and wins.
      await sim.edit(0, locDraft(aor, contact, binding({ callid: "from-0" })));
      await sim.edit(1, locDraft(aor, contact, binding({ callid: "from-1" })));
      await sim.edit(2, locDraft(aor, contact, binding({ callid: "from-2" })));
      // node0 learns node2's version and then removes the binding: its tombstone must win everywhere.
      await sim.deliver((await sim.pull(2, 0, 10))!, 2, 0);
      await sim.edit(0, locDraft(aor, contact, null));
      await sim.edit(1, aliasDraft(ALIASES[0]!, "sip:one@x"));
      const stale = (await sim.push(1, 2, 0, 10))!;
      await sim.heal(2);
      await sim.deliver(stale, 1, 2);
      const expected = referenceState(sim.history, NOW_SEC);
      expect(expected.map((r) => r.key)).toEqual([ALIASES[0]]);
      for (let i = 0; i < 3; i++) expect(await sim.dump(i, NOW_SEC)).toEqual(expected);
      expect(await sim.dump(0, NOW_SEC)).toEqual(await sim.dump(2, NOW_SEC));
    } finally {
      await sim.close();
    }
  });

  // Regression: snapshots for empty peers once left tombstones out while the peer's vector still
  // covered them; the older live version from another peer then survived forever.
  it("converges when an empty node gets a snapshot and an older version from another peer", async () => {
    const sim = createSim([0, 0, 0]);
    try {
      const [aor, contact] = [AORS[0]!, CONTACTS[0]!];
      await sim.edit(1, locDraft(aor, contact, binding({ callid: "b" })));
      await sim.deliver((await sim.pull(1, 0, 10))!, 1, 0);
      await sim.edit(0, locDraft(aor, contact, null));
      // node2 starts empty and says hello to node0 and node1; both push their own changes.
      await sim.deliver((await sim.push(0, 2, 0, 10, true, 0))!, 0, 2);
      await sim.deliver((await sim.push(1, 2, 0, 10, true, 0))!, 1, 2);
      await sim.heal(10);
      const expected = referenceState(sim.history, NOW_SEC);
      expect(expected).toEqual([]);
      for (let i = 0; i < 3; i++) expect(await sim.dump(i, NOW_SEC), `node${i}`).toEqual(expected);
    } finally {
      await sim.close();
    }
  });
});
