/**
 * The Kamailio writer's retry decision: usrloc faults that mean "my database write failed" keep a
 * change pending (TransientError), other faults are refusals the sink logs and skips.
 */
import { describe, expect, it } from "vitest";
import { TransientError, isTransient } from "../../agent/core/transient.js";
import type { KamailioDb } from "../../agent/kamailio/kamailio-db.js";
import { KamailioRpcError } from "../../agent/kamailio/jsonrpcs-wire.js";
import { KamailioCouldNotStoreError, KamailioWriteRejectedError, createKamailioWriter, isStorageFault } from "../../agent/kamailio/kamailio-writer.js";
import type { UsrlocRpc } from "../../agent/kamailio/usrloc-rpc.js";
import { silentLogger } from "../../agent/ops/logger.js";

/** A usrloc whose every call fails with the given fault. */
function failingUsrloc(code: number, message: string, method: string): UsrlocRpc {
  const fail = async (): Promise<never> => {
    throw new KamailioRpcError(code, message, method);
  };
  return { ulAdd: fail, ulRmContact: fail, ulRm: fail, ulLookup: fail, ulDump: fail, ulContactCount: fail, keysWithDomain: fail };
}

const writer = (usrloc: UsrlocRpc) => createKamailioWriter({ usrloc, db: null, aliasTable: "aliases", log: silentLogger() });
const rmContact = { op: "rm-contact" as const, table: "location", aor: "alice@example.com", contact: "sip:alice@192.0.2.1" };
const aliasSet = { op: "alias-set" as const, alias: "nick@example.com", target: "sip:alice@example.com" };

