/**
 * Reading a journal without opening it as the agent does: no lock taken, no migration run, nothing
 * written, so `locmesh check` can look at it whether or not an agent runs on it. What an agent's
 * start would refuse (another node's journal, one written by a newer locmesh) is returned as the
 * same error the start throws.
 */
import { join } from "node:path";
import Database from "better-sqlite3";
import { journalTooNewError, loadMigrations, type JournalTooNewError } from "./migrate-sqlite.js";
import { journalOwnerError, type JournalOwnerError } from "./sqlite-meta.js";

/** Where an agent with `dataDir` keeps its journal. */
export function journalPathOf(dataDir: string): string {
  return join(dataDir, "journal.sqlite");
}

export interface JournalFacts {
  /** The journal's epoch (node~hex); null while it has none (made and never used). */
  replicaId: string | null;
  /** When it was made (ISO time), as it noted it. */
  createdAt: string | null;
  /** False while it has not caught up with the cluster once since it started empty. */
  seeded: boolean;
  /** Its schema version, and the latest this locmesh knows (an older one is migrated at start). */
  schema: number;
  latestSchema: number;
  /** What the agent's start would refuse it for; null when it would open it. */
  refusal: JournalOwnerError | JournalTooNewError | null;
}

/**
 * Reads the journal at `path` for node `nodeId` (read-only). Throws what better-sqlite3 throws for
 * a file it cannot read. SQLite makes a WAL journal's `-wal` and `-shm` files even for a reader,
 * and leaves them; run as root it gives them to the journal's owner (measured), so a check run as
 * root does not keep the agent's user from its journal.
 */
export function inspectJournal(path: string, nodeId: string): JournalFacts {
  // A reader waits at most a second for a writer's lock (SQLite's default here is 5 s).
  const db = new Database(path, { readonly: true, fileMustExist: true, timeout: 1000 });
  try {
    const hasTable = (name: string) => db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?").get(name) !== undefined;
    const meta = (name: string): string | null => {
      if (!hasTable("meta")) return null;
      return (db.prepare("SELECT value FROM meta WHERE name = ?").get(name) as { value: string } | undefined)?.value ?? null;
    };
    const schema = hasTable("schema_migrations") ? (db.prepare("SELECT coalesce(max(version), 0) AS v FROM schema_migrations").get() as { v: number }).v : 0;
    const latestSchema = loadMigrations("sqlite").at(-1)?.version ?? 0;
    const owner = meta("node_id");
    const replicaId = meta("replica_id");
    const refusal = owner !== null && owner !== nodeId ? journalOwnerError(path, owner, nodeId)
      : schema > latestSchema ? journalTooNewError(schema, latestSchema)
      : null;
    return { replicaId, createdAt: meta("created_at"), seeded: replicaId === null || meta("unseeded") === null, schema, latestSchema, refusal };
  } finally {
    db.close();
  }
}
