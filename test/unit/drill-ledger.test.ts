/**
 * The drills' judge: the ledger of acknowledged writes (test/drill/ledger.ts) and the record-by-
 * record comparison of every node's dump with it (test/drill/verify.ts). A drill is only as honest
 * as these two, so their rules are pinned here: acked writes must be there, failed ones must not,
 * unanswered ones may go either way but every node must agree, and only a write that no acked
 * write followed can be the last.
 */
import { describe, expect, it } from "vitest";
import { Ledger, recordId, type LedgerOp } from "../drill/ledger.js";
import { verify, viewOf, type View } from "../drill/verify.js";

const ALIAS = "da1@example.com";
const AOR = "dn1u1@example.com";
const CONTACT = "sip:dn1c1@127.0.0.1:5999";

function alias(value: string | null, sentMs: number, doneMs: number, outcome: LedgerOp["outcome"] = "acked", node = "n1"): LedgerOp {
  return { kind: "alias", key: ALIAS, sub: "", value, node, sentMs, doneMs: outcome === "doubt" ? Infinity : doneMs, outcome };
}

function reg(value: "present" | null, sentMs: number, doneMs: number, outcome: LedgerOp["outcome"] = "acked", node = "n1"): LedgerOp {
  return { kind: "loc", key: AOR, sub: CONTACT, value, node, sentMs, doneMs: outcome === "doubt" ? Infinity : doneMs, outcome };
}

function ledgerOf(...ops: LedgerOp[]): Ledger {
  const l = new Ledger();
  for (const o of ops) l.add(o);
  return l;
}

/** A view holding the alias with `target` (null: not at all) and the binding when `bound`. */
function view(name: string, target: string | null, bound = false): View {
  const records = new Map<string, string>();
  if (target !== null) records.set(recordId("alias", ALIAS, ""), target);
  if (bound) records.set(recordId("loc", AOR, CONTACT), "present");
  return { name, records };
}

const allowed = (l: Ledger, kind: "loc" | "alias") =>
  [...(l.expected().get(kind === "alias" ? recordId("alias", ALIAS, "") : recordId("loc", AOR, CONTACT))?.allowed ?? [])];

describe("drill ledger: what each outcome promises", () => {
  it("an acked write must be on every view", () => {
    const l = ledgerOf(reg("present", 0, 10));
    expect(allowed(l, "loc")).toEqual(["present"]);
    expect(verify(l, [view("a", null, true), view("b", null, true)]).ok).toBe(true);
    const v = verify(l, [view("a", null, true), view("b", null, false)]);
    expect(v.ok).toBe(false);
    expect(v.views.map((f) => [f.missing, f.extra])).toEqual([[0, 0], [1, 0]]);
    expect(v.views[1]!.examples[0]).toMatch(/^missing loc dn1u1@example.com/);
  });

  it("a failed write must have changed nothing", () => {
    const l = ledgerOf(alias("sip:x@example.com", 0, 10, "failed"));
    expect(l.expected().size).toBe(0);
    expect(verify(l, [view("a", null)]).ok).toBe(true);
    const v = verify(l, [view("a", "sip:x@example.com")]);
    expect(v.views[0]).toMatchObject({ missing: 0, extra: 1 });
    expect(v.views[0]!.examples[0]).toContain("never written");
  });

  it("a failed write neither counts as the last one nor hides an earlier acked one", () => {
    const l = ledgerOf(alias("sip:a@example.com", 0, 10), alias("sip:b@example.com", 20, 30, "failed"));
    expect(allowed(l, "alias")).toEqual(["sip:a@example.com"]);
    expect(verify(l, [view("a", "sip:b@example.com")]).views[0]).toMatchObject({ missing: 0, extra: 1 });
  });

  it("an unanswered write may or may not have happened, but not on some views only", () => {
    const l = ledgerOf(alias("sip:x@example.com", 0, 0, "doubt"));
    expect(new Set(allowed(l, "alias"))).toEqual(new Set([null, "sip:x@example.com"]));
    // Either way is fine as long as every view says the same...
    expect(verify(l, [view("a", null), view("b", null)]).ok).toBe(true);
    expect(verify(l, [view("a", "sip:x@example.com"), view("b", "sip:x@example.com")]).ok).toBe(true);
    // ...but a split is a failure even though each view on its own is allowed.
    const v = verify(l, [view("a", "sip:x@example.com"), view("b", null)]);
    expect(v.views.every((f) => f.missing === 0 && f.extra === 0)).toBe(true);
    expect(v.disagree).toBe(1);
    expect(v.ok).toBe(false);
    expect(v.examples[0]).toContain("a=sip:x@example.com, b=absent");
  });

  it("an unanswered write is not an acknowledged one: views without it pass", () => {
    // Were doubt treated as acked, absent would not be allowed and both views would be missing it.
    const l = ledgerOf(reg("present", 0, 0, "doubt"));
    expect(l.count("acked")).toBe(0);
    expect(l.count("doubt", "loc")).toBe(1);
    const v = verify(l, [view("a", null, false), view("b", null, false)]);
    expect(v.views.map((f) => f.missing)).toEqual([0, 0]);
    expect(v.ok).toBe(true);
  });
});

