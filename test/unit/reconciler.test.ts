/**
 * The ul.dump reconciliation (agent/kamailio/reconciler.ts) when the cluster's hybrid logical
 * clock runs ahead of this host's clock, as it does on every node behind the fastest one: the
 * dump's start and Kamailio's Last-Modified must be compared with stamps in the clock's frame.
 * Runs against a real SQLite journal in a temp folder, like the store's own unit tests.
 */
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { HLC_UNITS_PER_MS, hlcToMillis } from "../../agent/contract/records.js";
import type { ReplicaStore } from "../../agent/core/store.js";
import { openSqliteStore } from "../../agent/journal/sqlite-store.js";
import { bindingKey } from "../../agent/kamailio/install-plan.js";
import { planReconcile, type ReconcileInput } from "../../agent/kamailio/reconciler.js";
import type { UsrlocContact } from "../../agent/kamailio/usrloc-contact.js";
import { UL_ADD_CALLID } from "../../agent/kamailio/registrar-input.js";
import { binding, counterStamp, locDraft, makeTempDirs } from "../support/fixtures.js";

const temp = makeTempDirs("locmesh-reconcile-");
const open: ReplicaStore[] = [];
afterEach(async () => {
  for (const s of open.splice(0)) await s.close();
  temp.cleanup();
});

const ME = "n2";
const AOR = "bob@example.com";
const NOW = 1_800_000_000;
/** The cluster's clock runs 5 s ahead of this host's (a peer's clock is fast). */
const LEAD_MS = 5000;

function inKamailio(contact: string, over: Partial<UsrlocContact>): UsrlocContact {
  return {
    ...binding({ expires: NOW + 3600 }),
    table: "location", aor: AOR, contact, status: "active", serverId: 0, tcpconnId: -1, lastModified: NOW, state: "CS_NEW",
    ...over,
  };
}

/**
 * This node registered two contacts at NOW by its clock (stamped NOW + 5 s), then, 2 s later,
 * Kamailio lost one (a de-registration whose event was missed) and refreshed the other.
 */
async function setUp(): Promise<{ store: ReplicaStore; input: Omit<ReconcileInput, "clockLeadMs"> }> {
  const store = openSqliteStore({ path: join(temp.make(), "journal.sqlite"), nodeId: ME });
  open.push(store);
  const value = (callid: string) => binding({ owner: ME, expires: NOW + 3600, callid, cseq: 1 });
  await store.commitLocal(
    [locDraft(AOR, "sip:bob@gone", value("gone")), locDraft(AOR, "sip:bob@refreshed", value("refreshed"))],
    counterStamp((NOW * 1000 + LEAD_MS) * HLC_UNITS_PER_MS),
  );
  const dump = [inKamailio("sip:bob@refreshed", { callid: "refreshed", cseq: 2, expires: NOW + 3602, lastModified: NOW + 2 })];
  return {
    store,
    input: { nodeId: ME, dump, dumpStartMs: NOW * 1000 + 2500, locationTable: "location", aliasTable: null, nowSec: NOW + 3, isPending: () => false, writtenAt: () => undefined },
  };
}

describe("reconcile with the cluster's clock ahead of this host's", () => {
  it("learns a missed de-registration and refresh made after the journal's version by this host's clock", async () => {
    const { store, input } = await setUp();
    const plan = await planReconcile(store, { ...input, clockLeadMs: LEAD_MS });
    expect(plan.repairs).toEqual([]);
    expect(plan.drafts).toHaveLength(2);
    expect(plan.drafts).toContainEqual({ kind: "loc", key: AOR, sub: "sip:bob@gone", value: null });
    expect(plan.drafts.find((d) => d.sub === "sip:bob@refreshed")?.value).toMatchObject({ cseq: 2, expires: NOW + 3602, owner: ME });
  });

  it("compared by the host's clock alone, takes both versions for newer than the dump and learns nothing", async () => {
    // What the reconciler did before the lead was applied: the journal kept the stale versions.
    const { store, input } = await setUp();
    expect((await planReconcile(store, { ...input, clockLeadMs: 0 })).drafts).toEqual([]);
  });

  it("still leaves alone a version stamped after the dump began, in the clock's frame", async () => {
    const { store, input } = await setUp();
    await store.commitLocal(
      [locDraft(AOR, "sip:bob@new", binding({ owner: ME, expires: NOW + 3600, callid: "new" }))],
      counterStamp((input.dumpStartMs + LEAD_MS + 10) * HLC_UNITS_PER_MS),
    );
    const plan = await planReconcile(store, { ...input, clockLeadMs: LEAD_MS });
    expect(plan.drafts.map((d) => d.sub).sort()).toEqual(["sip:bob@gone", "sip:bob@refreshed"]);
  });
});

