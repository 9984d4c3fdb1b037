/**
 * The database fallback: when the jsonrpcs FIFO fails, write a change straight into Kamailio's own
 * tables, so Kamailio loads it at its next start (usrloc db_mode 1/2) or sees it at once (db_mode 3,
 * and alias_db, which never caches). See kamailio-5.6.md §3 (db_mode visibility, surprise 4: no
 * RPC reloads usrloc from the DB), §4 (schemas) and §5 (alias_db vs the usrloc "aliases" domain).
 *
 * Encodings (kamailio-db-encoding.ts), all as Kamailio 5.6 itself writes them (§4.2):
 * - expires / last_modified on SQLite: a Julian-day REAL, exactly db_sqlite's
 *   `(t - 0.5) / 86400 + 2440587.5` (surprise 8; text is never matched by Kamailio's queries).
 * - expires / last_modified on PostgreSQL: TIMESTAMP WITHOUT TIME ZONE in Kamailio's *local* time
 *   (surprise 9), so `timeZone` must be the zone Kamailio runs in; glibc's mktime choices at DST
 *   edges are reproduced when reading.
 * - permanent = epoch 0 in that encoding (2440587.4999942 on SQLite, '1969-12-31 19:00:00' for
 *   New York), bit-exact, because the db_mode 3 timer deletes `expires != <encoded 0>` rows.
 * - methods NULL for all methods (0xFFFFFFFF); q -1 = unspecified; empty received/path/socket/
 *   instance as NULL; unsigned flags in the signed INTEGER columns as the same 32 bits;
 *   connection_id -1; a unique ruid (ours: "lmdb-<hex>") on every row (UNIQUE location_ruid_idx).
 * - AoRs `user@domain` split at the last '@' into username/domain (usrloc use_domain=1).
 * - dbaliases (alias_db): alias_username/alias_domain → username/domain; alias_db rewrites the
 *   R-URI to `sip:username@domain`. usrloc mode: the alias is an AoR in the "aliases" domain table
 *   whose permanent contact is the target URI (what `kamctl alias add` does over ul.add).
 * On first use the `version` table is checked (location 9, dbaliases 1, aliases 9; the shipped
 * aliases 8 only warns, surprise 10).
 *
 * Verified against Kamailio 5.6.3 (test/integration/kamailio-db.test.ts): db_mode 3's timer
 * (`ul.flush`) deletes a permanent row stored as a plain 2440587.5 although `ul.lookup` shows it as
 * permanent, and keeps ours. In db_mode 1/2 usrloc preloads in a SIP worker's child_init, so an
 * RPC answering after a start does not yet mean the rows are loaded. Kamailio updates and deletes
 * by ruid (db_ops_ruid=1), so an upsert keeps the ruid of the row it finds: otherwise a contact
 * Kamailio also holds would end up in two rows after its next start.
 */
import { randomBytes } from "node:crypto";
import type { Logger } from "../ops/logger.js";
import { checkTimeZone, joinAor, processTimeZone, splitAor, splitSipUri } from "./kamailio-db-encoding.js";
import {
  describe, KamailioDbError, KamailioDbSchemaError, KamailioDbUnavailableError,
} from "./kamailio-db-errors.js";
import { redactUrl } from "../ops/redact-url.js";
import { createPostgresDriver } from "./kamailio-db-postgres.js";
import {
  BINDING_COLUMNS, bindingValues, decodeBindingRow, INSERT_ONLY_COLUMNS, INSERT_ONLY_VALUES, type DbBinding,
} from "./kamailio-db-rows.js";
import { checkKamailioSchema, USRLOC_COLUMNS } from "./kamailio-db-schema.js";
import type { Query, SqlDriver } from "./kamailio-db-sql.js";
import { createSqliteDriver, sqlitePathFromUrl } from "./kamailio-db-sqlite.js";

export type { DbBinding } from "./kamailio-db-rows.js";
export { KamailioDbError, KamailioDbSchemaError, KamailioDbUnavailableError } from "./kamailio-db-errors.js";