describe("drill ledger: which write can be the last", () => {
  it("an acked write sent after another ended supersedes it", () => {
    const l = ledgerOf(alias("sip:a@example.com", 0, 10), alias("sip:b@example.com", 20, 30));
    expect(allowed(l, "alias")).toEqual(["sip:b@example.com"]);
    const v = verify(l, [view("ok", "sip:b@example.com"), view("stale", "sip:a@example.com"), view("empty", null)]);
    expect(v.views.map((f) => [f.view, f.missing, f.extra])).toEqual([["ok", 0, 0], ["stale", 0, 1], ["empty", 1, 0]]);
    expect(v.views[1]!.examples[0]).toContain("want sip:b@example.com");
  });

  it("overlapping acked writes may either be last, but the views must pick the same", () => {
    const l = ledgerOf(alias("sip:a@example.com", 0, 30, "acked", "n1"), alias("sip:b@example.com", 10, 20, "acked", "n3"));
    expect(new Set(allowed(l, "alias"))).toEqual(new Set(["sip:a@example.com", "sip:b@example.com"]));
    expect(verify(l, [view("x", "sip:a@example.com"), view("y", "sip:a@example.com")]).ok).toBe(true);
    expect(verify(l, [view("x", "sip:b@example.com"), view("y", "sip:b@example.com")]).ok).toBe(true);
    expect(verify(l, [view("x", "sip:a@example.com"), view("y", "sip:b@example.com")]).disagree).toBe(1);
    // Absent is never allowed once some write was acked and none of the candidates removes.
    expect(verify(l, [view("x", null)]).views[0]!.missing).toBe(1);
  });

  it("a write sent exactly when the other was answered does not supersede it", () => {
    const l = ledgerOf(alias("sip:a@example.com", 0, 10), alias("sip:b@example.com", 10, 30));
    expect(new Set(allowed(l, "alias"))).toEqual(new Set(["sip:a@example.com", "sip:b@example.com"]));
  });

  it("an acked removal leaves nothing, and a value held anyway is extra", () => {
    const l = ledgerOf(reg("present", 0, 10), reg(null, 1500, 1510));
    expect(allowed(l, "loc")).toEqual([null]);
    expect(verify(l, [view("a", null, false)]).ok).toBe(true);
    expect(verify(l, [view("a", null, true)]).views[0]).toMatchObject({ missing: 0, extra: 1 });
  });

  it("an unanswered write stays a candidate whenever it was sent: it may have landed late", () => {
    // Sent before the acked write, never answered: it may have been applied after it (a frozen
    // agent working through its backlog), so both values are possible.
    const l = ledgerOf(alias("sip:late@example.com", 0, 0, "doubt", "n2"), alias("sip:b@example.com", 20, 30));
    expect(new Set(allowed(l, "alias"))).toEqual(new Set(["sip:late@example.com", "sip:b@example.com"]));
    // But with an acked write on the record, absent is not among them.
    expect(allowed(l, "alias")).not.toContain(null);
  });

  it("an acked write superseded by an acked one is no candidate even with an unanswered one around", () => {
    const l = ledgerOf(alias("sip:a@example.com", 0, 10), alias("sip:d@example.com", 5, 0, "doubt"), alias("sip:b@example.com", 20, 30));
    expect(new Set(allowed(l, "alias"))).toEqual(new Set(["sip:d@example.com", "sip:b@example.com"]));
  });
});

