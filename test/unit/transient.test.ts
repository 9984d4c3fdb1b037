/**
 * Which failures are worth retrying (agent/core/transient.ts). PostgreSQL conditions that pass
 * (the hub's database, Kamailio's PostgreSQL for the fallback) must be retried, not taken for a
 * refusal: found by review, a full disk or too many connections held an origin back as "batch rejected".
 */
import { describe, expect, it } from "vitest";
import { isTransient, TransientError } from "../../agent/core/transient.js";

const pg = (code: string) => Object.assign(new Error(`pg ${code}`), { code });

describe("transient failures", () => {
  it("takes PostgreSQL's passing conditions for transient: connection, rollback, resources, operator, a lock timeout, a standby", () => {
    for (const code of ["08006", "40001", "40P01", "53100", "53200", "53300", "57P01", "55P03", "25006"]) expect([code, isTransient(pg(code))]).toEqual([code, true]);
  });

  it("takes what retrying cannot mend for permanent: bad data, a missing table, no privilege", () => {
    for (const code of ["22P02", "23505", "42P01", "42501", "55000"]) expect([code, isTransient(pg(code))]).toEqual([code, false]);
  });

  it("follows the cause, and a TransientError", () => {
    expect(isTransient(new Error("wrapped", { cause: pg("53300") }))).toBe(true);
    expect(isTransient(new TransientError("later"))).toBe(true);
    expect(isTransient(new Error("no"))).toBe(false);
  });
});
