/**
 * A removal relayed through a third node (agent/core/outbound.ts servePull) while its origin is
 * down, after the relay's retention passed. Found by review: the relay had purged the other
 * origin's tombstone by age alone, served the range as empty, and the peer took it for holding it
 * all; its origin, told the peer held it, purged its own too, and the record stayed live on that
 * peer forever. The relay now keeps a row until every peer holds it (ReplicaStore.purge's floor).
 */
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import type { VersionVector } from "../../agent/contract/records.js";
import { nextBatch, servePull } from "../../agent/core/outbound.js";
import type { PurgeFloor } from "../../agent/core/store.js";
import { openSqliteStore, type SqliteStore } from "../../agent/journal/sqlite-store.js";
import { binding, locDraft, makeTempDirs } from "../support/fixtures.js";

const temp = makeTempDirs("locmesh-purge-relay-");
const open: SqliteStore[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((s) => s.close()));
  temp.cleanup();
});

/** Per origin, the least any of `vectors` holds: what mesh-status.ts purgeFloor gives a node with these peers. */
const floorOf = (mine: VersionVector, ...vectors: VersionVector[]): PurgeFloor =>
  Object.fromEntries(Object.keys(mine).map((o) => [o, Math.min(...vectors.map((v) => v[o] ?? 0))]));

describe("a removal relayed while its origin is down, after the retention", () => {
  it("reaches the peer that was away: the relay kept the other origin's tombstone that peer lacked", async () => {
    const dir = temp.make();
    const [o, p, r] = ["o", "p", "r"].map((n) => {
      const s = openSqliteStore({ path: join(dir, `${n}.sqlite`), nodeId: n });
      open.push(s);
      return s;
    }) as [SqliteStore, SqliteStore, SqliteStore];
    let t = 1000 * 1024;
    const stamp = () => ++t;
    const send = async (from: SqliteStore, to: SqliteStore) => {
      const b = await nextBatch(from, from.replicaId, (await to.versionVector())[from.replicaId] ?? 0, (await from.versionVector())[from.replicaId] ?? 0, 100);
      if (b) await to.applyRemote(b);
    };
    await o.commitLocal([locDraft("alice@x", "sip:a@192.0.2.4", binding())], stamp);
    await send(o, p);
    await send(o, r);
    // r goes away; o removes the binding, and p gets the removal.
    await o.commitLocal([locDraft("alice@x", "sip:a@192.0.2.4", null)], stamp);
    await send(o, p);
    // The retention passes on p, whose peers are o and r (r last said it held o's #1).
    expect(await p.purge(t + 1, 0, floorOf(await p.versionVector(), await o.versionVector(), await r.versionVector()))).toBe(0);
    // r is back while o is down: it pulls o's changes from p.
    const served = await servePull(p, { vv: await r.versionVector(), limit: 100, skip: [r.replicaId, p.replicaId], count: false });
    expect(served.batch?.changes).toHaveLength(1);
    await r.applyRemote(served.batch!);
    expect(await r.get("loc", "alice@x", "sip:a@192.0.2.4")).toMatchObject({ value: null });
    // Now every peer holds it: p's purge takes it.
    expect(await p.purge(t + 1, 0, floorOf(await p.versionVector(), await o.versionVector(), await r.versionVector()))).toBe(1);
  });
});
