/**
 * `locmesh resync` on a terminal, driven through the command itself against a scripted agent on
 * 127.0.0.1 (client-commands.ts, resync-progress.ts). The review's run: the agent was paused while
 * the bar was drawn; the command printed nothing and never ended (11 minutes, then Ctrl-C gave 130
 * instead of 3), and the terminal was left with line wrapping off (cli-progress's ESC[?7l), also
 * after a plain Ctrl-C, which the help says only stops following.
 */
import { EventEmitter } from "node:events";
import { setTimeout as realSleep } from "node:timers/promises";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { IDLE_RELOAD, reloadStatus, runClientCli, startScriptedAgent, wrapRestored, type AgentScript, type ScriptedAgent } from "../support/cli-harness.js";

let agent: ScriptedAgent;

beforeEach(async () => {
  agent = await startScriptedAgent();
});

afterEach(async () => {
  vi.useRealTimers();
  process.exitCode = undefined;
  await agent.close();
});

const idle = { state: "idle", peer: null, received: 0, expected: 0, startedAt: null, finishedAt: null, error: null };
const running = (received: number) => ({ ...idle, state: "running", peer: "n2", received, expected: 100, startedAt: "2026-11-22T10:00:00.000Z" });
/** The resync starts, runs two polls, then the agent stops answering. */
const startsThenHangs: AgentScript = (method, n) => {
  if (method === "cluster.resync") return { started: true };
  return n === 1 ? { resync: idle } : n <= 3 ? { resync: running(n * 10) } : "hang";
};

/** Runs `locmesh <args>` with stdout a terminal. */
const runCli = (args: string[], signals: EventEmitter) => runClientCli(agent.port, args, { tty: true, signals });

/** Waits on the real clock (node:timers/promises is not faked; the global setTimeout is) until `cond` holds. */
async function until(cond: () => boolean): Promise<void> {
  for (let i = 0; i < 500 && !cond(); i++) await realSleep(10);
  expect(cond()).toBe(true);
}

/** Runs `locmesh <args>` on a fake setTimeout and returns once the agent holds a call it does not answer. */
async function runUntilHanging(args: string[], signals: EventEmitter) {
  vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout"] });
  const run = runCli(args, signals);
  await until(() => agent.hanging() === 1);
  return run;
}


describe("locmesh resync on a terminal", () => {
  it("an agent that stops answering cluster.status while the bar is drawn: exit 3 once the call times out, wrapping restored", async () => {
    agent.script = startsThenHangs;
    const signals = new EventEmitter();
    const run = await runUntilHanging(["resync"], signals);
    expect(run.out()).toContain("resync from n2 [");
    await vi.advanceTimersByTimeAsync(10_001);
    await run.done;
    expect(run.err()).toMatch(/^locmesh: the locmesh agent or hub at http:\/\/127\.0\.0\.1:\d+ did not answer cluster\.status within 10000 ms/);
    expect(process.exitCode).toBe(3);
    expect(wrapRestored(run.out())).toBe(true);
    // The Ctrl-C listener is gone too. (That the bar's redraw timer is, resync-progress.test.ts checks:
    // here fetch's own timers, unref'd, are on the fake clock as well.)
    expect(signals.listenerCount("SIGINT")).toBe(0);
  });

  it("--kamailio: the same", async () => {
    agent.script = (method, n) => {
      if (method === "kamailio.reload") return {};
      return n === 1 ? { kamailio: { reload: IDLE_RELOAD } } : n === 2 ? { kamailio: { reload: reloadStatus(100) } } : "hang";
    };
    const run = await runUntilHanging(["resync", "--kamailio"], new EventEmitter());
    expect(run.out()).toContain("kamailio reload [");
    await vi.advanceTimersByTimeAsync(10_001);
    await run.done;
    expect(run.err()).toMatch(/did not answer cluster\.status within 10000 ms/);
    expect(process.exitCode).toBe(3);
    expect(wrapRestored(run.out())).toBe(true);
  });

  it("Ctrl-C while following: ends at once with 130, says the run goes on, wrapping restored", async () => {
    agent.script = startsThenHangs;
    const signals = new EventEmitter();
    const run = await runUntilHanging(["resync"], signals);
    expect(signals.listenerCount("SIGINT")).toBe(1);
    signals.emit("SIGINT");
    await until(run.settled);
    expect(run.err()).toBe("locmesh: stopped following; the resync goes on in the agent (Ctrl-C does not stop it): follow it with `locmesh status`\n");
    expect(process.exitCode).toBe(130);
    expect(wrapRestored(run.out())).toBe(true);
    // A second Ctrl-C is Node's again (it ends the process).
    expect(signals.listenerCount("SIGINT")).toBe(0);
  });
});
