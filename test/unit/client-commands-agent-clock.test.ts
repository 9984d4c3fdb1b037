/**
 * The CLI counts expiries from the agent's clock. It used its own: `locmesh location ls --url` run
 * on a laptop whose clock is minutes off the agent's showed every binding's EXPIRES that many
 * seconds off (or "expired"), and `location add --expires 60` stored an expiry that far off too.
 * The agent's answers carry `nowSec` (the clock that decided what is live); the CLI now uses it.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { runClientCliToEnd, startScriptedAgent, type ScriptedAgent } from "../support/cli-harness.js";

/** An hour ahead of this host, as a badly set clock on either side would be. */
const AGENT_NOW = Math.floor(Date.now() / 1000) + 3600;
const binding = { aor: "alice@example.com", contact: "sip:alice@192.0.2.10:5060", expires: AGENT_NOW + 120, q: -1, owner: "n1" };

let agent: ScriptedAgent;
let answers: Record<string, unknown> = {};
let published: unknown[] = [];

beforeEach(async () => {
  published = [];
  agent = await startScriptedAgent((method, _n, params) => {
    if (method === "location.publish") {
      published.push(params);
      return { applied: 1 };
    }
    return answers[method] ?? null;
  });
});

afterEach(async () => {
  process.exitCode = undefined;
  await agent.close();
});

const runCli = (args: string[]) => runClientCliToEnd(agent.port, args);

describe("expiries counted from the agent's clock", () => {
  it("location ls and location show count down from the answer's nowSec", async () => {
    answers = {
      "location.list": { items: [binding], next: null, total: 1, nowSec: AGENT_NOW },
      "location.lookup": { aor: binding.aor, bindings: [binding], nowSec: AGENT_NOW },
    };
    const ls = await runCli(["location", "ls"]);
    expect(ls.code).toBe(0);
    expect(ls.out).toMatch(/alice@example\.com +sip:alice@192\.0\.2\.10:5060 +in 120 s/);
    const show = await runCli(["location", "show", "sip:alice@example.com"]);
    expect(show.out).toMatch(/expires +in 120 s/);
  });

  it("location show --kamailio and location ls --kamailio do too", async () => {
    const contact = { contact: binding.contact, expires: AGENT_NOW + 60, q: -1, path: "", received: "", socket: "", callid: "c", cseq: 1, userAgent: "ua", ruid: "r", installedByAgent: false };
    answers = {
      "kamailio.lookup": { aor: binding.aor, contacts: [contact], nowSec: AGENT_NOW },
      "kamailio.list": {
        items: [{ ...contact, aor: binding.aor, journal: "present", differences: [] }], next: null, total: 1, nowSec: AGENT_NOW,
        summary: { takenAt: new Date().toISOString(), kamailio: 1, journal: 1, present: 1, differs: 0, onlyInKamailio: 0, onlyInJournal: 0, pendingWrites: 0 },
      },
    };
    const show = await runCli(["location", "show", "sip:alice@example.com", "--kamailio"]);
    expect(show.code).toBe(0);
    expect(show.out).toMatch(/expires +in 60 s/);
    const ls = await runCli(["location", "ls", "--kamailio"]);
    expect(ls.out).toMatch(/alice@example\.com +sip:alice@192\.0\.2\.10:5060 +in 60 s/);
  });

  it("location add --expires stores the agent's now plus the seconds given", async () => {
    answers = { "location.lookup": { aor: binding.aor, bindings: [], nowSec: AGENT_NOW } };
    const add = await runCli(["location", "add", "sip:alice@example.com", "sip:alice@192.0.2.10:5060", "--expires", "60"]);
    expect(add.code).toBe(0);
    expect(published).toEqual([{ edits: [{ op: "upsert", binding: { aor: "sip:alice@example.com", contact: "sip:alice@192.0.2.10:5060", expires: AGENT_NOW + 60 } }] }]);
    // A permanent binding asks nothing of the clock.
    const before = agent.methods.length;
    await runCli(["location", "add", "sip:alice@example.com", "sip:alice@192.0.2.10:5060"]);
    expect(agent.methods.slice(before)).toEqual(["location.publish"]);
    expect(published[1]).toMatchObject({ edits: [{ binding: { expires: 0 } }] });
  });

  it("an answer without nowSec (an older agent) is counted from this host's clock, as before", async () => {
    const local = Math.floor(Date.now() / 1000);
    answers = { "location.list": { items: [{ ...binding, expires: local + 300 }], next: null, total: 1 } };
    const ls = await runCli(["location", "ls"]);
    expect(ls.out).toMatch(/in (299|300) s/);
  });
});
