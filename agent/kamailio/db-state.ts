/**
 * What a usrloc db_mode 3 Kamailio holds, read from its database in `ul.dump`'s shape, for the
 * reconciler. In db_mode 3 usrloc keeps no cache: every lookup reads the tables and `ul.dump` is
 * always empty (kamailio-5.6.md §3, surprise 7). Reconciled against that empty dump, every binding
 * registered on this node would look de-registered and every other node's would be rewritten.
 */
import type { KamailioDb } from "./kamailio-db.js";
import type { UsrlocContact } from "./usrloc-contact.js";

export interface DbStateTables {
  locationTable: string;
  /** usrloc domain holding SER-style aliases, or null when aliases live in dbaliases. */
  aliasTable: string | null;
  nowSec: number;
}

export async function dumpFromDb(db: KamailioDb, t: DbStateTables): Promise<UsrlocContact[]> {
  const out: UsrlocContact[] = [];
  for (const { aor, lastModified, ...b } of await db.listLocations(t.nowSec)) {
    out.push({
      ...b,
      table: t.locationTable,
      aor,
      status: b.expires === 0 ? "permanent" : "active",
      serverId: 0,
      tcpconnId: -1,
      // A row written with the schema's text default has no readable time: treat it as old.
      lastModified: Number.isFinite(lastModified) ? lastModified : 0,
      state: "CS_SYNC",
    });
  }
  if (t.aliasTable === null) return out;
  for (const a of await db.listAliases()) {
    out.push({
      table: t.aliasTable, aor: a.alias, contact: a.target, status: "permanent", expires: 0, q: 1, path: "", received: "", socket: "",
      callid: "", cseq: 0, userAgent: "", flags: 0, cflags: 0, methods: 0xffffffff, instance: "", regId: 0, ruid: "",
      serverId: 0, tcpconnId: -1, lastModified: 0, state: "CS_SYNC",
    });
  }
  return out;
}