describe("kamailio writer", () => {
  it("keeps writes pending when usrloc's own database write failed (ul.add, ul.rm_contact, ul.rm)", async () => {
    for (const [message, method, op] of [
      ["Can't insert contact", "ul.add", aliasSet],
      // An AoR it did not hold yet, with its shared memory full (found by review: it was skipped).
      ["Can't insert record", "ul.add", aliasSet],
      ["Internal error (can't delete contact)", "ul.rm_contact", rmContact],
      ["Failed to delete AOR", "ul.rm", aliasSet],
    ] as const) {
      expect(isStorageFault(new KamailioRpcError(500, message, method))).toBe(true);
      const err = await writer(failingUsrloc(500, message, method)).write(op, 0).catch((e: unknown) => e);
      expect(isTransient(err), message).toBe(true);
      expect((err as Error).message).toMatch(/stays pending/);
    }
  });

  it("says a storage fault without a fallback database is Kamailio's memory or database, not an unreachable Kamailio", async () => {
    const err = await writer(failingUsrloc(500, "Can't insert contact", "ul.add")).write(aliasSet, 0).catch((e: unknown) => e);
    expect(isTransient(err)).toBe(true);
    expect((err as Error).message).toBe(
      'Kamailio could not store alias nick@example.com → sip:alice@example.com: usrloc answered "Can\'t insert contact". ' +
        "Without a usrloc database (db_mode 0) its shared memory is full: every node holds the whole cluster's bindings, " +
        "so give Kamailio memory for all of them (-m, SHM_MEMORY in /etc/default/kamailio) and restart it; " +
        "with one, usrloc's database write failed. The change stays pending and is retried",
    );
    const down = await writer({ ...failingUsrloc(500, "x", "ul.add"), ulAdd: () => Promise.reject(Object.assign(new Error("connect ENOENT /run/kamailio/kamailio_rpc.fifo"), { code: "ENOENT" })) })
      .write({ op: "add", table: "location", aor: "a@b", binding: {} as never, full: {} as never }, 0).catch((e: unknown) => e);
    expect((down as Error).message).toMatch(/^Kamailio is unreachable through jsonrpcs/);
  });

  it("writes no binding into a database Kamailio never reads (usrloc db_mode 0 beside alias_db's dbaliases): it stays pending; aliases still go in", async () => {
    const wrote: string[] = [];
    const db = {
      upsertLocation: async (aor: string) => void wrote.push(`location ${aor}`),
      removeLocation: async (aor: string) => void wrote.push(`rm location ${aor}`),
      setAlias: async (alias: string) => void wrote.push(`alias ${alias}`),
      removeAlias: async (alias: string) => void wrote.push(`rm alias ${alias}`),
    } as unknown as KamailioDb;
    const fifoGone = { ...failingUsrloc(500, "x", "ul.add"), ulAdd: () => Promise.reject(new TransientError("the FIFO has no reader")), ulRmContact: () => Promise.reject(new TransientError("the FIFO has no reader")) };
    const dbMode0 = createKamailioWriter({ usrloc: fifoGone, db, aliasTable: null, locationsInDb: false, log: silentLogger() });
    const add = { op: "add" as const, table: "location", aor: "bob@example.com", binding: {} as never, full: {} as never };
    for (const op of [add, rmContact]) {
      const err = await dbMode0.write(op, 0).catch((e: unknown) => e);
      expect(isTransient(err)).toBe(true);
      expect((err as Error).message).toContain("usrloc keeps no database (kamailio.db.dbMode 0) to write it into");
    }
    expect(await dbMode0.write(aliasSet, 0)).toBe("database");
    expect(wrote).toEqual(["alias nick@example.com"]);
    // With a usrloc database (db_mode 1-4) a binding falls back to it, as before.
    const dbMode1 = createKamailioWriter({ usrloc: fifoGone, db, aliasTable: null, log: silentLogger() });
    expect(await dbMode1.write(add, 0)).toBe("database");
    expect(wrote).toEqual(["alias nick@example.com", "location bob@example.com"]);
  });

  it("says an alias alias_db's database could not take stays pending while bindings go on (KamailioCouldNotStoreError)", async () => {
    const db = { setAlias: () => Promise.reject(new TransientError("connect ECONNREFUSED 127.0.0.1:5432")) } as unknown as KamailioDb;
    const dbaliases = createKamailioWriter({ usrloc: failingUsrloc(500, "x", "ul.add"), db, aliasTable: null, log: silentLogger() });
    const err = await dbaliases.write(aliasSet, 0).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(KamailioCouldNotStoreError);
    expect((err as Error).message).toBe("alias_db's database is unreachable (connect ECONNREFUSED 127.0.0.1:5432); alias nick@example.com → sip:alice@example.com stays pending, bindings go on");
  });

  it("keeps a write pending when jsonrpcs was away and the database refused it: jsonrpcs may take it once Kamailio answers", async () => {
    const refusing = { upsertLocation: () => Promise.reject(Object.assign(new Error("password authentication failed for user \"kamailio\""), { code: "28P01" })) } as unknown as KamailioDb;
    const away = { ...failingUsrloc(500, "x", "ul.add"), ulAdd: () => Promise.reject(new TransientError("the FIFO has no reader")) };
    const add = { op: "add" as const, table: "location", aor: "bob@example.com", binding: {} as never, full: {} as never };
    const err = await createKamailioWriter({ usrloc: away, db: refusing, aliasTable: null, log: silentLogger() }).write(add, 0).catch((e: unknown) => e);
    expect(isTransient(err)).toBe(true);
    expect((err as Error).message).toMatch(/^Kamailio is unreachable through jsonrpcs \(the FIFO has no reader\) and its database refused binding .*password authentication failed.*check kamailio\.db.*stays pending until jsonrpcs answers/);
    // An alias with no way in but alias_db's database is refused for good, as before.
    const dbaliases = createKamailioWriter({ usrloc: away, db: { setAlias: () => Promise.reject(Object.assign(new Error("value too long"), { code: "22001" })) } as unknown as KamailioDb, aliasTable: null, log: silentLogger() });
    expect(await dbaliases.write(aliasSet, 0).catch((e: unknown) => e)).toBeInstanceOf(KamailioWriteRejectedError);
  });

  it("follows a 404 from ul.rm_contact with the row's removal when usrloc runs db_mode 3, whose failed query reads as no AoR", async () => {
    const calls: string[] = [];
    const notFound = { ...failingUsrloc(500, "x", "ul.rm_contact"), ulRmContact: async () => (calls.push("ul.rm_contact"), false) };
    const db = { removeLocation: async (aor: string, contact: string) => void calls.push(`db rm ${aor} ${contact}`) } as unknown as KamailioDb;
    expect(await createKamailioWriter({ usrloc: notFound, db, aliasTable: null, usrlocDbOnly: true, log: silentLogger() }).write(rmContact, 0)).toBe("rpc");
    expect(calls).toEqual(["ul.rm_contact", `db rm ${rmContact.aor} ${rmContact.contact}`]);
    // Its database down too: the removal stays pending rather than passing for done.
    const down = { removeLocation: () => Promise.reject(new TransientError("connect ECONNREFUSED 127.0.0.1:5432")) } as unknown as KamailioDb;
    const err = await createKamailioWriter({ usrloc: notFound, db: down, aliasTable: null, usrlocDbOnly: true, log: silentLogger() }).write(rmContact, 0).catch((e: unknown) => e);
    expect(isTransient(err)).toBe(true);
    expect((err as Error).message).toMatch(/stays pending/);
    // Other db_modes keep the row in their memory: a 404 there means it is gone.
    calls.length = 0;
    expect(await createKamailioWriter({ usrloc: notFound, db, aliasTable: null, log: silentLogger() }).write(rmContact, 0)).toBe("rpc");
    expect(calls).toEqual(["ul.rm_contact"]);
  });

  it("skips what Kamailio refuses for other reasons", async () => {
    const err = await writer(failingUsrloc(500, "Domain table not found", "ul.rm_contact")).write(rmContact, 0).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(KamailioWriteRejectedError);
    expect(isTransient(err)).toBe(false);
  });
});

