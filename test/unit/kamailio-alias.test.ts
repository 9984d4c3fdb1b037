/**
 * `alias show --kamailio` (agent/kamailio/kamailio-alias.ts, agent/cli/listing-output.ts): whether
 * the local Kamailio holds what the agent writes for the journal's target, in either alias store.
 */
import { describe, expect, it } from "vitest";
import { formatAlias, formatKamailioAlias } from "../../agent/cli/listing-output.js";
import type { KamailioAliasResult } from "../../agent/contract/kamailio-status.js";
import { aliasAgreement } from "../../agent/kamailio/kamailio-alias.js";

describe("aliasAgreement", () => {
  it("usrloc keeps the target URI whole: only that one contact is in line", () => {
    expect(aliasAgreement("usrloc", "sip:bob@example.com;transport=tcp", ["sip:bob@example.com;transport=tcp"])).toBe("present");
    expect(aliasAgreement("usrloc", "sip:bob@example.com;transport=tcp", ["sip:bob@example.com"])).toBe("differs");
    expect(aliasAgreement("usrloc", "sip:bob@example.com", ["sip:bob@example.com", "sip:old@example.com"])).toBe("differs");
  });

  it("alias_db keeps sip:user@host[:port]: a target with parameters is in line without them", () => {
    expect(aliasAgreement("dbaliases", "sip:bob@example.com:5080;transport=tcp", ["sip:bob@example.com:5080"])).toBe("present");
    expect(aliasAgreement("dbaliases", "sip:bob@example.com", ["sip:carol@example.com"])).toBe("differs");
  });

  it("tells missing, extra and absent apart", () => {
    expect(aliasAgreement("usrloc", "sip:bob@example.com", [])).toBe("missing");
    expect(aliasAgreement("dbaliases", null, ["sip:bob@example.com"])).toBe("extra");
    expect(aliasAgreement("usrloc", null, [])).toBe("absent");
  });
});

describe("alias show output", () => {
  const r: KamailioAliasResult = {
    alias: "bobby@example.com", store: "dbaliases", table: "dbaliases", kamailio: [], journal: "sip:bob@example.com", agreement: "missing", pendingWrites: 0,
  };

  it("names the journal's target and where Kamailio keeps aliases, and says what is wrong", () => {
    expect(formatKamailioAlias(r).split("\n")).toEqual([
      "alias     bobby@example.com",
      "journal   sip:bob@example.com",
      "kamailio  - (alias_db table dbaliases)",
      "state     MISSING from Kamailio: the journal has a target, Kamailio none",
    ]);
  });

  it("points at waiting writes when they may explain a difference, not when all is in line", () => {
    expect(formatKamailioAlias({ ...r, pendingWrites: 3 })).toMatch(/MISSING from Kamailio: .* \(3 write\(s\) into Kamailio are still waiting: look again in a moment/);
    const inLine = formatKamailioAlias({ ...r, store: "usrloc", table: "aliases", kamailio: ["sip:bob@example.com"], agreement: "present", pendingWrites: 3 });
    expect(inLine).toMatch(/^kamailio +sip:bob@example\.com \(usrloc domain aliases\)$/m);
    expect(inLine).toMatch(/^state +in line: Kamailio holds what the agent writes for the journal's target$/m);
    const extra = formatKamailioAlias({ ...r, journal: null, kamailio: ["sip:bob@example.com"], agreement: "extra", pendingWrites: 1 });
    expect(extra).toMatch(/^state +EXTRA in Kamailio: the journal has no such alias \(its removal not written there yet, or it was put there by hand\) \(1 write\(s\) into Kamailio are still waiting/m);
  });

  it("shows the journal's alias, or says there is none", () => {
    expect(formatAlias("bobby@example.com", "sip:bob@example.com")).toBe("alias bobby@example.com -> sip:bob@example.com");
    expect(formatAlias("nobody@example.com", null)).toBe("no alias nobody@example.com");
  });
});
