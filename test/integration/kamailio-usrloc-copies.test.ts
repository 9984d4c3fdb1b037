/**
 * What the reconcile relies on when a Kamailio holds one contact twice (two rows of it loaded from
 * its database at a start; agent/kamailio/reconciler.ts, Copies), checked on real Kamailio 5.6:
 * ul.rm_contact takes the first copy; with usrloc db_mode 1 (write-through) it is gone at once, but
 * with db_mode 2 (write-back) it is only marked, listed by ul.dump as no longer active until
 * usrloc's timer deletes it, and an ul.add of the same contact meanwhile brings it back beside the
 * other copy. Hence one copy per reconcile, and no write for that binding while a removed copy lingers.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createFifoClient, type FifoClient } from "../../agent/kamailio/fifo-client.js";
import { createUsrlocRpc, type UlAddBinding } from "../../agent/kamailio/usrloc-rpc.js";
import { silentLogger } from "../../agent/ops/logger.js";
import { kamailioDbCfg } from "../support/kamailio-cfg.js";
import { startKamailio, type KamailioProcess } from "../support/kamailio-process.js";
import { createKamailioSqlite } from "../support/kamailio-schema.js";

const log = silentLogger();
const AOR = "heidi@example.com";
const CONTACT = "sip:heidi@192.0.2.80:5060";
const nowSec = (): number => Math.floor(Date.now() / 1000);
const binding = (expiresIn: number): UlAddBinding => ({
  contact: CONTACT, expires: nowSec() + expiresIn, q: 0.5, path: "", received: "", socket: "", flags: 0, cflags: 0, methods: 4294967295,
});

let dir: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "locmesh-copies-"));
});

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

/** A Kamailio in `mode` on a database that holds AOR's contact twice (two rows, two ruids), as loaded at its start. */
async function withTwoCopies(mode: 1 | 2, run: (k: KamailioProcess, fifo: FifoClient) => Promise<void>): Promise<void> {
  const dbPath = createKamailioSqlite(join(dir, `mode${mode}.db`));
  const url = `sqlite://${dbPath}`;
  // A db_mode 1 Kamailio writes the first row at once; the second is that row under another ruid.
  const writer = await startKamailio({ extraCfg: kamailioDbCfg({ url, mode: 1 }) });
  const writerFifo = createFifoClient({ fifoPath: writer.fifoPath, replyDir: writer.replyDir, timeoutMs: 5000, log });
  try {
    await createUsrlocRpc({ rpc: writerFifo }).ulAdd("location", AOR, binding(600), nowSec());
  } finally {
    await writerFifo.close();
    await writer.close();
  }
  const db = new Database(dbPath, { fileMustExist: true });
  try {
    const cols = (db.prepare("PRAGMA table_info(location)").all() as { name: string }[]).map((c) => c.name).filter((c) => c !== "id" && c !== "ruid");
    db.prepare(`INSERT INTO location (ruid, ${cols.join(", ")}) SELECT 'second-copy', ${cols.join(", ")} FROM location WHERE username = 'heidi'`).run();
    expect((db.prepare("SELECT count(*) AS n FROM location WHERE username = 'heidi'").get() as { n: number }).n).toBe(2);
  } finally {
    db.close();
  }
  const k = await startKamailio({ extraCfg: kamailioDbCfg({ url, mode }) });
  const fifo = createFifoClient({ fifoPath: k.fifoPath, replyDir: k.replyDir, timeoutMs: 5000, log });
  try {
    await run(k, fifo);
  } finally {
    await fifo.close();
    await k.close();
  }
}

const statuses = async (fifo: FifoClient): Promise<string[]> =>
  (await createUsrlocRpc({ rpc: fifo }).ulDump()).filter((c) => c.aor === AOR).map((c) => c.status);

describe("a contact Kamailio loaded twice from its database", () => {
  it("db_mode 2: ul.rm_contact only marks the first copy, ul.dump lists it as no longer active, and an ul.add of the contact brings it back", async () => {
    await withTwoCopies(2, async (_k, fifo) => {
      const usrloc = createUsrlocRpc({ rpc: fifo });
      expect(await statuses(fifo)).toEqual(["active", "active"]);
      expect(await usrloc.ulRmContact("location", AOR, CONTACT)).toBe(true);
      const after = await statuses(fifo);
      expect(after).toHaveLength(2);
      expect(after.filter((s) => s === "active")).toHaveLength(1);
      expect(await usrloc.ulLookup("location", AOR)).toHaveLength(1);
      // A repair's ul.add finds the marked copy first and updates it: two copies again.
      await usrloc.ulAdd("location", AOR, binding(900), nowSec());
      expect(await statuses(fifo)).toEqual(["active", "active"]);
      expect(await usrloc.ulLookup("location", AOR)).toHaveLength(2);
    });
  }, 60_000);

  it("db_mode 1: ul.rm_contact removes the first copy at once, and an ul.add then updates the one left", async () => {
    await withTwoCopies(1, async (_k, fifo) => {
      const usrloc = createUsrlocRpc({ rpc: fifo });
      expect(await statuses(fifo)).toEqual(["active", "active"]);
      expect(await usrloc.ulRmContact("location", AOR, CONTACT)).toBe(true);
      expect(await statuses(fifo)).toEqual(["active"]);
      await usrloc.ulAdd("location", AOR, binding(900), nowSec());
      expect(await usrloc.ulLookup("location", AOR)).toHaveLength(1);
    });
  }, 60_000);
});
