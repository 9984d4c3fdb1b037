/**
 * `locmesh alias show --kamailio`'s exit code, driven through the command against a scripted agent
 * on 127.0.0.1. It exited 0 whatever it found, also for an alias neither the journal nor Kamailio
 * has, which plain `alias show` reports as an unknown alias, 1.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { KamailioAliasResult } from "../../agent/contract/kamailio-status.js";
import { runClientCliToEnd, startScriptedAgent, type ScriptedAgent } from "../support/cli-harness.js";

let agent: ScriptedAgent;
/** What the agent answers to each method. */
let answers: Record<string, unknown> = {};

beforeEach(async () => {
  agent = await startScriptedAgent((method) => answers[method] ?? null);
});

afterEach(async () => {
  process.exitCode = undefined;
  await agent.close();
});

const runCli = (args: string[]) => runClientCliToEnd(agent.port, args);

const compared = (agreement: KamailioAliasResult["agreement"], journal: string | null, kamailio: string[]): KamailioAliasResult => ({
  alias: "sip:bob@example.com", store: "usrloc", table: "aliases", kamailio, journal, agreement, pendingWrites: 0,
});

describe("locmesh alias show --kamailio", () => {
  it("exits 1 for an alias neither the journal nor Kamailio has, as plain `alias show` of an unknown alias does", async () => {
    answers = { "kamailio.alias": compared("absent", null, []), "alias.lookup": { alias: "bob@example.com", target: null } };
    const k = await runCli(["alias", "show", "sip:bob@example.com", "--kamailio"]);
    expect(k.out).toMatch(/state +neither the journal nor Kamailio has this alias/);
    expect(k.code).toBe(1);
    const json = await runCli(["alias", "show", "sip:bob@example.com", "--kamailio", "--json"]);
    expect(JSON.parse(json.out)).toMatchObject({ agreement: "absent" });
    expect(json.code).toBe(1);
    expect((await runCli(["alias", "show", "sip:bob@example.com"])).code).toBe(1);
  });

  it("exits 0 for the other states: the comparison was made, and the state line says what it found", async () => {
    const states: [KamailioAliasResult["agreement"], string | null, string[]][] = [
      ["present", "sip:alice@example.com", ["sip:alice@example.com"]],
      ["missing", "sip:alice@example.com", []],
      ["differs", "sip:alice@example.com", ["sip:carol@example.com"]],
      ["extra", null, ["sip:alice@example.com"]],
    ];
    for (const [agreement, journal, kamailio] of states) {
      answers = { "kamailio.alias": compared(agreement, journal, kamailio) };
      const r = await runCli(["alias", "show", "sip:bob@example.com", "--kamailio"]);
      expect(r.err, agreement).toBe("");
      expect(r.code, agreement).toBe(0);
    }
  });
});
