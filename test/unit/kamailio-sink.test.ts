/**
 * The Kamailio sink on a real journal: what it reads of this node's own changes, its behaviour
 * while the agent's disk is full, and what it leaves to a reload into Kamailio.
 */
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterEach, describe, expect, it } from "vitest";
import { TransientError } from "../../agent/core/transient.js";
import { openSqliteStore } from "../../agent/journal/sqlite-store.js";
import type { InstallCursor } from "../../agent/kamailio/install-cursor.js";
import type { ReplicaStore } from "../../agent/core/store.js";
import { createKamailioSink, type KamailioSink, type KamailioSinkDeps } from "../../agent/kamailio/kamailio-sink.js";
import { aliasKey, type InstallOp } from "../../agent/kamailio/install-plan.js";
import { AliasDbUnreachableError, KamailioCouldNotStoreError, KamailioWriteRejectedError, missedByRunningKamailio } from "../../agent/kamailio/kamailio-writer.js";
import { createLogger, silentLogger } from "../../agent/ops/logger.js";
import { createMetrics } from "../../agent/ops/metrics.js";
import { aliasDraft, batchOf, binding, makeTempDirs, remoteChange } from "../support/fixtures.js";

/** A cursor in memory whose save() fails as a full disk makes it fail (or not, with `fails` false). */
function fullDiskCursor(fails = true): InstallCursor & { saves: number } {
  let vv: Record<string, number> = {};
  return {
    saves: 0,
    get: () => vv,
    advance(origin, seq) {
      if (seq > (vv[origin] ?? 0)) vv[origin] = seq;
    },
    reset(next) {
      vv = { ...next };
    },
    save() {
      this.saves++;
      if (!fails) return;
      throw Object.assign(new Error("ENOSPC: no space left on device, write"), { code: "ENOSPC" });
    },
  };
}

/**
 * A writer that cannot store aliases (alias_db's database away) until heal(), each failure after
 * `failAfterMs` (a connect time-out); what it wrote, and how many alias writes it was asked for.
 */
function aliasesCannotBeStored(failAfterMs = 0) {
  const written: string[] = [];
  const tries = { aliases: 0 };
  let down = true;
  const writer: KamailioSinkDeps["writer"] = {
    write: async (op) => {
      const aliasOp = op.op === "alias-set" || op.op === "alias-rm";
      if (aliasOp) tries.aliases++;
      if (down && aliasOp) {
        if (failAfterMs > 0) await new Promise((r) => setTimeout(r, failAfterMs));
        throw new AliasDbUnreachableError("alias_db's database is unreachable");
      }
      written.push(op.op === "add" ? `add ${op.aor}` : op.op === "alias-set" ? `alias-set ${op.alias} ${op.target}` : op.op === "alias-rm" ? `alias-rm ${op.alias}` : op.op);
      return "database";
    },
  };
  return { writer, written, tries, heal: () => void (down = false) };
}

let sink: KamailioSink | null = null;
const tmpDirs = makeTempDirs("locmesh-sink-");
afterEach(async () => {
  await sink?.close();
  sink = null;
  tmpDirs.cleanup();
});

/** A sink of node n2 over `store`, with the rest of its deps given or defaulted; kept for afterEach. */
function sinkOf(store: ReplicaStore, over: Partial<KamailioSinkDeps> & Pick<KamailioSinkDeps, "writer">): KamailioSink {
  sink = createKamailioSink({
    store, cursor: fullDiskCursor(false), log: silentLogger(), metrics: createMetrics({ defaults: false }),
    plan: { nodeId: "n2", replicaId: store.replicaId, locationTable: "location" },
    ...over,
  });
  return sink;
}

describe("kamailio sink and this node's own changes", () => {
  it("writes this node's aliases, reads past the bindings its Kamailio reported, and writes every change of a peer's", async () => {
    const store = openSqliteStore({ path: ":memory:", nodeId: "n2" });
    const binding = (contact: string, owner: string) => ({ kind: "loc" as const, key: "alice@example.com", sub: contact, value: { expires: 0, q: -1, path: "", received: "", socket: "", callid: "c", cseq: 1, userAgent: "", flags: 0, cflags: 0, methods: 4294967295, instance: "", regId: 0, owner, ruid: "r" } });
    const alias = (key: string) => ({ kind: "alias" as const, key, sub: "", value: { target: "sip:alice@example.com" } });
    // 7 of this node's changes: bindings (never written back) around two aliases.
    await store.commitLocal([binding("sip:a@192.0.2.1", "n2"), binding("sip:b@192.0.2.1", "n2"), alias("one@example.com"), binding("sip:c@192.0.2.1", "n2"), alias("two@example.com"), binding("sip:d@192.0.2.1", "n2"), binding("sip:e@192.0.2.1", "n2")], () => 1);
    const peer = "peer-replica";
    await store.applyRemote({ origin: peer, after: 0, upTo: 2, changes: [{ ...binding("sip:p@192.0.2.9", "n1"), hlc: 2, origin: peer, seq: 1 }, { ...alias("three@example.com"), hlc: 3, origin: peer, seq: 2 }] });
    const cursor = fullDiskCursor(false);
    const written: string[] = [];
    sink = createKamailioSink({
      store, cursor, log: silentLogger(), metrics: createMetrics({ defaults: false }),
      plan: { nodeId: "n2", replicaId: store.replicaId, locationTable: "location" },
      writer: {
        async write(op) {
          written.push(op.op === "alias-set" ? `alias ${op.alias}` : op.op === "add" ? `add ${op.binding.contact}` : op.op);
          return "rpc";
        },
      },
      batchSize: 1,
    });
    sink.start();
    await sink.drained();
    expect(written.sort()).toEqual(["add sip:p@192.0.2.9", "alias one@example.com", "alias three@example.com", "alias two@example.com"]);
    expect(cursor.get()).toEqual({ [store.replicaId]: 7, [peer]: 2 });
    expect(await sink.pending()).toBe(0);
  });
});

