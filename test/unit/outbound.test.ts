import { afterEach, describe, expect, it } from "vitest";
import { MAX_CHANGE_BYTES, fitting, nextBatch, servePull } from "../../agent/core/outbound.js";
import { changeSchema } from "../../agent/contract/record-schemas.js";
import { LIMITS } from "../../agent/contract/sip-uri.js";
import type { ReplicaStore } from "../../agent/core/store.js";
import { openSqliteStore } from "../../agent/journal/sqlite-store.js";
import { REPLICA_A, aliasDraft, batchOf, binding, counterStamp, locDraft, remoteChange } from "../support/fixtures.js";

const NOW = 1_800_000_000;
const stores: ReplicaStore[] = [];
afterEach(async () => {
  for (const s of stores.splice(0)) await s.close();
});

function memStore(nodeId = "n1"): ReplicaStore {
  const s = openSqliteStore({ path: ":memory:", nodeId });
  stores.push(s);
  return s;
}

/** Own seqs: 1-3 rewrite a@x (only 3 is still held), 4 b@x, 5 c@x (superseded by its tombstone 6), 7 expired. */
async function seeded() {
  const s = memStore();
  const stamp = counterStamp(100);
  for (const t of ["sip:1@x", "sip:2@x", "sip:3@x"]) await s.commitLocal([aliasDraft("a@x", t)], stamp);
  await s.commitLocal([aliasDraft("b@x", "sip:b@x"), locDraft("c@x", "sip:c@1", binding())], stamp);
  await s.commitLocal([locDraft("c@x", "sip:c@1", null), locDraft("d@x", "sip:d@1", binding({ expires: NOW - 1 }))], stamp);
  return s;
}
const seqs = (b: { changes: { seq: number }[] } | null) => b?.changes.map((c) => c.seq);

describe("nextBatch", () => {
  it("returns null when the peer already has everything", async () => {
    const s = await seeded();
    expect(await nextBatch(s, s.replicaId, 7, 7, 10)).toBeNull();
    expect(await nextBatch(s, s.replicaId, 9, 7, 10)).toBeNull();
  });

  it("covers the whole range when the run is shorter than the limit", async () => {
    const s = await seeded();
    const b = await nextBatch(s, s.replicaId, 0, 7, 10);
    expect(b).toMatchObject({ origin: s.replicaId, after: 0, upTo: 7 });
    expect(seqs(b)).toEqual([3, 4, 6, 7]);
  });

  it("covers a range of superseded versions with an empty batch", async () => {
    const s = await seeded();
    expect(await nextBatch(s, s.replicaId, 0, 2, 10)).toEqual({ origin: s.replicaId, after: 0, upTo: 2, changes: [] });
  });

  it("stops at the last change sent when the limit is reached", async () => {
    const s = await seeded();
    const first = await nextBatch(s, s.replicaId, 0, 7, 2);
    expect(first).toMatchObject({ after: 0, upTo: 4 });
    expect(seqs(first)).toEqual([3, 4]);
    const second = await nextBatch(s, s.replicaId, 4, 7, 2);
    expect(second).toMatchObject({ after: 4, upTo: 7 });
    expect(seqs(second)).toEqual([6, 7]);
  });

});

describe("servePull", () => {
  async function twoOrigins() {
    const s = await seeded();
    const remote = [1, 2, 3].map((n) => remoteChange(REPLICA_A, n, 500 + n, aliasDraft(`r${n}@x`, "sip:r@x")));
    await s.applyRemote(batchOf(REPLICA_A, 0, 3, remote));
    return s;
  }
  const pull = (vv: Record<string, number>, extra: { limit?: number; skip?: string[]; count?: boolean } = {}) => ({
    vv,
    limit: extra.limit ?? 100,
    skip: extra.skip ?? [],
    count: extra.count ?? false,
  });

  it("serves the first origin, in sorted order, where the caller is behind", async () => {
    const s = await twoOrigins();
    expect(REPLICA_A < s.replicaId).toBe(true);
    const res = await servePull(s, pull({}));
    expect(res.batch).toMatchObject({ origin: REPLICA_A, after: 0, upTo: 3 });
    const next = await servePull(s, pull({ [REPLICA_A]: 3 }));
    expect(next.batch).toMatchObject({ origin: s.replicaId, after: 0, upTo: 7 });
  });

  it("continues from the caller's vector entry", async () => {
    const s = await twoOrigins();
    const res = await servePull(s, pull({ [REPLICA_A]: 1 }));
    expect(res.batch).toMatchObject({ origin: REPLICA_A, after: 1, upTo: 3 });
    expect(seqs(res.batch)).toEqual([2, 3]);
  });

  it("honours the skip list", async () => {
    const s = await twoOrigins();
    const res = await servePull(s, pull({}, { skip: [REPLICA_A] }));
    expect(res.batch?.origin).toBe(s.replicaId);
    expect(await servePull(s, pull({}, { skip: [REPLICA_A, s.replicaId] }))).toEqual({ batch: null, remaining: 0 });
  });

  it("returns no batch when the caller is up to date or ahead", async () => {
    const s = await twoOrigins();
    expect(await servePull(s, pull({ [REPLICA_A]: 3, [s.replicaId]: 7 }))).toEqual({ batch: null, remaining: 0 });
    expect(await servePull(s, pull({ [REPLICA_A]: 9, [s.replicaId]: 9 }, { count: true }))).toEqual({ batch: null, remaining: 0 });
  });

  it("estimates the changes still to come only when asked", async () => {
    const s = await twoOrigins();
    // Held after the caller's vector: 3 of REPLICA_A + 4 own (seqs 3, 4, 6, 7); this batch carries 2.
    expect((await servePull(s, pull({}, { limit: 2, count: true }))).remaining).toBe(5);
    expect((await servePull(s, pull({ [REPLICA_A]: 3 }, { count: true }))).remaining).toBe(0);
    expect((await servePull(s, pull({}, { limit: 2 }))).remaining).toBe(0);
  });

});