describe("reconcile of this node's bindings published through the local API", () => {
  /** Journal: a phone's registration gone from Kamailio (gone), a static one published here with no Call-ID (static), one of another AoR. */
  async function withStatic() {
    const { store, input } = await setUp();
    await store.commitLocal(
      [
        locDraft(AOR, "sip:bob@static", binding({ owner: ME, expires: 0, callid: "" })),
        locDraft("carol@example.com", "sip:carol@static", binding({ owner: ME, expires: 0, callid: "" })),
        locDraft("dave@example.com", "sip:dave@gone", binding({ owner: ME, expires: NOW + 3600, callid: "dave-call" })),
      ],
      counterStamp((NOW * 1000 + LEAD_MS) * HLC_UNITS_PER_MS),
    );
    return { store, input: { ...input, clockLeadMs: LEAD_MS } };
  }

  it("writes one Kamailio lacks back instead of taking it for a missed de-registration (which it does for a phone's)", async () => {
    const { store, input } = await withStatic();
    const plan = await planReconcile(store, input);
    expect(plan.repairs.map((r) => (r.op === "add" ? `${r.aor} ${r.binding.contact}` : r.op)).sort()).toEqual([
      "bob@example.com sip:bob@static", "carol@example.com sip:carol@static",
    ]);
    expect(plan.drafts.filter((d) => d.value === null).map((d) => d.sub).sort()).toEqual(["sip:bob@gone", "sip:dave@gone"]);
  });

  it("limited to the bindings a local API edit changed, decides only for those, by the edit's stamps whatever the clock's lead", async () => {
    const { store, input } = await withStatic();
    const edited = (await store.get("loc", AOR, "sip:bob@static"))!;
    const only = (keys: [string, string][], hlc = edited.hlc) => ({ keys: new Map(keys.map(([aor, c]) => [bindingKey(aor, c), { aor, hlc }])) });
    // The lookup began in the edit's own millisecond by the clock (its lead): the edit is still decided.
    const sameMs = { ...input, dumpStartMs: hlcToMillis(edited.hlc) - LEAD_MS };
    const plan = await planReconcile(store, { ...sameMs, only: only([[AOR, "sip:bob@static"]]) });
    expect(plan.repairs).toMatchObject([{ op: "add", aor: AOR, binding: { contact: "sip:bob@static", expires: 0 } }]);
    // The AoR's phone bindings (one gone from Kamailio, one refreshed there) are the full reconcile's.
    expect(plan.drafts).toEqual([]);
    // A version stamped after the edit (a REGISTER meanwhile) is left alone.
    expect((await planReconcile(store, { ...sameMs, only: only([[AOR, "sip:bob@static"]], edited.hlc - 1) })).repairs).toEqual([]);
    // The API may be given a Call-ID too: edited, such a binding is written in, not dropped.
    const daveStamp = (await store.get("loc", "dave@example.com", "sip:dave@gone"))!.hlc;
    const dave = await planReconcile(store, { ...input, dump: [], only: only([["dave@example.com", "sip:dave@gone"]], daveStamp) });
    expect(dave.repairs).toMatchObject([{ op: "add", aor: "dave@example.com", binding: { contact: "sip:dave@gone" } }]);
    expect(dave.drafts).toEqual([]);
  });
});

