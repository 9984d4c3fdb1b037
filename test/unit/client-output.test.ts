import { describe, expect, it } from "vitest";
import { describeKamailio, describeReload, describeResync, formatStatus } from "../../agent/cli/client-output.js";
import { formatAliasRemoved, formatAliasSet, formatKamailioContacts, formatKamailioTable } from "../../agent/cli/listing-output.js";
import type { ClusterStatus } from "../../agent/contract/cluster-status.js";
import type { KamailioStatus } from "../../agent/contract/kamailio-status.js";

const base: KamailioStatus["reload"] = {
  state: "done", reason: "kamailio restarted", total: 100, done: 100, unchanged: 3, startedAt: "2026-11-22T10:00:00.000Z",
  finishedAt: "2026-11-22T10:00:03.000Z", rate: 33, channel: "evapi", error: null,
};

describe("describeReload", () => {
  it("says which way the reload went (the README's status section promises it)", () => {
    expect(describeReload(base)).toBe("done (kamailio restarted): 100 writes, 3 already right, 33/s over evapi, finished 2026-11-22T10:00:03.000Z");
    expect(describeReload({ ...base, reason: null })).toBe("done: 100 writes, 3 already right, 33/s over evapi, finished 2026-11-22T10:00:03.000Z");
    expect(describeReload({ ...base, state: "running", done: 40, channel: "jsonrpcs" })).toBe("running (kamailio restarted): 40 of 100 writes over jsonrpcs");
    // locmesh resync --kamailio: every live record, not only the difference with a preloading Kamailio's database.
    expect(describeReload({ ...base, reason: "requested through the API", whole: true, state: "running", done: 40 })).toBe("running (requested through the API, every live record): 40 of 100 writes over evapi");
    expect(describeReload({ ...base, reason: "requested through the API", whole: true })).toMatch(/^done \(requested through the API, every live record\): 100 writes/);
    expect(describeReload({ ...base, reason: null, whole: true, state: "running", done: 40 })).toBe("running (every live record): 40 of 100 writes over evapi");
    expect(describeReload({ ...base, reason: null, state: "running", done: 40 })).toBe("running: 40 of 100 writes over evapi");
    expect(describeReload({ ...base, state: "failed", done: 40, error: "Kamailio is unreachable" })).toBe("failed after 40 of 100 writes: Kamailio is unreachable");
  });
});

describe("describeResync", () => {
  // A peer's own changes come from it directly; the resync line counts only what was pulled from one peer.
  it("says the changes were pulled, not that they were all the node received", () => {
    const base = { peer: "n1", expected: 3, startedAt: "2026-11-23T01:00:00.000Z", error: null };
    expect(describeResync({ ...base, state: "done", received: 3, finishedAt: "2026-11-23T01:00:01.000Z" })).toBe("done from n1: 3 changes pulled, finished 2026-11-23T01:00:01.000Z");
    expect(describeResync({ ...base, state: "running", received: 1, finishedAt: null })).toBe("running from n1: 1 of ~3 changes pulled");
  });

  it("tells a relay catch-up from a resync that was asked for", () => {
    const base = { peer: "n1", expected: 3, startedAt: "2026-11-23T01:00:00.000Z", error: null, finishedAt: null };
    expect(describeResync({ ...base, state: "running", received: 1, full: false })).toBe("running (relay catch-up) from n1: 1 of ~3 changes pulled");
    expect(describeResync({ ...base, state: "running", received: 1, full: true })).toBe("running from n1: 1 of ~3 changes pulled");
  });
});

describe("alias add and alias rm output", () => {
  it("names the alias as stored (the agent's answer), in both, not as typed", () => {
    expect(formatAliasSet({ alias: "bob@example.com", target: "sip:alice@example.com" }, { alias: "sip:Bob@Example.com", target: "sip:alice@example.com" }))
      .toBe("alias bob@example.com -> sip:alice@example.com");
    expect(formatAliasRemoved({ removed: "bob@example.com" }, "sip:Bob@Example.com")).toBe("removed alias bob@example.com");
    // An answer without the stored form (none came): what was typed.
    expect(formatAliasRemoved(null, "sip:bob@example.com")).toBe("removed alias sip:bob@example.com");
    expect(formatAliasSet(null, { alias: "sip:bob@example.com", target: "sip:alice@example.com" })).toBe("alias sip:bob@example.com -> sip:alice@example.com");
  });
});