describe("batches cut to the frame limit", () => {
  it("MAX_CHANGE_BYTES bounds the largest change the protocol accepts", () => {
    const ctl = (n: number) => "\u0001".repeat(n);
    const c = {
      kind: "loc" as const,
      key: `${ctl(LIMITS.aor - 2)}@h`,
      sub: `sip:${ctl(LIMITS.contact - 6)}@h`,
      hlc: Number.MAX_SAFE_INTEGER, origin: `${"n".repeat(63)}~0123456789ab`, seq: Number.MAX_SAFE_INTEGER,
      value: binding({
        expires: 2 ** 40, q: -0.123456789012345, path: ctl(LIMITS.path), received: ctl(LIMITS.received),
        socket: `udp:${"h".repeat(LIMITS.socket - 10)}:65535`, callid: ctl(LIMITS.callid), cseq: 4294967295,
        userAgent: ctl(LIMITS.userAgent), flags: 4294967295, cflags: 4294967295, methods: 4294967295,
        instance: ctl(LIMITS.instance), regId: 4294967295, owner: "o".repeat(63), ruid: ctl(64),
      }),
    };
    expect(changeSchema.safeParse(c).success).toBe(true);
    const bytes = Buffer.byteLength(JSON.stringify(c));
    expect(bytes).toBeGreaterThan(10_000);
    expect(bytes).toBeLessThanOrEqual(MAX_CHANGE_BYTES);
  });

  it("fitting() keeps the longest prefix whose JSON fits, at least one change, and is free when all would fit", () => {
    const changes = Array.from({ length: 50 }, (_, i) =>
      remoteChange(REPLICA_A, i + 1, 100 + i, { kind: "loc", key: `u${i}@x`, sub: `sip:u${i}@192.0.2.1`, value: binding({ userAgent: "x".repeat(200) }) }));
    expect(fitting(changes, Infinity)).toBe(changes);
    const limit = 8_000;
    const kept = fitting(changes, limit);
    expect(kept.length).toBeGreaterThan(1);
    expect(kept.length).toBeLessThan(changes.length);
    expect(kept).toEqual(changes.slice(0, kept.length));
    expect(Buffer.byteLength(JSON.stringify(kept))).toBeLessThanOrEqual(limit - 1024);
    expect(Buffer.byteLength(JSON.stringify(changes.slice(0, kept.length + 1)))).toBeGreaterThan(limit - 1024);
    expect(fitting(changes, 1_100)).toHaveLength(1);
  });

  it("nextBatch and servePull end a cut batch at its last change, so the rest goes in the next one", async () => {
    const s = memStore();
    const stamp = counterStamp(100);
    for (let i = 0; i < 40; i++) await s.commitLocal([locDraft(`u${i}@x`, `sip:u${i}@192.0.2.1`, binding({ userAgent: "y".repeat(250) }))], stamp);
    const b = (await nextBatch(s, s.replicaId, 0, 40, 1000, 8_000))!;
    expect(b.changes.length).toBeLessThan(40);
    expect(b.upTo).toBe(b.changes.at(-1)!.seq);
    const rest = (await nextBatch(s, s.replicaId, b.upTo, 40, 1000, 8_000))!;
    expect(rest.changes[0]!.seq).toBe(b.upTo + 1);
    const pulled = await servePull(s, { vv: {}, limit: 1000, skip: [], count: false }, 8_000);
    expect(seqs(pulled.batch)).toEqual(seqs(b));
  });
});