describe("kamailio sink on a full disk", () => {
  it("keeps writes pending while Kamailio is unreachable and the cursor cannot be saved", async () => {
    const store = openSqliteStore({ path: ":memory:", nodeId: "n2" });
    await store.commitLocal([{ kind: "alias", key: "nick@example.com", sub: "", value: { target: "sip:alice@example.com" } }], () => 1);
    const cursor = fullDiskCursor();
    let attempts = 0;
    const unhandled: unknown[] = [];
    const onUnhandled = (err: unknown) => unhandled.push(err);
    process.on("unhandledRejection", onUnhandled);
    try {
      sink = createKamailioSink({
        store, cursor, log: silentLogger(), metrics: createMetrics({ defaults: false }),
        plan: { nodeId: "n2", replicaId: store.replicaId, locationTable: "location" },
        writer: {
          async write() {
            attempts++;
            throw new TransientError("Kamailio is unreachable");
          },
        },
        retry: { minMs: 5, maxMs: 5 },
      });
      sink.start();
      await new Promise((r) => setTimeout(r, 100));
      expect(attempts).toBeGreaterThan(2);
      expect(cursor.saves).toBeGreaterThan(0);
      expect(sink.status()).toMatchObject({ state: "waiting", lastError: "Kamailio is unreachable" });
      expect(await sink.pending()).toBe(1);
      expect(unhandled).toEqual([]);
    } finally {
      process.off("unhandledRejection", onUnhandled);
    }
  });
});

/** An alias draft; a null target removes it. */
const alias = (key: string, target: string | null = "sip:t@example.com") => ({ kind: "alias" as const, key, sub: "", value: target === null ? null : { target } });

