/**
 * How long the CLI waits for the calls that go through to this node's Kamailio (`--kamailio`,
 * client-commands.ts KAMAILIO_WAIT_MS): the agent allows a ul.dump 30 s and a lookup its turn at
 * Kamailio's one FIFO process, so a client giving up at its usual 10 s would blame the agent for
 * Kamailio's wait. Driven through the commands themselves against a real socket on 127.0.0.1 that
 * takes each request and never answers (test/support/cli-harness.ts); the clock is faked, so no
 * test waits 45 s.
 */
import { setTimeout as realSleep } from "node:timers/promises";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { runClientCli, startScriptedAgent, type ScriptedAgent } from "../support/cli-harness.js";

let agent: ScriptedAgent;

beforeEach(async () => {
  agent = await startScriptedAgent(() => "hang");
});

afterEach(async () => {
  vi.useRealTimers();
  process.exitCode = undefined;
  await agent.close();
});

/** Runs `locmesh <args>` with the fake clock on; resolves with what it wrote to stderr, once done. */
function runCli(args: string[]): { done: Promise<string>; settled: () => boolean } {
  const run = runClientCli(agent.port, args);
  return { done: run.done.then(() => run.err()), settled: run.settled };
}

/** Waits on the real clock (node:timers/promises is not faked; the global setTimeout is) until the server has the request. */
async function requestTaken(n: number): Promise<void> {
  for (let i = 0; i < 500 && agent.methods.length < n; i++) await realSleep(10);
  expect(agent.methods.length).toBe(n);
}

describe("the CLI's wait for calls through to Kamailio", () => {
  const kamailioCalls: [string, string[], string][] = [
    ["location show --kamailio", ["location", "show", "sip:alice@example.com", "--kamailio"], "kamailio.lookup"],
    ["location ls --kamailio", ["location", "ls", "--kamailio"], "kamailio.list"],
    ["alias show --kamailio", ["alias", "show", "sip:bob@example.com", "--kamailio"], "kamailio.alias"],
  ];

  for (const [name, args, method] of kamailioCalls) {
    it(`${name} waits 45 s for the agent, not the usual 10 s`, async () => {
      vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout"] });
      const run = runCli(args);
      await requestTaken(1);
      expect(agent.methods[0]).toBe(method);
      await vi.advanceTimersByTimeAsync(44_000);
      expect(run.settled()).toBe(false);
      await vi.advanceTimersByTimeAsync(1_001);
      const err = await run.done;
      expect(err).toMatch(new RegExp(`did not answer ${method.replace(".", "\\.")} within 45000 ms`));
      expect(process.exitCode).toBe(3);
    });
  }

  it("the same commands without --kamailio give up at the usual 10 s", async () => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout"] });
    const run = runCli(["location", "show", "sip:alice@example.com"]);
    await requestTaken(1);
    expect(agent.methods[0]).toBe("location.lookup");
    await vi.advanceTimersByTimeAsync(10_001);
    const err = await run.done;
    expect(err).toMatch(/did not answer location\.lookup within 10000 ms/);
  });
});
