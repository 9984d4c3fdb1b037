/**
 * pg reports a lost connection (PostgreSQL restarting, a network cut) as a plain Error without a
 * SQLSTATE. Those are worth retrying: the hub answers "temporary failure" and the agent resends
 * the batch later. Errors with a SQLSTATE keep it, and core/transient.ts decides by its class.
 */
import { TransientError } from "../agent/core/transient.js";

const CONNECTION_LOST =
  /Connection terminated|connection error|not queryable|Connection ended|timeout exceeded when trying to connect|ECONNREFUSED|ECONNRESET|EPIPE|the database system is (starting up|shutting down|in recovery mode)/i;

export function classifyPgError(err: unknown): unknown {
  if (!(err instanceof Error)) return err;
  const code = (err as { code?: unknown }).code;
  if (typeof code === "string" && /^[0-9A-Z]{5}$/.test(code)) return err;
  if (CONNECTION_LOST.test(err.message)) return new TransientError(`PostgreSQL connection lost: ${err.message}`, { cause: err });
  return err;
}

/** Runs `fn`, rethrowing connection losses as transient errors. */
export async function pgCall<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw classifyPgError(err);
  }
}