describe("kamailio sink when Kamailio cannot keep a write", () => {
  it("goes on with the rest of the batch past an add Kamailio could not store, and retries it until it goes in", async () => {
    const store = openSqliteStore({ path: ":memory:", nodeId: "n2" });
    await store.commitLocal([alias("a@example.com", "sip:t@example.com"), alias("b@example.com", "sip:t@example.com")], () => 1);
    await store.commitLocal([alias("a@example.com", null), alias("c@example.com", "sip:t@example.com")], () => 2);
    const cursor = fullDiskCursor(false);
    const written: string[] = [];
    let memoryFull = true;
    const s = sinkOf(store, {
      cursor,
      writer: {
        async write(op) {
          const what = op.op === "alias-set" ? `set ${op.alias}` : op.op === "alias-rm" ? `rm ${op.alias}` : op.op;
          if (memoryFull && op.op === "alias-set" && op.alias === "b@example.com") throw new KamailioCouldNotStoreError("Kamailio could not store it");
          written.push(what);
          return "rpc";
        },
      },
      window: 1, // one at a time: without going on, nothing after b's write would be tried
      retry: { minMs: 300, maxMs: 300 },
    });
    s.start();
    await expect.poll(() => s.status().state).toBe("waiting");
    // The batch in journal order: b (seq 2), a's removal (seq 3, its latest), c. b failed first; a and c went in.
    expect(written).toEqual(["rm a@example.com", "set c@example.com"]);
    expect(s.status().lastError).toBe("Kamailio could not store it");
    expect(cursor.get()).toEqual({});
    expect(await s.pending()).toBe(3);
    memoryFull = false;
    await s.drained();
    expect(written.slice(-3)).toEqual(["set b@example.com", "rm a@example.com", "set c@example.com"]);
    expect(cursor.get()).toEqual({ [store.replicaId]: 4 });
  });

  it("goes on with other origins past a batch that holds a write that could not be stored (alias_db's database away), and retries it", async () => {
    const store = openSqliteStore({ path: ":memory:", nodeId: "n2" });
    const A = "a~00000000000a";
    const B = "b~00000000000b";
    await store.applyRemote(batchOf(A, 0, 1, [remoteChange(A, 1, 10, alias("x@example.com", "sip:t@example.com"))]));
    await store.applyRemote(batchOf(B, 0, 1, [remoteChange(B, 1, 11, { kind: "loc", key: "bob@example.com", sub: "sip:bob@192.0.2.2", value: binding({ owner: "b", expires: Math.floor(Date.now() / 1000) + 600 }) })]));
    const w = aliasesCannotBeStored();
    const cursor = fullDiskCursor(false);
    const s = sinkOf(store, { cursor, writer: w.writer, retry: { minMs: 300, maxMs: 300 } });
    const written = w.written;
    s.start();
    await expect.poll(() => s.status().state).toBe("waiting");
    // B's binding went in although A's alias, read first, could not.
    expect(written).toEqual(["add bob@example.com"]);
    expect(await s.pending()).toBe(1);
    expect(cursor.get()).toEqual({ [B]: 1 });
    w.heal();
    await s.drained();
    expect(cursor.get()).toEqual({ [A]: 1, [B]: 1 });
  });

  it("passes an alias alias_db's database cannot take, noted in the journal, so that its origin's later bindings go in; writes it as the journal holds it once the database is back, also after a restart", async () => {
    const path = join(tmpDirs.make(), "journal.db");
    let store = openSqliteStore({ path, nodeId: "n2" });
    const A = "a~00000000000a";
    const expires = Math.floor(Date.now() / 1000) + 600;
    const bob = (i: number) => ({ kind: "loc" as const, key: `bob${i}@example.com`, sub: "sip:bob@192.0.2.2", value: binding({ owner: "a", expires }) });
    // The alias first, then five bindings of the same origin: three batches of two.
    await store.applyRemote(batchOf(A, 0, 6, [remoteChange(A, 1, 10, alias("x@example.com", "sip:t1@example.com")), ...[1, 2, 3, 4, 5].map((i) => remoteChange(A, i + 1, 10 + i, bob(i)))]));
    const w = aliasesCannotBeStored();
    const cursor = fullDiskCursor(false);
    let s = sinkOf(store, { cursor, writer: w.writer, batchSize: 2, aliasesWaiting: store.kamailioAliasesWaiting, retry: { minMs: 60_000, maxMs: 60_000 }, aliasRetry: { minMs: 60_000, maxMs: 60_000 } });
    s.start();
    await expect.poll(() => w.written.length).toBe(5);
    expect(w.written).toEqual([1, 2, 3, 4, 5].map((i) => `add bob${i}@example.com`));
    expect(cursor.get()).toEqual({ [A]: 6 });
    // Not a waiting sink: its other writes go on; the aliases that wait are said apart.
    await expect.poll(() => s.status().aliasesWaiting?.count).toBe(1);
    expect(s.status()).toMatchObject({ state: "idle", lastError: null, aliasesWaiting: { count: 1, error: "alias_db's database is unreachable" } });
    expect(await s.pending()).toBe(1);
    // While it waits the alias changes again, and that write cannot go in either.
    await store.applyRemote(batchOf(A, 6, 7, [remoteChange(A, 7, 20, alias("x@example.com", "sip:t2@example.com"))]));
    s.kick();
    await expect.poll(() => cursor.get()[A]).toBe(7);
    expect(await s.pending()).toBe(1);
    expect(w.written).toHaveLength(5);

    // The agent restarts: the note was in the journal, not only in memory.
    await s.close();
    sink = null;
    await store.close();
    store = openSqliteStore({ path, nodeId: "n2" });
    expect(store.kamailioAliasesWaiting.size()).toBe(1);
    await store.applyRemote(batchOf(A, 7, 8, [remoteChange(A, 8, 21, bob(6))]));
    w.heal();
    s = sinkOf(store, { cursor, writer: w.writer, batchSize: 2, aliasesWaiting: store.kamailioAliasesWaiting, retry: { minMs: 60_000, maxMs: 60_000 }, aliasRetry: { minMs: 60_000, maxMs: 60_000 } });
    await s.drained();
    // The binding that came meanwhile (the batches go first), then the alias as the journal holds it now, once.
    expect(w.written.slice(5)).toEqual(["add bob6@example.com", "alias-set x@example.com sip:t2@example.com"]);
    expect(await s.pending()).toBe(0);
    expect(store.kamailioAliasesWaiting.size()).toBe(0);
    expect(s.status().state).toBe("idle");
  });

  it("counts an alias once in pending() when it waits for alias_db's database and its batch, failed by another write, is still past the cursor", async () => {
    const store = openSqliteStore({ path: ":memory:", nodeId: "n2" });
    const A = "a~00000000000a";
    const B = "b~00000000000b";
    const expires = Math.floor(Date.now() / 1000) + 600;
    const bob = { kind: "loc" as const, key: "bob@example.com", sub: "sip:bob@192.0.2.2", value: binding({ owner: "a", expires }) };
    // A: an alias, then a binding Kamailio cannot take (neither jsonrpcs nor its database answer).
    await store.applyRemote(batchOf(A, 0, 2, [remoteChange(A, 1, 10, alias("x@example.com", "sip:t1@example.com")), remoteChange(A, 2, 11, bob)]));
    // B: an alias noted as waiting in an earlier run, whose batch went past (only the note counts).
    await store.applyRemote(batchOf(B, 0, 1, [remoteChange(B, 1, 12, alias("y@example.com", "sip:t2@example.com"))]));
    store.kamailioAliasesWaiting.add(aliasKey("y@example.com"));
    store.kamailioAliasesWaiting.flush();
    const cursor = fullDiskCursor(false);
    cursor.advance(B, 1);
    let kamailioUp = false;
    const s = sinkOf(store, {
      cursor, window: 1, aliasesWaiting: store.kamailioAliasesWaiting, retry: { minMs: 60_000, maxMs: 60_000 }, aliasRetry: { minMs: 60_000, maxMs: 60_000 },
      writer: {
        write: async (op) => {
          if (op.op === "alias-set") throw new AliasDbUnreachableError("alias_db's database is unreachable");
          if (!kamailioUp) throw new TransientError("jsonrpcs and the database are both unreachable");
          return "rpc";
        },
      },
    });
    s.start();
    await expect.poll(() => s.status().state).toBe("waiting");
    // x was noted, but the batch failed after it: the cursor did not move past it.
    expect(store.kamailioAliasesWaiting.size()).toBe(2);
    expect(cursor.get()).toEqual({ [B]: 1 });
    // x and bob (past the cursor, x once), and y (waiting only): three writes, not four.
    expect(await s.pending()).toBe(3);
    kamailioUp = true;
    await s.close();
    sink = null;
    // Only once the waiting sink retries does the cursor pass x; then the notes alone count it.
    const s2 = sinkOf(store, { cursor, writer: { write: async (op) => (op.op === "alias-set" ? Promise.reject(new AliasDbUnreachableError("alias_db's database is unreachable")) : "rpc") }, aliasesWaiting: store.kamailioAliasesWaiting, aliasRetry: { minMs: 60_000, maxMs: 60_000 } });
    s2.start();
    await expect.poll(() => cursor.get()[A]).toBe(2);
    expect(await s2.pending()).toBe(2);
  });

  it("answers pending() without the once-only check when the waiting notes cannot be read (a full disk), rather than failing status", async () => {
    const store = openSqliteStore({ path: ":memory:", nodeId: "n2" });
    const A = "a~00000000000a";
    await store.applyRemote(batchOf(A, 0, 1, [remoteChange(A, 1, 10, alias("x@example.com", "sip:t1@example.com"))]));
    const notes = store.kamailioAliasesWaiting;
    notes.add(aliasKey("x@example.com"));
    const unreadable = { ...notes, list: () => { throw new Error("SQLITE_FULL: database or disk is full"); } };
    const s = sinkOf(store, { writer: aliasesCannotBeStored().writer, aliasesWaiting: unreadable });
    // x past the cursor and noted: counted twice here, as before the check existed.
    expect(await s.pending()).toBe(2);
  });

  it("tries waiting aliases again on its own back-off while bindings go on, and a removal made meanwhile goes in as the removal", async () => {
    const store = openSqliteStore({ path: ":memory:", nodeId: "n2" });
    const A = "a~00000000000a";
    await store.applyRemote(batchOf(A, 0, 1, [remoteChange(A, 1, 10, alias("x@example.com"))]));
    const w = aliasesCannotBeStored();
    const cursor = fullDiskCursor(false);
    const s = sinkOf(store, { cursor, writer: w.writer, aliasesWaiting: store.kamailioAliasesWaiting, aliasRetry: { minMs: 100, maxMs: 100 } });
    s.start();
    await expect.poll(() => s.status().aliasesWaiting?.count).toBe(1);
    await store.applyRemote(batchOf(A, 1, 2, [remoteChange(A, 2, 11, alias("x@example.com", null))]));
    s.kick();
    // The removal is passed too (noted under the same key), before the database comes back.
    await expect.poll(() => cursor.get()[A]).toBe(2);
    expect(store.kamailioAliasesWaiting.size()).toBe(1);
    w.heal();
    // No kick: the sink's own retry finds the database back.
    await expect.poll(() => s.status().aliasesWaiting).toBe(null);
    expect(w.written).toEqual(["alias-rm x@example.com"]);
    expect(await s.pending()).toBe(0);
  });

  it("tries one waiting alias at a time while alias_db's database stays away, and passes new aliases untried until one goes in", async () => {
    const store = openSqliteStore({ path: ":memory:", nodeId: "n2" });
    const A = "a~00000000000a";
    await store.applyRemote(batchOf(A, 0, 5, [1, 2, 3, 4, 5].map((i) => remoteChange(A, i, 10 + i, alias(`x${i}@example.com`)))));
    // Each failure takes 20 ms, so the window's writes are all in flight before the first fails.
    const w = aliasesCannotBeStored(20);
    const cursor = fullDiskCursor(false);
    const s = sinkOf(store, { cursor, writer: w.writer, aliasesWaiting: store.kamailioAliasesWaiting, aliasRetry: { minMs: 60_000, maxMs: 60_000 } });
    s.start();
    await expect.poll(() => s.status().aliasesWaiting?.count).toBe(5);
    expect(w.tries.aliases).toBe(5);
    // A later alias is passed untried: the database failed the last try.
    await store.applyRemote(batchOf(A, 5, 6, [remoteChange(A, 6, 20, alias("x6@example.com"))]));
    s.kick();
    await expect.poll(() => cursor.get()[A]).toBe(6);
    expect([w.tries.aliases, s.status().aliasesWaiting?.count]).toEqual([5, 6]);
    // Each retry tries one of the six, and stops when it fails.
    for (const expected of [6, 7]) {
      s.retryAliases();
      await s.drained();
      expect(w.tries.aliases).toBe(expected);
    }
    w.heal();
    s.retryAliases();
    await s.drained();
    expect(s.status().aliasesWaiting).toBe(null);
    expect(w.written.sort()).toEqual([1, 2, 3, 4, 5, 6].map((i) => `alias-set x${i}@example.com sip:t@example.com`));
  });

  it("notes again an alias whose record changed while its retry was on the way (a reload wrote the new one meanwhile), and writes it as it is now", async () => {
    const store = openSqliteStore({ path: ":memory:", nodeId: "n2" });
    const A = "a~00000000000a";
    await store.applyRemote(batchOf(A, 0, 1, [remoteChange(A, 1, 10, alias("x@example.com", "sip:t1@example.com"))]));
    const written: string[] = [];
    let down = true;
    let changeDuringWrite = false;
    let left: Record<string, number> | null = null;
    const writer: KamailioSinkDeps["writer"] = {
      async write(op) {
        if (op.op !== "alias-set") return "rpc";
        if (down) throw new AliasDbUnreachableError("alias_db's database is unreachable");
        if (changeDuringWrite) {
          // A newer version is stored while this write is on its way, and a reload writes it: the
          // sink passes it over, and this older write lands after the reload's.
          changeDuringWrite = false;
          await store.applyRemote(batchOf(A, 1, 2, [remoteChange(A, 2, 20, alias("x@example.com", "sip:t2@example.com"))]));
          left = { [A]: 2 };
        }
        written.push(`${op.alias} ${op.target}`);
        return "database";
      },
    };
    const s = sinkOf(store, { cursor: fullDiskCursor(false), writer, aliasesWaiting: store.kamailioAliasesWaiting, window: 1, leftToReload: () => left, aliasRetry: { minMs: 60_000, maxMs: 60_000 } });
    s.start();
    await expect.poll(() => s.status().aliasesWaiting?.count).toBe(1);
    [down, changeDuringWrite] = [false, true];
    s.retryAliases();
    await s.drained();
    expect(written).toEqual(["x@example.com sip:t1@example.com"]);
    expect(s.status().aliasesWaiting?.count).toBe(1);
    s.retryAliases();
    await s.drained();
    expect(written.slice(1)).toEqual(["x@example.com sip:t2@example.com"]);
    expect(s.status().aliasesWaiting).toBe(null);
  });

  it("does not try waiting aliases while a reload into a restarted Kamailio is due, and leaves the writer's route alone with aliases in alias_db's table", async () => {
    const store = openSqliteStore({ path: ":memory:", nodeId: "n2" });
    const A = "a~00000000000a";
    await store.applyRemote(batchOf(A, 0, 1, [remoteChange(A, 1, 10, alias("x@example.com"))]));
    const w = aliasesCannotBeStored();
    let left: "everything" | null = null;
    const s = sinkOf(store, {
      cursor: fullDiskCursor(false), writer: w.writer, aliasesWaiting: store.kamailioAliasesWaiting, aliasesInDatabaseOnly: true,
      leftToReload: () => left, aliasRetry: { minMs: 60_000, maxMs: 60_000 },
    });
    s.start();
    await expect.poll(() => s.status().aliasesWaiting?.count).toBe(1);
    w.heal();
    left = "everything";
    s.retryAliases();
    await s.drained();
    expect([w.tries.aliases, s.status().aliasesWaiting?.count]).toEqual([1, 1]);
    left = null;
    s.retryAliases();
    await s.drained();
    expect([w.tries.aliases, s.status().aliasesWaiting]).toEqual([2, null]);
    // The alias went in through the database, its only way: no word on jsonrpcs.
    expect(s.status().lastRoute).toBe(null);
  });

  it("keeps its cursor before an alias it could not note (the journal refuses the note), and notes it once it can", async () => {
    const path = join(tmpDirs.make(), "journal.db");
    const store = openSqliteStore({ path, nodeId: "n2" });
    const A = "a~00000000000a";
    await store.applyRemote(batchOf(A, 0, 2, [remoteChange(A, 1, 10, alias("x@example.com")), remoteChange(A, 2, 11, { kind: "loc", key: "bob@example.com", sub: "sip:bob@192.0.2.2", value: binding({ owner: "a", expires: Math.floor(Date.now() / 1000) + 600 }) })]));
    const side = new Database(path);
    side.exec("CREATE TRIGGER full BEFORE INSERT ON kamailio_aliases_waiting BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END");
    const w = aliasesCannotBeStored();
    const cursor = fullDiskCursor(false);
    const s = sinkOf(store, { cursor, writer: w.writer, aliasesWaiting: store.kamailioAliasesWaiting, retry: { minMs: 200, maxMs: 200 } });
    s.start();
    await expect.poll(() => s.status().lastError).toMatch(/database or disk is full/);
    // The binding went in, but the cursor stays before the alias: nothing else says it waits.
    expect(w.written).toContain("add bob@example.com");
    expect(cursor.get()).toEqual({});
    side.exec("DROP TRIGGER full");
    side.close();
    await expect.poll(() => cursor.get()[A]).toBe(2);
    expect(store.kamailioAliasesWaiting.list("", 10)).toEqual([aliasKey("x@example.com")]);
  });

  it("stops the batch at once when Kamailio is unreachable", async () => {
    const store = openSqliteStore({ path: ":memory:", nodeId: "n2" });
    await store.commitLocal([alias("a@example.com", "sip:t@example.com"), alias("b@example.com", "sip:t@example.com")], () => 1);
    let attempts = 0;
    sink = createKamailioSink({
      store, cursor: fullDiskCursor(false), log: silentLogger(), metrics: createMetrics({ defaults: false }),
      plan: { nodeId: "n2", replicaId: store.replicaId, locationTable: "location" },
      writer: {
        async write() {
          attempts++;
          throw new TransientError("Kamailio is unreachable");
        },
      },
      window: 1,
      retry: { minMs: 60_000, maxMs: 60_000 },
    });
    sink.start();
    await expect.poll(() => sink!.status().state).toBe("waiting");
    expect(attempts).toBe(1);
  });
});

