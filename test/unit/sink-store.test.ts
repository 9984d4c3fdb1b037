/**
 * The hub bench's sink store (test/bench/sink-store.ts): the hub-tier figures count on it to take
 * each change once, to refuse what the journal refuses, and to note arrivals only of the changes
 * being tracked. A sink that counted a resend twice would overstate the hub's throughput.
 */
import { describe, expect, it } from "vitest";
import type { Change } from "../../agent/contract/records.js";
import { InvalidBatchError } from "../../agent/core/store.js";
import { createSinkStore } from "../bench/sink-store.js";

const O = "a1~0123abcd";
const change = (seq: number, key = `k${seq}@x`): Change => ({ kind: "loc", key, sub: "r", value: null, hlc: 1000 + seq, origin: O, seq });
const batch = (after: number, upTo: number, seqs = Array.from({ length: upTo - after }, (_, i) => after + i + 1)) => ({
  origin: O, after, upTo, changes: seqs.map((s) => change(s)),
});

describe("sink store", () => {
  it("takes contiguous batches, skips resends and gaps, and counts each change once", async () => {
    const s = createSinkStore("s1", () => 0);
    expect(await s.applyRemote(batch(0, 3))).toMatchObject({ have: 3 });
    // A resend overlapping what it has: only the new part counts.
    const overlap = await s.applyRemote(batch(2, 5));
    expect(overlap.applied.map((c) => c.seq)).toEqual([4, 5]);
    // Wholly old, and beyond a gap: nothing taken, have unchanged.
    expect(await s.applyRemote(batch(1, 4))).toEqual({ applied: [], have: 5 });
    expect(await s.applyRemote(batch(7, 9))).toEqual({ applied: [], have: 5 });
    expect(s.taken()).toBe(5);
    expect(await s.versionVector()).toEqual({ [O]: 5 });
  });

  it("refuses a batch out of order or out of range, alone within a group", async () => {
    const s = createSinkStore("s1", () => 0);
    await expect(s.applyRemote(batch(0, 3, [1, 3, 2]))).rejects.toBeInstanceOf(InvalidBatchError);
    await expect(s.applyRemote(batch(0, 2, [1, 2, 3]))).rejects.toBeInstanceOf(InvalidBatchError);
    const out = await s.applyRemoteGroup([batch(0, 2, [2, 1]), batch(0, 2)]);
    expect(out[0]).toBeInstanceOf(InvalidBatchError);
    expect(out[1]).toMatchObject({ have: 2 });
    expect(s.taken()).toBe(2);
  });

  it("notes the first arrival of tracked keys only", async () => {
    let now = 100;
    const s = createSinkStore("s1", () => now);
    await s.applyRemote({ origin: O, after: 0, upTo: 1, changes: [change(1, "latx0000001@voice.example.com")] });
    s.track("latx", 3);
    now = 200;
    await s.applyRemote({ origin: O, after: 1, upTo: 3, changes: [change(2, "latx0000002@voice.example.com"), change(3, "other0000000@x")] });
    now = 300;
    await s.applyRemote({ origin: O, after: 3, upTo: 5, changes: [change(4, "latx0000000@voice.example.com"), change(5, "latx0000009@voice.example.com")] });
    // Index 1 arrived before tracking began; index 9 is beyond `total`.
    expect(s.arrivals()).toEqual([300, null, 200]);
    expect(s.trackedSeen()).toBe(2);
  });
});
