/**
 * `locmesh location ls --kamailio` against a real Kamailio 5.6 and its agent: the whole location
 * table as Kamailio holds it, each binding compared with the journal, the summary line that tells
 * whether a reload is complete (before and after `locmesh resync --kamailio`), paging, search and
 * --json, and the refusal of a table above kamailio.reconcileMaxContacts.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { KamailioListResult } from "../../agent/contract/kamailio-status.js";
import { createFifoClient, type FifoClient } from "../../agent/kamailio/fifo-client.js";
import { createUsrlocRpc, type UsrlocRpc } from "../../agent/kamailio/usrloc-rpc.js";
import { silentLogger } from "../../agent/ops/logger.js";
import { waitFor } from "../support/agent-process.js";
import { cli } from "../support/cli-run.js";
import { TEST_DOMAIN, startKamailioCluster, type ClusterNode, type KamailioCluster } from "../support/kamailio-cluster.js";

let dir: string;
let cluster: KamailioCluster;
let node: ClusterNode;
let other: ClusterNode;
let fifo: FifoClient;
let usrloc: UsrlocRpc;

/** Above this many contacts the agent refuses to list the table. */
const LIMIT = 6;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "locmesh-ktable-"));
  // No periodic reconcile: what the test changes in Kamailio behind the agent's back stays.
  cluster = await startKamailioCluster({ baseDir: dir, n: 2, agentKamailio: { reconcileIntervalSec: 0, reconcileMaxContacts: LIMIT } });
  [node, other] = cluster.nodes as [ClusterNode, ClusterNode];
  fifo = createFifoClient({ fifoPath: node.kamailio.fifoPath, replyDir: node.kamailio.replyDir, timeoutMs: 5000, log: silentLogger(), maxInFlight: 1 });
  usrloc = createUsrlocRpc({ rpc: fifo });
}, 60_000);

