/** Kamailio databases made from Debian's own schema files, as `kamdbctl create` would make them. */
import { readFileSync } from "node:fs";
import Database from "better-sqlite3";
import type { PostgresProcess } from "./postgres-process.js";

export const SCHEMA_FILES = ["standard-create.sql", "usrloc-create.sql", "alias_db-create.sql", "registrar-create.sql"];
/** The surprise 10 fix: usrloc needs version 9 for its "aliases" domain table, Debian ships 8. */
export const FIX_ALIASES_VERSION = "UPDATE version SET table_version = 9 WHERE table_name = 'aliases'";

export function createKamailioSqlite(path: string, opts: { fixAliases?: boolean; files?: string[] } = {}): string {
  const db = new Database(path);
  try {
    for (const f of opts.files ?? SCHEMA_FILES) db.exec(readFileSync(`/usr/share/kamailio/db_sqlite/${f}`, "utf8"));
    if (opts.fixAliases ?? true) db.exec(FIX_ALIASES_VERSION);
  } finally {
    db.close();
  }
  return path;
}

/** The same schema in a new database of a PostgreSQL server (Debian's postgres files); returns its URL. */
export async function createKamailioPostgres(pg: PostgresProcess, name: string): Promise<string> {
  const url = await pg.createDatabase(name);
  const sql = [...SCHEMA_FILES.map((f) => readFileSync(`/usr/share/kamailio/postgres/${f}`, "utf8")), FIX_ALIASES_VERSION].join(";\n");
  await pg.query(sql, [], name);
  return url;
}
