/**
 * What alias.set notes about an alias Kamailio will not follow as one may expect
 * (agent/api/alias-notes.ts): chains and loops (resolved one step), tel: targets, and user or host
 * parts over the registrar's build-time 64 characters, the host measured without its port.
 */
import { describe, expect, it } from "vitest";
import { aliasNotes } from "../../agent/api/alias-notes.js";

const journal = (aliases: Record<string, string>) => async (aor: string) => aliases[aor] ?? null;

describe("aliasNotes", () => {
  it("has nothing to say of a plain alias to a registered user", async () => {
    expect(await aliasNotes("desk@example.com", "sip:alice@example.com;transport=tcp", journal({}))).toEqual([]);
  });

  it("tells a chain from a loop", async () => {
    const [chain] = await aliasNotes("frank@example.com", "sip:bob@example.com", journal({ "bob@example.com": "sip:alice@example.com" }));
    expect(chain).toMatch(/^the target bob@example\.com is itself an alias \(to sip:alice@example\.com\): .*point frank@example\.com at sip:alice@example\.com/);
    const [loop] = await aliasNotes("frank@example.com", "sip:bob@example.com", journal({ "bob@example.com": "sip:Frank@example.com" }));
    expect(loop).toMatch(/^bob@example\.com is an alias back to frank@example\.com: the two forward to each other/);
  });

  it("notes a tel: target", async () => {
    expect(await aliasNotes("fax@example.com", "tel:+15551234", journal({}))).toEqual([expect.stringMatching(/^the target tel:\+15551234 is not a sip: URI with a user/)]);
  });

  it("measures user and host as the registrar does: over 64 characters, the host without its port", async () => {
    const host60 = `${"h".repeat(56)}.com`;
    expect(await aliasNotes(`a@${host60}`, `sip:b@${host60}:5080`, journal({}))).toEqual([]);
    const [user] = await aliasNotes(`${"u".repeat(65)}@example.com`, "sip:b@example.com", journal({}));
    expect(user).toMatch(/^the alias's user or host part is longer than 64 characters: .*USERNAME_MAX_SIZE and DOMAIN_MAX_SIZE, fixed when Kamailio is built/);
    const [host] = await aliasNotes("a@example.com", `sip:b@${"h".repeat(61)}.com`, journal({}));
    expect(host).toMatch(/^the target's user or host part is longer than 64 characters/);
  });
});
