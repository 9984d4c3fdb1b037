/**
 * Kamailio's column encodings (kamailio-5.6.md §4.2, surprises 8-9). Expected values come from
 * Kamailio's source (db_sqlite's timet_to_sqlite), rows Kamailio 5.6.3 wrote (§0), and glibc's
 * mktime run under TZ=America/New_York (a C program: strptime + tm_isdst=-1 + mktime).
 */
import { describe, expect, it } from "vitest";
import {
  ALL_METHODS, checkTimeZone, decodeMethods, decodeQ, encodeMethods, fromInt32, joinAor, julianDayToUnix,
  localTimestampToUnix, nullIfEmpty, splitAor, splitSipUri, toInt32, unixToJulianDay, unixToLocalTimestamp,
} from "../../agent/kamailio/kamailio-db-encoding.js";
import { redactUrl } from "../../agent/ops/redact-url.js";
import { sqlitePathFromUrl } from "../../agent/kamailio/kamailio-db-sqlite.js";

const NY = "America/New_York";

describe("SQLite Julian-day REAL (surprise 8)", () => {
  it("encodes epoch 0 exactly as db_sqlite does: half a second before 2440587.5", () => {
    expect(unixToJulianDay(0)).toBe((0 - 0.5) / 86400 + 2440587.5);
    expect(unixToJulianDay(0)).toBeCloseTo(2440587.5, 4);
    // The value Kamailio 5.6.3 wrote for a permanent contact, as sqlite3 prints it.
    expect(unixToJulianDay(0).toPrecision(14)).toBe("2440587.4999942");
  });

  it("round-trips whole seconds across the range usrloc uses", () => {
    for (const t of [0, 1, 86399, 86400, 1_700_000_000, 1_795_304_772, 2_147_483_647, 4_102_444_800]) {
      expect(julianDayToUnix(unixToJulianDay(t))).toBe(t);
    }
    for (let t = 1_800_000_000; t < 1_800_000_000 + 5000; t += 7) expect(julianDayToUnix(unixToJulianDay(t))).toBe(t);
  });

  it("reads a value written by SQLite's julianday() (no half-second offset) to the same second or the next", () => {
    const exact = 1_795_304_772 / 86400 + 2440587.5;
    expect([1_795_304_772, 1_795_304_773]).toContain(julianDayToUnix(exact));
  });

  it("reads the example row of kamailio-5.6.md (2461366.49041088) as the expiry of §8's REGISTER event", () => {
    expect(julianDayToUnix(2461366.49041088)).toBe(1_795_304_772);
    expect(julianDayToUnix(2440587.4999942)).toBe(0);
  });
});

describe("PostgreSQL Kamailio-local timestamps (surprise 9)", () => {
  it("writes epoch 0 as local midnight-ish: New York 1969-12-31 19:00:00, UTC 1970-01-01 00:00:00", () => {
    expect(unixToLocalTimestamp(0, NY)).toBe("1969-12-31 19:00:00");
    expect(unixToLocalTimestamp(0, "UTC")).toBe("1970-01-01 00:00:00");
    expect(localTimestampToUnix("1969-12-31 19:00:00", NY)).toBe(0);
  });

  it("formats in the given zone, not this process's", () => {
    expect(unixToLocalTimestamp(1_720_000_000, NY)).toBe("2024-07-03 05:46:40"); // EDT, UTC-4
    expect(unixToLocalTimestamp(1_700_000_000, NY)).toBe("2023-11-14 17:13:20"); // EST, UTC-5
    expect(unixToLocalTimestamp(1_700_000_000, "Asia/Kolkata")).toBe("2023-11-15 03:43:20");
  });

  it("round-trips every second across both New York DST changes of 2024 except the repeated hour", () => {
    const springGapStart = 1_710_054_000; // 2024-03-10 07:00:00 UTC = 02:00 EST -> 03:00 EDT
    const fallRepeatStart = 1_730_610_000; // 2024-11-03 05:00:00 UTC = 01:00 EDT; 01:00-02:00 happens twice
    for (let t = springGapStart - 7200; t < springGapStart + 7200; t += 13) expect(localTimestampToUnix(unixToLocalTimestamp(t, NY), NY)).toBe(t);
    for (let t = fallRepeatStart - 7200; t < fallRepeatStart; t += 13) expect(localTimestampToUnix(unixToLocalTimestamp(t, NY), NY)).toBe(t);
    for (let t = fallRepeatStart + 7200; t < fallRepeatStart + 14400; t += 13) expect(localTimestampToUnix(unixToLocalTimestamp(t, NY), NY)).toBe(t);
  });

  it("reads DST edge wall times the way glibc mktime(tm_isdst=-1) does", () => {
    // Values printed by strptime+mktime under TZ=America/New_York (glibc, Debian bookworm).
    expect(localTimestampToUnix("2024-11-03 01:30:00", NY)).toBe(1_730_611_800); // repeated hour: the earlier (EDT) instant
    expect(localTimestampToUnix("2024-03-10 02:30:00", NY)).toBe(1_710_055_800); // gap: read with EST, = 03:30 EDT
    expect(localTimestampToUnix("2024-11-03 00:59:59", NY)).toBe(1_730_609_999);
    expect(localTimestampToUnix("2024-11-03 02:00:00", NY)).toBe(1_730_617_200);
  });

  it("drops fractional seconds and rejects text that is not a timestamp", () => {
    expect(localTimestampToUnix("2023-11-14 17:13:20.75", NY)).toBe(1_700_000_000);
    expect(localTimestampToUnix("infinity", NY)).toBeNaN();
  });

  it("refuses a zone that is not IANA", () => {
    expect(() => checkTimeZone("Mars/Olympus")).toThrow(/not an IANA time zone/);
    expect(checkTimeZone("Europe/Berlin")).toBe("Europe/Berlin");
  });
});

