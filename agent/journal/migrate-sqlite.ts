/**
 * Forward-only migrations for the SQLite journal: `migrations/sqlite/NNNN_name.sql`, each applied
 * once, in order, in its own transaction. A journal written by newer code is refused rather than
 * guessed at.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type Database from "better-sqlite3";
import { migrationsDir } from "../ops/paths.js";

export interface Migration {
  version: number;
  name: string;
  sql: string;
}

export class JournalTooNewError extends Error {
  override readonly name = "JournalTooNewError";
}

/**
 * The migrations in `dir`, in order. Every `.sql` file must be named `NNNN_lower_case_name.sql`
 * and the numbers must run 0001, 0002, ... without a gap or a repeat: a misnamed file would never
 * be applied, and a number slipped in below one already shipped would be skipped by every
 * database past it (only the highest applied version is compared). Either is refused here.
 */
export function loadMigrations(kind: "sqlite" | "postgres", dir = join(migrationsDir(), kind)): Migration[] {
  const files = readdirSync(dir).filter((f) => f.endsWith(".sql")).sort();
  const problems: string[] = [];
  const migrations: Migration[] = [];
  for (const f of files) {
    if (!/^\d{4}_[a-z0-9_]+\.sql$/.test(f)) {
      problems.push(`${f}: migration files are named NNNN_lower_case_name.sql`);
      continue;
    }
    migrations.push({ version: Number(f.slice(0, 4)), name: f.slice(5, -4), sql: readFileSync(join(dir, f), "utf8") });
  }
  migrations.forEach((m, i) => {
    if (m.version !== i + 1) problems.push(`${String(m.version).padStart(4, "0")}_${m.name}.sql: expected number ${String(i + 1).padStart(4, "0")} (migrations run 0001, 0002, ... without gaps or repeats)`);
  });
  if (problems.length > 0) throw new Error(`bad ${kind} migrations in ${dir}:\n  ${problems.join("\n  ")}`);
  return migrations;
}

/** A journal at schema version `current`, written by a locmesh newer than this one (which knows up to `latest`). */
export function journalTooNewError(current: number, latest: number): JournalTooNewError {
  return new JournalTooNewError(
    `the journal is at schema version ${current} but this locmesh only knows up to ${latest}; ` +
      "run the newer locmesh that wrote it, or move the journal aside to start from a snapshot",
  );
}

/** Applies pending migrations; returns the versions applied. */
export function migrateSqlite(db: Database.Database, migrations = loadMigrations("sqlite")): number[] {
  db.exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL) STRICT`);
  const current = (db.prepare("SELECT coalesce(max(version), 0) AS v FROM schema_migrations").get() as { v: number }).v;
  const latest = migrations.at(-1)?.version ?? 0;
  if (current > latest) throw journalTooNewError(current, latest);
  const applied: number[] = [];
  for (const m of migrations) {
    if (m.version <= current) continue;
    db.transaction(() => {
      db.exec(m.sql);
      db.prepare("INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)").run(
        m.version,
        m.name,
        new Date().toISOString(),
      );
    })();
    applied.push(m.version);
  }
  return applied;
}