describe("reconcile of a contact Kamailio holds twice", () => {
  it("lists one copy of a binding for removal per run and writes nothing else for it in that run, and leaves copies with two real Call-IDs (matching_mode 1) alone", async () => {
    const { store, input } = await setUp();
    await store.commitLocal(
      [locDraft("carol@example.com", "sip:carol@desk", binding({ owner: "n1", expires: NOW + 3600, callid: "carol-desk" }))],
      counterStamp((NOW * 1000 + LEAD_MS) * HLC_UNITS_PER_MS),
    );
    const carol = (over: Partial<UsrlocContact>) => inKamailio("sip:carol@desk", { aor: "carol@example.com", callid: UL_ADD_CALLID, cseq: 1, lastModified: NOW - 10, ...over });
    const dump = [
      ...input.dump,
      // Rows loaded from the database: the agent's and Kamailio's own, both under ul.add's Call-ID,
      // the first with an expiry the journal no longer has (ul.rm_contact removes it first).
      carol({ ruid: "agent-row", expires: NOW + 60 }), carol({ ruid: "kamailio-row" }), carol({ ruid: "third" }),
      // The refreshed phone twice with two Call-IDs of its own: usrloc keeps them apart on purpose.
      inKamailio("sip:bob@refreshed", { callid: "another-call", cseq: 1, expires: NOW + 3602, lastModified: NOW - 100 }),
    ];
    const plan = await planReconcile(store, { ...input, dump, clockLeadMs: LEAD_MS });
    // One of the three per run: in db_mode 2 a second ul.rm_contact would find the copy the first marked.
    expect(plan.duplicates).toMatchObject([{ aor: "carol@example.com", contact: "sip:carol@desk" }]);
    // The last copy is the one that stays, and is reconciled as any other: it agrees with the journal.
    expect(plan.repairs).toEqual([]);
    // The stale one last: it stays, and is repaired, but only in the next run, once Kamailio holds
    // it alone (in db_mode 2 the repair's ul.add would find, and bring back, the copy just removed).
    const staleLast = await planReconcile(store, { ...input, dump: [...input.dump, carol({ ruid: "agent-row" }), carol({ ruid: "kamailio-row", expires: NOW + 60 })], clockLeadMs: LEAD_MS });
    expect(staleLast.duplicates).toMatchObject([{ aor: "carol@example.com", contact: "sip:carol@desk" }]);
    expect(staleLast.repairs).toEqual([]);
    // In db_mode 2 the removed copy lingers, listed as deleted, until usrloc's timer: still no write.
    const lingering = await planReconcile(store, { ...input, dump: [...input.dump, carol({ ruid: "agent-row", status: "deleted" }), carol({ ruid: "kamailio-row", expires: NOW + 60 })], clockLeadMs: LEAD_MS });
    expect(lingering.duplicates).toEqual([]);
    expect(lingering.repairs).toEqual([]);
    // Nor is another copy removed then: ul.rm_contact would find the lingering one first again.
    const twoMore = await planReconcile(store, { ...input, dump: [...input.dump, carol({ ruid: "agent-row", status: "deleted" }), carol({ ruid: "kamailio-row" }), carol({ ruid: "third" })], clockLeadMs: LEAD_MS });
    expect(twoMore.duplicates).toEqual([]);
    expect(twoMore.repairs).toEqual([]);
    const nextRun = await planReconcile(store, { ...input, dump: [...input.dump, carol({ ruid: "kamailio-row", expires: NOW + 60 })], clockLeadMs: LEAD_MS });
    expect(nextRun.duplicates).toEqual([]);
    expect(nextRun.repairs).toMatchObject([{ op: "add", aor: "carol@example.com", binding: { contact: "sip:carol@desk", expires: NOW + 3600 } }]);
    // The phone's two Call-IDs are reported: usrloc's matching_mode 1, which locmesh does not support.
    expect(plan.keptApart).toEqual({ count: 1, first: { aor: AOR, contact: "sip:bob@refreshed" } });
    // Three copies under two phones' Call-IDs (one twice): kept apart, one contact, nothing removed.
    const threeWays = ["c1", "c2", "c2"].map((callid) => carol({ callid }));
    expect(await planReconcile(store, { ...input, dump: threeWays, clockLeadMs: LEAD_MS })).toMatchObject({ duplicates: [], keptApart: { count: 1 } });
    // Without the copies, nothing is listed.
    expect(await planReconcile(store, { ...input, clockLeadMs: LEAD_MS })).toMatchObject({ duplicates: [], keptApart: { count: 0, first: null } });
  });

  it("learns a phone's registration from its copy before an ul.add copy, and removes no copy until the journal holds it", async () => {
    const { store, input } = await setUp();
    const erin = (over: Partial<UsrlocContact>) => inKamailio("sip:erin@desk", { aor: "erin@example.com", lastModified: NOW - 10, ...over });
    // The phone registered while the agent was away: its copy first, an ul.add copy after it.
    const dump = [...input.dump, erin({ callid: "erin-phone", cseq: 7, ruid: "phone-row" }), erin({ callid: UL_ADD_CALLID, cseq: 1, ruid: "agent-row" })];
    const first = await planReconcile(store, { ...input, dump, clockLeadMs: LEAD_MS });
    // Removing a copy now would take the phone's (the first), and then the ul.add copy as not in the journal.
    expect(first.duplicates).toEqual([]);
    expect(first.repairs).toEqual([]);
    const learned = first.drafts.filter((d) => d.key === "erin@example.com");
    expect(learned).toMatchObject([{ sub: "sip:erin@desk", value: { callid: "erin-phone", cseq: 7, owner: input.nodeId } }]);
    await store.commitLocal(learned, counterStamp((NOW * 1000 + LEAD_MS - 5_000) * HLC_UNITS_PER_MS));
    // The journal holds it now: one copy goes, and the one left is written as the journal has it in the run after.
    const second = await planReconcile(store, { ...input, dump, clockLeadMs: LEAD_MS });
    expect(second.duplicates).toMatchObject([{ aor: "erin@example.com", contact: "sip:erin@desk" }]);
    expect(second.repairs.filter((r) => "aor" in r && r.aor === "erin@example.com")).toEqual([]);
    expect(second.drafts.filter((d) => d.key === "erin@example.com")).toEqual([]);
  });

  it("leaves the copies of a binding changed after the dump began to the next run", async () => {
    const { store, input } = await setUp();
    const twice = [inKamailio("sip:bob@refreshed", { callid: UL_ADD_CALLID, lastModified: NOW + 2 }), inKamailio("sip:bob@refreshed", { callid: "refreshed", cseq: 2, expires: NOW + 3602, lastModified: NOW + 2 })];
    expect((await planReconcile(store, { ...input, dump: twice, clockLeadMs: LEAD_MS })).duplicates).toMatchObject([{ aor: AOR, contact: "sip:bob@refreshed" }]);
    expect((await planReconcile(store, { ...input, dump: twice, clockLeadMs: LEAD_MS, isPending: () => true })).duplicates).toEqual([]);
  });
});

