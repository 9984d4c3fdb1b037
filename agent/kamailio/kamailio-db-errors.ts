/**
 * Typed failures of the Kamailio database fallback. Retryability is decided by isTransient
 * (core/transient.ts): KamailioDbUnavailableError is a TransientError, the others stop at once.
 */
import { TransientError } from "../core/transient.js";

/** A permanent failure: a bad value or a statement the database refused. */
export class KamailioDbError extends Error {
  override readonly name: string = "KamailioDbError";
}

/** The database is down, unreachable, locked or not openable right now: retry later. */
export class KamailioDbUnavailableError extends TransientError {
  override readonly name = "KamailioDbUnavailableError";
  constructor(target: string, what: string, cause: unknown) {
    super(
      `Kamailio's database ${target} is unavailable (${what}: ${describe(cause)}). ` +
        "The change was not written; it is retried with back-off. Check that the database is running and " +
        "reachable, and that the agent may read and write it (for SQLite: the file exists and its directory is " +
        "writable by the agent's user, which needs to be in the kamailio group).",
      { cause },
    );
  }
}

/**
 * The database answers but its tables are not what Kamailio 5.6 uses: a missing table or column,
 * or a version row that does not match. Retrying does not help; the message says the fix.
 */
export class KamailioDbSchemaError extends KamailioDbError {
  override readonly name = "KamailioDbSchemaError";
  constructor(
    readonly table: string,
    problem: string,
    readonly fix: string,
    cause?: unknown,
  ) {
    super(`Kamailio table "${table}": ${problem}. Fix: ${fix}`, cause === undefined ? undefined : { cause });
  }
}

export function describe(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code;
    return typeof code === "string" && !err.message.includes(code) ? `${code}: ${err.message}` : err.message;
  }
  return String(err);
}
