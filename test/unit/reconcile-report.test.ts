import { describe, expect, it } from "vitest";
import { createReconcileReport, keptApartText } from "../../agent/kamailio/reconcile-report.js";
import { capturedLog as capture } from "../support/captured-log.js";

describe("reconcile report", () => {
  it("keeps the last outcome: skipped with its reason, done with its counts, failed with the error", () => {
    let now = Date.parse("2026-11-22T10:00:00.000Z");
    const r = createReconcileReport({ log: capture().log, nowMs: () => now });
    expect(r.last()).toBeNull();
    r.skipped(34_166, 20_000);
    expect(r.last()).toEqual({
      at: "2026-11-22T10:00:00.000Z", outcome: "skipped", learned: 0, repaired: 0, contacts: 0,
      reason: "34166 live bindings above kamailio.reconcileMaxContacts (20000)",
    });
    now += 1000;
    r.done({ learned: 2, repaired: 1, contacts: 19_000 });
    expect(r.last()).toEqual({ at: "2026-11-22T10:00:01.000Z", outcome: "done", learned: 2, repaired: 1, contacts: 19_000, reason: null });
    r.failed(new Error("ul.dump timed out"));
    expect(r.last()).toMatchObject({ outcome: "failed", reason: "ul.dump timed out" });
  });

  it("warns of skipped reconciles again every hour while they stay skipped, not once per process", () => {
    let now = 0;
    const { log, lines } = capture();
    const r = createReconcileReport({ log, nowMs: () => now });
    const warnings = () => lines.filter((l) => l.level === 40 && /too many bindings to reconcile/.test(l.msg)).length;
    r.skipped(34_166, 20_000);
    expect(warnings()).toBe(1);
    for (now = 300_000; now < 3_600_000; now += 300_000) r.skipped(34_166, 20_000); // every reconcileIntervalSec
    expect(warnings()).toBe(1);
    now = 3_600_000;
    r.skipped(34_200, 20_000);
    expect(warnings()).toBe(2);
    expect(lines.at(-1)?.msg).toMatch(/learned only when those phones refresh/);
    // A run that went through ends the spell: the next skip is news again.
    now += 1000;
    r.done({ learned: 0, repaired: 0, contacts: 19_000 });
    r.skipped(20_001, 20_000);
    expect(warnings()).toBe(3);
  });

  it("says in status, and warns hourly in the log, that Kamailio keeps contacts apart by Call-ID (usrloc matching_mode 1)", () => {
    let now = 0;
    const { log, lines } = capture();
    const r = createReconcileReport({ log, nowMs: () => now });
    const warnings = () => lines.filter((l) => l.level === 40 && /matching_mode looks like 1/.test(l.msg)).length;
    const keptApart = { count: 2, first: { aor: "bob@example.com", contact: "sip:bob@192.0.2.1" } };
    r.done({ learned: 0, repaired: 0, contacts: 30, keptApart });
    expect(r.last()?.reason).toBe(keptApartText(keptApart));
    expect(r.last()?.reason).toMatch(/^Kamailio holds 2 contacts twice under two phones' Call-IDs \(sip:bob@192\.0\.2\.1 of bob@example\.com, and others\): .*Set modparam\("usrloc", "matching_mode", 0\)/);
    expect(warnings()).toBe(1);
    now = 300_000;
    r.done({ learned: 0, repaired: 0, contacts: 30, keptApart });
    expect(warnings()).toBe(1);
    now = 3_600_000;
    r.done({ learned: 0, repaired: 0, contacts: 30, keptApart });
    expect(warnings()).toBe(2);
    r.done({ learned: 0, repaired: 0, contacts: 30, keptApart: { count: 0, first: null } });
    expect(r.last()?.reason).toBeNull();
    r.done({ learned: 0, repaired: 0, contacts: 30, keptApart });
    expect(warnings()).toBe(3);
  });
});