describe("reconcile of the AoRs whose registrar events could not be journaled", () => {
  it("decides those AoRs as a full reconcile would, and nothing of any other AoR", async () => {
    const { store, input } = await setUp();
    await store.commitLocal(
      [
        locDraft("carol@example.com", "sip:carol@static", binding({ owner: ME, expires: 0, callid: "" })),
        locDraft("dave@example.com", "sip:dave@gone", binding({ owner: ME, expires: NOW + 3600, callid: "dave-call" })),
      ],
      counterStamp((NOW * 1000 + LEAD_MS) * HLC_UNITS_PER_MS),
    );
    // bob's lookup: the refreshed contact, and one registered while the journal was full.
    const dump = [...input.dump, inKamailio("sip:bob@new", { callid: "new-call", cseq: 7, lastModified: NOW + 2 })];
    const plan = await planReconcile(store, { ...input, dump, clockLeadMs: LEAD_MS, aors: new Set([AOR]) });
    // bob: the missed de-registration removed, the refresh and the new registration learned.
    expect(plan.drafts.map((d) => `${d.key} ${d.sub} ${d.value === null ? "removed" : "learned"}`).sort()).toEqual([
      "bob@example.com sip:bob@gone removed", "bob@example.com sip:bob@new learned", "bob@example.com sip:bob@refreshed learned",
    ]);
    // carol's static binding and dave's registration are not in the lookup, and not bob's: untouched
    // (a full reconcile would write carol's back and remove dave's).
    expect(plan.repairs).toEqual([]);
    expect(plan.drafts.some((d) => d.key !== AOR)).toBe(false);
    const full = await planReconcile(store, { ...input, dump, clockLeadMs: LEAD_MS });
    expect(full.drafts.map((d) => d.sub)).toContain("sip:dave@gone");
    expect(full.repairs.map((r) => (r.op === "add" ? r.binding.contact : r.op))).toEqual(["sip:carol@static"]);
  });

  it("writes nothing into Kamailio: another node's binding of the AoR that Kamailio lacks, or holds stale, is the sink's and the full reconcile's", async () => {
    const { store, input } = await setUp();
    await store.commitLocal([locDraft(AOR, "sip:bob@n1-phone", binding({ owner: "n1", expires: NOW + 3600, callid: "n1-call" }))], counterStamp((NOW * 1000 + LEAD_MS) * HLC_UNITS_PER_MS));
    const stale = inKamailio("sip:bob@installed", { callid: UL_ADD_CALLID, lastModified: NOW - 100 }); // installed by the agent, no longer in the journal
    const dump = [...input.dump, stale];
    const scoped = await planReconcile(store, { ...input, dump, clockLeadMs: LEAD_MS, aors: new Set([AOR]) });
    expect(scoped.repairs).toEqual([]);
    expect(scoped.duplicates).toEqual([]);
    const full = await planReconcile(store, { ...input, dump, clockLeadMs: LEAD_MS });
    expect(full.repairs.map((r) => (r.op === "add" ? `add ${r.binding.contact}` : `${r.op} ${"contact" in r ? r.contact : ""}`)).sort()).toEqual([
      "add sip:bob@n1-phone", "rm-contact sip:bob@installed",
    ]);
  });

  it("writes nothing for aliases", async () => {
    const { store, input } = await setUp();
    await store.commitLocal([{ kind: "alias", key: "sales@example.com", sub: "", value: { target: "sip:bob@example.com" } }], counterStamp((NOW * 1000 + LEAD_MS) * HLC_UNITS_PER_MS));
    const scoped = await planReconcile(store, { ...input, aliasTable: "aliases", clockLeadMs: LEAD_MS, aors: new Set([AOR]) });
    expect(scoped.repairs).toEqual([]);
    const full = await planReconcile(store, { ...input, aliasTable: "aliases", clockLeadMs: LEAD_MS });
    expect(full.repairs).toEqual([{ op: "alias-set", alias: "sales@example.com", target: "sip:bob@example.com" }]);
  });
});
