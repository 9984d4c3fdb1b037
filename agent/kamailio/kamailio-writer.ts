/**
 * Carries out one InstallOp against the local Kamailio: through jsonrpcs first (the running
 * Kamailio sees it at once), and when that transport is unavailable (FIFO missing, no reader,
 * timeout: KamailioUnavailableError) straight into Kamailio's own tables, which a db_mode 1/2
 * Kamailio loads at its next start and a db_mode 3 Kamailio reads at once (kamailio-5.6.md §3).
 * When both fail the op throws a TransientError: the caller keeps it pending and retries.
 *
 * alias_db has no RPC at all (§5), so `dbaliases` aliases always go through the database.
 */
import { TransientError, isTransient } from "../core/transient.js";
import type { Logger } from "../ops/logger.js";
import { isAliasOp, type InstallOp } from "./install-plan.js";
import { KamailioRpcError } from "./jsonrpcs-wire.js";
import type { DbBinding, KamailioDb } from "./kamailio-db.js";
import type { UsrlocRpc } from "./usrloc-rpc.js";
import { UL_ADD_CALLID, UL_ADD_CSEQ } from "./registrar-input.js";

/** Which way the last write went; "pending" means neither way worked. */
export type WriteRoute = "rpc" | "database";

export interface KamailioWriter {
  /** Resolves with the way the op was written; rejects with TransientError when it must wait. */
  write(op: InstallOp, nowSec: number): Promise<WriteRoute>;
  /**
   * After `op` went in over jsonrpcs although an earlier write of its key went into Kamailio's
   * database only (usrloc db_mode 1/2): brings the database's rows of that key in line with what
   * Kamailio holds. An add: Kamailio took it as a contact it did not have, under a ruid of its own,
   * and writes its own row (db_mode 1 at once, 2 at its next flush); the agent's row beside it made
   * Kamailio load the contact twice at its next start, and a later removal took out only one. So
   * the key's other rows go, the ones under the ruids Kamailio holds stay (for an alias: every row
   * of the alias but those, whatever its target was). A removal: Kamailio removed only what it
   * held in memory, so the agent's row goes too. Resolves with the rows dropped (0 when Kamailio
   * holds the agent's row itself, loaded at a restart, or an add it does not hold). Absent: nothing to do.
   */
  settleDatabase?(op: InstallOp): Promise<number>;
}

export interface KamailioWriterDeps {
  usrloc: UsrlocRpc;
  /** Kamailio's database, when the operator configured the fallback. */
  db: KamailioDb | null;
  /** usrloc domain that holds SER-style aliases, or null when aliases live in dbaliases. */
  aliasTable: string | null;
  /**
   * Whether Kamailio ever reads its `location` table (usrloc db_mode 1-4). With db_mode 0 the
   * database is there for alias_db's `dbaliases` only: a binding written into it would reach no
   * Kamailio, yet count as written (the cursor past it, the binding taken for installed), so
   * location ops then wait for jsonrpcs like ops without a database. Default true.
   */
  locationsInDb?: boolean;
  /**
   * usrloc writes its contacts into the database (db_mode 1 at once, 2 at its flush): a contact
   * ul.add creates gets a row of Kamailio's own (settleDatabase). Not db_mode 3 (no cache: ul.add
   * finds the agent's row) nor 4 (read-only: the agent's row is the only one). Default false.
   */
  usrlocWritesRows?: boolean;
  /**
   * usrloc runs db_mode 3 (no cache) on `db`: it looks each AoR up in the database, and a query that
   * fails there reads as no AoR, so ul.rm_contact answers 404 "AOR not found" with the row still in
   * place (udomain.c get_urecord, db_load_urecord). A 404 is then followed by the row's removal from
   * the database, which fails (and keeps the removal pending) while the database does. Default false.
   */
  usrlocDbOnly?: boolean;
  log: Logger;
}

/**
 * Kamailio answered but could not keep the change (its memory or its usrloc database), or an alias
 * could not go into alias_db's database while Kamailio itself may be fine: retried like an
 * unreachable Kamailio, but the writes after it are still tried (a removal may go in and free
 * room where an add does not; bindings go over jsonrpcs), and other origins' batches too.
 */
export class KamailioCouldNotStoreError extends TransientError {
  override readonly name: string = "KamailioCouldNotStoreError";
}

/**
 * An alias could not go into alias_db's `dbaliases` table: its database is away, and it has no other
 * way in (alias_db has no RPC). Kamailio itself may be fine, so the sink notes the alias and goes on
 * past it (sink-pass.ts): the bindings of the same origin must not wait for alias_db's database.
 */
export class AliasDbUnreachableError extends KamailioCouldNotStoreError {
  override readonly name = "AliasDbUnreachableError";
}