describe("kamailio sink while this node's journal is behind its peers", () => {
  it("writes nothing once held, stops a run in the middle of its batch, and says it is held", async () => {
    const store = openSqliteStore({ path: ":memory:", nodeId: "n2" });
    await store.commitLocal(Array.from({ length: 10 }, (_, i) => alias(`a${i}@example.com`)), () => 1);
    const written: string[] = [];
    let behind = false;
    const cursor = fullDiskCursor(false);
    const s = sinkOf(store, {
      cursor,
      writer: {
        async write(op) {
          written.push(op.op === "alias-set" ? op.alias : op.op);
          // The journal is found behind while the third write is under way.
          if (written.length === 3) behind = true;
          return "rpc";
        },
      },
      window: 1,
      held: () => behind,
    });
    s.start();
    await expect.poll(() => s.status().state).toBe("held");
    expect(written).toHaveLength(3);
    // The batch did not finish: the cursor stays, and the writes are still pending.
    expect(cursor.get()).toEqual({});
    expect(await s.pending()).toBe(10);
    await store.commitLocal([alias("later@example.com")], () => 2);
    s.kick();
    await new Promise((r) => setTimeout(r, 20));
    expect(written).toHaveLength(3);
    expect(s.status().state).toBe("held");
  });
});

describe("kamailio sink told Kamailio is back", () => {
  it("retryNow() retries at once with the back-off started over, instead of waiting out its timer", async () => {
    const store = openSqliteStore({ path: ":memory:", nodeId: "n2" });
    await store.commitLocal([alias("a@example.com")], () => 1);
    const attempts: number[] = [];
    let reachable = false;
    const s = sinkOf(store, {
      writer: {
        async write() {
          attempts.push(Date.now());
          if (!reachable) throw new TransientError("Kamailio is unreachable");
          return "rpc";
        },
      },
      retry: { minMs: 20, maxMs: 60_000 },
    });
    s.start();
    // 20, 40, 80, 160 and 320 ms apart: the next retry is 640 ms away.
    await expect.poll(() => attempts.length, { timeout: 3000, interval: 5 }).toBe(6);
    const told = Date.now();
    s.retryNow();
    await expect.poll(() => attempts.length, { timeout: 1000, interval: 5 }).toBeGreaterThanOrEqual(8);
    expect(attempts[6]! - told).toBeLessThan(100);
    // Started over: the retry after that came 20 ms later, not 1,280 ms.
    expect(attempts[7]! - attempts[6]!).toBeLessThan(200);
    reachable = true;
    s.retryNow();
    await expect.poll(() => s.pending(), { timeout: 200 }).toBe(0);
    expect(s.status().state).toBe("idle");
  });
});

