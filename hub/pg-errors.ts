/**
 * pg reports a lost connection (PostgreSQL restarting, a network cut) and a connection or query
 * that got no answer in time (hub/pg-connection.ts) as plain Errors without a SQLSTATE. Those are
 * worth retrying: the hub answers "temporary failure" and the agent resends the batch later.
 * Errors with a SQLSTATE keep it, and core/transient.ts decides by its class.
 */
import { TransientError } from "../agent/core/transient.js";

const CONNECTION_LOST =
  /Connection terminated|connection error|not queryable|Connection ended|ECONNREFUSED|ECONNRESET|EPIPE|the database system is (starting up|shutting down|in recovery mode)/i;
/** pg's words for postgres.queryTimeoutMs and postgres.connectTimeoutMs running out (pg and pg-pool). */
const NO_ANSWER = /Query read timeout|timeout expired|connection timeout|timeout exceeded when trying to connect/i;

/** The connection or query got no answer within its timeout. */
export const isNoAnswer = (err: unknown): boolean => err instanceof Error && NO_ANSWER.test(err.message);

/** The error's SQLSTATE (five characters), or null for errors PostgreSQL did not send. */
export function sqlStateOf(err: unknown): string | null {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === "string" && /^[0-9A-Z]{5}$/.test(code) ? code : null;
}

export function classifyPgError(err: unknown): unknown {
  if (!(err instanceof Error) || sqlStateOf(err) !== null) return err;
  if (isNoAnswer(err)) return new TransientError(`PostgreSQL did not answer in time: ${err.message}`, { cause: err });
  if (CONNECTION_LOST.test(err.message)) return new TransientError(`PostgreSQL connection lost: ${err.message}`, { cause: err });
  return err;
}

/** Runs `fn`, rethrowing connection losses and timeouts as transient errors. */
export async function pgCall<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw classifyPgError(err);
  }
}