export interface KamailioDbOptions {
  /** "sqlite:///abs/path.db" (Kamailio's own db_url syntax) or "postgres://user:pass@host:port/db". */
  url: string;
  /** Default "location". */
  locationTable?: string;
  /** alias_db's table, or the SER-style usrloc "aliases" domain table. */
  aliasMode: "dbaliases" | "usrloc";
  /** Default "dbaliases" or "aliases" per mode. */
  aliasTable?: string;
  /** IANA zone Kamailio runs in (PostgreSQL timestamps are Kamailio-local, surprise 9); default: this process's zone. */
  timeZone?: string;
  /** PostgreSQL connect timeout; on SQLite, how long to wait for Kamailio's lock (blocks this thread). Default 2000 / 1000. */
  connectTimeoutMs?: number;
}

export interface KamailioDb {
  readonly dialect: "sqlite" | "postgres";
  /** Insert or update the row for (aor user, domain, contact); keeps an existing row's ruid, else uses b.ruid or a fresh "lmdb-<hex>". */
  upsertLocation(aor: string, b: DbBinding): Promise<void>;
  removeLocation(aor: string, contact: string): Promise<void>;
  /**
   * Deletes the rows of (aor, contact) in the location table, or in the usrloc "aliases" table
   * (`table` "aliases"), but those whose ruid is one of `keepRuids`; a null contact: every row of
   * the AoR. Resolves with how many went.
   */
  dropOtherRows(table: "location" | "aliases", aor: string, contact: string | null, keepRuids: readonly string[]): Promise<number>;
  /** alias "user@domain" (a "sip:" prefix is accepted) → target "sip:user@domain". */
  setAlias(alias: string, target: string): Promise<void>;
  removeAlias(alias: string): Promise<void>;
  /** Every live (unexpired or permanent) location row, decoded back to DbBinding + aor and last_modified (Unix s). */
  listLocations(nowSec: number): Promise<Array<DbBinding & { aor: string; lastModified: number }>>;
  listAliases(): Promise<Array<{ alias: string; target: string }>>;
  /** The targets the alias table holds for one alias (a "sip:" prefix is accepted), as listAliases gives them. */
  lookupAlias(alias: string): Promise<string[]>;
  /** The alias table's name. */
  readonly aliasTable: string;
  ping(): Promise<void>;
  close(): Promise<void>;
}

const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;

function identifier(name: string): string {
  if (!IDENTIFIER.test(name)) throw new RangeError(`"${name}" is not a plain SQL table name`);
  return name;
}

function createDriver(opts: KamailioDbOptions, log: Logger): SqlDriver {
  if (/^postgres(ql)?:\/\//.test(opts.url)) {
    const timeZone = checkTimeZone(opts.timeZone ?? processTimeZone());
    return createPostgresDriver({ url: opts.url, timeZone, connectTimeoutMs: opts.connectTimeoutMs ?? 2000, log });
  }
  if (opts.url.startsWith("sqlite:")) return createSqliteDriver({ path: sqlitePathFromUrl(opts.url), busyTimeoutMs: opts.connectTimeoutMs ?? 1000 });
  throw new RangeError(`unsupported Kamailio db_url "${redactUrl(opts.url)}": use sqlite:///abs/path.db or postgres://user:pass@host:port/db`);
}

/** "sip:nick@example.com" or "nick@example.com" → "nick@example.com". */
const aliasAor = (alias: string): string => alias.trim().replace(/^sips?:/i, "");

