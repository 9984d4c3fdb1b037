/**
 * The hub's range cache (hub/range-cache.ts): ten pumps asking for the same run share one read, a
 * range the store primed answers reads it fits, and nothing is served past its time to live.
 */
import { describe, expect, it } from "vitest";
import type { Change } from "../../agent/contract/records.js";
import { createRangeCache } from "../../hub/range-cache.js";
import { REPLICA_A, aliasDraft, remoteChange } from "../support/fixtures.js";

const run = (from: number, to: number): Change[] =>
  Array.from({ length: to - from }, (_, i) => remoteChange(REPLICA_A, from + i + 1, 1000 + i, aliasDraft(`a${from + i}@x`, "sip:t@x")));

/** A cache on a clock the test moves, and a load that counts its calls. */
function setup() {
  const clock = { now: 0, loads: 0 };
  const cache = createRangeCache({ ttlMs: 250, nowMs: () => clock.now });
  const load = () => {
    clock.loads++;
    return Promise.resolve(run(0, 3));
  };
  return { clock, cache, load };
}

describe("range cache", () => {
  it("shares one read among the pumps that ask for the same run, and reads again once it is stale", async () => {
    const { clock, cache, load } = setup();
    const answers = await Promise.all(Array.from({ length: 10 }, () => cache.read(REPLICA_A, 0, 3, 1000, load)));
    expect(clock.loads).toBe(1);
    expect(new Set(answers).size).toBe(1);
    await cache.read(REPLICA_A, 0, 3, 500, load);
    expect(clock.loads).toBe(2);
    clock.now = 250;
    await cache.read(REPLICA_A, 0, 3, 1000, load);
    expect(clock.loads).toBe(3);
  });

  it("answers a primed range without reading, for any limit it fits in, until it is stale", async () => {
    const { clock, cache, load } = setup();
    const primed = run(0, 3);
    cache.prime(REPLICA_A, 0, 3, primed);
    expect(await cache.read(REPLICA_A, 0, 3, 1000, load)).toBe(primed);
    expect(await cache.read(REPLICA_A, 0, 3, 3, load)).toBe(primed);
    expect(clock.loads).toBe(0);
    // A limit the range does not fit in, or another range, is read.
    await cache.read(REPLICA_A, 0, 3, 2, load);
    await cache.read(REPLICA_A, 1, 3, 1000, load);
    expect(clock.loads).toBe(2);
    clock.now = 250;
    expect(await cache.read(REPLICA_A, 0, 3, 1000, load)).not.toBe(primed);
    expect(clock.loads).toBe(3);
  });

  it("keeps the small ranges of a hundred publishing origins together, and stays within its budget of changes", async () => {
    const { clock, cache, load } = setup();
    const origins = Array.from({ length: 100 }, (_, i) => `o${i}~0000000000${String(i).padStart(2, "0")}`);
    for (const o of origins) cache.prime(o, 0, 1, run(0, 1));
    for (const o of origins) await cache.read(o, 0, 1, 1000, load);
    expect(clock.loads).toBe(0);
    // Runs of 1,000 changes: 32 of them fill the budget, so of 40 the 8 oldest (and the small ones) go.
    const big = Array.from({ length: 40 }, (_, i) => `b${i}~000000000000`);
    for (const o of big) cache.prime(o, 0, 1000, run(0, 1000));
    for (const o of big.slice(8)) await cache.read(o, 0, 1000, 1000, load);
    expect(clock.loads).toBe(0);
    await cache.read(big[7]!, 0, 1000, 1000, load);
    await cache.read(origins[99]!, 0, 1, 1000, load);
    expect(clock.loads).toBe(2);
  });

  it("charges a read what its range can hold until its rows are known, then what they are", async () => {
    const clock = { now: 0 };
    const cache = createRangeCache({ ttlMs: 250, maxChanges: 2_000, nowMs: () => clock.now });
    let loads = 0;
    const load = (n: number) => () => {
      loads++;
      return Promise.resolve(run(0, n));
    };
    // Two reads of ranges of 1,000 seqs that hold 3 rows each, then ten more like them: all kept.
    for (let i = 0; i < 12; i++) await cache.read(`r${i}~000000000000`, 0, 1000, 1000, load(3));
    for (let i = 0; i < 12; i++) await cache.read(`r${i}~000000000000`, 0, 1000, 1000, load(3));
    expect(loads).toBe(12);
    // Three unanswered reads of 1,000 each are charged 3,000 and push out what came before them.
    const pending = [0, 1, 2].map((i) => cache.read(`p${i}~000000000000`, 0, 1000, 1000, () => new Promise<Change[]>(() => undefined)));
    expect(pending).toHaveLength(3);
    await cache.read("r0~000000000000", 0, 1000, 1000, load(3));
    expect(loads).toBe(13);
  });

  it("forgets a failed read, so the next pump tries again", async () => {
    const cache = createRangeCache({ nowMs: () => 0 });
    await expect(cache.read(REPLICA_A, 0, 3, 1000, () => Promise.reject(new Error("database away")))).rejects.toThrow("database away");
    expect(await cache.read(REPLICA_A, 0, 3, 1000, () => Promise.resolve(run(0, 3)))).toHaveLength(3);
  });

  it("drops a failed read, but not a newer read of the same run stored after it", async () => {
    const { clock, cache } = setup();
    let fail!: (e: Error) => void;
    const failing = cache.read(REPLICA_A, 0, 3, 1000, () => new Promise<Change[]>((_, reject) => (fail = reject)));
    clock.now = 300; // stale: the next read loads again and stores its own entry under the same key
    let loads = 0;
    const good = () => {
      loads++;
      return Promise.resolve(run(0, 3));
    };
    await cache.read(REPLICA_A, 0, 3, 1000, good);
    fail(new Error("connection lost"));
    await expect(failing).rejects.toThrow("connection lost");
    await cache.read(REPLICA_A, 0, 3, 1000, good);
    expect(loads).toBe(1);
  });
});
