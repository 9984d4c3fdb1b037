/**
 * Issue 3, "How we will know": three real Kamailio 5.6 nodes, each with its agent, driven by sipp.
 * Registrations, de-registrations and max_contacts replacements reach every node's Kamailio;
 * aliases route calls; a call reaches a phone through a surviving node; a Kamailio that restarts
 * empty gets its table back; an agent killed under REGISTER load misses nothing; REGISTERs taken
 * while an agent was down reach it from the include's held queue, and a reload does not undo the
 * de-registrations taken before a late agent came back.
 */
import { mkdtempSync, readFileSync, readdirSync, renameSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ClusterStatus } from "../../agent/contract/cluster-status.js";
import type { KamailioContact, KamailioLookupResult } from "../../agent/contract/kamailio-status.js";
import { describeKamailio } from "../../agent/cli/client-output.js";
import { UL_ADD_CALLID } from "../../agent/kamailio/registrar-input.js";
import { sleep, waitFor } from "../support/agent-process.js";
import { TEST_DOMAIN, startKamailioCluster, type ClusterNode, type KamailioCluster } from "../support/kamailio-cluster.js";
import { cli } from "../support/cli-run.js";
import { sippRegister } from "../support/sipp.js";
import { sippCall, sippRegisterLoad, startPhone } from "../support/sipp-call.js";

let dir: string;
let cluster: KamailioCluster;
let n1: ClusterNode;
let n2: ClusterNode;
let n3: ClusterNode;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "locmesh-kcluster-"));
  // save("location", "0x04"): one contact per AoR, so a new phone replaces the old one. n2's
  // Kamailio opens its REGISTER gate by itself after 3 s; n3 never reconciles (as an agent past
  // kamailio.reconcileMaxContacts): registrar events are all it hears.
  cluster = await startKamailioCluster({
    baseDir: dir, kamailio: { locmesh: { saveFlags: "0x04" } },
    node: (i) => [{}, { kamailio: { extraCfg: "#!define LOCMESH_READY_GRACE 3" } }, { agentKamailio: { reconcileMaxContacts: 0 } }][i] ?? {},
  });
  [n1, n2, n3] = cluster.nodes as [ClusterNode, ClusterNode, ClusterNode];
}, 60_000);

afterAll(async () => {
  await cluster?.close();
  if (!process.env["KEEP"]) rmSync(dir, { recursive: true, force: true });
});

const contactsOf = async (node: ClusterNode, aor: string) => (await node.lookup(aor)).map((c) => c.contact).sort();

async function everywhere(aor: string, want: string[], nodes = cluster.nodes): Promise<void> {
  for (const node of nodes) {
    await waitFor(`${aor} on ${node.id} to be ${JSON.stringify(want)}`, async () => {
      const have = await contactsOf(node, aor);
      return JSON.stringify(have) === JSON.stringify([...want].sort());
    }, 15_000, 100);
  }
}

