/**
 * Kamailio's SQLite file through better-sqlite3, as a polite second writer.
 *
 * Kamailio has the same file open through db_sqlite, which never sets a busy timeout
 * (src/modules/db_sqlite/dbase.c): while we hold a write lock, a Kamailio write or (without WAL) a
 * Kamailio read fails at once with "database is locked". So every transaction here is a few
 * prepared statements with no I/O in between, taken with BEGIN IMMEDIATE, and we wait for
 * Kamailio's locks (busy_timeout) rather than the other way round. The journal mode is the file's
 * own: WAL is persistent and changes what Kamailio's readers do, so it is the operator's choice.
 *
 * The file must already exist (Kamailio's schema lives in it): a missing file is "unavailable",
 * never silently created empty.
 */
import Database from "better-sqlite3";
import { julianDayToUnix, unixToJulianDay } from "./kamailio-db-encoding.js";
import { createSerialQueue, type FailureKind, type Query, type Row, type SqlDriver } from "./kamailio-db-sql.js";

type Db = InstanceType<typeof Database>;
type Statement = Database.Statement<unknown[]>;

const UNAVAILABLE_CODES = /^SQLITE_(BUSY|LOCKED|CANTOPEN|IOERR|FULL|READONLY|PROTOCOL|NOTADB|CORRUPT)/;

/** `sqlite:///abs/path.db` (Kamailio's db_url syntax) → `/abs/path.db`. */
export function sqlitePathFromUrl(url: string): string {
  const m = /^sqlite:\/\/(\/.*)$/.exec(url);
  if (!m?.[1]) throw new RangeError(`"${url}" is not a Kamailio SQLite URL; write it as in kamailio.cfg: sqlite:///absolute/path.db`);
  return decodeURIComponent(m[1]);
}

export function createSqliteDriver(opts: { path: string; busyTimeoutMs: number }): SqlDriver {
  let db: Db | null = null;
  const statements = new Map<string, Statement>();
  const serial = createSerialQueue();

  function open(): Db {
    if (db) return db;
    try {
      const d = new Database(opts.path, { fileMustExist: true, timeout: opts.busyTimeoutMs });
      db = d;
      return d;
    } catch (cause) {
      // better-sqlite3 throws a TypeError (no code) for a missing directory; mark every open failure.
      throw Object.assign(new Error(`cannot open ${opts.path}: ${(cause as Error).message}`, { cause }), { openFailed: true });
    }
  }

  function drop(): void {
    statements.clear();
    const d = db;
    db = null;
    try {
      d?.close();
    } catch {
      // the handle is broken anyway; the next call reopens
    }
  }

  function runSync(sql: string, params: readonly unknown[]): Row[] {
    const d = open();
    let st = statements.get(sql);
    if (!st) {
      st = d.prepare<unknown[]>(sql);
      statements.set(sql, st);
    }
    const args = params as unknown[];
    if (st.reader) return st.all(...args) as Row[];
    st.run(...args);
    return [];
  }

  const direct: Query = async (sql, params = []) => runSync(sql, params);

  function classify(err: unknown): FailureKind {
    const e = err as { code?: unknown; message?: unknown; openFailed?: unknown };
    if (e?.openFailed === true) return "unavailable";
    if (typeof e?.code === "string" && UNAVAILABLE_CODES.test(e.code)) return "unavailable";
    if (typeof e?.message === "string" && /^no such (table|column)/.test(e.message)) return "missing-object";
    return "other";
  }

  /** After an I/O-level failure the handle may be stale (file replaced, dir remounted): reopen. */
  function dropIfBroken<T>(p: Promise<T>): Promise<T> {
    return p.catch((err: unknown) => {
      if (classify(err) === "unavailable") drop();
      throw err;
    });
  }

  return {
    dialect: "sqlite",
    query: (sql, params) => serial(() => dropIfBroken(direct(sql, params))),
    transaction: (fn) =>
      serial(() =>
        dropIfBroken(
          (async () => {
            runSync("BEGIN IMMEDIATE", []);
            try {
              const out = await fn(direct);
              runSync("COMMIT", []);
              return out;
            } catch (err) {
              try {
                if (db?.inTransaction) db.exec("ROLLBACK");
              } catch {
                // SQLite rolls back on its own when it cannot; the first error is the one to report
              }
              throw err;
            }
          })(),
        ),
      ),
    // One connection and one transaction at a time (the serial queue): nothing more to lock.
    lockKey: async () => undefined,
    encodeTime: unixToJulianDay,
    decodeTime: (v) => julianDayToUnix(Number(v)),
    classify,
    close: async () => serial(async () => drop()),
  };
}