describe("integers, NULLs, q and AoRs", () => {
  it("stores the all-methods mask as NULL and reads NULL back as all methods", () => {
    expect(encodeMethods(ALL_METHODS)).toBeNull();
    expect(encodeMethods(4294967295)).toBeNull();
    expect(decodeMethods(null)).toBe(ALL_METHODS);
    expect(encodeMethods(0)).toBe(0);
    expect(encodeMethods(0x1f)).toBe(0x1f);
    expect(decodeMethods(encodeMethods(0x80000001))).toBe(0x80000001);
  });

  it("keeps unsigned 32-bit flags in signed INTEGER columns as the same bits", () => {
    expect(toInt32(0xffffffff)).toBe(-1);
    expect(toInt32(0x80000000)).toBe(-2147483648);
    expect(fromInt32(-1)).toBe(0xffffffff);
    expect(fromInt32(toInt32(123))).toBe(123);
    expect(fromInt32(null)).toBe(0);
  });

  it("rounds q to usrloc's thousandths (float4 noise) and reads NULL as unspecified", () => {
    expect(decodeQ(Math.fround(0.1))).toBe(0.1);
    expect(decodeQ(-1)).toBe(-1);
    expect(decodeQ(null)).toBe(-1);
  });

  it("writes empty optional strings as NULL", () => {
    expect(nullIfEmpty("")).toBeNull();
    expect(nullIfEmpty("<sip:edge;lr>")).toBe("<sip:edge;lr>");
  });

  it("splits AoRs at the first '@', as usrloc does, and joins them back", () => {
    expect(splitAor("alice@example.com")).toEqual({ username: "alice", domain: "example.com" });
    // sip:john%40corp.com@example.com, unescaped by the registrar: usrloc's row is (john, corp.com@example.com).
    expect(splitAor("john@corp.com@example.com")).toEqual({ username: "john", domain: "corp.com@example.com" });
    expect(splitAor("alice")).toEqual({ username: "alice", domain: null });
    expect(joinAor("alice", null)).toBe("alice");
    expect(joinAor("alice", "example.com")).toBe("alice@example.com");
  });

  it("takes user and host[:port] of an alias target", () => {
    expect(splitSipUri("sip:bob@example.com")).toEqual({ username: "bob", domain: "example.com" });
    expect(splitSipUri("<sips:bob@example.com:5061;transport=tls>")).toEqual({ username: "bob", domain: "example.com:5061" });
    expect(splitSipUri("sip:example.com")).toBeNull();
  });
});

describe("URLs", () => {
  it("reads Kamailio's sqlite:/// URLs and hides passwords", () => {
    expect(sqlitePathFromUrl("sqlite:///var/lib/kamailio/kam.sqlite")).toBe("/var/lib/kamailio/kam.sqlite");
    expect(() => sqlitePathFromUrl("sqlite://relative.db")).toThrow(/sqlite:\/\/\/absolute/);
    expect(redactUrl("postgres://kamailio:secret@db:5432/kamailio")).toBe("postgres://kamailio:redacted@db:5432/kamailio");
    // libpq also takes the password as a parameter; and a URL that does not parse hides its user part.
    expect(redactUrl("postgresql://locmesh@db/locmesh?password=s3cret&sslmode=require")).toBe("postgresql://locmesh@db/locmesh?password=redacted&sslmode=require");
    expect(redactUrl("postgres://u:a/b@h/db")).toBe("postgres://redacted@h/db");
    expect(redactUrl("postgres://u:a/b@h/db?sslpassword=x")).toBe("postgres://redacted@h/db?sslpassword=redacted");
    expect(redactUrl("sqlite:///var/lib/kamailio/kamailio.db")).toBe("sqlite:///var/lib/kamailio/kamailio.db");
  });
});