describe("kamailio sink beside a reload", () => {
  const peer = "peer~000000000001";
  /** A peer's 5 changes: bindings a, b (removed at 3), c, and alias x at 5. */
  async function peerStore() {
    const store = openSqliteStore({ path: ":memory:", nodeId: "n2" });
    const loc = (user: string, live = true) => ({ kind: "loc" as const, key: `${user}@example.com`, sub: `sip:${user}@192.0.2.1`, value: live ? binding({ owner: "n1" }) : null });
    await store.applyRemote(batchOf(peer, 0, 5, [
      remoteChange(peer, 1, 1, loc("a")), remoteChange(peer, 2, 2, loc("b")), remoteChange(peer, 3, 3, loc("b", false)),
      remoteChange(peer, 4, 4, loc("c")), remoteChange(peer, 5, 5, aliasDraft("x@example.com", "sip:c@example.com")),
    ]));
    return store;
  }
  function recording() {
    const written: string[] = [];
    const writer = {
      async write(op: InstallOp) {
        written.push(op.op === "add" ? `add ${op.aor}` : op.op === "rm-contact" ? `rm ${op.aor}` : `${op.op} ${op.alias}`);
        return "rpc" as const;
      },
    };
    return { written, writer };
  }

  it("passes over the live records a reload writes, up to where it reaches, and writes removals and what came after", async () => {
    const store = await peerStore();
    const { written, writer } = recording();
    const cursor = fullDiskCursor(false);
    const s = sinkOf(store, { cursor, writer, leftToReload: () => ({ [peer]: 4 }) });
    s.start();
    await s.drained();
    // a (1) and c (4) are the reload's; b's removal (3) is not: a reload writes only live records.
    expect(written.sort()).toEqual(["alias-set x@example.com", "rm b@example.com"]);
    expect(cursor.get()).toEqual({ [peer]: 5 });
    expect(await s.pending()).toBe(0);
  });

  it("passes over every live record while a reload is due and has not read its position, and writes all without one", async () => {
    for (const [left, want] of [["everything", ["rm b@example.com"]], [null, ["add a@example.com", "add c@example.com", "alias-set x@example.com", "rm b@example.com"]]] as const) {
      const { written, writer } = recording();
      const s = sinkOf(await peerStore(), { writer, leftToReload: () => left });
      s.start();
      await s.drained();
      expect(written.sort()).toEqual(want);
      await s.close();
    }
  });

  it("lets the agent probe Kamailio before each retry after failed writes, and starts none while it does", async () => {
    const store = await peerStore();
    const events: string[] = [];
    let reachable = false;
    let probing: (() => void) | null = null;
    const s = sinkOf(store, {
      writer: {
        async write() {
          events.push(reachable ? "write" : "failed write");
          if (!reachable) throw new TransientError("Kamailio is unreachable");
          return "rpc";
        },
      },
      window: 1,
      retry: { minMs: 10, maxMs: 10 },
      beforeRetry: () => new Promise<void>((resolve) => {
        events.push("probe");
        probing = resolve;
      }),
    });
    s.start();
    await expect.poll(() => probing !== null).toBe(true);
    // New changes while the probe runs wait for it.
    await store.applyRemote(batchOf(peer, 5, 6, [remoteChange(peer, 6, 6, aliasDraft("y@example.com", "sip:a@example.com"))]));
    s.kick();
    await new Promise((r) => setTimeout(r, 30));
    expect(events).toEqual(["failed write", "probe"]);
    reachable = true;
    probing!();
    await s.drained();
    expect(events.slice(0, 3)).toEqual(["failed write", "probe", "write"]);
    expect(await s.pending()).toBe(0);
  });
});

