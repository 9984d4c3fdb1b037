/**
 * The journal's counts() answers from a tally kept by every write (sqlite-store.ts), not from a
 * table scan. Property: after any mix of local edits, remote batches (won, lost, refused as a
 * whole), groups with a refused batch in them, and purges, with counts() first asked at any
 * point, it equals what a scan of the journal file counts at several clock readings.
 */
import { join } from "node:path";
import Database from "better-sqlite3";
import fc from "fast-check";
import { afterEach, describe, expect, it } from "vitest";
import type { Change } from "../../agent/contract/records.js";
import { InvalidBatchError, type RemoteBatch } from "../../agent/core/store.js";
import { openSqliteStore } from "../../agent/journal/sqlite-store.js";
import { REPLICA_A, REPLICA_B, aliasDraft, binding, locDraft, makeTempDirs, remoteChange } from "../support/fixtures.js";

const temp = makeTempDirs("locmesh-counts-");
afterEach(() => temp.cleanup());

const NOW = 1_700_000_000;
const AORS = ["a@x", "b@x", "c@x"];
const CONTACTS = ["sip:1@h", "sip:2@h"];
const ALIASES = ["s1@x", "s2@x"];

const expiresArb = fc.constantFrom(0, NOW - 50, NOW, NOW + 10, NOW + 500);
const locEdit = fc.record({
  kind: fc.constant("loc" as const),
  key: fc.constantFrom(...AORS),
  sub: fc.constantFrom(...CONTACTS),
  expires: fc.option(expiresArb, { nil: null }),
});
const aliasEdit = fc.record({ kind: fc.constant("alias" as const), key: fc.constantFrom(...ALIASES), sub: fc.constant(""), target: fc.option(fc.constant("sip:t@x"), { nil: null }) });
const edit = fc.oneof(locEdit, aliasEdit);
type Edit = typeof edit extends fc.Arbitrary<infer T> ? T : never;

const draftOf = (e: Edit) =>
  e.kind === "loc" ? locDraft(e.key, e.sub, e.expires === null ? null : binding({ expires: e.expires })) : aliasDraft(e.key, e.target);

const step = fc.oneof(
  fc.record({ op: fc.constant("local" as const), edits: fc.array(edit, { minLength: 1, maxLength: 4 }) }),
  // hlc picks whether the remote version wins against what the journal holds.
  fc.record({ op: fc.constant("remote" as const), edits: fc.array(fc.tuple(edit, fc.integer({ min: 1, max: 3000 })), { minLength: 1, maxLength: 4 }), bad: fc.boolean() }),
  fc.record({ op: fc.constant("group" as const), edits: fc.array(fc.tuple(edit, fc.integer({ min: 1, max: 3000 })), { minLength: 1, maxLength: 3 }) }),
  fc.record({ op: fc.constant("purge" as const), hlc: fc.integer({ min: 0, max: 3000 }), sec: fc.constantFrom(NOW - 100, NOW, NOW + 100, NOW + 1000) }),
  fc.record({ op: fc.constant("counts" as const) }),
);

describe("journal counts", () => {
  it("equal a scan of the journal after any sequence of writes, refusals and purges", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(step, { maxLength: 30 }), async (steps) => {
        const path = join(temp.make(), "journal.db");
        const store = openSqliteStore({ path, nodeId: "n1" });
        const scan = new Database(path, { readonly: true });
        try {
          let stamp = 5000;
          const seqs: Record<string, number> = { [REPLICA_A]: 0, [REPLICA_B]: 0 };
          // A batch of `origin`; `bad` puts its changes out of order so that the store refuses it.
          const batch = (origin: string, edits: [Edit, number][], bad: boolean): RemoteBatch => {
            const after = seqs[origin]!;
            const changes: Change[] = edits.map(([e, hlc], i) => remoteChange(origin, after + i + 1, hlc, draftOf(e)));
            if (bad && changes.length > 1) changes.reverse();
            else if (bad) changes[0] = { ...changes[0]!, seq: after };
            return { origin, after, upTo: after + changes.length, changes };
          };
          for (const s of steps) {
            if (s.op === "local") await store.commitLocal(s.edits.map(draftOf), () => stamp++);
            else if (s.op === "remote") {
              const b = batch(REPLICA_A, s.edits, s.bad);
              if (s.bad) await expect(store.applyRemote(b)).rejects.toThrow(InvalidBatchError);
              else {
                await store.applyRemote(b);
                seqs[REPLICA_A] = b.upTo;
              }
            } else if (s.op === "group") {
              const good = batch(REPLICA_B, s.edits, false);
              const outcomes = await store.applyRemoteGroup([good, batch(REPLICA_A, s.edits, true)]);
              expect(outcomes[1]).toBeInstanceOf(InvalidBatchError);
              seqs[REPLICA_B] = good.upTo;
            } else if (s.op === "purge") await store.purge(s.hlc, s.sec);
            else await store.counts(NOW);
          }
          for (const now of [NOW - 100, NOW, NOW + 10, NOW + 1000]) {
            const live = (kind: number) =>
              (scan.prepare("SELECT count(*) AS n FROM records WHERE kind = ? AND value IS NOT NULL AND (expires IS NULL OR expires = 0 OR expires > ?)").get(kind, now) as { n: number }).n;
            const tombstones = (scan.prepare("SELECT count(*) AS n FROM records WHERE value IS NULL").get() as { n: number }).n;
            expect(await store.counts(now)).toEqual({ locations: live(0), aliases: live(1), tombstones });
          }
        } finally {
          scan.close();
          await store.close();
        }
      }),
      { numRuns: 150 },
    );
  });
});
