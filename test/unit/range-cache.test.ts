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