describe("kamailio sink when Kamailio comes back while a run's writes fail", () => {
  it("does not report that run's failure, which is from before, and retries at once", async () => {
    const store = openSqliteStore({ path: ":memory:", nodeId: "n2" });
    await store.commitLocal([alias("a@example.com")], () => 1);
    const lines: string[] = [];
    const log = createLogger({ level: "info", nodeId: "n2", destination: { write: (line: string) => void lines.push(line) } });
    let fail: (err: Error) => void = () => undefined;
    let calls = 0;
    const s = sinkOf(store, {
      log,
      writer: {
        write() {
          // The first write waits out its time-out (a datagram to a Kamailio that was down).
          if (++calls === 1) return new Promise((_, reject) => (fail = reject));
          return Promise.resolve("rpc");
        },
      },
      retry: { minMs: 60_000, maxMs: 60_000 }, // a back-off retry would not come within the test
    });
    s.start();
    await expect.poll(() => calls).toBe(1);
    s.retryNow(); // the agent saw Kamailio answer again
    fail(new TransientError("Kamailio is unreachable through jsonrpcs (Kamailio FIFO /run/kamailio/kamailio_rpc.fifo has no reader)"));
    await expect.poll(() => s.pending()).toBe(0);
    expect(calls).toBe(2);
    expect(s.status()).toMatchObject({ state: "idle", lastError: null });
    expect(lines.map((l) => (JSON.parse(l) as { msg: string }).msg)).not.toContain("kamailio writes are pending");
  });

  it("retries at once too when Kamailio came back during an earlier, successful pass of that run", async () => {
    const store = openSqliteStore({ path: ":memory:", nodeId: "n2" });
    await store.commitLocal([alias("a@example.com")], () => 1);
    let calls = 0;
    let finishFirst: () => void = () => undefined;
    const s = sinkOf(store, {
      writer: {
        write() {
          calls++;
          if (calls === 1) return new Promise((resolve) => (finishFirst = () => resolve("rpc")));
          // The next pass's write is a failure from before the comeback (it waited out its time-out).
          if (calls === 2) return Promise.reject(new TransientError("Kamailio is unreachable through jsonrpcs (Kamailio FIFO has no reader)"));
          return Promise.resolve("rpc");
        },
      },
      retry: { minMs: 60_000, maxMs: 60_000 }, // a back-off retry would not come within the test
    });
    s.start();
    await expect.poll(() => calls).toBe(1);
    await store.commitLocal([alias("b@example.com")], () => 1); // for the run's next pass
    s.retryNow(); // the agent saw Kamailio answer again, while the first pass writes
    finishFirst();
    await expect.poll(() => s.pending()).toBe(0);
    expect(calls).toBe(3);
  });
});