export function openKamailioDb(opts: KamailioDbOptions, deps: { log: Logger; nowSec?: () => number }): KamailioDb {
  const log = deps.log.child({ part: "db" });
  const nowSec = deps.nowSec ?? (() => Math.floor(Date.now() / 1000));
  const loc = identifier(opts.locationTable ?? "location");
  const aliasTable = identifier(opts.aliasTable ?? (opts.aliasMode === "dbaliases" ? "dbaliases" : "aliases"));
  const driver = createDriver(opts, log);
  const target = `${driver.dialect} ${redactUrl(opts.url)}`;
  let ready: Promise<void> | null = null;
  let closed = false;

  function wrap(err: unknown, what: string): Error {
    if (err instanceof KamailioDbError || err instanceof KamailioDbUnavailableError) return err;
    const kind = driver.classify(err);
    if (kind === "unavailable") return new KamailioDbUnavailableError(target, what, err);
    if (kind === "missing-object") return new KamailioDbSchemaError(`${loc}/${aliasTable}`, `${describe(err)} while trying to ${what}`, "check the schema with `kamdbctl create` / the Debian SQL files", err);
    return new KamailioDbError(`${what} on Kamailio's database ${target} failed: ${describe(err)}`, { cause: err });
  }

  /** Runs one operation after the schema check, with every failure typed. */
  async function run<T>(what: string, fn: () => Promise<T>): Promise<T> {
    if (closed) throw new KamailioDbError(`${what}: the Kamailio database connection is closed`);
    try {
      ready ??= checkKamailioSchema(driver, { locationTable: loc, aliasMode: opts.aliasMode, aliasTable }, log).catch((err: unknown) => {
        ready = null; // check again next time: the operator may fix it, or the DB may come back
        throw err;
      });
      await ready;
      return await fn();
    } catch (err) {
      throw wrap(err, what);
    }
  }

  async function upsertRow(q: Query, table: string, aor: string, b: DbBinding): Promise<void> {
    const { username, domain } = splitAor(aor);
    await driver.lockKey(q, `locmesh:${table}:${aor}:${b.contact}`);
    const key = "username = ? AND domain IS NOT DISTINCT FROM ? AND contact = ?";
    const values = bindingValues(driver, b, nowSec());
    const updated = await q(`UPDATE ${table} SET ${BINDING_COLUMNS.map((c) => `${c} = ?`).join(", ")} WHERE ${key} RETURNING id`, [
      ...values, username, domain, b.contact,
    ]);
    if (updated.length > 0) return;
    const taken = b.ruid !== "" && (await q(`SELECT 1 AS hit FROM ${table} WHERE ruid = ?`, [b.ruid])).length > 0;
    const ruid = b.ruid !== "" && !taken ? b.ruid : `lmdb-${randomBytes(8).toString("hex")}`;
    const cols = ["ruid", "username", "domain", "contact", ...BINDING_COLUMNS, ...INSERT_ONLY_COLUMNS];
    await q(`INSERT INTO ${table} (${cols.join(", ")}) VALUES (${cols.map(() => "?").join(", ")})`, [
      ruid, username, domain, b.contact, ...values, ...INSERT_ONLY_VALUES,
    ]);
  }

  const accountKey = "username = ? AND domain IS NOT DISTINCT FROM ?";
  const liveRows = (table: string, now: number, columns: string): Promise<Record<string, unknown>[]> =>
    driver.query(`SELECT ${columns} FROM ${table} WHERE expires > ? OR expires = ? ORDER BY id`, [driver.encodeTime(now), driver.encodeTime(0)]);

  function dbAlias(alias: string): { alias_username: string; alias_domain: string } {
    const { username, domain } = splitAor(aliasAor(alias));
    return { alias_username: username, alias_domain: domain ?? "" };
  }

  return {
    dialect: driver.dialect,
    upsertLocation: (aor, b) => run(`write ${aor} ${b.contact} to ${loc}`, () => driver.transaction((q) => upsertRow(q, loc, aor, b))),
    removeLocation: (aor, contact) =>
      run(`remove ${aor} ${contact} from ${loc}`, async () => {
        const { username, domain } = splitAor(aor);
        await driver.query(`DELETE FROM ${loc} WHERE ${accountKey} AND contact = ?`, [username, domain, contact]);
      }),
    dropOtherRows: (which, aor, contact, keepRuids) => {
      const table = which === "location" ? loc : aliasTable;
      return run(`drop rows of ${aor} ${contact ?? "(every contact)"} from ${table} but ruid ${keepRuids.join(", ")}`, async () => {
        if (keepRuids.length === 0) throw new KamailioDbError("dropOtherRows needs the ruid of at least one row to keep");
        const { username, domain } = splitAor(which === "aliases" ? aliasAor(aor) : aor);
        const gone = await driver.query(
          `DELETE FROM ${table} WHERE ${accountKey}${contact === null ? "" : " AND contact = ?"} AND ruid NOT IN (${keepRuids.map(() => "?").join(", ")}) RETURNING id`,
          [username, domain, ...(contact === null ? [] : [contact]), ...keepRuids],
        );
        return gone.length;
      });
    },
    setAlias: (alias, targetUri) =>
      run(`set alias ${alias} in ${aliasTable}`, async () => {
        const aor = aliasAor(alias);
        if (opts.aliasMode === "usrloc") {
          const { username, domain } = splitAor(aor);
          await driver.transaction(async (q) => {
            await q(`DELETE FROM ${aliasTable} WHERE ${accountKey} AND contact <> ?`, [username, domain, targetUri]);
            await upsertRow(q, aliasTable, aor, aliasBinding(targetUri));
          });
          return;
        }
        const t = splitSipUri(targetUri);
        if (!t) throw new KamailioDbError(`alias target "${targetUri}" must be a SIP URI with a user part (sip:user@domain): alias_db rewrites the R-URI to sip:username@domain`);
        const a = dbAlias(alias);
        await driver.transaction(async (q) => {
          await q(`DELETE FROM ${aliasTable} WHERE alias_username = ? AND alias_domain = ?`, [a.alias_username, a.alias_domain]);
          await q(`INSERT INTO ${aliasTable} (alias_username, alias_domain, username, domain) VALUES (?, ?, ?, ?)`, [a.alias_username, a.alias_domain, t.username, t.domain]);
        });
      }),
    removeAlias: (alias) =>
      run(`remove alias ${alias} from ${aliasTable}`, async () => {
        if (opts.aliasMode === "usrloc") {
          const { username, domain } = splitAor(aliasAor(alias));
          await driver.query(`DELETE FROM ${aliasTable} WHERE ${accountKey}`, [username, domain]);
          return;
        }
        const a = dbAlias(alias);
        await driver.query(`DELETE FROM ${aliasTable} WHERE alias_username = ? AND alias_domain = ?`, [a.alias_username, a.alias_domain]);
      }),
    listLocations: (now) =>
      run(`list ${loc}`, async () => {
        const rows = (await liveRows(loc, now, ["id", ...USRLOC_COLUMNS].join(", "))).map((r) => decodeBindingRow(driver, r));
        // A DATETIME written as text on SQLite sorts above every REAL, so it passes the filter; Kamailio
        // never matches such rows either (surprise 8).
        const readable = rows.filter((r) => Number.isFinite(r.expires));
        if (readable.length < rows.length) log.warn({ table: loc, rows: rows.length - readable.length }, "skipped location rows whose expires is not in Kamailio's encoding");
        return readable;
      }),
    listAliases: () =>
      run(`list ${aliasTable}`, async () => {
        if (opts.aliasMode === "usrloc") {
          const rows = await liveRows(aliasTable, nowSec(), "id, username, domain, contact");
          return rows.map((r) => ({ alias: joinAor(String(r["username"]), r["domain"] as string | null), target: String(r["contact"]) }));
        }
        const rows = await driver.query(`SELECT alias_username, alias_domain, username, domain FROM ${aliasTable} ORDER BY id`);
        return rows.map((r) => ({
          alias: joinAor(String(r["alias_username"]), r["alias_domain"] as string),
          target: `sip:${joinAor(String(r["username"]), r["domain"] as string)}`,
        }));
      }),
    lookupAlias: (alias) =>
      run(`look up alias ${alias} in ${aliasTable}`, async () => {
        if (opts.aliasMode === "usrloc") {
          const { username, domain } = splitAor(aliasAor(alias));
          const now = driver.encodeTime(nowSec());
          const rows = await driver.query(`SELECT contact FROM ${aliasTable} WHERE ${accountKey} AND (expires > ? OR expires = ?) ORDER BY id`, [username, domain, now, driver.encodeTime(0)]);
          return rows.map((r) => String(r["contact"]));
        }
        const a = dbAlias(alias);
        const rows = await driver.query(`SELECT username, domain FROM ${aliasTable} WHERE alias_username = ? AND alias_domain = ? ORDER BY id`, [a.alias_username, a.alias_domain]);
        return rows.map((r) => `sip:${joinAor(String(r["username"]), r["domain"] as string)}`);
      }),
    aliasTable,
    ping: () => run("ping", async () => void (await driver.query("SELECT 1 AS ok"))),
    async close() {
      if (closed) return;
      closed = true;
      await driver.close();
    },
  };
}

/** A SER-style alias: a permanent contact whose URI is the target, as `kamctl alias add` leaves it. */
function aliasBinding(targetUri: string): DbBinding {
  return {
    contact: targetUri, expires: 0, q: 1, path: "", received: "", socket: "", callid: "locmesh-alias", cseq: 1,
    userAgent: "locmesh", flags: 0, cflags: 0, methods: 0xffffffff, instance: "", regId: 0, ruid: "",
  };
}
