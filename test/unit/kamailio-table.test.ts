/**
 * Kamailio's whole location table against the journal (agent/kamailio/kamailio-table.ts), with an
 * in-memory journal and a scripted dump: what each binding is called, the whole table's summary,
 * search and paging from one dump, and the refusal of a table too large to dump.
 */
import { describe, expect, it } from "vitest";
import { ErrorCode, RpcError } from "../../agent/contract/errors.js";
import { openSqliteStore } from "../../agent/journal/sqlite-store.js";
import { KamailioReplyTooLargeError } from "../../agent/kamailio/jsonrpcs-wire.js";
import { createKamailioTable, type KamailioTableDeps } from "../../agent/kamailio/kamailio-table.js";
import { UL_ADD_CALLID } from "../../agent/kamailio/registrar-input.js";
import type { UsrlocContact } from "../../agent/kamailio/usrloc-contact.js";
import { binding, locDraft } from "../support/fixtures.js";

const NOW_MS = 1_800_000_000_000;
const NOW = NOW_MS / 1000;

function inKamailio(aor: string, contact: string, over: Partial<UsrlocContact> = {}): UsrlocContact {
  return {
    ...binding({ expires: NOW + 600, callid: UL_ADD_CALLID }),
    table: "location", aor, contact, status: "active", serverId: 0, tcpconnId: -1, lastModified: 0, state: "CS_NEW",
    ...over,
  };
}

/** A journal of far's bindings u0..u(n-1), and a Kamailio holding `dump`. */
async function tableOf(journal: number, dump: UsrlocContact[], over: Partial<KamailioTableDeps> = {}) {
  const store = openSqliteStore({ path: ":memory:", nodeId: "n1" });
  const drafts = Array.from({ length: journal }, (_, i) => locDraft(`u${i}@example.com`, `sip:u${i}@192.0.2.1`, binding({ expires: NOW + 600, owner: "far" })));
  if (drafts.length > 0) await store.commitLocal(drafts, () => 1);
  const dumps: number[] = [];
  const table = createKamailioTable({
    store, nodeId: "n1", locationTable: "location", maxContacts: 100,
    countContacts: async () => dump.length,
    dump: async (maxReplyBytes) => {
      dumps.push(maxReplyBytes);
      return dump;
    },
    pendingWrites: () => 0,
    nowMs: () => NOW_MS,
    ...over,
  });
  return { table, dumps, close: () => store.close() };
}

const page = (over: { search?: string; after?: string; limit?: number } = {}) => ({ search: "", after: "", limit: 100, ...over });