describe("kamailio sink and writes a db_mode 1/2 Kamailio does not see", () => {
  const peer = "peer~000000000001";
  const loc = (user: string, live = true) => ({ kind: "loc" as const, key: `${user}@example.com`, sub: `sip:${user}@192.0.2.1`, value: live ? binding({ owner: "n1" }) : null });
  /**
   * A writer whose jsonrpcs is away until `fifoBack` (writes go into the database then), and what
   * it wrote each way.
   */
  function fallingBack() {
    const log: string[] = [];
    const state = { fifo: false };
    const writer: KamailioSinkDeps["writer"] = {
      async write(op) {
        const route = state.fifo ? "rpc" : "database";
        log.push(`${route} ${op.op === "add" ? `add ${op.aor}` : op.op === "rm-contact" ? `rm ${op.aor}` : `${op.op} ${op.alias}`}`);
        return route;
      },
    };
    return { writer, log, state };
  }
  const unseenOf = (store: ReturnType<typeof openSqliteStore>) => ({
    databaseWritesUnseen: (op: InstallOp) => missedByRunningKamailio(op, null), unseen: store.kamailioUnseen,
  });

  it("writes again over jsonrpcs what went into the database only, once Kamailio answers there", async () => {
    const store = openSqliteStore({ path: ":memory:", nodeId: "n2" });
    await store.applyRemote(batchOf(peer, 0, 3, [remoteChange(peer, 1, 1, loc("a")), remoteChange(peer, 2, 2, loc("b")), remoteChange(peer, 3, 3, aliasDraft("x@example.com", "sip:a@example.com"))]));
    const w = fallingBack();
    const s = sinkOf(store, { writer: w.writer, ...unseenOf(store) });
    await s.drained();
    expect(w.log.sort()).toEqual(["database add a@example.com", "database add b@example.com", "database alias-set x@example.com"]);
    // The bindings are noted; the dbaliases alias is not (alias_db reads its table at every lookup).
    expect(s.unseenByKamailio("loc\u0000a@example.com\u0000sip:a@192.0.2.1")).toBe(true);
    expect(store.kamailioUnseen.size()).toBe(2);

    // b is removed meanwhile (the removal goes into the database too), then jsonrpcs answers again.
    await store.applyRemote(batchOf(peer, 3, 4, [remoteChange(peer, 4, 4, loc("b", false))]));
    await s.drained();
    w.log.length = 0;
    w.state.fifo = true;
    s.retryNow();
    await s.drained();
    // Each key as the journal holds it now: a added, b removed; nothing else written.
    expect(w.log.sort()).toEqual(["rpc add a@example.com", "rpc rm b@example.com"]);
    expect(store.kamailioUnseen.size()).toBe(0);
    expect(s.unseenByKamailio("loc\u0000a@example.com\u0000sip:a@192.0.2.1")).toBe(false);
  });

  it("has the database's other rows of a key dropped once it went in over jsonrpcs after the database, and keeps the note while that fails", async () => {
    const store = openSqliteStore({ path: ":memory:", nodeId: "n2" });
    await store.applyRemote(batchOf(peer, 0, 2, [remoteChange(peer, 1, 1, loc("a")), remoteChange(peer, 2, 2, loc("b"))]));
    const w = fallingBack();
    const settled: string[] = [];
    let dbDown = true;
    const writer: KamailioSinkDeps["writer"] = {
      write: w.writer.write,
      async settleDatabase(op) {
        if (dbDown) throw new TransientError("Kamailio's database is unreachable");
        settled.push(op.op === "add" ? op.aor : op.op);
        return 1;
      },
    };
    let now = Date.now();
    const s = sinkOf(store, { writer, nowMs: () => now, ...unseenOf(store) });
    await s.drained();
    expect([settled, store.kamailioUnseen.size()]).toEqual([[], 2]);
    w.state.fifo = true;
    s.retryNow();
    await s.drained();
    // Written over jsonrpcs, but the agent's row could not be dropped: still noted, tried again.
    expect(w.log.filter((l) => l.startsWith("rpc")).sort()).toEqual(["rpc add a@example.com", "rpc add b@example.com"]);
    expect(store.kamailioUnseen.size()).toBe(2);
    dbDown = false;
    // After a failure, none is tried for 30 s (each try may wait out a connect time-out).
    s.retryNow();
    await s.drained();
    expect([settled, store.kamailioUnseen.size()]).toEqual([[], 2]);
    now += 31_000;
    s.retryNow();
    await s.drained();
    expect(settled.sort()).toEqual(["a@example.com", "b@example.com"]);
    expect(store.kamailioUnseen.size()).toBe(0);
    // A later write over jsonrpcs of a key not noted asks for nothing.
    await store.applyRemote(batchOf(peer, 2, 3, [remoteChange(peer, 3, 3, loc("c"))]));
    await s.drained();
    expect(settled).toHaveLength(2);
  });

  it("repeats them after an agent restart, removes what the journal no longer holds, and leaves this node's own registrations", async () => {
    const path = join(tmpDirs.make(), "journal.db");
    const store = openSqliteStore({ path, nodeId: "n2" });
    await store.applyRemote(batchOf(peer, 0, 3, [remoteChange(peer, 1, 1, loc("a")), remoteChange(peer, 2, 2, loc("b")), remoteChange(peer, 3, 3, loc("c"))]));
    const w = fallingBack();
    // The install cursor outlives the agent, as its file does.
    const cursor = fullDiskCursor(false);
    const s = sinkOf(store, { writer: w.writer, cursor, ...unseenOf(store) });
    await s.drained();
    expect(store.kamailioUnseen.size()).toBe(3);
    await s.close();
    sink = null;
    // While the agent is down, b goes from the journal altogether (as a purge takes it); after the
    // restart, c's phone registers at this node (its own binding now, which its Kamailio holds).
    await store.close();
    const raw = new Database(path);
    raw.prepare("DELETE FROM records WHERE key = 'b@example.com'").run();
    raw.close();
    const again = openSqliteStore({ path, nodeId: "n2" });
    await again.commitLocal([{ ...loc("c"), value: binding({ owner: "n2" }) }], () => 10);

    w.log.length = 0;
    w.state.fifo = true;
    const s2 = sinkOf(again, { writer: w.writer, cursor, ...unseenOf(again) });
    await s2.drained();
    expect(w.log.sort()).toEqual(["rpc add a@example.com", "rpc rm b@example.com"]);
    expect(again.kamailioUnseen.size()).toBe(0);
    await s2.close();
    sink = null;
    await again.close();
  });

  it("stops repeating when a write goes into the database again, and goes on at the next sign of Kamailio", async () => {
    const store = openSqliteStore({ path: ":memory:", nodeId: "n2" });
    await store.applyRemote(batchOf(peer, 0, 3, [remoteChange(peer, 1, 1, loc("a")), remoteChange(peer, 2, 2, loc("b")), remoteChange(peer, 3, 3, loc("c"))]));
    const w = fallingBack();
    const s = sinkOf(store, { writer: w.writer, ...unseenOf(store), batchSize: 1 });
    await s.drained();
    expect(store.kamailioUnseen.size()).toBe(3);
    w.log.length = 0;
    // Kamailio is back for the first write of the resend and gone for the second: c is not tried.
    const write = w.writer.write.bind(w.writer);
    let calls = 0;
    w.writer.write = async (op, now) => {
      w.state.fifo = calls++ === 0;
      return write(op, now);
    };
    s.retryNow();
    await s.drained();
    expect(w.log).toEqual(["rpc add a@example.com", "database add b@example.com"]);
    expect(store.kamailioUnseen.list("", 10)).toEqual(["loc\u0000b@example.com\u0000sip:b@192.0.2.1", "loc\u0000c@example.com\u0000sip:c@192.0.2.1"]);
    // Nothing more until Kamailio is seen again.
    w.writer.write = write;
    w.state.fifo = true;
    s.kick();
    await s.drained();
    expect(w.log.length).toBe(2);
    s.retryNow();
    await s.drained();
    expect(w.log.slice(2)).toEqual(["rpc add b@example.com", "rpc add c@example.com"]);
    expect(store.kamailioUnseen.size()).toBe(0);
  });

  it("starts repeating them when a later change goes in over jsonrpcs, without being told", async () => {
    const store = openSqliteStore({ path: ":memory:", nodeId: "n2" });
    await store.applyRemote(batchOf(peer, 0, 1, [remoteChange(peer, 1, 1, loc("a"))]));
    const w = fallingBack();
    const s = sinkOf(store, { writer: w.writer, ...unseenOf(store) });
    await s.drained();
    w.log.length = 0;
    w.state.fifo = true;
    await store.applyRemote(batchOf(peer, 1, 2, [remoteChange(peer, 2, 2, loc("b"))]));
    s.kick();
    await expect.poll(() => store.kamailioUnseen.size(), { timeout: 1000 }).toBe(0);
    expect(w.log).toEqual(["rpc add b@example.com", "rpc add a@example.com"]);
  });

  it("does not repeat a write Kamailio refuses outright", async () => {
    const store = openSqliteStore({ path: ":memory:", nodeId: "n2" });
    await store.applyRemote(batchOf(peer, 0, 1, [remoteChange(peer, 1, 1, loc("a"))]));
    const w = fallingBack();
    const s = sinkOf(store, { writer: w.writer, ...unseenOf(store) });
    await s.drained();
    let refusals = 0;
    w.writer.write = async () => {
      refusals++;
      throw new KamailioWriteRejectedError("Kamailio refused it");
    };
    s.retryNow();
    await s.drained();
    expect([refusals, store.kamailioUnseen.size()]).toEqual([1, 0]);
    s.retryNow();
    await s.drained();
    expect(refusals).toBe(1);
  });

  it("waits while a reload into a restarted Kamailio is due, and repeats them once it has run", async () => {
    const store = openSqliteStore({ path: ":memory:", nodeId: "n2" });
    await store.applyRemote(batchOf(peer, 0, 2, [remoteChange(peer, 1, 1, loc("a")), remoteChange(peer, 2, 2, loc("b"))]));
    const w = fallingBack();
    let reloadDue = false;
    const s = sinkOf(store, { writer: w.writer, ...unseenOf(store), leftToReload: () => (reloadDue ? "everything" : null) });
    await s.drained();
    // b is removed while Kamailio is away: a reload (live records only) would not write that.
    await store.applyRemote(batchOf(peer, 2, 3, [remoteChange(peer, 3, 3, loc("b", false))]));
    await s.drained();
    w.log.length = 0;
    w.state.fifo = true;
    reloadDue = true;
    s.retryNow();
    await s.drained();
    expect(w.log).toEqual([]);
    reloadDue = false;
    s.retryNow(); // as the reload does when it ends
    await s.drained();
    expect(w.log.sort()).toEqual(["rpc add a@example.com", "rpc rm b@example.com"]);
    expect(store.kamailioUnseen.size()).toBe(0);
  });

  it("goes on writing when its notes cannot be written (the journal's disk is full), and repeats them once they can", async () => {
    const path = join(tmpDirs.make(), "journal.db");
    const store = openSqliteStore({ path, nodeId: "n2" });
    await store.applyRemote(batchOf(peer, 0, 1, [remoteChange(peer, 1, 1, loc("a"))]));
    const w = fallingBack();
    const s = sinkOf(store, { writer: w.writer, ...unseenOf(store) });
    await s.drained();
    // The disk fills: b's note cannot be written, and stays in memory.
    const side = new Database(path);
    side.exec("CREATE TRIGGER full BEFORE INSERT ON kamailio_unseen BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END");
    await store.applyRemote(batchOf(peer, 1, 2, [remoteChange(peer, 2, 2, loc("b"))]));
    await s.drained();
    expect(s.unseenByKamailio("loc\u0000b@example.com\u0000sip:b@192.0.2.1")).toBe(true);
    // Kamailio answers again and c arrives: c goes in, whatever the notes.
    w.log.length = 0;
    w.state.fifo = true;
    s.retryNow();
    await store.applyRemote(batchOf(peer, 2, 3, [remoteChange(peer, 3, 3, loc("c"))]));
    s.kick();
    await s.drained();
    expect(w.log).toEqual(["rpc add c@example.com"]);
    expect(s.status().state).toBe("idle");
    // Space again: the next sign of Kamailio repeats a and b.
    side.exec("DROP TRIGGER full");
    side.close();
    s.retryNow();
    await s.drained();
    expect(w.log.slice(1).sort()).toEqual(["rpc add a@example.com", "rpc add b@example.com"]);
    expect(store.kamailioUnseen.size()).toBe(0);
    await s.close();
    sink = null;
    await store.close();
  });

  it("counts usrloc aliases as missed and alias_db's as seen", () => {
    const alias = { op: "alias-set" as const, alias: "x@example.com", target: "sip:a@example.com" };
    expect(missedByRunningKamailio(alias, "aliases")).toBe(true);
    expect(missedByRunningKamailio(alias, null)).toBe(false);
    expect(missedByRunningKamailio({ op: "rm-contact", table: "location", aor: "a@example.com", contact: "sip:a@192.0.2.1" }, null)).toBe(true);
  });
});
