/**
 * How the hub connects to its PostgreSQL: the settings every connection gets (pools, the LISTEN
 * connection, migrations), where that PostgreSQL is, said in logs and errors without the password,
 * and the error a hub gives when it cannot use it at start (or `locmesh hub migrate`): what failed,
 * at which host:port, and what the operator should check.
 */
import pg from "pg";
import type { HubConfig } from "./hub-config.js";
import { isTransient } from "../agent/core/transient.js";
import { classifyPgError, isNoAnswer, sqlStateOf } from "./pg-errors.js";

/** What a connection is made from. */
export type PgConnectionSettings = Pick<HubConfig["postgres"], "url" | "connectTimeoutMs" | "queryTimeoutMs" | "keepAliveIdleMs">;

/**
 * Settings for every connection to the hub's PostgreSQL. Without them a PostgreSQL behind a
 * partition (packets silently dropped, a VIP that moved) never answers and never fails: connects
 * and queries wait forever. The query timeout is pg's client-side one for that reason (a server-side
 * statement_timeout needs a server that answers); a connection whose query timed out is dropped
 * (pg-pool drops any that failed, pg-store's transactions release theirs as broken). TCP
 * keepalive finds a dead idle connection: Node probes every second, 10 times, after
 * `keepAliveIdleMs` idle (libuv's uv_tcp_keepalive).
 */
export function pgClientConfig(settings: PgConnectionSettings): pg.ClientConfig {
  return {
    connectionString: settings.url,
    connectionTimeoutMillis: settings.connectTimeoutMs,
    query_timeout: settings.queryTimeoutMs,
    keepAlive: true,
    keepAliveInitialDelayMillis: settings.keepAliveIdleMs,
  };
}

/**
 * The host:port (or unix socket) pg dials for `url`, read by pg itself, so PGHOST/PGPORT and a
 * `?host=` socket folder count as they do for the connection. Never holds the password.
 */
export function pgAddress(url: string): string {
  // Constructing a client parses its settings and opens nothing.
  const { host, port } = new pg.Client({ connectionString: url });
  return host.startsWith("/") ? `${host}/.s.PGSQL.${port}` : `${host}:${port}`;
}

/**
 * SQLSTATE 42501 (insufficient_privilege) at start: most often "permission denied for schema
 * public" from a migration, since PostgreSQL 15 lets only the database owner (and superusers)
 * create tables in `public` (https://www.postgresql.org/docs/15/release-15.html, "Remove PUBLIC
 * creation permission on the public schema"). The hub's role should own its database.
 */
function privilegeError(err: Error, url: string): Error {
  // The role and database of postgres.url, as pg reads it (PGUSER/PGDATABASE count), so the hint can be pasted as it is.
  const { user, database } = new pg.Client({ connectionString: url });
  const role = sqlName(user ?? "locmesh");
  const db = sqlName(database ?? role);
  return new Error(
    `${err.message}. The hub's PostgreSQL role may not create or use its tables there: since PostgreSQL 15 only the database's ` +
      `owner may create tables in schema public. Give the hub a database it owns: CREATE ROLE ${role} LOGIN PASSWORD '…'; ` +
      `CREATE DATABASE ${db} OWNER ${role}; (or, in the existing database: ALTER DATABASE ${db} OWNER TO ${role}; ALTER SCHEMA public OWNER TO ${role};)`,
    { cause: err },
  );
}

/** An SQL identifier as written in a statement: bare when it may be, else double-quoted. */
function sqlName(name: string): string {
  return /^[a-z_][a-z0-9_$]*$/.test(name) ? name : `"${name.replace(/"/g, '""')}"`;
}

export class PostgresUnavailableError extends Error {
  override readonly name = "PostgresUnavailableError";
}

/**
 * Turns a failure to open or use PostgreSQL at start into an error naming PostgreSQL and its
 * address, with what to check: any failure while `connecting`, and afterwards the connection's
 * loss or silence. Other errors (a failed migration, a schema too new) already say what happened
 * and pass through unchanged.
 */
export function pgStartError(err: unknown, settings: PgConnectionSettings, connecting = false): unknown {
  if (!(err instanceof Error) || err instanceof PostgresUnavailableError) return err;
  if (sqlStateOf(err) === "42501" || sqlStateOf(err.cause) === "42501") return privilegeError(err, settings.url);
  if (!connecting && !isTransient(classifyPgError(err))) return err;
  const state = sqlStateOf(err);
  const at = `PostgreSQL at ${pgAddress(settings.url)}`;
  const url = "postgres.url (or LOCMESH_POSTGRES_URL)";
  // pg's own words when the server asks for a password and none was given (not a SQLSTATE).
  if (/client password must be a string|password authentication .*no password/i.test(err.message)) {
    return new PostgresUnavailableError(
      `${at} asked for a password and none was given: put it in ${url} (postgres://user:password@host/db; percent-encode @ : / in it) ` +
        "or give it through PGPASSWORD or ~/.pgpass of the user the hub runs as",
      { cause: err },
    );
  }
  if (state?.startsWith("28")) {
    return new PostgresUnavailableError(`${at} refused the login: ${err.message}. Check the user and password in ${url} and PostgreSQL's pg_hba.conf`, { cause: err });
  }
  if (state === "3D000") {
    return new PostgresUnavailableError(`${at}: ${err.message}. Check the database name in ${url}, or create it (CREATE DATABASE)`, { cause: err });
  }
  if (state !== null && !state.startsWith("08") && !state.startsWith("57")) return err;
  if (isNoAnswer(err) || isNoAnswer(err.cause)) {
    const [ms, key] = /Query read timeout/i.test(err.message) ? [settings.queryTimeoutMs, "queryTimeoutMs"] : [settings.connectTimeoutMs, "connectTimeoutMs"];
    return new PostgresUnavailableError(
      `${at} did not answer within ${ms} ms (postgres.${key}): ${err.message}. Check that PostgreSQL is up and that the network ` +
        `path to it is open (a firewall dropping packets, a VIP that moved), and ${url}`,
      { cause: err },
    );
  }
  return new PostgresUnavailableError(
    `cannot reach ${at}: ${err.message}. Check that PostgreSQL is running and listens there (listen_addresses, port), ` +
      `that this host can reach it (firewall, a moved VIP, pg_hba.conf), and ${url}`,
    { cause: err },
  );
}
