/**
 * One agent per journal. Two processes on one journal (a second `locmesh agent` started by hand
 * next to the service, with another API port) would each keep their own next sequence number in
 * memory and give different changes the same numbers: the peers would take one, never the other,
 * silently. So the agent holds a lock beside its journal, `<journal>.lock`, for as long as the
 * journal is open: an SQLite file opened in exclusive locking mode and written once, so the kernel
 * drops the lock when the process ends however it ends (no stale lock after kill -9), and a second
 * opener is refused at once, saying so. The journal itself stays open to readers (sqlite3, tests).
 */
import { existsSync } from "node:fs";
import Database from "better-sqlite3";

export class JournalInUseError extends Error {
  override readonly name = "JournalInUseError";
}

export interface JournalLock {
  release(): void;
}

/** Takes the lock of the journal at `path` (none for ":memory:"); throws JournalInUseError if another process holds it. */
export function lockJournal(path: string): JournalLock {
  if (path === ":memory:") return { release: () => undefined };
  const lock = new Database(`${path}.lock`, { timeout: 0 });
  try {
    lock.pragma("locking_mode = EXCLUSIVE");
    lock.exec("BEGIN EXCLUSIVE; COMMIT");
  } catch (err) {
    lock.close();
    if ((err as { code?: unknown }).code === "SQLITE_BUSY") {
      throw new JournalInUseError(
        `another process holds the journal at ${path}: an agent with this dataDir is running already (the service, or one started by hand). ` +
          "Stop it first, or give this one its own dataDir: two agents on one journal would give different changes the same numbers",
      );
    }
    throw err;
  }
  return { release: () => lock.close() };
}

/**
 * Whether an agent holds the journal at `path` now (for `locmesh check`): by taking the lock and
 * letting it go at once, so an agent starting in that millisecond would be refused as if a second
 * one ran. Makes no lock file where none is (an agent never ran on it); throws what opening an
 * existing one throws (this user may not read it).
 */
export function journalInUse(path: string): boolean {
  if (path === ":memory:" || !existsSync(`${path}.lock`)) return false;
  try {
    lockJournal(path).release();
    return false;
  } catch (err) {
    if (err instanceof JournalInUseError) return true;
    throw err;
  }
}