describe("three Kamailio nodes with agents", () => {
  it("replicates a REGISTER, its de-REGISTER and a replacement under one-contact-per-AoR", async () => {
    const aor = `alice@${TEST_DOMAIN}`;
    const a = await sippRegister({ dir, sipPort: n1.kamailio.sipPort, user: "alice", domain: TEST_DOMAIN, expires: 300, userAgent: "PhoneA/1.0" });
    await everywhere(aor, [a.contact]);
    const onN2 = (await n2.lookup(aor))[0]!;
    expect(onN2.callid).toBe(UL_ADD_CALLID); // installed by the agent, not a registration of its own
    expect(onN2.expires).toBeGreaterThan(Date.now() / 1000 + 250);
    // The owner node's journal says n1; the binding keeps the phone's own fields.
    const shown = await n3.agent.call<{ bindings: { owner: string; userAgent: string }[] }>("location.lookup", { aor });
    expect(JSON.stringify(shown)).toContain('"owner":"n1"');
    expect(JSON.stringify(shown)).toContain("PhoneA/1.0");
    // kamailio.lookup answers from Kamailio itself (ul.lookup through the agent), as the test's own FIFO read does.
    const k2 = await n2.agent.call<KamailioLookupResult>("kamailio.lookup", { aor: `sip:${aor}` });
    expect(k2).toMatchObject({ aor, contacts: [{ contact: a.contact, installedByAgent: true, callid: UL_ADD_CALLID }] });
    // With the agent's clock, which the CLI counts the expiry down from.
    expect(Math.abs(k2.nowSec - Date.now() / 1000)).toBeLessThan(5);
    const k1 = await n1.agent.call<{ contacts: KamailioContact[] }>("kamailio.lookup", { aor });
    expect(k1.contacts).toMatchObject([{ contact: a.contact, installedByAgent: false, userAgent: "PhoneA/1.0" }]);
    expect((await n1.agent.call<{ contacts: unknown[] }>("kamailio.lookup", { aor: `nobody@${TEST_DOMAIN}` })).contacts).toEqual([]);

    // A second phone registers the same AoR at n2: 0x04 drops phone A there, and everywhere.
    const b = await sippRegister({ dir, sipPort: n2.kamailio.sipPort, user: "alice", domain: TEST_DOMAIN, expires: 300 });
    await everywhere(aor, [b.contact]);

    // Phone B de-registers at n3 (where it is only an installed copy): gone everywhere.
    await sippRegister({ dir, sipPort: n3.kamailio.sipPort, user: "alice", domain: TEST_DOMAIN, expires: 0, localPort: b.localPort });
    await everywhere(aor, []);
  });

  it("routes a call to an alias set through the agent API, from any node", async () => {
    const bob = await sippRegister({ dir, sipPort: n1.kamailio.sipPort, user: "bob", domain: TEST_DOMAIN, expires: 300 });
    await everywhere(`bob@${TEST_DOMAIN}`, [bob.contact]);
    await n2.agent.call("alias.set", { alias: `sip:bobby@${TEST_DOMAIN}`, target: `sip:bob@${TEST_DOMAIN}` });
    for (const node of cluster.nodes) {
      await waitFor(`alias on ${node.id}`, async () => (await node.lookup(`bobby@${TEST_DOMAIN}`, "aliases")).length === 1);
    }
    // `alias show --kamailio` reads n3's Kamailio (ul.lookup of its aliases domain) beside the journal.
    const shown = await cli(["alias", "show", `sip:bobby@${TEST_DOMAIN}`, "--kamailio", "--url", n3.agent.apiUrl, "--token", n3.agent.spec.token]);
    expect(shown.code, shown.stderr).toBe(0);
    expect(shown.stdout).toMatch(new RegExp(`^journal +sip:bob@${TEST_DOMAIN}$`, "m"));
    expect(shown.stdout).toMatch(new RegExp(`^kamailio +sip:bob@${TEST_DOMAIN} \\(usrloc domain aliases\\)$`, "m"));
    expect(shown.stdout).toMatch(/^state +in line: /m);
    const plain = await cli(["alias", "show", `bobby@${TEST_DOMAIN}`, "--url", n3.agent.apiUrl, "--token", n3.agent.spec.token]);
    expect(plain.stdout.trim(), plain.stderr).toBe(`alias bobby@${TEST_DOMAIN} -> sip:bob@${TEST_DOMAIN}`);
    const phone = startPhone({ dir, port: bob.localPort, name: "bob" });
    try {
      for (const node of cluster.nodes) await sippCall({ dir, proxyPort: node.kamailio.sipPort, to: `sip:bobby@${TEST_DOMAIN}` });
      await expect.poll(() => phone.answered()).toBe(3);
    } finally {
      await phone.stop();
    }
    await n3.agent.call("alias.remove", { alias: `sip:bobby@${TEST_DOMAIN}` });
    for (const node of cluster.nodes) {
      await waitFor(`alias gone on ${node.id}`, async () => (await node.lookup(`bobby@${TEST_DOMAIN}`, "aliases")).length === 0);
    }
    expect(await n1.agent.call("kamailio.alias", { alias: `bobby@${TEST_DOMAIN}` })).toMatchObject({ journal: null, kamailio: [], agreement: "absent" });
  });

  it("`location add` puts a static binding into every Kamailio, its own node's at once, and reconciles keep it; `location rm` takes a registered phone out of every Kamailio", async () => {
    const api = (node: ClusterNode) => ["--url", node.agent.apiUrl, "--token", node.agent.spec.token];
    const trunk = `trunk@${TEST_DOMAIN}`;
    const contact = "sip:trunk@192.0.2.50:5060";
    const added = await cli(["location", "add", `sip:${trunk}`, contact, ...api(n1)]);
    expect(added.code, added.stderr).toBe(0);
    expect(added.stdout.trim()).toBe(`binding sip:${trunk} -> ${contact} (permanent)`);
    expect(added.stderr).toBe(""); // no note: n1's Kamailio has it already
    // The sink writes no change of n1's own bindings into n1's Kamailio: the API did, before answering.
    expect(await n1.lookup(trunk)).toMatchObject([{ contact, expires: 0, callid: UL_ADD_CALLID }]);
    await everywhere(trunk, [contact]);
    // n1's reconciles (every 5 s here) keep it: it is not a phone's registration gone without an event.
    const addedAt = Date.now();
    const reconciledSince = async (t: number) => {
      const at = (await n1.agent.call<ClusterStatus>("cluster.status")).kamailio?.lastReconcile?.at;
      return at !== undefined && Date.parse(at) > t;
    };
    await waitFor("a reconcile on n1 after the add", () => reconciledSince(addedAt), 20_000, 200);
    const firstAt = Date.now();
    await waitFor("another one", () => reconciledSince(firstAt), 20_000, 200);
    await everywhere(trunk, [contact]);
    expect((await n2.agent.call<{ bindings: unknown[] }>("location.lookup", { aor: trunk })).bindings).toHaveLength(1);

    // A phone registered at n1, removed there through the API: out of n1's Kamailio at once too.
    const carol = await sippRegister({ dir, sipPort: n1.kamailio.sipPort, user: "carol", domain: TEST_DOMAIN, expires: 300 });
    await everywhere(`carol@${TEST_DOMAIN}`, [carol.contact]);
    const removed = await cli(["location", "rm", `sip:carol@${TEST_DOMAIN}`, ...api(n1)]);
    expect(removed.code, removed.stderr).toBe(0);
    expect(removed.stdout.trim()).toBe(`removed 1 binding of sip:carol@${TEST_DOMAIN}`);
    expect(await n1.lookup(`carol@${TEST_DOMAIN}`)).toEqual([]);
    await everywhere(`carol@${TEST_DOMAIN}`, []);
    const again = await cli(["location", "rm", `sip:carol@${TEST_DOMAIN}`, ...api(n1)]);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/has no binding in this node's journal: nothing removed/);

    // The static one removed from another node: gone from n1's Kamailio as well (a peer's change).
    expect((await cli(["location", "rm", `sip:${trunk}`, contact, ...api(n2)])).code).toBe(0);
    await everywhere(trunk, []);
  }, 90_000);

  it("keeps a Kamailio whose FIFO file was removed up, and writes into it through the datagram socket meanwhile", async () => {
    // n3 never reconciles here (reconcileMaxContacts 0): its ul.dump would need the FIFO.
    const fifo = n3.kamailio.fifoPath;
    renameSync(fifo, `${fifo}.moved`);
    try {
      const alias = `nofifo@${TEST_DOMAIN}`;
      await n1.agent.call("alias.set", { alias: `sip:${alias}`, target: `sip:carol@${TEST_DOMAIN}` });
      await waitFor("the alias in n3's Kamailio, written over the datagram socket", async () =>
        (await n3.agent.call<{ agreement: string }>("kamailio.alias", { alias })).agreement === "present", 15_000, 100);
      await sleep(2500); // two of its checks (checkIntervalSec 1): each probes the FIFO first
      const k = (await n3.agent.call<ClusterStatus>("cluster.status")).kamailio!;
      expect(k.up, describeKamailio(k)).toBe(true);
      expect(k.writer).toBe("rpc");
      await n1.agent.call("alias.remove", { alias: `sip:${alias}` });
      await waitFor("the alias gone from n3's Kamailio", async () =>
        (await n3.agent.call<{ agreement: string }>("kamailio.alias", { alias })).agreement === "absent", 15_000, 100);
    } finally {
      renameSync(`${fifo}.moved`, fifo);
    }
  });

  it("puts the whole table back into a Kamailio that restarted empty (db_mode 0)", async () => {
    const load = await sippRegisterLoad({ dir, sipPort: n1.kamailio.sipPort, count: 300, rate: 300, domain: TEST_DOMAIN, prefix: "rst" });
    expect(load.ok, load.output).toBe(true);
    await waitFor("300 bindings on n3", async () => (await n3.dump()).filter((c) => c.aor.startsWith("rst")).length === 300, 20_000, 200);
    await n3.kamailio.restart();
    await waitFor("n3 whole again", async () => (await n3.dump()).filter((c) => c.aor.startsWith("rst")).length === 300, 20_000, 200);
    // It came back because the agent noticed the restart and reloaded (db_mode 0 starts empty).
    let last: unknown;
    const status = await waitFor("reload done", async () => {
      const s = await n3.agent.call<ClusterStatus>("cluster.status");
      last = s.kamailio;
      return s.kamailio?.restarts === 1 && s.kamailio.reload.state === "done" && s.kamailio.reload.total > 0 ? s : null;
    });
    expect(status.kamailio?.restarts, JSON.stringify(last)).toBe(1);
    expect(status.kamailio?.reload.total).toBeGreaterThanOrEqual(300);
    // Through the include's evapi bulk channel, not one jsonrpcs datagram per binding.
    expect(status.kamailio?.reload.channel).toBe("evapi");
    // n1 restarts too: its own registrations come back into it as well.
    await n1.kamailio.restart();
    await waitFor("n1 whole again", async () => (await n1.dump()).filter((c) => c.aor.startsWith("rst")).length === 300, 20_000, 200);
  });

  it("misses nothing when an agent is killed under REGISTER load and restarted", async () => {
    const loading = sippRegisterLoad({ dir, sipPort: n1.kamailio.sipPort, count: 1500, rate: 500, domain: TEST_DOMAIN, prefix: "kill" });
    await sleep(1000);
    await n1.agent.kill9();
    await sleep(1000);
    await n1.agent.start();
    const load = await loading;
    expect(load.ok, load.output).toBe(true);
    for (const node of cluster.nodes) {
      await waitFor(`1500 kill* bindings in ${node.id}'s Kamailio`, async () => (await node.dump()).filter((c) => c.aor.startsWith("kill")).length === 1500, 30_000, 250);
    }
    const journal = await n2.agent.call<{ total: number }>("location.list", { search: "kill", limit: 1 });
    expect(journal.total).toBe(1500);
  });

  // n2: n3 does not reconcile in this file (reconcileMaxContacts 0).
  it("a journal moved aside while the peers are down waits for them: the replicated state stays in Kamailio, and what was de-registered meanwhile stays gone", async () => {
    const iso = await Promise.all(["iso1", "iso2"].map((user) => sippRegister({ dir, sipPort: n2.kamailio.sipPort, user, domain: TEST_DOMAIN, expires: 300 })));
    const far = await sippRegister({ dir, sipPort: n1.kamailio.sipPort, user: "far1", domain: TEST_DOMAIN, expires: 300 });
    await everywhere(`iso1@${TEST_DOMAIN}`, [iso[0]!.contact]);
    await everywhere(`iso2@${TEST_DOMAIN}`, [iso[1]!.contact]);
    await everywhere(`far1@${TEST_DOMAIN}`, [far.contact]);
    await n2.agent.call("alias.set", { alias: `sip:isoalias@${TEST_DOMAIN}`, target: `sip:iso2@${TEST_DOMAIN}` });
    await waitFor("the alias on n1", async () => (await n1.agent.call<{ total: number }>("alias.list", { search: "isoalias" })).total === 1);
    await n1.agent.stop();
    await n3.agent.stop();
    // While n2 is cut off, iso1 de-registers there.
    await sippRegister({ dir, sipPort: n2.kamailio.sipPort, user: "iso1", domain: TEST_DOMAIN, expires: 0, localPort: iso[0]!.localPort });
    await everywhere(`iso1@${TEST_DOMAIN}`, [], [n2]);
    // Then n2's journal is lost and it starts empty, its peers still down.
    await n2.agent.stop();
    for (const f of readdirSync(join(n2.agent.spec.dir, "data"))) if (f.startsWith("journal.sqlite")) rmSync(join(n2.agent.spec.dir, "data", f));
    await n2.agent.start();
    await waitFor("n2 to say it waits for a peer", async () => readFileSync(n2.agent.logPath, "utf8").includes("has not caught up with a peer or hub yet"), 15_000, 100);
    await sleep(2000);
    // The reconcile has not taken the journal's emptiness for removals: n1's phone and the alias stay in n2's Kamailio.
    expect(await contactsOf(n2, `far1@${TEST_DOMAIN}`)).toEqual([far.contact]);
    expect((await n2.lookup(`isoalias@${TEST_DOMAIN}`, "aliases")).map((c) => c.contact)).toEqual([`sip:iso2@${TEST_DOMAIN}`]);
    await n1.agent.start();
    await n3.agent.start();
    await waitFor("n2 caught up", async () => readFileSync(n2.agent.logPath, "utf8").includes("the new journal has caught up with the cluster"), 20_000, 100);
    // iso1, de-registered while n2 was cut off, is not brought back: it goes everywhere. iso2 stays.
    await everywhere(`iso1@${TEST_DOMAIN}`, []);
    await everywhere(`iso2@${TEST_DOMAIN}`, [iso[1]!.contact]);
    await everywhere(`far1@${TEST_DOMAIN}`, [far.contact]);
    // n2's own phone is still its own registration in its Kamailio, not relabelled as the agent's.
    expect((await n2.lookup(`iso2@${TEST_DOMAIN}`)).map((c) => c.callid)).not.toContain(UL_ADD_CALLID);
  });

  it("learns the REGISTERs its Kamailio took while the agent was down from the events Kamailio held, without a reconcile", async () => {
    // A live binding, so that n3 is past its reconcileMaxContacts (0) whichever tests ran before.
    const here = await sippRegister({ dir, sipPort: n1.kamailio.sipPort, user: "stayer", domain: TEST_DOMAIN, expires: 300 });
    await everywhere(`stayer@${TEST_DOMAIN}`, [here.contact]);
    await n3.agent.kill9();
    const load = await sippRegisterLoad({ dir, sipPort: n3.kamailio.sipPort, count: 30, rate: 100, domain: TEST_DOMAIN, prefix: "away" });
    expect(load.ok, load.output).toBe(true);
    await n3.agent.start();
    for (const node of cluster.nodes) {
      await waitFor(`30 away* bindings in ${node.id}'s Kamailio`, async () => (await node.dump()).filter((c) => c.aor.startsWith("away")).length === 30, 20_000, 250);
    }
    const journal = await n1.agent.call<{ items: { owner: string }[]; total: number }>("location.list", { search: "away", limit: 100 });
    expect(journal.total).toBe(30);
    expect(new Set(journal.items.map((b) => b.owner))).toEqual(new Set(["n3"]));
    // The skipped reconcile is in the status (the connect's run, or a periodic one).
    const st = await waitFor("n3's skipped reconcile in cluster.status", async () => {
      const s = await n3.agent.call<ClusterStatus>("cluster.status");
      return s.kamailio?.lastReconcile?.outcome === "skipped" ? s : null;
    }, 10_000, 100);
    expect(st.kamailio?.lastReconcile?.reason).toMatch(/^\d+ live bindings above kamailio\.reconcileMaxContacts \(0\)$/);
  });

  it("misses nothing without a reconcile when an agent is killed with registrar events read or in the sockets: Kamailio sends again what was not acknowledged", async () => {
    // A live binding, so that n3 is past its reconcileMaxContacts (0) whichever tests ran before.
    const here = await sippRegister({ dir, sipPort: n1.kamailio.sipPort, user: "stayer2", domain: TEST_DOMAIN, expires: 300 });
    await everywhere(`stayer2@${TEST_DOMAIN}`, [here.contact]);
    const mark = n3.kamailio.logMark();
    const loading = sippRegisterLoad({ dir, sipPort: n3.kamailio.sipPort, count: 600, rate: 300, domain: TEST_DOMAIN, prefix: "frozen" });
    await sleep(300);
    // Frozen, the agent journals nothing while Kamailio's drain keeps sending into the sockets.
    n3.agent.signal("SIGSTOP");
    const load = await loading;
    expect(load.ok, load.output).toBe(true);
    await n3.agent.kill9();
    await n3.agent.start();
    for (const node of cluster.nodes) {
      await waitFor(`600 frozen* bindings in ${node.id}'s Kamailio`, async () => (await node.dump()).filter((c) => c.aor.startsWith("frozen")).length === 600, 20_000, 250);
    }
    const journal = await n1.agent.call<{ total: number }>("location.list", { search: "frozen", limit: 1 });
    expect(journal.total).toBe(600);
    expect(n3.kamailio.logSince(mark)).toMatch(/locmesh: \d+ registrar events the agent had not acknowledged are sent again/);
  });

  it("a de-registration taken after LOCMESH_READY_GRACE, before the agent came back, is not undone by the reload", async () => {
    // n2's grace is 3 s. Its Kamailio restarts (empty) while its agent is stopped, registers on its
    // own once the grace is over, and takes the de-registrations of 10 phones the journal still
    // holds; then the agent starts and reloads the journal's state into it. The include held the
    // de-registrations' events (cfg-include.ts) and the agent journals them; before it held them
    // the reload put all 10 back on every node.
    const phones = [];
    for (let i = 0; i < 10; i++) phones.push(await sippRegister({ dir, sipPort: n2.kamailio.sipPort, user: `gone${i}`, domain: TEST_DOMAIN, expires: 300 }));
    for (const [i, p] of phones.entries()) await everywhere(`gone${i}@${TEST_DOMAIN}`, [p.contact]);
    await n2.agent.stop();
    await n2.kamailio.restart();
    await sleep(4000);
    for (const [i, p] of phones.entries()) await sippRegister({ dir, sipPort: n2.kamailio.sipPort, user: `gone${i}`, domain: TEST_DOMAIN, expires: 0, localPort: p.localPort });
    await n2.agent.start();
    await waitFor("n2's reload", async () => (await n2.agent.call<ClusterStatus>("cluster.status")).kamailio?.reload.state === "done", 20_000, 100);
    for (let i = 0; i < 10; i++) await everywhere(`gone${i}@${TEST_DOMAIN}`, []);
    await sleep(2000); // the sinks and the next reconciles have had their turn
    for (let i = 0; i < 10; i++) await everywhere(`gone${i}@${TEST_DOMAIN}`, []);
    expect((await n1.agent.call<{ total: number }>("location.list", { search: "gone", limit: 1 })).total).toBe(0);
  });

  it("reaches a phone through a surviving node when the node it registered at is dead", async () => {
    const carol = await sippRegister({ dir, sipPort: n1.kamailio.sipPort, user: "carol", domain: TEST_DOMAIN, expires: 300 });
    await everywhere(`carol@${TEST_DOMAIN}`, [carol.contact]);
    await n1.agent.kill9();
    await n1.kamailio.stop();
    const phone = startPhone({ dir, port: carol.localPort, name: "carol" });
    try {
      await sippCall({ dir, proxyPort: n2.kamailio.sipPort, to: `sip:carol@${TEST_DOMAIN}` });
      await expect.poll(() => phone.answered()).toBe(1);
    } finally {
      await phone.stop();
    }
    // The node comes back and catches up.
    await n1.kamailio.restart();
    await n1.agent.start();
    await everywhere(`carol@${TEST_DOMAIN}`, [carol.contact], [n1]);
  });

  it("shows a Kamailio killed with -9 as DOWN with the reason at once, and writes what waited as soon as it is back", async () => {
    const status = () => n2.agent.call<ClusterStatus>("cluster.status");
    await n2.kamailio.kill9();
    // At once (its evapi connection dropped), not only once the watch probes again ~5 s later.
    const down = await waitFor("n2's Kamailio shown down", async () => {
      const k = (await status()).kamailio!;
      return k.up ? null : k;
    }, 4000, 50); // under the watch's 5 s probe: a loaded CI machine needs more than the usual few ms
    // Why: its evapi connection closed, or (a probe under way then) its FIFO lost its reader.
    expect(describeKamailio(down)).toMatch(/^DOWN, .*; last error: (Kamailio closed the evapi connection: it stopped or restarted|Kamailio FIFO \S+ has no reader)/);

    // Changes for it pile up meanwhile, and its sink backs off: after seven failed runs the next
    // is 5 s away.
    const failures = () => n2.agent.metric("locmesh_kamailio_write_failures_total", { reason: "unavailable" });
    const failedBefore = await failures();
    const load = await sippRegisterLoad({ dir, sipPort: n3.kamailio.sipPort, count: 50, rate: 100, domain: TEST_DOMAIN, prefix: "away" });
    expect(load.ok, load.output).toBe(true);
    await waitFor("n2's sink backing off", async () => (await failures()) >= failedBefore + 7, 40_000, 20);
    const k = (await status()).kamailio!;
    expect(describeKamailio(k)).toMatch(/^DOWN, NOT WRITING: .*; last error: Kamailio is unreachable through jsonrpcs/);
    expect(k.pendingWrites).toBeGreaterThanOrEqual(50);

    await n2.kamailio.start();
    const back = Date.now();
    const reloaded = await waitFor("n2's Kamailio reloaded", async () => {
      const r = (await status()).kamailio!.reload;
      return r.state === "done" && Date.parse(r.finishedAt!) >= back ? r : null;
    }, 20_000, 50);
    // The sink retried when Kamailio answered again, not when its timer ran out.
    const drainedAt = await waitFor("nothing pending on n2", async () => ((await status()).pendingWrites === 0 ? Date.now() : null), 10_000, 50);
    expect(drainedAt - Date.parse(reloaded.finishedAt!)).toBeLessThan(4000); // the back-off timer was 5 s away
    expect((await status()).kamailio).toMatchObject({ up: true, writer: "rpc" });
    expect((await n2.dump()).filter((c) => c.aor.startsWith("away")).length).toBe(50);
  });
});
