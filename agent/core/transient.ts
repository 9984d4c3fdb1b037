/**
 * The one table that decides whether a failure is worth retrying. It feeds p-retry everywhere:
 * transient failures back off and retry, everything else stops at once.
 */
import { RpcError } from "../contract/errors.js";

const TRANSIENT_ERRNO = new Set([
  "ECONNREFUSED", "ECONNRESET", "ECONNABORTED", "EPIPE", "ETIMEDOUT", "EHOSTUNREACH", "ENETUNREACH",
  "ENOTFOUND", "EAI_AGAIN", "ENXIO", "EAGAIN", "EWOULDBLOCK", "ENOENT", "EBUSY",
]);
const TRANSIENT_SQLITE = new Set(["SQLITE_BUSY", "SQLITE_LOCKED", "SQLITE_FULL", "SQLITE_IOERR", "SQLITE_CANTOPEN"]);
// PostgreSQL SQLSTATE classes: 08 connection exception, 40 transaction rollback, 53 insufficient
// resources (disk full, out of memory, too many connections), 57 operator intervention.
const TRANSIENT_SQLSTATE_CLASS = new Set(["08", "40", "53", "57"]);
// And single codes: 55P03 lock not available (a lock_timeout the DBA set, while another writer
// holds the row), 25006 read-only transaction (the URL reaches a standby until it is promoted).
const TRANSIENT_SQLSTATE = new Set(["55P03", "25006"]);

export function isTransient(err: unknown): boolean {
  if (err instanceof RpcError) return err.transient;
  if (!(err instanceof Error)) return false;
  if ((err as { transient?: unknown }).transient === true) return true;
  const code = (err as { code?: unknown }).code;
  if (typeof code === "string") {
    if (TRANSIENT_ERRNO.has(code)) return true;
    if ([...TRANSIENT_SQLITE].some((c) => code.startsWith(c))) return true;
    if (/^[0-9A-Z]{5}$/.test(code) && (TRANSIENT_SQLSTATE_CLASS.has(code.slice(0, 2)) || TRANSIENT_SQLSTATE.has(code))) return true;
  }
  const cause = (err as { cause?: unknown }).cause;
  return cause !== undefined && cause !== err && isTransient(cause);
}

/** A failure that says "try again later" and carries what happened. */
export class TransientError extends Error {
  override readonly name: string = "TransientError";
  readonly transient = true;
}
