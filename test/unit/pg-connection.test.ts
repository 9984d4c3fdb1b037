/**
 * How a hub connects to and names its PostgreSQL (hub/pg-connection.ts): timeouts and keepalive on
 * every connection, the address pg dials (never the password), and start errors that say where
 * and what to check.
 */
import { describe, expect, it } from "vitest";
import { TransientError } from "../../agent/core/transient.js";
import { PostgresUnavailableError, pgAddress, pgClientConfig, pgStartError } from "../../hub/pg-connection.js";

const withCode = (message: string, code: string) => Object.assign(new Error(message), { code });
const settings = { url: "postgres://locmesh:secret@10.0.0.5:5432/locmesh", connectTimeoutMs: 10_000, queryTimeoutMs: 30_000, keepAliveIdleMs: 10_000 };
const startError = (err: unknown, connecting = true) => pgStartError(err, settings, connecting) as Error;

describe("hub PostgreSQL connections", () => {
  it("gives every connection a connect timeout, a client-side query timeout and TCP keepalive", () => {
    expect(pgClientConfig(settings)).toEqual({
      connectionString: settings.url, connectionTimeoutMillis: 10_000, query_timeout: 30_000, keepAlive: true, keepAliveInitialDelayMillis: 10_000,
    });
  });

  it("names host:port as pg reads the URL, without the password", () => {
    expect(pgAddress("postgres://locmesh:secret@db.example.com:6432/locmesh")).toBe("db.example.com:6432");
    expect(pgAddress("postgresql://locmesh:secret@10.0.0.5/locmesh")).toBe("10.0.0.5:5432");
    expect(pgAddress("postgres://locmesh@/locmesh?host=/run/postgresql")).toBe("/run/postgresql/.s.PGSQL.5432");
  });

  it("says PostgreSQL cannot be reached, where, and what to check", () => {
    const e = startError(withCode("connect ECONNREFUSED 10.0.0.5:5432", "ECONNREFUSED"));
    expect(e).toBeInstanceOf(PostgresUnavailableError);
    expect(e.message).toMatch(/^cannot reach PostgreSQL at 10\.0\.0\.5:5432: connect ECONNREFUSED .*Check that PostgreSQL is running/);
    expect((e.cause as Error).message).toContain("ECONNREFUSED");
    expect(e.message).not.toContain("secret");
  });

  it("says a password is missing, not that PostgreSQL cannot be reached, when the server asks for one", () => {
    const e = startError(new Error("SASL: SCRAM-SERVER-FIRST-MESSAGE: client password must be a string"));
    expect(e).toBeInstanceOf(PostgresUnavailableError);
    expect(e.message).toMatch(/^PostgreSQL at 10\.0\.0\.5:5432 asked for a password and none was given: put it in postgres\.url .* or give it through PGPASSWORD or ~\/\.pgpass/);
  });

  it("says which timeout ran out when PostgreSQL did not answer", () => {
    expect(startError(new Error("Connection terminated due to connection timeout")).message).toMatch(
      /^PostgreSQL at 10\.0\.0\.5:5432 did not answer within 10000 ms \(postgres\.connectTimeoutMs\): .*network path/,
    );
    const lateQuery = new TransientError("PostgreSQL did not answer in time: Query read timeout");
    expect(startError(lateQuery, false).message).toMatch(/did not answer within 30000 ms \(postgres\.queryTimeoutMs\)/);
  });

  it("points a refused login at the user and password, a missing database at its name", () => {
    expect(startError(withCode('password authentication failed for user "locmesh"', "28P01")).message).toMatch(
      /^PostgreSQL at 10\.0\.0\.5:5432 refused the login: .*Check the user and password in postgres\.url/,
    );
    expect(startError(withCode('database "locmesh" does not exist', "3D000")).message).toMatch(/Check the database name in postgres\.url/);
  });

  it("says how to give the hub a database it owns when PostgreSQL 15 denies it schema public (SQLSTATE 42501)", () => {
    const denied = withCode("permission denied for schema public", "42501");
    const migration = new Error("migration 1_init failed: permission denied for schema public", { cause: denied });
    for (const e of [startError(denied), startError(migration, false)]) {
      expect(e.message).toMatch(/permission denied for schema public\. .*since PostgreSQL 15 only the database's owner may create tables in schema public/);
      expect(e.message).toContain("CREATE ROLE locmesh LOGIN PASSWORD '…'; CREATE DATABASE locmesh OWNER locmesh;");
    }
    // Named after postgres.url's role and database (quoted where SQL needs it), never its password.
    const other = pgStartError(denied, { ...settings, url: "postgres://hub_role:pw@db/Staging-DB" }) as Error;
    expect(other.message).toContain(`CREATE ROLE hub_role LOGIN PASSWORD '…'; CREATE DATABASE "Staging-DB" OWNER hub_role;`);
    expect(other.message).toContain(`ALTER DATABASE "Staging-DB" OWNER TO hub_role;`);
    expect(other.message).not.toContain("pw@");
  });

  it("leaves errors that are not about reaching PostgreSQL as they are: they say what failed", () => {
    const migration = new Error("migration 3_x failed: syntax error");
    expect(pgStartError(migration, settings)).toBe(migration);
  });
});
