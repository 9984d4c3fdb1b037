/** The web UI's pure logic: formatting, paging cursors, form checks, routes and the chart's numbers. */
import { describe, expect, it } from "vitest";
import { changedMeanwhile, checkAliasForm, hasErrors } from "../../web/src/lib/alias-form.js";
import { aliasSetParams } from "../../agent/contract/api-protocol.js";
import { connectedSinceText, countText, countsView, eventsText, hubText, interruptedText, linkBadge, postgresView, progress, reconcileText, showsHubs } from "../../web/src/lib/cluster-view.js";
import { expiryText, formatDuration, formatQ, pageRange } from "../../web/src/lib/format.js";
import { cursorOf, firstPage, nextPage, pageOffset, previousPage } from "../../web/src/lib/pager.js";
import { parseRoute, routeHref } from "../../web/src/lib/route.js";
import { clearTextWarning } from "../../web/src/lib/transport.js";
import { appendSample, linePath, niceMax, ratePoints, sampleOf } from "../../web/src/lib/status-history.js";

describe("format", () => {
  it("writes durations, expiries, q and page ranges for people", () => {
    expect([0, 59, 61, 3599, 3600, 90_000, 200_000].map(formatDuration)).toEqual(["0s", "59s", "1m 01s", "59m 59s", "1h 00m", "25h 00m", "2d 7h"]);
    expect(expiryText(0, 100)).toBe("permanent");
    expect(expiryText(100, 100)).toBe("expired");
    expect(expiryText(225, 100)).toBe("in 2m 05s");
    expect([-1, 0, 0.5, 1].map(formatQ)).toEqual(["not set", "0", "0.5", "1"]);
    expect(pageRange(50, 50, 1234)).toBe("51–100 of 1,234");
    expect(pageRange(0, 0, 0)).toBe("none");
  });
});

describe("pager", () => {
  it("walks forward with the server's cursors and back through the ones it saw", () => {
    let p = firstPage(25);
    expect(cursorOf(p)).toBe("");
    p = nextPage(p, '["a","b"]');
    p = nextPage(p, '["c","d"]');
    expect([p.page, cursorOf(p), pageOffset(p)]).toEqual([2, '["c","d"]', 50]);
    expect(nextPage(p, null)).toBe(p);
    p = previousPage(p);
    expect(cursorOf(p)).toBe('["a","b"]');
    // Going forward again from an earlier page forgets the pages after it.
    p = nextPage(p, '["x","y"]');
    expect(p.cursors).toEqual(["", '["a","b"]', '["x","y"]']);
    expect(previousPage(firstPage(10)).page).toBe(0);
  });
});

describe("alias form", () => {
  it("accepts what the agent accepts and normalises the alias the way usrloc keys it", () => {
    const ok = checkAliasForm({ alias: " sip:Bob@Example.com ", target: " sip:alice@example.com;transport=tcp " });
    expect(hasErrors(ok.errors)).toBe(false);
    expect(ok).toMatchObject({ alias: "bob@example.com", target: "sip:alice@example.com;transport=tcp" });
    expect(checkAliasForm({ alias: "tel-only@example.com", target: "tel:+15551234" }).errors).toEqual({});
  });

  it("says what is wrong with each field", () => {
    expect(checkAliasForm({ alias: "", target: "" }).errors).toEqual({ alias: "The alias is empty.", target: "The target is empty." });
    const bad = checkAliasForm({ alias: "bob@example.com;x=1", target: "<sip:alice@example.com>" }).errors;
    expect(bad.alias).toMatch(/must look like user@domain/);
    expect(bad.target).toMatch(/not a sip:, sips: or tel: URI.*e\.g\. sip:alice@example\.com/);
    // What the agent refuses beyond the URI's form: no host to send to, a port out of range, itself.
    for (const target of ["sip:x@", "sip:bob@example.com:99999"]) {
      const e = checkAliasForm({ alias: "bob@example.com", target }).errors;
      expect(e.target, target).toBeDefined();
      expect(aliasSetParams.safeParse({ alias: "bob@example.com", target }).success).toBe(false);
    }
    expect(checkAliasForm({ alias: "sip:Bob@Example.com", target: "sip:bob@example.com" }).errors).toEqual({ target: "An alias cannot forward to itself: give another target." });
  });
});