describe("formatKamailioTable", () => {
  it("says an empty page of a search matched nothing, not that Kamailio holds nothing (its summary line counts the whole table)", () => {
    expect(formatKamailioTable([], 0)).toBe("this node's Kamailio holds no binding");
    expect(formatKamailioTable([], 0, "nobody")).toBe('no binding in this node\'s Kamailio matches "nobody"');
  });
});

describe("formatKamailioContacts", () => {
  it("says who put each contact into Kamailio, and when there is none", () => {
    const c = { contact: "sip:a@192.0.2.1", expires: 1_000_060, q: -1, path: "", received: "", socket: "", callid: "x", cseq: 1, userAgent: "kamailio SIP Router - RPC Server", ruid: "r" };
    const text = formatKamailioContacts("a@example.com", [{ ...c, installedByAgent: true }, { ...c, contact: "sip:a@192.0.2.2", installedByAgent: false }], 1_000_000);
    expect(text).toMatch(/^a@example\.com in this node's Kamailio: 2 contacts/);
    expect(text).toMatch(/installed by\s+the locmesh agent \(replicated; Call-ID and user agent are ul\.add's\)/);
    expect(text).toMatch(/installed by\s+a REGISTER at this node/);
    expect(text).toMatch(/expires\s+in 60 s/);
    expect(formatKamailioContacts("b@example.com", [], 0)).toBe("this node's Kamailio holds no contact for b@example.com");
  });
});

describe("describeKamailio", () => {
  it("gives the last error when Kamailio is down, not only when writes are pending", () => {
    const k = { up: false, writer: "rpc", events: { connected: false, received: 3 }, restarts: 0, lastError: "Kamailio is unreachable over jsonrpcs (ENOENT)" } as unknown as Parameters<typeof describeKamailio>[0];
    expect(describeKamailio(k)).toBe("DOWN, writing through jsonrpcs, events DISCONNECTED; last error: Kamailio is unreachable over jsonrpcs (ENOENT)");
    expect(describeKamailio({ ...k!, up: true, events: { connected: true, received: 3 } } as typeof k)).toBe("up, writing through jsonrpcs, events connected (3 received)");
  });

  it("counts the AoRs whose events could not be journaled or read, to be looked up in Kamailio", () => {
    const k = { up: true, writer: "rpc", events: { connected: true, received: 40, failed: 7, aorsToLookUp: 5 }, restarts: 0 } as unknown as Parameters<typeof describeKamailio>[0];
    expect(describeKamailio(k)).toBe("up, writing through jsonrpcs, events connected (40 received, 5 AoR(s) to look up in Kamailio: their events could not be journaled or read)");
    const down = { ...k!, events: { connected: false, received: 40, aorsToLookUp: 5 } } as typeof k;
    expect(describeKamailio(down)).toBe("up, writing through jsonrpcs, events DISCONNECTED (5 AoR(s) to look up in Kamailio: their events could not be journaled or read)");
    expect(describeKamailio({ ...k!, events: { connected: true, received: 40, aorsToLookUp: 0 } } as typeof k)).toBe("up, writing through jsonrpcs, events connected (40 received)");
  });

  it("says the agent does not attach, and why, while Kamailio keys AoRs without their domain", () => {
    const why = 'Kamailio\'s usrloc keys AoRs without their domain: …; set modparam("usrloc", "use_domain", 1) in kamailio.cfg and restart Kamailio';
    const k = { up: true, writer: "refused", events: { connected: true, received: 2 }, restarts: 0, lastError: why } as unknown as Parameters<typeof describeKamailio>[0];
    expect(describeKamailio(k)).toBe(`up, NOT ATTACHED: nothing written into it, learned from it or reconciled with it, events connected (2 received); why: ${why}`);
  });

  it("gives the last error while aliases wait for alias_db's database, the writer going on", () => {
    const waits = "2 aliases wait for alias_db's database: alias_db's database is unreachable (connect ECONNREFUSED 127.0.0.1:5432); alias a@example.com → sip:b@example.com stays pending, bindings go on";
    const k = { up: true, writer: "rpc", events: { connected: true, received: 5 }, restarts: 0, aliasesWaiting: 2, lastError: waits } as unknown as Parameters<typeof describeKamailio>[0];
    expect(describeKamailio(k)).toBe(`up, writing through jsonrpcs, events connected (5 received); last error: ${waits}`);
  });

  it("says how many writes Kamailio refused and the agent skipped: those bindings or aliases are missing there", () => {
    const k = { up: true, writer: "rpc", events: { connected: true, received: 5 }, restarts: 0, rejected: 2, lastError: "Kamailio refused ul.add: 500 …" } as unknown as Parameters<typeof describeKamailio>[0];
    expect(describeKamailio(k)).toBe('up, writing through jsonrpcs, events connected (5 received), 2 write(s) REFUSED by Kamailio and skipped (the log\'s "skipped" lines name them)');
    expect(describeKamailio({ ...k!, rejected: 0 } as typeof k)).toBe("up, writing through jsonrpcs, events connected (5 received)");
  });
});

function statusBase(): ClusterStatus {
  return {
    nodeId: "n3", replicaId: "n3~0123456789ab", version: "0.1.0", protocol: 1, uptimeSeconds: 5, vv: {},
    counts: { locations: 0, aliases: 1, tombstones: 0 }, peers: [], pendingWrites: 0,
    resync: { state: "idle", peer: null, received: 0, expected: 0, startedAt: null, finishedAt: null, error: null },
    kamailio: null, journalBehind: null,
  };
}

describe("formatStatus with the journal behind", () => {
  it("puts what happened and the fix above everything else, and the Kamailio line says why nothing is written", () => {
    const s: ClusterStatus = {
      nodeId: "n3", replicaId: "n3~0123456789ab", version: "0.1.0", protocol: 1, uptimeSeconds: 5, vv: {},
      counts: { locations: 0, aliases: 1, tombstones: 0 },
      peers: [{ nodeId: "n1", url: "ws://n1", direction: null, connected: false, replicaId: null, behindChanges: null, behindSeconds: null, lastError: "journal behind peer: restored or lost commits; see the agent log", connectedSince: null, pendingWrites: null }],
      pendingWrites: 0,
      resync: { state: "idle", peer: null, received: 0, expected: 0, startedAt: null, finishedAt: null, error: null },
      kamailio: { up: true, writer: "held", pendingWrites: 2, lastError: null, lastErrorAt: null, rejected: 0, events: null, reload: { ...base, state: "idle" }, lastReconcile: null, restarts: 0 },
      journalBehind: { peer: "n1", peerHolds: 12, journalHas: 11, at: "2026-11-22T10:00:00.000Z" },
    };
    const text = formatStatus(s);
    expect(text.split("\n")[0]).toBe(
      "JOURNAL BEHIND since 2026-11-22T10:00:00.000Z: peer n1 holds 12 of this node's own changes, its journal only 11 (restored from an older copy, or it lost its last commits). " +
        "This node replicates with no peer, refuses changes and writes nothing into its Kamailio. " +
        "To repair it: stop the agent, move everything in its dataDir aside (the journal.sqlite* files and the two kamailio-*.json, which describe a Kamailio written from the stale journal) and start it (it gets a snapshot from its peers under a new epoch, reloads its Kamailio, and learns its Kamailio's registrations back).",
    );
    expect(text).toMatch(/^kamailio\s+up, NOT WRITING: this node's journal is behind \(see above\), no event input$/m);
    expect(formatStatus({ ...s, journalBehind: null })).not.toContain("JOURNAL BEHIND");
  });

  it("says at the top when a new journal has not caught up yet, and nothing once it has (or from a node that does not say)", () => {
    const s = { ...statusBase(), journalBehind: null, journalSeeded: false };
    expect(formatStatus(s).split("\n")[0]).toMatch(/^NEW JOURNAL, NOT CAUGHT UP YET: this node's journal was made empty \(a new node, a lost disk or a journal moved aside\) and has not yet caught up with a peer or hub: what it lists may be a fraction of the cluster's\. It catches up by itself/);
    expect(formatStatus({ ...s, journalSeeded: true })).not.toContain("NOT CAUGHT UP");
    const { journalSeeded: _omitted, ...older } = s;
    expect(formatStatus(older)).not.toContain("NOT CAUGHT UP");
  });
});

describe("formatStatus peer lag", () => {
  const status = (peers: ClusterStatus["peers"]): ClusterStatus => ({
    nodeId: "n1", replicaId: "n1~0123456789ab", version: "0.1.0", protocol: 1, uptimeSeconds: 5, vv: {},
    counts: { locations: 0, aliases: 0, tombstones: 0 }, peers, pendingWrites: 0,
    resync: { state: "idle", peer: null, received: 0, expected: 0, startedAt: null, finishedAt: null, error: null },
    kamailio: null, journalBehind: null,
  });
  const peer = { url: null, replicaId: null, lastError: null, connectedSince: null, pendingWrites: null };

  it("shows an unknown lag (a peer without a session) as -, and a known one as its figure, 0 included", () => {
    const text = formatStatus(status([
      { ...peer, nodeId: "n2", direction: null, connected: false, behindChanges: null, behindSeconds: null, lastError: "ECONNREFUSED" },
      { ...peer, nodeId: "n3", direction: "outbound", connected: true, behindChanges: 0, behindSeconds: 0, pendingWrites: 0 },
      { ...peer, nodeId: "n4", direction: "inbound", connected: true, behindChanges: 12, behindSeconds: 3.4, pendingWrites: 1 },
    ]));
    expect(text).toMatch(/^n2\s+no\s+-\s+-\s+-\s+-\s+ECONNREFUSED$/m);
    expect(text).toMatch(/^n3\s+yes\s+outbound\s+0\s+0\s+0\s+-$/m);
    expect(text).toMatch(/^n4\s+yes\s+inbound\s+12\s+3\s+1\s+-$/m);
  });

  it("says how long ago a peer that is down was last up, when known", () => {
    const now = Date.parse("2026-11-23T03:10:00Z");
    const text = formatStatus(status([
      { ...peer, nodeId: "n2", direction: null, connected: false, behindChanges: null, behindSeconds: null, lastSeen: "2026-11-23T03:04:55Z" },
    ]), now);
    expect(text).toMatch(/^n2\s+no, last up 5m05s ago\s+-\s+-/m);
  });
});

describe("formatStatus in hub mode", () => {
  const status = (nodeId: string, peers: ClusterStatus["peers"]): ClusterStatus => ({
    nodeId, replicaId: `${nodeId}~0123456789ab`, version: "0.1.0", protocol: 1, uptimeSeconds: 5, vv: {},
    counts: { locations: 0, aliases: 0, tombstones: 0 }, peers, pendingWrites: 0,
    resync: { state: "idle", peer: null, received: 0, expected: 0, startedAt: null, finishedAt: null, error: null },
    kamailio: null, journalBehind: null,
  });
  const up = { replicaId: null, lastError: null, connectedSince: null, pendingWrites: 0, connected: true, behindChanges: 0, behindSeconds: 0 };
  const down = { ...up, url: null, direction: null, connected: false, behindChanges: null, behindSeconds: null, pendingWrites: null };

  it("on a hub, says which hub each agent is on: this one, the other, or none", () => {
    const text = formatStatus(status("hub1", [
      { ...up, nodeId: "a1", url: null, direction: "inbound", hub: "hub1" },
      { ...up, nodeId: "a2", url: "via hub hub2", direction: "inbound", hub: "hub2" },
      { ...down, nodeId: "a3", hub: null },
    ]));
    expect(text).toMatch(/^PEER\s+CONNECTED\s+HUB\s+DIRECTION/m);
    expect(text).toMatch(/^a1\s+yes\s+hub1 \(this hub\)\s+inbound\s+0/m);
    expect(text).toMatch(/^a2\s+yes\s+hub2\s+inbound\s+0/m);
    expect(text).toMatch(/^a3\s+no\s+-\s+-\s+-/m);
  });

  it("on an agent, names its hub and the URL it reached it at", () => {
    const text = formatStatus(status("a1", [{ ...up, nodeId: "hub2", url: "ws://10.0.0.2:7200", direction: "outbound", pendingWrites: null, hub: "hub2" }]));
    expect(text).toMatch(/^hub2\s+yes\s+hub2 at ws:\/\/10\.0\.0\.2:7200\s+outbound/m);
  });

  it("has no HUB column in a mesh", () => {
    expect(formatStatus(status("n1", [{ ...down, nodeId: "n2" }]))).not.toContain("HUB");
  });
});

describe("the reconcile line of locmesh status", () => {
  const kamailio: KamailioStatus = {
    up: true, writer: "rpc", pendingWrites: 0, lastError: null, lastErrorAt: null, rejected: 0,
    events: { connected: true, received: 30, failed: 0, malformed: 0, framingErrors: 0 }, reload: { ...base, state: "idle" }, lastReconcile: null, restarts: 0,
  };
  const status = (lastReconcile: KamailioStatus["lastReconcile"]): ClusterStatus => ({
    nodeId: "n3", replicaId: "n3~1", version: "0.1.0", protocol: 1, uptimeSeconds: 60, vv: {}, counts: { locations: 34_166, aliases: 0, tombstones: 0 },
    peers: [], pendingWrites: 0, resync: { state: "idle", peer: null, received: 0, expected: 0, startedAt: null, finishedAt: null, error: null },
    kamailio: { ...kamailio, lastReconcile }, journalBehind: null,
  });
  const line = (s: ClusterStatus) => formatStatus(s).split("\n").find((l) => l.startsWith("kamailio reconcile"));

  it("says when a reconcile was skipped, why, and what that costs", () => {
    const skipped = { at: "2026-11-22T10:00:00.000Z", outcome: "skipped" as const, learned: 0, repaired: 0, contacts: 0, reason: "34166 live bindings above kamailio.reconcileMaxContacts (20000)" };
    expect(line(status(skipped))).toMatch(
      /^kamailio reconcile +SKIPPED at 2026-11-22T10:00:00\.000Z: 34166 live bindings above kamailio\.reconcileMaxContacts \(20000\); REGISTERs taken while the agent was away, beyond those Kamailio held, are learned only when the phones refresh$/,
    );
  });

  it("says after a done reconcile's counts what it warns of, and nothing more when it warns of nothing", () => {
    const done = { at: "2026-11-22T10:00:00.000Z", outcome: "done" as const, learned: 1, repaired: 2, contacts: 30, reason: null };
    expect(line(status(done))).toMatch(/^kamailio reconcile +done at 2026-11-22T10:00:00\.000Z: 1 learned, 2 repaired, 30 contacts compared$/);
    expect(line(status({ ...done, reason: "usrloc's matching_mode looks like 1" }))).toMatch(/30 contacts compared; WARNING: usrloc's matching_mode looks like 1$/);
  });

  it("prints each warning about Kamailio's setup on a line of its own, and none when there are none", () => {
    const s = status(null);
    const warned = { ...s, kamailio: { ...s.kamailio!, warnings: ["phones registered over TCP on a wildcard listener", "another"] } };
    expect(formatStatus(warned).split("\n").filter((l) => l.startsWith("kamailio warning"))).toEqual([
      expect.stringMatching(/^kamailio warning +WARNING: phones registered over TCP on a wildcard listener$/),
      expect.stringMatching(/^kamailio warning +WARNING: another$/),
    ]);
    expect(formatStatus(s)).not.toMatch(/kamailio warning/);
  });

  it("says, under the reload line, that the agent's previous run left a reload unfinished, and only then", () => {
    const withReload = (interrupted: KamailioStatus["reload"]["interrupted"]): ClusterStatus => {
      const s = status(null);
      return { ...s, kamailio: { ...s.kamailio!, reload: { ...s.kamailio!.reload, interrupted } } };
    };
    const lines = (s: ClusterStatus) => formatStatus(s).split("\n");
    const cut = { reason: "requested through the API", startedAt: "2026-11-22T10:00:00.000Z", done: 251, total: 1500, error: null };
    const text = lines(withReload(cut));
    expect(text[text.findIndex((l) => l.startsWith("kamailio reload")) + 1]).toBe(
      "previous reload     CUT SHORT by the agent stopping (restart, kill or crash) after at least 251 of 1500 writes; it started 2026-11-22T10:00:00.000Z " +
        "(requested through the API). Which writes went in was unknown, so this start reloads Kamailio again (the line above)",
    );
    expect(lines(withReload({ ...cut, error: "Kamailio is unreachable" })).find((l) => l.startsWith("previous reload"))).toMatch(
      /^previous reload +FAILED \(Kamailio is unreachable\) and not redone before the agent stopped after at least 251 of 1500 writes;/,
    );
    expect(lines(withReload({ ...cut, whole: true })).find((l) => l.startsWith("previous reload"))).toMatch(
      /\(requested through the API, every live record\)\. Which writes went in was unknown, so this start reloads Kamailio again \(every live record as well; the line above\)$/,
    );
    for (const none of [null, undefined]) expect(lines(withReload(none)).some((l) => l.startsWith("previous reload"))).toBe(false);
  });

  it("says which nodes may relay calls through Kamailio, and why the agent leaves the list when it does", () => {
    const sip = (sipPeers: KamailioStatus["sipPeers"]) => {
      const s = status(null);
      return formatStatus({ ...s, kamailio: { ...s.kamailio!, sipPeers } }).split("\n").find((l) => l.startsWith("kamailio sip peers"));
    };
    expect(sip({ state: "set", peers: ["10.0.0.2", "10.0.0.3"], note: null })).toMatch(/^kamailio sip peers +10\.0\.0\.2, 10\.0\.0\.3 \(may relay calls to this node's phones; kept current by the agent\)$/);
    expect(sip({ state: "pending", peers: [], note: "no reader" })).toMatch(/ none: not set in Kamailio yet \(no reader\); retried at every check$/);
    expect(sip({ state: "fixed", peers: null, note: "given with `locmesh kamailio-cfg --peers`; set kamailio.sipPeers to have SIGHUP change it" }))
      .toMatch(/ left as it is in Kamailio \(the include's list, or the last one this agent set\): given with `locmesh kamailio-cfg --peers`; set kamailio\.sipPeers/);
    // An agent from before the list: no line.
    expect(sip(undefined)).toBeUndefined();
  });

  it("gives a finished run's counts, a failure's reason, and none before the first", () => {
    const done = { at: "2026-11-22T10:00:00.000Z", outcome: "done" as const, learned: 3, repaired: 1, contacts: 120, reason: null };
    expect(line(status(done))).toMatch(/ done at 2026-11-22T10:00:00\.000Z: 3 learned, 1 repaired, 120 contacts compared$/);
    expect(line(status({ ...done, outcome: "failed", learned: 0, repaired: 0, contacts: 0, reason: "ul.dump timed out" }))).toMatch(/ FAILED at 2026-11-22T10:00:00\.000Z: ul\.dump timed out$/);
    // Not before the first: and why it may not have run although the log said the journal caught up.
    expect(line(status(null))).toMatch(/ not run yet \(when a reload made Kamailio whole at start, the first runs within kamailio\.reconcileIntervalSec\)$/);
    // An agent from before `outcome` reports completed runs only.
    const old = { at: done.at, learned: 3, repaired: 1, contacts: 120 } as unknown as KamailioStatus["lastReconcile"];
    expect(line(status(old))).toMatch(/ done at .*: 3 learned, 1 repaired, 120 contacts compared$/);
  });
});

describe("locmesh status against a hub", () => {
  const hub = (postgres: ClusterStatus["postgres"]): ClusterStatus => ({
    nodeId: "hub1", replicaId: "hub1~1", version: "0.1.0", protocol: 1, uptimeSeconds: 60, vv: {}, counts: { locations: 7, aliases: 2, tombstones: 0 },
    peers: [], pendingWrites: 0, resync: { state: "idle", peer: null, received: 0, expected: 0, startedAt: null, finishedAt: null, error: null },
    kamailio: null, journalBehind: null, ...(postgres ? { postgres } : {}),
  });
  const pg = { address: "db.example.com:5432", reachable: true, error: null, since: "2026-11-22T10:00:00.000Z", countsAgeSeconds: 3 };
  const line = (s: ClusterStatus, key: string) => formatStatus(s).split("\n").find((l) => l.startsWith(key));

  it("leaves out the Kamailio lines a hub has nothing to say in; an agent keeps them", () => {
    expect(line(hub(pg), "kamailio")).toBeUndefined();
    expect(line(hub(pg), "pending writes")).toBeUndefined();
    expect(line(hub(undefined), "kamailio")).toMatch(/^kamailio +not attached/);
    expect(line(hub(undefined), "pending writes")).toMatch(/^pending writes +0 /);
  });

  it("shows PostgreSQL and how old the counts are", () => {
    expect(line(hub(pg), "records")).toMatch(/^records +7 locations, 2 aliases, 0 tombstones \(counted 3s ago\)$/);
    expect(line(hub(pg), "postgresql")).toMatch(/^postgresql +answering at db\.example\.com:5432$/);
    expect(line(hub({ ...pg, lastAnsweredAgeSeconds: 2 }), "postgresql")).toMatch(/^postgresql +answering at db\.example\.com:5432 \(last answered 2s ago\)$/);
  });

  it("says PostgreSQL does not answer before it counts as unreachable, and marks counts stale past their bound", () => {
    const failing = { ...pg, error: "connect ECONNREFUSED", lastAnsweredAgeSeconds: 9, failingForSeconds: 9, releaseAfterSeconds: 15, countsAgeSeconds: 92, countsStale: "PostgreSQL does not answer" };
    expect(line(hub(failing), "postgresql")).toMatch(/^postgresql +NOT ANSWERING at db\.example\.com:5432 for 9s \(last answered 9s ago\): connect ECONNREFUSED; agents are released after 15s$/);
    expect(line(hub(failing), "records")).toMatch(/\(STALE: counted 1m32s ago; PostgreSQL does not answer\)$/);
    expect(line(hub({ ...pg, countsAgeSeconds: 92, countsStale: "the recount failed" }), "records")).toMatch(/\(STALE: counted 1m32s ago; the recount failed\)$/);
  });

  it("says PostgreSQL is unreachable, since when and why, the counts stale with their age, or unknown", () => {
    const down = { ...pg, reachable: false, error: "Query read timeout", since: "2026-11-22T10:05:00.000Z", countsAgeSeconds: 95 };
    expect(line(hub(down), "postgresql")).toMatch(/^postgresql +UNREACHABLE at db\.example\.com:5432 since 2026-11-22T10:05:00\.000Z: Query read timeout; this hub refuses agents until it answers \(they go to another hub whose PostgreSQL answers, if any; otherwise they journal locally and send everything when one answers\)$/);
    expect(line(hub(down), "records")).toMatch(/^records +7 locations, 2 aliases, 0 tombstones \(STALE: counted 1m35s ago; PostgreSQL does not answer\)$/);
    expect(line(hub({ ...down, countsAgeSeconds: null }), "records")).toMatch(/^records +unknown \(not counted yet; PostgreSQL does not answer\)$/);
  });

  it("shows an agent in hub mode how many of its changes no hub acknowledged, and whether they wait", () => {
    const agent = (hubUnacknowledged: number | null, connected: boolean): ClusterStatus => ({
      ...hub(undefined), hubUnacknowledged,
      peers: [{ nodeId: "hub", url: "ws://hub1:7200", direction: null, connected, replicaId: null, behindChanges: hubUnacknowledged, behindSeconds: null, lastError: null, connectedSince: null, pendingWrites: null, hub: connected ? "hub1" : null }],
    });
    expect(line(agent(20, false), "unacknowledged by hub")).toMatch(/^unacknowledged by hub +20 changes of this node wait in the journal \(no hub answers; they go when one does\)$/);
    expect(line(agent(0, true), "unacknowledged by hub")).toMatch(/ 0 \(every change of this node is on a hub\)$/);
    expect(line(agent(null, false), "unacknowledged by hub")).toMatch(/ unknown \(no hub has answered since this node's journal was made\)$/);
    const made = { ...agent(null, false), replicaId: "sip1~0a1b2c", vv: { "sip1~0a1b2c": 12, "sip2~3d4e5f": 40 } };
    expect(line(made, "unacknowledged by hub")).toMatch(/ unknown \(no hub has answered since this node's journal was made; up to 12 changes of this node wait\)$/);
    expect(line(hub(undefined), "unacknowledged by hub")).toBeUndefined();
  });

  it("shows agents whose hub is unknown now as of when the hub last read them, with no lag", () => {
    const s: ClusterStatus = {
      ...hub(pg),
      peers: [{ nodeId: "sip1", url: "via hub hub1", direction: "inbound", connected: null, asOf: "2026-11-22T10:05:00.000Z", replicaId: null, behindChanges: null, behindSeconds: null, lastError: null, connectedSince: null, pendingWrites: null, hub: "hub1" }],
    };
    expect(line(s, "sip1")).toMatch(/^sip1 +- +hub1 as of 10:05:00 UTC \(unknown now\) +inbound +- +- +- +-$/);
  });

  it("leaves an agent's lines as they were", () => {
    expect(line(hub(undefined), "records")).toMatch(/^records +7 locations, 2 aliases, 0 tombstones$/);
    expect(line(hub(undefined), "postgresql")).toBeUndefined();
  });
});