/** A write that cannot succeed as given: retrying will not help (logged, counted, skipped). */
export class KamailioWriteRejectedError extends Error {
  override readonly name = "KamailioWriteRejectedError";
}

export function createKamailioWriter(deps: KamailioWriterDeps): KamailioWriter {
  const { usrloc, aliasTable } = deps;

  async function viaRpc(op: InstallOp, nowSec: number): Promise<void> {
    switch (op.op) {
      case "add":
        await usrloc.ulAdd(op.table, op.aor, op.binding, nowSec);
        return;
      case "rm-contact":
        if (!(await usrloc.ulRmContact(op.table, op.aor, op.contact)) && deps.usrlocDbOnly === true && deps.db !== null) {
          await deps.db.removeLocation(op.aor, op.contact);
        }
        return;
      case "alias-set":
        // One target per alias: drop whatever target it had, then add the new one.
        await usrloc.ulRm(aliasTable!, op.alias);
        await usrloc.ulAdd(aliasTable!, op.alias, aliasBinding(op.target), nowSec);
        return;
      case "alias-rm":
        await usrloc.ulRm(aliasTable!, op.alias);
        return;
    }
  }

  async function viaDb(op: InstallOp): Promise<void> {
    const db = deps.db;
    if (db === null) throw new Error("no database configured");
    switch (op.op) {
      case "add":
        await db.upsertLocation(op.aor, dbBinding(op));
        return;
      case "rm-contact":
        await db.removeLocation(op.aor, op.contact);
        return;
      case "alias-set":
        await db.setAlias(op.alias, op.target);
        return;
      case "alias-rm":
        await db.removeAlias(op.alias);
        return;
    }
  }

  /** The rows to keep: the ruids under which Kamailio holds `aor` in `table` (`contact` of it, or any). */
  async function heldRuids(table: string, aor: string, contact: string | null): Promise<string[]> {
    return (await usrloc.ulLookup(table, aor)).filter((c) => (contact === null || c.contact === contact) && c.ruid !== "").map((c) => c.ruid);
  }

  return {
    async settleDatabase(op) {
      const db = deps.db;
      if (db === null || deps.usrlocWritesRows !== true) return 0;
      switch (op.op) {
        case "add": {
          const keep = await heldRuids(op.table, op.aor, op.binding.contact);
          return keep.length === 0 ? 0 : db.dropOtherRows("location", op.aor, op.binding.contact, keep);
        }
        case "rm-contact":
          return db.removeLocation(op.aor, op.contact).then(() => 0);
        case "alias-set": {
          if (aliasTable === null) return 0;
          const keep = await heldRuids(aliasTable, op.alias, null);
          return keep.length === 0 ? 0 : db.dropOtherRows("aliases", op.alias, null, keep);
        }
        case "alias-rm":
          return aliasTable === null ? 0 : db.removeAlias(op.alias).then(() => 0);
      }
    },
    async write(op, nowSec) {
      const aliasOp = isAliasOp(op);
      const rpcPossible = !aliasOp || aliasTable !== null;
      // The database this op may fall back to (viaDb is only called with one).
      const db = aliasOp || deps.locationsInDb !== false ? deps.db : null;
      let rpcError: unknown = null;
      if (rpcPossible) {
        try {
          await viaRpc(op, nowSec);
          return "rpc";
        } catch (err) {
          if (!isTransient(err) && !isStorageFault(err)) throw new KamailioWriteRejectedError(`Kamailio refused ${describe(op)}: ${(err as Error).message}`, { cause: err });
          rpcError = err;
        }
      }
      if (db === null && isStorageFault(rpcError)) {
        // Kamailio answered: it is reachable, but could not keep the change.
        throw new KamailioCouldNotStoreError(
          `Kamailio could not store ${describe(op)}: usrloc answered "${(rpcError as KamailioRpcError).kamailioMessage}". ` +
            "Without a usrloc database (db_mode 0) its shared memory is full: every node holds the whole cluster's bindings, " +
            "so give Kamailio memory for all of them (-m, SHM_MEMORY in /etc/default/kamailio) and restart it; " +
            "with one, usrloc's database write failed. The change stays pending and is retried",
          { cause: rpcError },
        );
      }
      if (db === null) {
        const why = deps.db === null ? "no fallback database is configured (kamailio.db)" : "usrloc keeps no database (kamailio.db.dbMode 0) to write it into";
        throw new TransientError(
          `Kamailio is unreachable through jsonrpcs (${(rpcError as Error).message}) and ${why}; ${describe(op)} stays pending`,
          { cause: rpcError },
        );
      }
      try {
        await viaDb(op);
        return "database";
      } catch (err) {
        // Refused by the database while jsonrpcs was only away: jsonrpcs may take it once Kamailio
        // answers again (a login, a privilege or a column's size is the database's own matter), so
        // it stays pending instead of being skipped for good (found by review).
        if (!isTransient(err) && rpcError !== null) {
          throw new TransientError(
            `Kamailio is unreachable through jsonrpcs (${(rpcError as Error).message}) and its database refused ${describe(op)} ` +
              `(${(err as Error).message}; check kamailio.db); it stays pending until jsonrpcs answers`,
            { cause: err },
          );
        }
        if (!isTransient(err)) throw new KamailioWriteRejectedError(`Kamailio's database refused ${describe(op)}: ${(err as Error).message}`, { cause: err });
        // A dbaliases alias has no other way in: the database being away says nothing of jsonrpcs,
        // and the bindings beside it must not wait for it.
        if (!rpcPossible) throw new AliasDbUnreachableError(`alias_db's database is unreachable (${(err as Error).message}); ${describe(op)} stays pending, bindings go on`, { cause: err });
        const via = rpcError === null ? "" : `jsonrpcs (${(rpcError as Error).message}) and `;
        throw new TransientError(`Kamailio is unreachable through ${via}its database (${(err as Error).message}); ${describe(op)} stays pending`, { cause: err });
      }
    },
  };
}

