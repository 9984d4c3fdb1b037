/**
 * The journal's disk is full. SQLite answers SQLITE_FULL and rolls the whole transaction back, so
 * nothing of the refused change was written: callers get this error (a TransientError, so API
 * clients see -32001 "temporary failure" and peers retry their batch), reads keep working, and
 * writes succeed again by themselves as soon as there is space. README "Operations" says the same.
 */
import { dirname } from "node:path";
import { TransientError } from "../core/transient.js";

export class JournalFullError extends TransientError {
  override readonly name = "JournalFullError";
  constructor(path: string, cause: unknown) {
    super(
      `the journal's disk is full (${path}): this change was not made. Free space on the filesystem holding ` +
        `${dirname(path)}; the agent takes writes again by itself, no restart needed (reads keep working meanwhile)`,
      { cause },
    );
  }
}

/** SQLITE_FULL (and its extended codes) as a JournalFullError; anything else as it is. */
export function journalFullOr(err: unknown, path: string): unknown {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === "string" && code.startsWith("SQLITE_FULL") ? new JournalFullError(path, err) : err;
}
