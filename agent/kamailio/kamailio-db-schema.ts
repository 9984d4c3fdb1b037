/**
 * Checks, before the first write, that Kamailio's tables are the ones Kamailio 5.6 reads
 * (kamailio-5.6.md §4): the `version` rows and every column we write. A mismatch is a permanent
 * KamailioDbSchemaError that names the table and the fix.
 */
import type { Logger } from "../ops/logger.js";
import { KamailioDbSchemaError } from "./kamailio-db-errors.js";
import type { SqlDriver } from "./kamailio-db-sql.js";

/** usrloc's table version (UL_TABLE_VERSION in src/modules/usrloc/usrloc_mod.h), for every domain table. */
export const USRLOC_TABLE_VERSION = 9;
export const DBALIASES_TABLE_VERSION = 1;
/** What registrar-create.sql ships for `aliases` (surprise 10): usrloc refuses it with db_mode ≠ 0. */
export const SHIPPED_ALIASES_VERSION = 8;

export const USRLOC_COLUMNS = [
  "ruid", "username", "domain", "contact", "received", "path", "expires", "q", "callid", "cseq", "last_modified", "flags",
  "cflags", "user_agent", "socket", "methods", "instance", "reg_id", "server_id", "connection_id", "keepalive", "partition",
] as const;
export const DBALIASES_COLUMNS = ["alias_username", "alias_domain", "username", "domain"] as const;

export interface SchemaTarget {
  locationTable: string;
  aliasMode: "dbaliases" | "usrloc";
  aliasTable: string;
}

function schemaFile(driver: SqlDriver, file: string): string {
  const dir = driver.dialect === "sqlite" ? "db_sqlite" : "postgres";
  return `create it with \`kamdbctl create\` or by running /usr/share/kamailio/${dir}/${file} on Kamailio's database`;
}

async function versions(driver: SqlDriver, tables: string[]): Promise<Map<string, number>> {
  try {
    const rows = await driver.query(`SELECT table_name, table_version FROM version WHERE table_name IN (${tables.map(() => "?").join(", ")})`, tables);
    return new Map(rows.map((r) => [String(r["table_name"]), Number(r["table_version"])]));
  } catch (err) {
    if (driver.classify(err) !== "missing-object") throw err;
    throw new KamailioDbSchemaError("version", "the table (or its columns) is missing", schemaFile(driver, "standard-create.sql"), err);
  }
}

async function checkColumns(driver: SqlDriver, table: string, columns: readonly string[], file: string): Promise<void> {
  try {
    await driver.query(`SELECT ${columns.join(", ")} FROM ${table} WHERE 1 = 0`);
  } catch (err) {
    if (driver.classify(err) !== "missing-object") throw err;
    const what = err instanceof Error ? err.message : String(err);
    throw new KamailioDbSchemaError(table, `the table or one of its columns is missing (${what}); needed: ${columns.join(", ")}`, schemaFile(driver, file), err);
  }
}

function expectVersion(driver: SqlDriver, table: string, got: number | undefined, want: number, file: string): void {
  if (got === want) return;
  const problem = got === undefined ? `no row for it in the version table (Kamailio needs ${want})` : `version ${got}, Kamailio 5.6 needs ${want}`;
  throw new KamailioDbSchemaError(table, problem, schemaFile(driver, file));
}

/**
 * Validates the tables; for usrloc-mode aliases on the shipped version 8 it only warns: our rows
 * are fine (the columns are location's), but Kamailio with db_mode ≠ 0 will not start until the
 * version row says 9.
 */
export async function checkKamailioSchema(driver: SqlDriver, t: SchemaTarget, log: Logger): Promise<void> {
  const v = await versions(driver, [t.locationTable, t.aliasTable]);
  expectVersion(driver, t.locationTable, v.get(t.locationTable), USRLOC_TABLE_VERSION, "usrloc-create.sql");
  await checkColumns(driver, t.locationTable, USRLOC_COLUMNS, "usrloc-create.sql");
  if (t.aliasMode === "dbaliases") {
    expectVersion(driver, t.aliasTable, v.get(t.aliasTable), DBALIASES_TABLE_VERSION, "alias_db-create.sql");
    await checkColumns(driver, t.aliasTable, DBALIASES_COLUMNS, "alias_db-create.sql");
    return;
  }
  const aliasVersion = v.get(t.aliasTable);
  if (aliasVersion === SHIPPED_ALIASES_VERSION) {
    log.warn(
      { table: t.aliasTable, version: aliasVersion },
      `Kamailio's "${t.aliasTable}" table has version ${aliasVersion} as shipped in registrar-create.sql, but usrloc needs ` +
        `${USRLOC_TABLE_VERSION} for every domain table: with lookup("${t.aliasTable}") and db_mode other than 0 Kamailio refuses to start. ` +
        `The columns are the same, so fix the label: UPDATE version SET table_version=${USRLOC_TABLE_VERSION} WHERE table_name='${t.aliasTable}' ` +
        `(or modparam("usrloc","version_table",0)). Writing aliases anyway (kamailio-5.6.md surprise 10).`,
    );
  } else {
    expectVersion(driver, t.aliasTable, aliasVersion, USRLOC_TABLE_VERSION, "registrar-create.sql");
  }
  await checkColumns(driver, t.aliasTable, USRLOC_COLUMNS, "registrar-create.sql");
}