describe("an alias row's open edit", () => {
  it("says the target changed meanwhile as the agent's expectTarget check decides it: not for a host in another case", () => {
    expect(changedMeanwhile("sip:Carol@Example.COM", "sip:Carol@example.com")).toBe(false);
    expect(changedMeanwhile("sip:Carol@example.com", "sip:carol@example.com")).toBe(true);
    expect(changedMeanwhile("sip:carol@example.com", "sip:dave@example.com")).toBe(true);
  });
});

describe("routes", () => {
  it("round-trips every page, and falls back to aliases", () => {
    for (const r of [{ page: "aliases" }, { page: "locations" }, { page: "cluster" }, { page: "binding", aor: "a@b.c", contact: "sip:a@1.2.3.4;x=&y#z" }] as const) {
      expect(parseRoute(routeHref(r))).toEqual(r);
    }
    expect(parseRoute("")).toEqual({ page: "aliases" });
    expect(parseRoute("#/binding?aor=a@b.c")).toEqual({ page: "locations" });
  });
});

describe("status history", () => {
  const status = (total: number, lag: number) => ({ vv: { "n1~aaaaaaaa": total - 3, "n2~bbbbbbbb": 3 }, peers: [{ behindSeconds: lag, behindChanges: 7 }, { behindSeconds: 0, behindChanges: 0 }] });

  it("keeps a window of samples and turns them into changes/s and worst lag", () => {
    let h = appendSample([], sampleOf(status(10, 0), 0), 60_000);
    h = appendSample(h, sampleOf(status(30, 1.5), 2000), 60_000);
    h = appendSample(h, sampleOf(status(30, 0.5), 4000), 60_000);
    expect(h[1]).toEqual({ atMs: 2000, changes: 30, lagSeconds: 1.5, lagChanges: 7 });
    expect(ratePoints(h)).toEqual([
      { atMs: 2000, changesPerSec: 10, lagSeconds: 1.5 },
      { atMs: 4000, changesPerSec: 0, lagSeconds: 0.5 },
    ]);
    expect(appendSample(h, sampleOf(status(5, 0), 70_000), 60_000).map((s) => s.atMs)).toEqual([70_000]);
    // A journal that starts again from empty is not a negative rate.
    expect(ratePoints([{ atMs: 0, changes: 100, lagSeconds: 0, lagChanges: 0 }, { atMs: 1000, changes: 5, lagSeconds: 0, lagChanges: 0 }])[0]!.changesPerSec).toBe(0);
    expect(sampleOf({ vv: {}, peers: [] }, 0)).toEqual({ atMs: 0, changes: 0, lagSeconds: 0, lagChanges: 0 });
    // A disconnected peer's lag is unknown (null): the chart takes the worst known one.
    expect(sampleOf({ vv: {}, peers: [{ behindSeconds: null, behindChanges: null }, { behindSeconds: 2, behindChanges: 4 }] }, 0)).toMatchObject({ lagSeconds: 2, lagChanges: 4 });
  });

  it("draws within the box and picks round axis maxima", () => {
    const d = linePath([{ x: 0, y: 0 }, { x: 5, y: 10 }, { x: 10, y: 20 }], { width: 100, height: 54, xMin: 0, xMax: 10, yMax: 10 });
    expect(d).toBe("M0.0,52.0 L50.0,2.0 L100.0,2.0");
    expect([0, 1, 1.2, 3, 7, 42, 100, 101].map(niceMax)).toEqual([1, 1, 2, 5, 10, 50, 100, 200]);
    expect([progress(5, 10), progress(5, 0), progress(undefined, 3), progress(12, 10)]).toEqual([0.5, null, null, 1]);
    const run = { at: "2026-11-22T10:00:00.000Z", learned: 1200, repaired: 3, contacts: 19_000 };
    expect(eventsText({ connected: true, received: 12_345, failed: 0 })).toBe("connected, 12,345 in"); // an agent before `aorsToLookUp`
    expect(eventsText({ connected: false, received: 9, failed: 3, aorsToLookUp: 0 })).toBe("disconnected, 9 in");
    expect(eventsText({ connected: true, received: 40, failed: 7, aorsToLookUp: 1_500 })).toBe("connected, 40 in; 1,500 AoRs to look up in Kamailio (their events could not be journaled or read)");
    expect(reconcileText(run)).toBe("1,200 learned, 3 repaired"); // an agent before `outcome`
    expect(reconcileText({ ...run, outcome: "skipped", learned: 0, repaired: 0, reason: "34166 live bindings above kamailio.reconcileMaxContacts (20000)" }))
      .toBe("skipped: 34166 live bindings above kamailio.reconcileMaxContacts (20000)");
    expect(reconcileText({ ...run, outcome: "done", reason: "usrloc's matching_mode looks like 1" })).toBe("1,200 learned, 3 repaired; warning: usrloc's matching_mode looks like 1");
    const cut = { reason: "kamailio restarted", startedAt: "not a time", done: 1200, total: 34_000, error: null };
    expect(interruptedText(cut)).toBe("cut short by an agent restart after at least 1,200 of 34,000 writes (started not a time); reloaded again at this start");
    expect(interruptedText({ ...cut, error: "Kamailio is unreachable" })).toMatch(/^failed \(Kamailio is unreachable\), not redone before the agent stopped after at least 1,200/);
    expect(interruptedText({ ...cut, whole: true })).toBe("cut short by an agent restart after at least 1,200 of 34,000 writes (started not a time, every live record); reloaded again at this start, every live record as well");
  });
});

