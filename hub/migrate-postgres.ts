/**
 * Forward-only migrations for the hub's PostgreSQL schema: `migrations/postgres/NNNN_name.sql`,
 * each applied once, in order, in its own transaction. Several hubs may start at once against the
 * same database, so the whole run holds a session advisory lock (as graphile-worker and pg-boss
 * do): the second hub waits, then finds nothing left to apply. A database migrated by newer code
 * is refused rather than guessed at.
 */
import type pg from "pg";
import { loadMigrations, type Migration } from "../agent/journal/migrate-sqlite.js";

/** Arbitrary but fixed: the advisory-lock key every locmesh hub uses for migrations. */
const MIGRATION_LOCK = 7_461_010_001;

export class SchemaTooNewError extends Error {
  override readonly name = "SchemaTooNewError";
}

export function schemaTooNewError(current: number, latest: number): SchemaTooNewError {
  return new SchemaTooNewError(
    `the hub database is at schema version ${current} but this locmesh only knows up to ${latest}; ` +
      "run the newer locmesh hub that migrated it",
  );
}

/** The database's schema version (0 before the first migration) and the latest this locmesh knows. Reads only. */
export async function schemaVersions(client: Pick<pg.ClientBase, "query">, migrations: Migration[] = loadMigrations("postgres")): Promise<{ current: number; latest: number }> {
  const latest = migrations.at(-1)?.version ?? 0;
  const { rows } = await client.query<{ exists: boolean }>("SELECT to_regclass('schema_migrations') IS NOT NULL AS exists");
  if (!rows[0]?.exists) return { current: 0, latest };
  const v = await client.query<{ v: number }>("SELECT coalesce(max(version), 0)::int AS v FROM schema_migrations");
  return { current: v.rows[0]?.v ?? 0, latest };
}

/** Applies pending migrations on one connection; returns the versions applied. */
export async function migratePostgres(client: pg.ClientBase, migrations: Migration[] = loadMigrations("postgres")): Promise<number[]> {
  await client.query("SELECT pg_advisory_lock($1)", [MIGRATION_LOCK]);
  try {
    await client.query(`CREATE TABLE IF NOT EXISTS schema_migrations (
      version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`);
    const { rows } = await client.query<{ v: number }>("SELECT coalesce(max(version), 0)::int AS v FROM schema_migrations");
    const current = rows[0]?.v ?? 0;
    const latest = migrations.at(-1)?.version ?? 0;
    if (current > latest) throw schemaTooNewError(current, latest);
    const applied: number[] = [];
    for (const m of migrations) {
      if (m.version <= current) continue;
      await client.query("BEGIN");
      try {
        await client.query(m.sql);
        await client.query("INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", [m.version, m.name]);
        await client.query("COMMIT");
      } catch (err) {
        await client.query("ROLLBACK").catch(() => undefined);
        throw new Error(`migration ${m.version}_${m.name} failed: ${(err as Error).message}`, { cause: err });
      }
      applied.push(m.version);
    }
    return applied;
  } finally {
    await client.query("SELECT pg_advisory_unlock($1)", [MIGRATION_LOCK]).catch(() => undefined);
  }
}
