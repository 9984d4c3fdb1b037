/**
 * How a hub names its PostgreSQL (hub/pg-connection.ts): the address pg dials, never the password,
 * and start errors that say where and what to check.
 */
import { describe, expect, it } from "vitest";
import { PostgresUnavailableError, pgAddress, pgStartError } from "../../hub/pg-connection.js";

const withCode = (message: string, code: string) => Object.assign(new Error(message), { code });

describe("hub PostgreSQL address and start errors", () => {
  it("names host:port as pg reads the URL, without the password", () => {
    expect(pgAddress("postgres://locmesh:secret@db.example.com:6432/locmesh")).toBe("db.example.com:6432");
    expect(pgAddress("postgresql://locmesh:secret@10.0.0.5/locmesh")).toBe("10.0.0.5:5432");
    expect(pgAddress("postgres://locmesh@/locmesh?host=/run/postgresql")).toBe("/run/postgresql/.s.PGSQL.5432");
  });

  it("says PostgreSQL cannot be reached, where, and what to check", () => {
    const e = pgStartError(withCode("connect ECONNREFUSED 10.0.0.5:5432", "ECONNREFUSED"), "10.0.0.5:5432");
    expect(e).toBeInstanceOf(PostgresUnavailableError);
    expect((e as Error).message).toMatch(/^cannot reach PostgreSQL at 10\.0\.0\.5:5432: connect ECONNREFUSED .*Check that PostgreSQL is running/);
    expect(((e as Error).cause as Error).message).toContain("ECONNREFUSED");
  });

  it("points a refused login at the user and password, a missing database at its name", () => {
    const login = pgStartError(withCode('password authentication failed for user "locmesh"', "28P01"), "db:5432") as Error;
    expect(login.message).toMatch(/^PostgreSQL at db:5432 refused the login: .*Check the user and password in postgres\.url/);
    const db = pgStartError(withCode('database "locmesh" does not exist', "3D000"), "db:5432") as Error;
    expect(db.message).toMatch(/Check the database name in postgres\.url/);
  });

  it("leaves other SQL errors as they are: they say what failed", () => {
    const denied = withCode("permission denied for schema public", "42501");
    expect(pgStartError(denied, "db:5432")).toBe(denied);
  });
});
