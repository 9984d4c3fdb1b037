/**
 * The reload of a restarted Kamailio (agent/kamailio/reload.ts) with in-process writers: which way
 * the writes go (the bulk session, or jsonrpcs when it cannot be opened), that writing starts with
 * the first page of the plan, and that a transient failure ends the run and closes the session.
 */
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterEach, describe, expect, it } from "vitest";
import { TransientError } from "../../agent/core/transient.js";
import { openSqliteStore } from "../../agent/journal/sqlite-store.js";
import { aliasKey, bindingKey, ulBinding, type InstallOp } from "../../agent/kamailio/install-plan.js";
import { AliasDbUnreachableError, KamailioWriteRejectedError, type KamailioWriter } from "../../agent/kamailio/kamailio-writer.js";
import { describeReload } from "../../agent/cli/client-output.js";
import { PLAN_AHEAD, RELOAD_HELD, RELOAD_STOPPED, createReloader, type BulkSession, type ReloaderDeps } from "../../agent/kamailio/reload.js";
import { RELOAD_PAGE } from "../../agent/kamailio/reload-plan.js";
import { silentLogger } from "../../agent/ops/logger.js";
import { createMetrics } from "../../agent/ops/metrics.js";
import { UL_ADD_CALLID } from "../../agent/kamailio/registrar-input.js";
import { binding, makeTempDirs } from "../support/fixtures.js";
import { HLC_UNITS_PER_MS, type BindingValue, type Change } from "../../agent/contract/records.js";
import { createHlc } from "../../agent/core/hlc.js";
import { createReplica } from "../../agent/core/replica.js";

const nowSec = () => Math.floor(Date.now() / 1000);
const tmp = makeTempDirs("locmesh-reload-");
afterEach(() => tmp.cleanup());

async function storeWith(bindings: number, aliases = 0, path = ":memory:") {
  const store = openSqliteStore({ path, nodeId: "n1" });
  const drafts = [
    ...Array.from({ length: bindings }, (_, i) => ({ kind: "loc" as const, key: `u${i}@example.com`, sub: `sip:u${i}@192.0.2.1:5060`, value: binding({ expires: nowSec() + 600, owner: "n2" }) })),
    ...Array.from({ length: aliases }, (_, i) => ({ kind: "alias" as const, key: `a${i}@example.com`, sub: "", value: { target: `sip:u${i}@example.com` } })),
  ];
  for (let i = 0; i < drafts.length; i += 1000) await store.commitLocal(drafts.slice(i, i + 1000), () => 1);
  return store;
}

function recordingWriter(opts: { failAt?: number } = {}): KamailioWriter & { ops: InstallOp[] } {
  const ops: InstallOp[] = [];
  return {
    ops,
    async write(op) {
      if (opts.failAt !== undefined && ops.length >= opts.failAt) throw new TransientError("Kamailio is unreachable");
      // A write completes on a later turn of the event loop, as socket I/O does.
      await new Promise((r) => setImmediate(r));
      ops.push(op);
      return "rpc";
    },
  };
}

function deps(over: Partial<ReloaderDeps> & Pick<ReloaderDeps, "store" | "writer">): ReloaderDeps {
  return {
    plan: { nodeId: "n1", replicaId: over.store.replicaId, locationTable: "location" },
    preloadDb: null, log: silentLogger(), metrics: createMetrics({ defaults: false }), window: 4, rate: 0,
    ...over,
  };
}