describe("hub status", () => {
  it("says which hub each link is on, only where the node reports it", () => {
    expect(showsHubs([{}, {}])).toBe(false); // mesh peers have no `hub`
    expect(showsHubs([{}, { hub: null }])).toBe(true);
    expect([hubText("hub1", "hub1"), hubText("hub2", "hub1"), hubText(null, "hub1"), hubText("hub1", "a1")]).toEqual(["hub1 (this hub)", "hub2", "—", "hub1"]);
    // A hub that cannot read hub_agents: where the agent was when last read, and that it is unknown now.
    expect(hubText("hub2", "hub1", "2026-11-22T10:05:00.000Z")).toMatch(/^hub2 as of .+ \(unknown now\)$/);
    expect(hubText(null, "hub1", "2026-11-22T10:05:00.000Z")).toMatch(/^none as of /);
  });

  it("shows a link whose state a hub cannot know as unknown, not as disconnected", () => {
    expect(linkBadge({ connected: true })).toEqual({ cls: "ok", text: "connected" });
    expect(linkBadge({ connected: false })).toEqual({ cls: "bad", text: "disconnected" });
    expect(linkBadge({ connected: null })).toEqual({ cls: "warn", text: "unknown" });
    expect(linkBadge({ connected: null, asOf: "2026-11-22T10:05:00.000Z" })).toMatchObject({ cls: "warn", text: expect.stringMatching(/^unknown since /) });
  });

  it("says since when a link is up, or, down, when it was last up if known", () => {
    const t = "2026-11-22T10:05:00.000Z";
    expect(connectedSinceText({ connected: true, connectedSince: t })).toBe(new Date(t).toLocaleString());
    expect(connectedSinceText({ connected: false, connectedSince: null, lastSeen: t })).toBe(`— (last up ${new Date(t).toLocaleString()})`);
    expect(connectedSinceText({ connected: false, connectedSince: null })).toBe("—");
    // On another hub: connected, but only that hub knows since when.
    expect(connectedSinceText({ connected: true, connectedSince: null })).toBe("—");
  });

  it("says where PostgreSQL answers, or since when it does not, why, and what the hub does meanwhile", () => {
    const up = { address: "db.example.com:5432", reachable: true, error: null, since: "2026-11-22T10:00:00.000Z", countsAgeSeconds: 3 };
    expect(postgresView(up)).toEqual({ badge: { cls: "ok", text: "up" }, headline: "Answering at db.example.com:5432", error: null, consequence: null });
    const down = postgresView({ ...up, reachable: false, error: "Query read timeout", since: "not a time" });
    expect(down).toMatchObject({ badge: { cls: "bad", text: "down" }, headline: "UNREACHABLE at db.example.com:5432 since not a time", error: "Last check: Query read timeout" });
    expect(down.consequence).toMatch(/refuses new ones until PostgreSQL answers, so they go to another hub whose PostgreSQL answers, if any; otherwise they keep journaling locally/);
    expect(postgresView({ ...up, reachable: false }).error).toBe("Last check: no answer");
  });

  // A hub with the newer fields (hub/postgres-status.ts), as `locmesh status` shows them (client-output.test.ts).
  const now = {
    address: "db.example.com:5432", reachable: true, error: null, since: "2026-11-22T10:00:00.000Z", countsAgeSeconds: 3,
    lastAnswered: "2026-11-22T10:04:58.000Z", lastAnsweredAgeSeconds: 2, failingForSeconds: null, releaseAfterSeconds: 15, countsStale: null,
  };

  it("says when PostgreSQL last answered while it answers", () => {
    expect(postgresView(now)).toEqual({ badge: { cls: "ok", text: "up" }, headline: "Answering at db.example.com:5432 (last answered 2s ago)", error: null, consequence: null });
  });

  it("says PostgreSQL is not answering before the hub counts it unreachable: for how long, the last answer, why, and when agents are released", () => {
    const failing = postgresView({ ...now, failingForSeconds: 9, lastAnsweredAgeSeconds: 9, error: "connect ECONNREFUSED" });
    expect(failing.badge).toEqual({ cls: "warn", text: "failing" });
    expect(failing.headline).toBe("NOT ANSWERING at db.example.com:5432 for 9s (last answered 9s ago)");
    expect(failing.error).toBe("Last check: connect ECONNREFUSED");
    expect(failing.consequence).toMatch(/^This hub still holds its agents' sessions: .+ If it goes on, agents are released after 15s \(in 6s unless it answers\): it closes their sessions, and they go to another hub whose PostgreSQL answers, if any; otherwise they keep journaling locally/);
    // No reason given yet (a check still waiting), and past the release time (the verdict is due).
    const late = postgresView({ ...now, failingForSeconds: 20 });
    expect([late.error, late.consequence]).toEqual(["Last check: no answer", expect.stringContaining("agents are released after 15s (in 0s unless it answers)")]);
    // An unreachable PostgreSQL's headline says when it last answered too.
    expect(postgresView({ ...now, reachable: false, lastAnsweredAgeSeconds: 40 }).headline).toMatch(/^UNREACHABLE at db\.example\.com:5432 since .+ \(last answered 40s ago\)$/);
  });

  it("marks a hub's counts with their age, stale while PostgreSQL does not answer, unknown before the first", () => {
    const pg = { address: "db:5432", reachable: true, error: null, since: "2026-11-22T10:00:00.000Z", countsAgeSeconds: 65 };
    expect(countsView(undefined)).toEqual({ known: true, stale: false, age: null }); // an agent's counts are live
    expect(countsView(pg)).toEqual({ known: true, stale: false, age: "counted 1m 05s ago" });
    const stale = countsView({ ...pg, reachable: false });
    expect(stale).toEqual({ known: true, stale: true, age: "STALE: counted 1m 05s ago; PostgreSQL does not answer" });
    expect([countText(1234, countsView(pg)), countText(1234, stale)]).toEqual(["1,234", "1,234 (stale)"]);
    const none = countsView({ ...pg, reachable: false, countsAgeSeconds: null });
    expect(none).toEqual({ known: false, stale: false, age: "not counted yet; PostgreSQL does not answer" });
    expect(countText(0, none)).toBe("unknown");
    expect(countsView({ ...pg, countsAgeSeconds: null }).age).toBe("not counted yet: counting takes a while");
  });

  it("marks a hub's counts stale whenever the hub says they are (countsStale), with its reason, and fresh when it says so", () => {
    const pg = { ...now, countsAgeSeconds: 92 };
    expect(countsView({ ...pg, countsStale: "the recount failed" })).toEqual({ known: true, stale: true, age: "STALE: counted 1m 32s ago; the recount failed" });
    const old = countsView({ ...pg, countsStale: "older than the 30 s counts are reused for; the recount is slow" });
    expect(old.age).toBe("STALE: counted 1m 32s ago; older than the 30 s counts are reused for; the recount is slow");
    expect(countText(5, old)).toBe("5 (stale)");
    // Failing before the verdict: the hub marks them stale though PostgreSQL still counts as reachable.
    expect(countsView({ ...pg, failingForSeconds: 4, countsStale: "PostgreSQL does not answer" })).toMatchObject({ stale: true, age: "STALE: counted 1m 32s ago; PostgreSQL does not answer" });
    expect(countsView(pg)).toEqual({ known: true, stale: false, age: "counted 1m 32s ago" });
  });
});

describe("clearTextWarning (sign-in page)", () => {
  it("warns of plain HTTP from another host, not over HTTPS nor from this machine's own addresses", () => {
    expect(clearTextWarning({ protocol: "http:", hostname: "10.0.0.5" })).toMatch(/^This page came over plain HTTP from 10\.0\.0\.5: the API token.*unencrypted.*HTTPS reverse proxy/);
    expect(clearTextWarning({ protocol: "http:", hostname: "sip1.example.net" })).not.toBeNull();
    expect(clearTextWarning({ protocol: "https:", hostname: "sip1.example.net" })).toBeNull();
    for (const hostname of ["127.0.0.1", "127.1.2.3", "localhost", "[::1]", "admin.localhost"]) expect(clearTextWarning({ protocol: "http:", hostname }), hostname).toBeNull();
  });
});
