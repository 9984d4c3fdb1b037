/**
 * Kamailio's PostgreSQL database through a small pg Pool.
 *
 * TIMESTAMP WITHOUT TIME ZONE columns hold Kamailio's *local* wall-clock time (surprise 9), so
 * they travel as text in both directions: pg's default parser would read them in this process's
 * zone, which is only right by accident.
 */
import pg from "pg";
import type { Logger } from "../ops/logger.js";
import { localTimestampToUnix, unixToLocalTimestamp } from "./kamailio-db-encoding.js";
import { describe } from "./kamailio-db-errors.js";
import type { FailureKind, Query, Row, SqlDriver } from "./kamailio-db-sql.js";

const TIMESTAMP_OID = 1114;

/**
 * SQLSTATE classes where waiting helps: 08 connection exception, 40 transaction rollback
 * (serialization failure, deadlock), 53 insufficient resources (too many connections), 57 operator
 * intervention (shutdown, cancel), and 3D000: the database does not exist (yet).
 */
const UNAVAILABLE_SQLSTATE = /^(08|40|53|57)|^3D000$/;
/** pg's messages for failures below SQL that carry no code. */
const CONNECTION_FAILURE = /timeout exceeded when trying to connect|Connection terminated|connection error|Query read timeout|not queryable/i;
const MISSING_SQLSTATE = new Set(["42P01", "42703"]); // undefined_table, undefined_column

/** `?` placeholders → `$1, $2, ...` (our statements never contain a literal '?'). */
function numbered(sql: string): string {
  let n = 0;
  return sql.replace(/\?/g, () => `$${++n}`);
}

export function createPostgresDriver(opts: { url: string; timeZone: string; connectTimeoutMs: number; log: Logger }): SqlDriver {
  const pool = new pg.Pool({
    connectionString: opts.url,
    max: 2,
    connectionTimeoutMillis: opts.connectTimeoutMs,
    idleTimeoutMillis: 10_000,
    // A statement stuck behind a lock must not hold the fallback forever.
    query_timeout: 10_000,
    types: {
      getTypeParser: ((oid: number, format?: "text" | "binary") =>
        oid === TIMESTAMP_OID ? (s: string) => s : pg.types.getTypeParser(oid, format)) as typeof pg.types.getTypeParser,
    },
  });
  // An idle client whose server went away emits 'error' on the pool; unhandled, it would crash the agent.
  pool.on("error", (err) => opts.log.warn({ err: describe(err) }, "idle connection to Kamailio's PostgreSQL lost"));

  const runOn =
    (client: pg.Pool | pg.PoolClient): Query =>
    async (sql, params = []) =>
      (await client.query<Row>(numbered(sql), params as unknown[])).rows;

  function classify(err: unknown): FailureKind {
    const code = (err as { code?: unknown })?.code;
    if (typeof code === "string" && /^[0-9A-Z]{5}$/.test(code)) {
      if (MISSING_SQLSTATE.has(code)) return "missing-object";
      return UNAVAILABLE_SQLSTATE.test(code) ? "unavailable" : "other";
    }
    // No SQLSTATE: an errno from the socket (ECONNREFUSED, ...) or pg's own connection failures.
    if (typeof code === "string") return "unavailable";
    const message = err instanceof Error ? err.message : "";
    return CONNECTION_FAILURE.test(message) ? "unavailable" : "other";
  }

  return {
    dialect: "postgres",
    query: runOn(pool),
    async transaction(fn) {
      const client = await pool.connect();
      let broken: Error | undefined;
      try {
        const q = runOn(client);
        await q("BEGIN");
        try {
          const out = await fn(q);
          await q("COMMIT");
          return out;
        } catch (err) {
          await q("ROLLBACK").catch(() => undefined);
          throw err;
        }
      } catch (err) {
        if (classify(err) === "unavailable") broken = err instanceof Error ? err : new Error(String(err));
        throw err;
      } finally {
        client.release(broken);
      }
    },
    async lockKey(q, key) {
      await q("SELECT pg_advisory_xact_lock(hashtext(?))", [key]);
    },
    encodeTime: (sec) => unixToLocalTimestamp(sec, opts.timeZone),
    decodeTime: (v) => localTimestampToUnix(String(v), opts.timeZone),
    classify,
    close: () => pool.end(),
  };
}
