import { describe, expect, it } from "vitest";
import { compareVersions, hlcToMillis, isLive, toAlias, toLocation, type Change } from "../../agent/contract/records.js";
import { REPLICA_A, REPLICA_B, aliasValue, binding, remoteChange } from "../support/fixtures.js";

describe("compareVersions", () => {
  it("orders by hlc first, whatever the origins", () => {
    expect(compareVersions({ hlc: 2, origin: REPLICA_A }, { hlc: 1, origin: REPLICA_B })).toBeGreaterThan(0);
    expect(compareVersions({ hlc: 1, origin: REPLICA_B }, { hlc: 2, origin: REPLICA_A })).toBeLessThan(0);
  });

  it("breaks an hlc tie by origin id", () => {
    expect(compareVersions({ hlc: 5, origin: REPLICA_B }, { hlc: 5, origin: REPLICA_A })).toBeGreaterThan(0);
    expect(compareVersions({ hlc: 5, origin: REPLICA_A }, { hlc: 5, origin: REPLICA_B })).toBeLessThan(0);
  });

  it("treats the same (hlc, origin) as equal", () => {
    expect(compareVersions({ hlc: 5, origin: REPLICA_A }, { hlc: 5, origin: REPLICA_A })).toBe(0);
  });

  it("is antisymmetric and transitive over a mixed set", () => {
    const versions = [
      { hlc: 1, origin: REPLICA_A },
      { hlc: 1, origin: REPLICA_B },
      { hlc: 3, origin: REPLICA_A },
      { hlc: 2, origin: REPLICA_B },
      { hlc: 3, origin: REPLICA_B },
    ];
    for (const a of versions) {
      for (const b of versions) expect(Math.sign(compareVersions(a, b)) + Math.sign(compareVersions(b, a))).toBe(0);
    }
    const sorted = [...versions].sort(compareVersions);
    expect(sorted).toEqual([
      { hlc: 1, origin: REPLICA_A },
      { hlc: 1, origin: REPLICA_B },
      { hlc: 2, origin: REPLICA_B },
      { hlc: 3, origin: REPLICA_A },
      { hlc: 3, origin: REPLICA_B },
    ]);
  });
});

describe("isLive", () => {
  const loc = (expires: number): Change =>
    remoteChange(REPLICA_A, 1, 1, { kind: "loc", key: "a@x", sub: "sip:a@1.2.3.4", value: binding({ expires }) });

  it("keeps a binding until its expiry passes", () => {
    expect(isLive(loc(100), 99)).toBe(true);
    expect(isLive(loc(100), 100)).toBe(false);
    expect(isLive(loc(100), 101)).toBe(false);
  });

  it("treats expires 0 as permanent", () => {
    expect(isLive(loc(0), Number.MAX_SAFE_INTEGER)).toBe(true);
  });

  it("treats a tombstone as absent for either kind", () => {
    expect(isLive({ kind: "loc", value: null }, 0)).toBe(false);
    expect(isLive({ kind: "alias", value: null }, 0)).toBe(false);
  });

  it("keeps an alias regardless of the time", () => {
    expect(isLive({ kind: "alias", value: aliasValue("sip:b@x") }, Number.MAX_SAFE_INTEGER)).toBe(true);
  });
});

describe("record views", () => {
  it("flattens a binding into a Location and an alias into an Alias", () => {
    const b = binding({ expires: 42, callid: "cid" });
    const loc = toLocation(remoteChange(REPLICA_A, 1, 1, { kind: "loc", key: "a@x", sub: "sip:a@h", value: b }));
    expect(loc).toEqual({ aor: "a@x", contact: "sip:a@h", ...b });
    const alias = toAlias(remoteChange(REPLICA_A, 2, 2, { kind: "alias", key: "s@x", sub: "", value: aliasValue("sip:t@x") }));
    expect(alias).toEqual({ alias: "s@x", target: "sip:t@x" });
  });

  it("decodes the millisecond part of a stamp", () => {
    expect(hlcToMillis(1_700_000_000_000 * 1024 + 1023)).toBe(1_700_000_000_000);
  });
});