describe("reload", () => {
  it("leaves this node's own registrations stored since Kamailio started to the reconcile, and writes the older ones and everyone else's", async () => {
    const store = openSqliteStore({ path: ":memory:", nodeId: "n1" });
    const startedMs = 1_700_000_000_000;
    const at = (ms: number) => () => ms * HLC_UNITS_PER_MS; // an HLC stamp at that wall time
    const own = (user: string) => ({ kind: "loc" as const, key: `${user}@example.com`, sub: `sip:${user}@192.0.2.1:5060`, value: binding({ expires: nowSec() + 600, owner: "n1" }) });
    await store.commitLocal([own("before")], at(startedMs - 60_000));
    await store.commitLocal([own("atstart")], at(startedMs + 1000)); // within the uptime's whole seconds
    await store.commitLocal([own("since")], at(startedMs + 30_000));
    await store.commitLocal([{ ...own("peer"), value: binding({ expires: nowSec() + 600, owner: "n2" }) }], at(startedMs + 30_000));
    const writer = recordingWriter();
    const contacts = () => writer.ops.map((o) => (o.op === "add" ? o.aor : o.op)).sort();
    await createReloader(deps({ store, writer, kamailioStart: () => ({ startedMs, clockLeadMs: 0 }) })).run("test");
    expect(contacts()).toEqual(["atstart@example.com", "before@example.com", "peer@example.com"]);
    // Stamps running ahead of this host's clock (a peer's fast clock) are moved back first.
    writer.ops.length = 0;
    await createReloader(deps({ store, writer, kamailioStart: () => ({ startedMs, clockLeadMs: 29_000 }) })).run("test");
    expect(contacts()).toEqual(["atstart@example.com", "before@example.com", "peer@example.com", "since@example.com"]);
    // Without a known start, everything.
    writer.ops.length = 0;
    await createReloader(deps({ store, writer })).run("test");
    expect(contacts()).toHaveLength(4);
  });

  it("writes every live record through the bulk session when one opens, and closes it", async () => {
    const store = await storeWith(120, 5);
    const jsonrpcs = recordingWriter();
    const bulkWriter = recordingWriter();
    let closed = 0;
    const session: BulkSession = { writer: bulkWriter, window: 64, close: async () => void closed++ };
    const r = createReloader(deps({ store, writer: jsonrpcs, openBulk: async () => session }));
    const s = await r.run("test");
    expect(s).toMatchObject({ state: "done", channel: "evapi", total: 125, done: 125 });
    expect(bulkWriter.ops).toHaveLength(125);
    expect(bulkWriter.ops.filter((o) => o.op === "add")).toHaveLength(120);
    expect(bulkWriter.ops.filter((o) => o.op === "alias-set")).toHaveLength(5);
    expect(jsonrpcs.ops).toEqual([]);
    expect(closed).toBe(1);
  });

  it("goes through jsonrpcs when the bulk channel cannot be opened (an include without the route)", async () => {
    const store = await storeWith(30);
    const jsonrpcs = recordingWriter();
    const r = createReloader(deps({ store, writer: jsonrpcs, openBulk: async () => Promise.reject(new Error("no answer to hello")) }));
    expect(await r.run("test")).toMatchObject({ state: "done", channel: "jsonrpcs", total: 30, done: 30 });
    expect(jsonrpcs.ops).toHaveLength(30);
  });

  it("skips a write Kamailio refuses outright, goes on with the rest, and counts it in the status", async () => {
    const store = await storeWith(10);
    const written: InstallOp[] = [];
    const writer: KamailioWriter = {
      async write(op) {
        if (op.op === "add" && op.aor === "u3@example.com") throw new KamailioWriteRejectedError("Kamailio refused binding u3@example.com: ul.add q must be -1 or 0..1");
        written.push(op);
        return "rpc";
      },
    };
    const r = createReloader(deps({ store, writer }));
    expect(await r.run("test")).toMatchObject({ state: "done", total: 10, done: 10, refused: 1 });
    expect(written).toHaveLength(9);
    expect(describeReload(r.status())).toMatch(/^done \(test\): 10 writes, 1 of them REFUSED by Kamailio and skipped/);
  });

  it("notes the aliases alias_db's database cannot take for the sink, trying only the first, and finishes with the bindings", async () => {
    const path = join(tmp.make(), "journal.db");
    const store = await storeWith(10, 6, path);
    const written: InstallOp[] = [];
    let aliasTries = 0;
    const writer: KamailioWriter = {
      async write(op) {
        if (op.op === "alias-set") {
          aliasTries++;
          throw new AliasDbUnreachableError("alias_db's database is unreachable");
        }
        written.push(op);
        return "rpc";
      },
    };
    const r = createReloader(deps({ store, writer, window: 1, aliasesWaiting: store.kamailioAliasesWaiting }));
    expect(await r.run("test")).toMatchObject({ state: "done", total: 16, done: 16, aliasesWaiting: 6 });
    expect(written).toHaveLength(10);
    expect(aliasTries).toBe(1);
    // In the journal by the time it is done (read beside the agent's connection).
    const side = new Database(path, { readonly: true });
    expect(side.prepare("SELECT key FROM kamailio_aliases_waiting ORDER BY key").pluck().all()).toEqual([0, 1, 2, 3, 4, 5].map((i) => aliasKey(`a${i}@example.com`)));
    side.close();
    expect(describeReload(r.status())).toMatch(/^done \(test\): 16 writes, 6 of them aliases NOT WRITTEN: alias_db's database did not answer; they are written once it does, /);
    await store.close();
    // Without the set to note them in, such an alias fails the reload, as any write that must wait.
    const other = await storeWith(2, 1);
    expect(await createReloader(deps({ store: other, writer })).run("test")).toMatchObject({ state: "failed", error: "alias_db's database is unreachable" });
  });

  it("does not open the bulk channel when there is nothing to write", async () => {
    const store = await storeWith(0);
    let opened = 0;
    const r = createReloader(deps({ store, writer: recordingWriter(), openBulk: async () => { opened++; return null; } }));
    expect(await r.run("test")).toMatchObject({ state: "done", total: 0, done: 0 });
    expect(opened).toBe(0);
  });

  it("starts writing with the first page of the plan, not after the last", async () => {
    const store = await storeWith(12_000);
    const writer = recordingWriter();
    const events: string[] = [];
    const page: typeof store.page = async (kind, q) => {
      events.push(`page ${kind} after ${writer.ops.length} writes`);
      return store.page(kind, q);
    };
    const r = createReloader(deps({ store: { ...store, page }, writer }));
    const s = await r.run("test");
    expect(s).toMatchObject({ state: "done", total: 12_000, done: 12_000 });
    // The second and later pages are read while the first page's writes run.
    expect(events[0]).toBe("page loc after 0 writes");
    expect(events.slice(1).some((e) => !e.endsWith(" 0 writes"))).toBe(true);
  });

  it("plans at most PLAN_AHEAD writes ahead of the writing, and shows the whole total from the start", async () => {
    const n = 12_000;
    const store = await storeWith(n);
    let planned = 0;
    let furthestAhead = 0;
    const totals: number[] = [];
    const writer = recordingWriter();
    const page: typeof store.page = async (kind, q) => {
      const p = await store.page(kind, q);
      planned += p.items.length;
      furthestAhead = Math.max(furthestAhead, planned - writer.ops.length);
      return p;
    };
    const r = createReloader(deps({ store: { ...store, page }, writer, window: 64 }));
    const run = r.run("test");
    // Until it ends either way: a reload that failed must fail the test, not spin to the timeout.
    while (r.status().state !== "done" && r.status().state !== "failed") {
      if (r.status().state === "running") totals.push(r.status().total);
      await new Promise((res) => setImmediate(res));
    }
    expect(r.status()).toMatchObject({ state: "done", error: null });
    expect(await run).toMatchObject({ state: "done", total: n, done: n });
    // Each record written once, in the journal's order.
    const aors = writer.ops.map((o) => (o.op === "add" ? o.aor : ""));
    expect(new Set(aors).size).toBe(n);
    expect(aors).toEqual([...aors].sort());
    // Ahead by the writes in flight (the window) plus the backlog the planner waits on, plus a page.
    expect(furthestAhead).toBeLessThanOrEqual(PLAN_AHEAD + 64 + RELOAD_PAGE);
    expect(furthestAhead).toBeGreaterThan(RELOAD_PAGE);
    expect(totals.length).toBeGreaterThan(10);
    expect(totals.every((t) => t === n)).toBe(true);
  });

  it("tells its status when it starts, before the first write, after each write and when it ends (reload-mark.ts keeps it)", async () => {
    const store = await storeWith(30);
    const writer = recordingWriter();
    const seen: { state: string; done: number; written: number }[] = [];
    await createReloader(deps({ store, writer, onStatus: (s) => void seen.push({ state: s.state, done: s.done, written: writer.ops.length }) })).run("test");
    expect(seen[0]).toEqual({ state: "running", done: 0, written: 0 });
    expect(seen.filter((s) => s.state === "running").map((s) => s.done)).toEqual(Array.from({ length: 31 }, (_, i) => i));
    expect(seen.at(-1)).toMatchObject({ state: "done", done: 30 });
    const failed: string[] = [];
    await createReloader(deps({ store, writer: recordingWriter({ failAt: 5 }), onStatus: (s) => void failed.push(s.state) })).run("test");
    expect(failed.at(-1)).toBe("failed");
  });

  it("ends as failed at the first transient failure, with the session closed, and runs again from the start", async () => {
    const store = await storeWith(50);
    let closed = 0;
    const failing = recordingWriter({ failAt: 20 });
    const r = createReloader(deps({ store, writer: recordingWriter(), openBulk: async () => ({ writer: failing, window: 8, close: async () => void closed++ }) }));
    const s = await r.run("test");
    expect(s.state).toBe("failed");
    expect(s.error).toMatch(/unreachable/);
    expect(s.done).toBeLessThan(50);
    expect(closed).toBe(1);
    const ok = recordingWriter();
    const again = createReloader(deps({ store, writer: ok }));
    expect(await again.run("retry")).toMatchObject({ state: "done", channel: "jsonrpcs", done: 50 });
  });

  it("with a preloading Kamailio, removes the agent's stale rows and phones the journal removed, and keeps phones it never heard of", async () => {
    const store = await storeWith(0);
    const now = nowSec();
    // The journal removed carol's phone at `now` (a tombstone); it never heard of dave's.
    const [carol] = await store.commitLocal([{ kind: "loc", key: "carol@example.com", sub: "sip:carol@192.0.2.3", value: binding({ expires: now + 600 }) }], () => (now - 60) * 1000 * 1024);
    await store.commitLocal([{ kind: "loc", key: "carol@example.com", sub: "sip:carol@192.0.2.3", value: null }], () => now * 1000 * 1024);
    expect(carol).not.toBeNull();
    const row = (aor: string, contact: string, callid: string, lastModified: number) => ({
      aor, contact, callid, lastModified, expires: now + 300, q: -1, path: "", received: "", socket: "", flags: 0, cflags: 0, methods: 0, cseq: 1, userAgent: "", instance: "", regId: 0, ruid: `r-${aor}`,
    });
    const rows = [
      row("erin@example.com", "sip:erin@192.0.2.5", UL_ADD_CALLID, now - 100), // installed by the agent, gone from the journal
      row("carol@example.com", "sip:carol@192.0.2.3", "phone-carol", now - 60), // removed in the journal after Kamailio's last change
      row("dave@example.com", "sip:dave@192.0.2.4", "phone-dave", now - 30), // registered while the agent was away
    ];
    const preloadDb = { listLocations: async () => rows } as unknown as ReloaderDeps["preloadDb"];
    const writer = recordingWriter();
    const s = await createReloader(deps({ store, writer, preloadDb })).run("test");
    expect(s.state).toBe("done");
    expect(writer.ops.map((o) => (o.op === "rm-contact" ? o.contact : o.op)).sort()).toEqual(["sip:carol@192.0.2.3", "sip:erin@192.0.2.5"]);
  });

  it("with a preloading Kamailio, never removes a phone the journal holds live, one registered here since Kamailio started included", async () => {
    // The dry run's lost disk on a db_mode 2 node: the journal, new and caught up from the peers,
    // holds alice (registered here after Kamailio started) live; Kamailio's table has her row,
    // written in the same second. The reload leaves her to Kamailio, and must not remove her.
    const store = await storeWith(0);
    const now = nowSec();
    const startedMs = (now - 600) * 1000;
    const registeredMs = (now - 60) * 1000 + 700;
    await store.commitLocal([{ kind: "loc", key: "alice@example.com", sub: "sip:alice@192.0.2.1", value: binding({ expires: now + 600, owner: "n1" }) }], () => registeredMs * HLC_UNITS_PER_MS);
    const rows = [{
      aor: "alice@example.com", contact: "sip:alice@192.0.2.1", callid: "phone-alice", lastModified: Math.floor(registeredMs / 1000), expires: now + 600,
      q: -1, path: "", received: "", socket: "", flags: 0, cflags: 0, methods: 0, cseq: 1, userAgent: "", instance: "", regId: 0, ruid: "r-alice",
    }];
    const preloadDb = { listLocations: async () => rows } as unknown as ReloaderDeps["preloadDb"];
    const writer = recordingWriter();
    const s = await createReloader(deps({ store, writer, preloadDb, kamailioStart: () => ({ startedMs, clockLeadMs: 0 }) })).run("test");
    expect(s.state).toBe("done");
    expect(writer.ops).toEqual([]);
  });

  it("with a preloading Kamailio, writes a binding whose row matches when this agent wrote that row while jsonrpcs failed (unseen), and writes everything when asked for the whole", async () => {
    const store = await storeWith(2);
    const now = nowSec();
    // Both of n2's bindings have a matching row in Kamailio's database.
    const rows = await Promise.all([0, 1].map(async (i) => {
      const c = (await store.get("loc", `u${i}@example.com`, `sip:u${i}@192.0.2.1:5060`))!;
      const want = ulBinding(c.sub, c.value as BindingValue, "n1");
      return { aor: c.key, contact: c.sub, callid: UL_ADD_CALLID, lastModified: now - 10, expires: want.expires, q: want.q, path: want.path, received: want.received,
        socket: "", flags: 0, cflags: 0, methods: 0, cseq: 1, userAgent: "", instance: "", regId: 0, ruid: `r-${i}` };
    }));
    const preloadDb = { listLocations: async () => rows } as unknown as ReloaderDeps["preloadDb"];
    const added = (w: ReturnType<typeof recordingWriter>) => w.ops.map((o) => (o.op === "add" ? o.aor : o.op)).sort();

    const byDifference = recordingWriter();
    expect(await createReloader(deps({ store, writer: byDifference, preloadDb })).run("restart")).toMatchObject({ state: "done", unchanged: 2 });
    expect(added(byDifference)).toEqual([]);

    // u1's row was the fallback's: the running Kamailio never loaded it.
    const unseenKey = bindingKey("u1@example.com", "sip:u1@192.0.2.1:5060");
    const withUnseen = recordingWriter();
    expect(await createReloader(deps({ store, writer: withUnseen, preloadDb, unseen: (k) => k === unseenKey })).run("first contact")).toMatchObject({ state: "done", unchanged: 1 });
    expect(added(withUnseen)).toEqual(["u1@example.com"]);

    const whole = recordingWriter();
    expect(await createReloader(deps({ store, writer: whole, preloadDb })).run("requested", { whole: true })).toMatchObject({ state: "done", unchanged: 0, whole: true });
    expect(added(whole)).toEqual(["u0@example.com", "u1@example.com"]);

    // Asked for the whole while one by difference runs: it does not join that one, it runs after it.
    const both = recordingWriter();
    const reloader = createReloader(deps({ store, writer: both, preloadDb }));
    const byDiff = reloader.run("restart");
    const asked = reloader.run("requested", { whole: true });
    expect(await byDiff).toMatchObject({ state: "done", whole: false, unchanged: 2 });
    expect(await asked).toMatchObject({ state: "done", whole: true, unchanged: 0, reason: "requested" });
    expect(added(both)).toEqual(["u0@example.com", "u1@example.com"]);
    // One by difference asked for while a whole one runs joins it: the whole covers it.
    const joined = createReloader(deps({ store, writer: recordingWriter(), preloadDb }));
    const first = joined.run("requested", { whole: true });
    expect(joined.run("restart")).toBe(first);
    await first;
  });

  describe("records that change while it runs", () => {
    /** A replica over the store, and the reload's onStored wired to it as the attachment does. */
    function withReplica(store: Awaited<ReturnType<typeof storeWith>>) {
      const replica = createReplica({ store, hlc: createHlc({ wallMillis: Date.now }), log: silentLogger() });
      const onStored: ReloaderDeps["onStored"] = (listener) => replica.onApplied(listener);
      return { replica, onStored };
    }
    const removal = (i: number) => ({ kind: "loc" as const, key: `u${i}@example.com`, sub: `sip:u${i}@192.0.2.1:5060`, value: null });
    const lastFor = (ops: InstallOp[], aor: string) => ops.filter((o) => o.op !== "alias-set" && o.op !== "alias-rm" && o.aor === aor).at(-1);

    it("does not write its planned version of a record removed meanwhile: that would bring the removed binding back", async () => {
      const store = await storeWith(1000);
      const { replica, onStored } = withReplica(store);
      const writer = recordingWriter();
      let removed = false;
      const slow: KamailioWriter = {
        async write(op, now) {
          if (!removed && writer.ops.length === 10) {
            removed = true;
            // Planned already (the first page), not written yet; the sink writes this removal itself.
            await replica.commit([removal(200)]);
          }
          return writer.write(op, now);
        },
      };
      const s = await createReloader(deps({ store, writer: slow, onStored })).run("test");
      expect(s).toMatchObject({ state: "done", done: 1000 });
      expect(writer.ops.filter((o) => o.op === "add" && o.aor === "u200@example.com")).toEqual([]);
      expect(writer.ops.filter((o) => o.op === "add")).toHaveLength(999);
    });

    it("writes a record stored before the position it starts from though its notice comes after (the sink leaves it to the reload)", async () => {
      const store = await storeWith(10);
      const u3 = (await store.get("loc", "u3@example.com", "sip:u3@192.0.2.1:5060"))!;
      let notify: (changes: readonly Change[]) => void = () => undefined;
      const onStored: ReloaderDeps["onStored"] = (listener) => {
        notify = listener;
        return () => undefined;
      };
      // The journal commits, then tells its listeners: here u3's notice comes as the position is read.
      const versionVector = async () => {
        const vv = await store.versionVector();
        notify([u3]);
        return vv;
      };
      const writer = recordingWriter();
      const r = createReloader(deps({ store: { ...store, versionVector }, writer, onStored }));
      expect(await r.run("test")).toMatchObject({ state: "done", done: 10 });
      expect(writer.ops.filter((o) => o.op === "add")).toHaveLength(10);
      expect(r.reach()).toEqual({ last: { upTo: { [store.replicaId]: 10 }, state: "done" }, done: { [store.replicaId]: 10 } });
    });

    it("writes the journal's version again when the record changed while its write was on the way", async () => {
      const store = await storeWith(50);
      const { replica, onStored } = withReplica(store);
      const writer = recordingWriter();
      const racing: KamailioWriter = {
        async write(op, now) {
          // The phone de-registers while its binding's write is in flight.
          if (op.op === "add" && op.aor === "u5@example.com") await replica.commit([removal(5)]);
          return writer.write(op, now);
        },
      };
      const s = await createReloader(deps({ store, writer: racing, onStored })).run("test");
      expect(s.state).toBe("done");
      expect(lastFor(writer.ops, "u5@example.com")).toMatchObject({ op: "rm-contact", contact: "sip:u5@192.0.2.1:5060" });
      expect(lastFor(writer.ops, "u6@example.com")).toMatchObject({ op: "add" });
    });

    it("gives each write the clock of its own moment, not the reload's start (ul.add's expires is relative)", async () => {
      const store = await storeWith(30);
      const t0 = Math.floor(Date.now() / 1000) * 1000;
      let t = t0;
      const seen: number[] = [];
      const writer: KamailioWriter = {
        async write(_op, now) {
          seen.push(now);
          t += 1000;
          await new Promise((r) => setImmediate(r));
          return "rpc";
        },
      };
      const s = await createReloader(deps({ store, writer, window: 1, nowMs: () => t })).run("test");
      expect(s.state).toBe("done");
      expect(seen[0]).toBe(t0 / 1000);
      expect(seen.at(-1)).toBe(t0 / 1000 + 29);
    });
  });
});


describe("reload while this node's journal is behind its peers", () => {
  it("does not start, and one running stops before its next write, saying why", async () => {
    const store = await storeWith(200);
    const writer = recordingWriter();
    let behind = true;
    const r = createReloader(deps({ store, writer, held: () => behind }));
    expect(await r.run("kamailio restarted")).toMatchObject({ state: "failed", done: 0, error: RELOAD_HELD });
    expect(writer.ops).toEqual([]);

    // The journal is found behind while the 20th write is under way.
    behind = false;
    const flagging: KamailioWriter = {
      async write(op, now) {
        if (writer.ops.length === 19) behind = true;
        return writer.write(op, now);
      },
    };
    const s = await createReloader(deps({ store, writer: flagging, held: () => behind })).run("kamailio restarted");
    expect(s).toMatchObject({ state: "failed", error: RELOAD_HELD });
    // The writes already under way (window 4) finish; none starts after.
    expect(writer.ops.length).toBeGreaterThanOrEqual(20);
    expect(writer.ops.length).toBeLessThanOrEqual(24);
    expect(s.done).toBe(writer.ops.length);
  });
});

describe("reload while the agent stops", () => {
  it("stops before its next write and refuses to start again, so that a stop does not wait for the whole table", async () => {
    const store = await storeWith(200);
    const writer = recordingWriter();
    let r: ReturnType<typeof createReloader> | null = null;
    const stopping: KamailioWriter = {
      async write(op, now) {
        if (writer.ops.length === 19) r!.stop();
        return writer.write(op, now);
      },
    };
    r = createReloader(deps({ store, writer: stopping }));
    const s = await r.run("kamailio restarted");
    expect(s).toMatchObject({ state: "failed", error: RELOAD_STOPPED });
    expect(writer.ops.length).toBeGreaterThanOrEqual(20);
    expect(writer.ops.length).toBeLessThanOrEqual(24);
    expect(s.done).toBe(writer.ops.length);
    // After stop() no reload starts (a due one queued behind the stop, or resync --kamailio).
    const before = writer.ops.length;
    expect(await r.run("redo")).toMatchObject({ state: "failed", done: 0, error: RELOAD_STOPPED });
    expect(writer.ops.length).toBe(before);
  });

  it("stops planning too: a reload by difference with nothing to write does not read the whole journal first", async () => {
    const store = await storeWith(2000);
    // Kamailio's database already holds every binding as the journal does: nothing to write.
    const all = await store.page("loc", { search: "", after: "", limit: 5000, nowSec: nowSec(), countTotal: false });
    const rows = all.items.map((c) => {
      const want = ulBinding(c.sub, c.value as BindingValue, "n1");
      return { aor: c.key, contact: c.sub, callid: "phone", lastModified: nowSec(), expires: want.expires, q: want.q, path: want.path, received: want.received, socket: "", flags: 0, cflags: 0, methods: 0, cseq: 1, userAgent: "", instance: "", regId: 0, ruid: `r-${c.key}` };
    });
    const preloadDb = { listLocations: async () => rows } as unknown as ReloaderDeps["preloadDb"];
    let pages = 0;
    let r: ReturnType<typeof createReloader> | null = null;
    const counting = Object.assign(Object.create(store) as typeof store, {
      page: (...args: Parameters<typeof store.page>) => {
        if (++pages === 1) r!.stop();
        return store.page(...args);
      },
    });
    const writer = recordingWriter();
    r = createReloader(deps({ store: counting, writer, preloadDb }));
    const s = await r.run("kamailio restarted");
    expect(s).toMatchObject({ state: "failed", error: RELOAD_STOPPED });
    expect(writer.ops).toEqual([]);
    // 2,000 bindings are 8 pages of RELOAD_PAGE; the stop came during the first.
    expect(pages).toBeLessThanOrEqual(2);
  });
});