describe("kamailio writer: settling the database after a write over jsonrpcs", () => {
  it("drops the other rows of the binding or usrloc alias but the ones Kamailio holds, the rows of a removal, and does nothing it cannot tell", async () => {
    const dropped: unknown[] = [];
    const db = {
      dropOtherRows: async (...args: unknown[]) => (dropped.push(args), 1),
      removeLocation: async (...args: unknown[]) => void dropped.push(["removeLocation", ...args]),
      removeAlias: async (...args: unknown[]) => void dropped.push(["removeAlias", ...args]),
    } as unknown as KamailioDb;
    const held: Record<string, { contact: string; ruid: string }[]> = {
      "location alice@example.com": [{ contact: "sip:alice@192.0.2.1", ruid: "ulcx-1" }, { contact: "sip:alice@192.0.2.2", ruid: "uloc-2" }],
      "aliases nick@example.com": [{ contact: "sip:alice@example.com", ruid: "ulcx-3" }],
    };
    const usrloc = { ulLookup: async (table: string, aor: string) => held[`${table} ${aor}`] ?? [] } as unknown as UsrlocRpc;
    const w = createKamailioWriter({ usrloc, db, aliasTable: "aliases", usrlocWritesRows: true, log: silentLogger() });
    const add = (contact: string) => ({ op: "add" as const, table: "location", aor: "alice@example.com", binding: { contact }, full: {} }) as unknown as Parameters<typeof w.write>[0];
    expect(await w.settleDatabase!(add("sip:alice@192.0.2.1"))).toBe(1);
    expect(await w.settleDatabase!(aliasSet)).toBe(1);
    // A removal: Kamailio removed only what it held in memory; the agent's row goes too.
    expect(await w.settleDatabase!(rmContact)).toBe(0);
    expect(await w.settleDatabase!({ op: "alias-rm", alias: "nick@example.com" })).toBe(0);
    expect(dropped).toEqual([
      ["location", "alice@example.com", "sip:alice@192.0.2.1", ["ulcx-1"]],
      // An alias: every row of it but Kamailio's, whatever target an older row had.
      ["aliases", "nick@example.com", null, ["ulcx-3"]],
      ["removeLocation", "alice@example.com", "sip:alice@192.0.2.1"],
      ["removeAlias", "nick@example.com"],
    ]);
    // Kamailio does not hold it (removed meanwhile): no row is known to keep, so none is dropped.
    expect(await w.settleDatabase!(add("sip:alice@192.0.2.9"))).toBe(0);
    // Aliases in alias_db's table have no usrloc copy; no fallback database, nothing to settle;
    // usrloc writing no rows (db_mode 3, or 4, where the agent's row is the only one): nothing either.
    expect(await createKamailioWriter({ usrloc, db, aliasTable: null, usrlocWritesRows: true, log: silentLogger() }).settleDatabase!(aliasSet)).toBe(0);
    expect(await createKamailioWriter({ usrloc, db: null, aliasTable: "aliases", usrlocWritesRows: true, log: silentLogger() }).settleDatabase!(add("sip:alice@192.0.2.1"))).toBe(0);
    expect(await createKamailioWriter({ usrloc, db, aliasTable: "aliases", log: silentLogger() }).settleDatabase!(add("sip:alice@192.0.2.1"))).toBe(0);
    expect(dropped).toHaveLength(4);
  });
});
