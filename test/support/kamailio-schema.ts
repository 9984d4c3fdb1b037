/** Kamailio databases made from Debian's own schema files, as `kamdbctl create` would make them. */
import { readFileSync } from "node:fs";
import Database from "better-sqlite3";
import pg from "pg";

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

/** The same schema in a PostgreSQL database (`url`), from Debian's postgres files. */
export async function createKamailioPostgres(url: string, opts: { fixAliases?: boolean } = {}): Promise<string> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    for (const f of SCHEMA_FILES) await client.query(readFileSync(`/usr/share/kamailio/postgres/${f}`, "utf8"));
    if (opts.fixAliases ?? true) await client.query(FIX_ALIASES_VERSION);
  } finally {
    await client.end();
  }
  return url;
}