afterAll(async () => {
  await fifo?.close();
  await cluster?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const target = () => ["--url", node.agent.apiUrl, "--token", node.agent.spec.token];
const nowSec = () => Math.floor(Date.now() / 1000);
const aor = (user: string) => `${user}@${TEST_DOMAIN}`;
const contact = (user: string) => `sip:${user}@192.0.2.10:5060`;

/** Bindings registered at the other node, which the agent writes into its Kamailio. */
async function publish(users: string[]): Promise<void> {
  const expires = nowSec() + 3600;
  await other.agent.call("location.publish", { edits: users.map((u) => ({ op: "upsert", binding: { aor: `sip:${aor(u)}`, contact: contact(u), expires } })) });
  await waitFor(`${users.length} bindings in Kamailio`, async () => {
    const held = new Set((await node.dump()).map((c) => c.aor));
    return users.every((u) => held.has(aor(u)));
  }, 15_000, 100);
}

const row = (out: string, user: string) => out.split("\n").find((l) => l.startsWith(`${aor(user)} `)) ?? "";

describe("locmesh location ls --kamailio", () => {
  it("lists Kamailio's table with the journal's view of each binding, and a summary that says whether a reload is complete", async () => {
    await publish(["kt0", "kt1", "kt2", "kt3"]);
    // Behind the agent's back: a contact the journal never had, one with other routing fields,
    // and one gone (as in a Kamailio half reloaded).
    const binding = { expires: nowSec() + 600, q: 0.2, path: "<sip:edge.example.net;lr>", received: "", socket: "", flags: 0, cflags: 0, methods: 4294967295 };
    await usrloc.ulAdd("location", aor("stray"), { ...binding, contact: contact("stray") }, nowSec());
    await usrloc.ulAdd("location", aor("kt1"), { ...binding, contact: contact("kt1") }, nowSec());
    expect(await usrloc.ulRmContact("location", aor("kt3"), contact("kt3"))).toBe(true);

    const [ls, page, all, found] = await Promise.all([
      cli(["location", "ls", "--kamailio", ...target()]),
      cli(["location", "ls", "--kamailio", "--limit", "2", ...target()]),
      cli(["location", "ls", "--kamailio", "--limit", "1", "--all", "--json", ...target()]),
      cli(["location", "ls", "--kamailio", "--search", "STRAY", ...target()]),
    ]);
    expect(ls.stderr).toBe("");
    expect(ls.code).toBe(0);
    expect(ls.stdout).toMatch(/^AOR\s+CONTACT\s+EXPIRES\s+Q\s+INSTALLED BY\s+JOURNAL$/m);
    expect(row(ls.stdout, "kt0")).toMatch(/\sin \d+ s\s+-\s+agent\s+present$/);
    expect(row(ls.stdout, "kt1")).toMatch(/\s0\.2\s+agent\s+differs: expires,q,path$/);
    expect(row(ls.stdout, "stray")).toMatch(/\sagent\s+missing$/);
    expect(row(ls.stdout, "kt3")).toBe("");
    expect(ls.stdout).toMatch(
      /^whole table, dumped \S+: Kamailio holds 4 bindings, the journal 4: 3 differ \(1 with other routing fields, 1 only in Kamailio, 1 only in the journal\)$/m,
    );
    expect(ls.stdout).toContain("A reload or reconcile is not complete");
    expect(ls.stdout).toContain("`locmesh resync --kamailio` writes what differs or is only in the journal");

    expect(page.code).toBe(0);
    expect(page.stdout).toContain("showing 2 of 4 bindings; use --all");
    const json = JSON.parse(all.stdout) as KamailioListResult;
    expect(json.items.map((b) => [b.aor, b.journal])).toEqual([
      [aor("kt0"), "present"], [aor("kt1"), "differs"], [aor("kt2"), "present"], [aor("stray"), "missing"],
    ]);
    expect(json).toMatchObject({ next: null, total: 4, summary: { kamailio: 4, journal: 4, present: 2, differs: 1, onlyInKamailio: 1, onlyInJournal: 1 } });
    expect(found.stdout.split("\n").filter((l) => l.includes(TEST_DOMAIN)).map((l) => l.split(/\s+/)[0])).toEqual([aor("stray")]);

    // The remedy the summary names puts the journal's state back; what only Kamailio holds stays
    // for the reconcile.
    const resync = await cli(["resync", "--kamailio", "--json", ...target()]);
    expect(resync.code, resync.stderr).toBe(0);
    const after = await cli(["location", "ls", "--kamailio", ...target()]);
    expect(row(after.stdout, "kt1")).toMatch(/\spresent$/);
    expect(row(after.stdout, "kt3")).toMatch(/\spresent$/);
    expect(after.stdout).toMatch(/: Kamailio holds 5 bindings, the journal 4: 1 differ \(0 with other routing fields, 1 only in Kamailio, 0 only in the journal\)$/m);
    expect(await usrloc.ulRm("location", aor("stray"))).toBeUndefined();
    const whole = await cli(["location", "ls", "--kamailio", ...target()]);
    expect(whole.stdout).toMatch(/: Kamailio holds 4 bindings, the journal 4: none differ$/m);
  });

  it("refuses a table above kamailio.reconcileMaxContacts, saying so and what to use instead", async () => {
    await publish(["big0", "big1", "big2"]);
    // One more that only Kamailio holds: the count is Kamailio's own (usrloc's statistic), not the journal's 7.
    await usrloc.ulAdd("location", aor("big3"), { contact: contact("big3"), expires: nowSec() + 600, q: -1, path: "", received: "", socket: "", flags: 0, cflags: 0, methods: 4294967295 }, nowSec());
    expect(await usrloc.ulContactCount("location")).toBe(8);
    const r = await cli(["location", "ls", "--kamailio", ...target()]);
    expect(r).toMatchObject({ code: 1, stdout: "" });
    expect(r.stderr).toMatch(new RegExp(`^locmesh: this node's Kamailio holds 8 contacts, above kamailio\\.reconcileMaxContacts \\(${LIMIT}\\): the table is too large to list`));
    expect(r.stderr).toContain("`locmesh location show --kamailio <aor>`");
    expect(r.stderr).toContain("`locmesh resync --kamailio`");
    // One AoR still answers.
    const one = await cli(["location", "show", "--kamailio", `sip:${aor("big1")}`, ...target()]);
    expect(one.code).toBe(0);
    expect(one.stdout).toContain(contact("big1"));
  });
});
