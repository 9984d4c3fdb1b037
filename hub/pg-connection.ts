/**
 * Where the hub's PostgreSQL is, said in logs and errors without the password, and the error a hub
 * gives when it cannot use that PostgreSQL at start (or `locmesh hub migrate`): what failed, at
 * which host:port, and what the operator should check.
 */
import pg from "pg";

/**
 * The host:port (or unix socket) pg dials for `url`, read by pg itself, so PGHOST/PGPORT and a
 * `?host=` socket folder count as they do for the connection. Never holds the password.
 */
export function pgAddress(url: string): string {
  // Constructing a client parses its settings and opens nothing.
  const { host, port } = new pg.Client({ connectionString: url });
  return host.startsWith("/") ? `${host}/.s.PGSQL.${port}` : `${host}:${port}`;
}

export class PostgresUnavailableError extends Error {
  override readonly name = "PostgresUnavailableError";
}

const sqlState = (err: unknown): string | null => {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === "string" && /^[0-9A-Z]{5}$/.test(code) ? code : null;
};

/**
 * Turns a failure to open or use PostgreSQL at start into an error naming PostgreSQL and its
 * address, with what to check. SQL errors that are not about reaching or logging in (a failed
 * migration, a schema too new) already say what happened and pass through unchanged.
 */
export function pgStartError(err: unknown, address: string): unknown {
  if (!(err instanceof Error) || err instanceof PostgresUnavailableError) return err;
  const state = sqlState(err);
  const at = `PostgreSQL at ${address}`;
  if (state?.startsWith("28")) {
    return new PostgresUnavailableError(`${at} refused the login: ${err.message}. Check the user and password in postgres.url (or LOCMESH_POSTGRES_URL) and PostgreSQL's pg_hba.conf`, { cause: err });
  }
  if (state === "3D000") {
    return new PostgresUnavailableError(`${at}: ${err.message}. Check the database name in postgres.url, or create it (CREATE DATABASE)`, { cause: err });
  }
  if (state !== null && !state.startsWith("08") && !state.startsWith("57")) return err;
  return new PostgresUnavailableError(
    `cannot reach ${at}: ${err.message}. Check that PostgreSQL is running and listens there (listen_addresses, port), ` +
      "that this host can reach it (firewall, a moved VIP, pg_hba.conf), and postgres.url (or LOCMESH_POSTGRES_URL)",
    { cause: err },
  );
}