/**
 * usrloc's faults when its own database write fails (db_mode 1 and 3 write through,
 * kamailio-5.6.md §3), or its shared memory is full: ul.add "Can't insert contact" / "Can't update
 * contact", "Can't insert record" (an AoR it did not hold yet), "Can't obtain next uid", ul.rm_contact
 * "Internal error (can't delete contact)", ul.rm "Failed to delete AOR" (ul_rpc.c). Kamailio's
 * storage is down, not the request wrong, so they are retried like an unreachable Kamailio; skipped,
 * the change would be missing from Kamailio until a reconcile (found by the db-stopped drill).
 */
const STORAGE_FAULT = /^(Can't (insert|update|delete) contact|Can't insert record|Can't obtain next uid|Internal error \(can't delete contact\)|Failed to delete AOR)/i;

export function isStorageFault(err: unknown): boolean {
  return err instanceof KamailioRpcError && err.code === 500 && STORAGE_FAULT.test(err.kamailioMessage);
}

/** A SER-style alias: contact = target, permanent (kamailio-5.6.md §5, as `kamctl alias add`). */
function aliasBinding(target: string) {
  return { contact: target, expires: 0, q: 1, path: "", received: "", socket: "", flags: 0, cflags: 0, methods: 4294967295 };
}

/**
 * The row for a binding another node owns. Its Call-ID is the one `ul.add` gives (UL_ADD_CALLID),
 * as if the write had gone through the FIFO: that mark is how the reconcile and the registrar
 * events tell what the agent installed from what a phone registered here. With the phone's own
 * Call-ID, a Kamailio that read the row (db_mode 3 at once, 1/2 after a restart) would have it
 * learned back as this node's registration, and the owner's binding rewritten from here. Its
 * CSeq is ul.add's too (1): usrloc matches a contact by Call-ID and CSeq, and with the phone's
 * CSeq (above 1) on a row with ul.add's Call-ID, every later ul.add of that contact into the
 * Kamailio that loaded it failed "500 Can't get record" (the 2026-11-23 operator dry run).
 */
function dbBinding(op: Extract<InstallOp, { op: "add" }>): DbBinding {
  const { binding: b, full: v } = op;
  return {
    contact: b.contact, expires: b.expires, q: b.q, path: b.path, received: b.received, socket: b.socket,
    flags: b.flags, cflags: b.cflags, methods: b.methods,
    callid: UL_ADD_CALLID, cseq: UL_ADD_CSEQ, userAgent: v.userAgent, instance: v.instance, regId: v.regId, ruid: v.ruid,
  };
}

/**
 * Whether `op`, written by the fallback into the database of a Kamailio that reads it only at start
 * (usrloc db_mode 1/2), is missing from that running Kamailio: bindings are, and so are aliases in
 * a usrloc domain (`aliasTable`); alias_db reads `dbaliases` at every lookup, and has no jsonrpcs
 * way in to repeat the write by.
 */
export function missedByRunningKamailio(op: InstallOp, aliasTable: string | null): boolean {
  return op.op === "add" || op.op === "rm-contact" || aliasTable !== null;
}

export function describe(op: InstallOp): string {
  switch (op.op) {
    case "add":
      return `binding ${op.aor} → ${op.binding.contact}`;
    case "rm-contact":
      return `removal of ${op.aor} → ${op.contact}`;
    case "alias-set":
      return `alias ${op.alias} → ${op.target}`;
    case "alias-rm":
      return `removal of alias ${op.alias}`;
  }
}