describe("drill ledger: moving acked writes to doubt", () => {
  it("moves only that node's acked writes of that kind answered inside the window", () => {
    const ops = [
      { ...reg("present", 40, 50), sub: "sip:c0@h" },
      { ...reg("present", 90, 100), sub: "sip:c1@h" },
      { ...reg("present", 190, 200), sub: "sip:c2@h" },
      { ...reg("present", 290, 300), sub: "sip:c3@h" },
      { ...reg("present", 190, 200, "acked", "n2"), sub: "sip:c4@h" },
      alias("sip:x@example.com", 190, 200),
      { ...reg("present", 150, 150, "doubt"), sub: "sip:c5@h" },
      { ...reg("present", 140, 150, "failed"), sub: "sip:c6@h" },
    ];
    const l = ledgerOf(...ops);
    expect(l.doubtAckedBetween("n1", "loc", 100, 200, "killed")).toBe(2);
    expect(l.all.map((o) => o.outcome)).toEqual(["acked", "doubt", "doubt", "acked", "acked", "acked", "doubt", "failed"]);
    expect(l.all[1]!.doubtReason).toBe("killed");
    expect(l.all[6]!.doubtReason).toBeUndefined();
    // Now a view may lack them (all views alike), but still not the acked ones.
    const records = new Map([[recordId("loc", AOR, "sip:c0@h"), "present"], [recordId("loc", AOR, "sip:c3@h"), "present"], [recordId("loc", AOR, "sip:c4@h"), "present"], [recordId("alias", ALIAS, ""), "sip:x@example.com"]]);
    expect(verify(l, [{ name: "a", records }]).ok).toBe(true);
    records.delete(recordId("loc", AOR, "sip:c3@h"));
    expect(verify(l, [{ name: "a", records }]).views[0]!.missing).toBe(1);
  });
});

describe("drill views", () => {
  it("keep only the drill's keys, strip sip:, and hold an alias's target", () => {
    const v = viewOf(
      "n1 journal",
      [{ aor: "sip:dn1u1@example.com", contact: CONTACT }, { aor: "alice@example.com", contact: "sip:alice@h" }],
      [{ alias: "sip:da1@example.com", target: "sip:t@example.com" }, { alias: "sip:skewprobe@example.com", target: "sip:x@example.com" }],
      (k) => k.startsWith("d"),
    );
    expect([...v.records.entries()]).toEqual([
      [recordId("loc", AOR, CONTACT), "present"],
      [recordId("alias", ALIAS, ""), "sip:t@example.com"],
    ]);
  });

  it("count a record nobody wrote as extra, and report per view", () => {
    const l = ledgerOf(reg("present", 0, 10));
    const records = new Map([[recordId("loc", AOR, CONTACT), "present"], [recordId("loc", AOR, "sip:ghost@h"), "present"]]);
    const v = verify(l, [{ name: "n2 kamailio", records }]);
    expect(v.views).toEqual([{ view: "n2 kamailio", missing: 0, extra: 1, examples: ["extra loc dn1u1@example.com sip:ghost@h = present (never written)"] }]);
    expect(v.ok).toBe(false);
  });

  it("hold a wrong value as extra, not missing", () => {
    const l = ledgerOf(alias("sip:a@example.com", 0, 10));
    expect(verify(l, [view("a", "sip:zzz@example.com")]).views[0]).toMatchObject({ missing: 0, extra: 1 });
  });

  it("cap the examples but count everything", () => {
    const l = new Ledger();
    for (let i = 0; i < 20; i++) l.add({ ...reg("present", 0, 10), sub: `sip:c${i}@h` });
    const v = verify(l, [{ name: "empty", records: new Map() }], 3);
    expect(v.views[0]).toMatchObject({ missing: 20, extra: 0 });
    expect(v.views[0]!.examples).toHaveLength(3);
  });
});