describe("Kamailio's table against the journal", () => {
  it("calls each binding present, differs (saying which fields) or missing, and sums up the whole table", async () => {
    const t = await tableOf(4, [
      inKamailio("u0@example.com", "sip:u0@192.0.2.1"),
      inKamailio("u1@example.com", "sip:u1@192.0.2.1", { q: 0.5, path: "<sip:edge.example.net;lr>" }),
      inKamailio("u2@example.com", "sip:u2@192.0.2.1", { expires: NOW + 1 }), // 599 s before the journal's expiry
      inKamailio("stray@example.com", "sip:stray@192.0.2.9"),
      // Neither an expired contact nor another usrloc domain is part of the location table.
      inKamailio("old@example.com", "sip:old@192.0.2.9", { status: "expired", expires: NOW }),
      inKamailio("nick@example.com", "sip:u0@example.com", { table: "aliases", expires: 0 }),
    ]);
    try {
      const r = await t.table.list(page());
      expect(r.items.map((b) => [b.aor, b.journal, b.differences.join(",")])).toEqual([
        ["stray@example.com", "missing", ""],
        ["u0@example.com", "present", ""],
        ["u1@example.com", "differs", "q,path"],
        ["u2@example.com", "differs", "expires"],
      ]);
      expect(r.items[0]).toMatchObject({ contact: "sip:stray@192.0.2.9", installedByAgent: true });
      // u3 is only in the journal.
      expect(r.summary).toMatchObject({ kamailio: 4, journal: 4, present: 1, differs: 2, onlyInKamailio: 1, onlyInJournal: 1, takenAt: new Date(NOW_MS).toISOString() });
      expect(r).toMatchObject({ total: 4, next: null });
    } finally {
      await t.close();
    }
  });

  it("searches and pages like location.list, from one dump for every page after the first", async () => {
    const dump = Array.from({ length: 5 }, (_, i) => inKamailio(`u${i}@example.com`, `sip:u${i}@192.0.2.1`));
    const t = await tableOf(5, dump);
    try {
      const first = await t.table.list(page({ limit: 2 }));
      expect(first.items.map((b) => b.aor)).toEqual(["u0@example.com", "u1@example.com"]);
      expect(first.total).toBe(5);
      const second = await t.table.list(page({ limit: 2, after: first.next! }));
      const third = await t.table.list(page({ limit: 2, after: second.next! }));
      expect([...second.items, ...third.items].map((b) => b.aor)).toEqual(["u2@example.com", "u3@example.com", "u4@example.com"]);
      expect(third.next).toBeNull();
      expect(t.dumps).toHaveLength(1);
      // The summary is the whole table's, whatever the search.
      const found = await t.table.list(page({ search: "SIP:U3" }));
      expect(found.items.map((b) => b.aor)).toEqual(["u3@example.com"]);
      expect(found.summary.kamailio).toBe(5);
      expect((await t.table.list(page({ search: "192.0.2.1" }))).total).toBe(5);
      // A first page is a new dump.
      expect(t.dumps).toHaveLength(3);
    } finally {
      await t.close();
    }
  });

  it("refuses a table above the limit without dumping it, and says what to use instead", async () => {
    const dump = Array.from({ length: 3 }, (_, i) => inKamailio(`u${i}@example.com`, `sip:u${i}@192.0.2.1`));
    const t = await tableOf(0, dump, { maxContacts: 2 });
    try {
      const err = await t.table.list(page()).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(RpcError);
      expect(err).toMatchObject({ code: ErrorCode.TooLarge, data: { contacts: 3, limit: 2 } });
      expect((err as Error).message).toMatch(/^this node's Kamailio holds 3 contacts, above kamailio\.reconcileMaxContacts \(2\): the table is too large to list/);
      expect((err as Error).message).toContain("locmesh location show --kamailio <aor>");
      expect(t.dumps).toEqual([]);
    } finally {
      await t.close();
    }
  });

  it("without Kamailio's count, goes by the journal's and bounds the reply to the limit's worth of bytes", async () => {
    const t = await tableOf(3, [], { maxContacts: 2, countContacts: async () => null });
    const grown = await tableOf(1, [], {
      maxContacts: 2,
      dump: async (max) => {
        throw new KamailioReplyTooLargeError("ul.dump", max);
      },
    });
    try {
      await expect(t.table.list(page())).rejects.toMatchObject({ code: ErrorCode.TooLarge, data: { contacts: 3 } });
      expect(t.dumps).toEqual([]);
      // A table that grew past the count before the dump: refused too, with no count to give.
      const err = await grown.table.list(page()).catch((e: unknown) => e);
      expect(err).toMatchObject({ code: ErrorCode.TooLarge, data: { contacts: null, limit: 2 } });
      expect((err as Error).message).toMatch(/^this node's Kamailio holds more contacts than that, above/);
    } finally {
      await t.close();
      await grown.close();
    }
  });

  it("does not dump while a reload is writing Kamailio's table, and says why and what to do", async () => {
    const dump = [inKamailio("u0@example.com", "sip:u0@192.0.2.1")];
    let reloading: string | null = "a reload into this node's Kamailio is running (10 of 300 examined)";
    const t = await tableOf(1, dump, { busy: () => reloading });
    try {
      await expect(t.table.list(page())).rejects.toMatchObject({ code: ErrorCode.TemporaryFailure, message: expect.stringMatching(/^a reload into this node's Kamailio is running/) });
      expect(t.dumps).toEqual([]);
      reloading = null;
      expect((await t.table.list(page())).summary.present).toBe(1);
    } finally {
      await t.close();
    }
  });

  it("answers a page cursor that no earlier page gave with invalid params", async () => {
    const t = await tableOf(1, [inKamailio("u0@example.com", "sip:u0@192.0.2.1")]);
    try {
      for (const after of ["not json", "[1,2]", "{}", '["only one"]']) {
        await expect(t.table.list(page({ after }))).rejects.toMatchObject({ code: ErrorCode.InvalidParams, message: expect.stringMatching(/^after must be the next of an earlier kamailio\.list page/) });
      }
    } finally {
      await t.close();
    }
  });
});
