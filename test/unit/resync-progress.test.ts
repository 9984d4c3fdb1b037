import { PassThrough } from "node:stream";
import { afterEach, describe, expect, it, vi } from "vitest";
import type { ResyncStatus } from "../../agent/contract/cluster-status.js";
import type { KamailioReloadStatus } from "../../agent/contract/kamailio-status.js";
import { AgentUnreachableError, type ApiClient } from "../../agent/cli/api-client.js";
import { FollowStopped, reloadFailure, runKamailioReload, runResync } from "../../agent/cli/resync-progress.js";
import { IDLE_RELOAD, reloadStatus, terminalStream, wrapRestored } from "../support/cli-harness.js";

const idle: ResyncStatus = { state: "idle", peer: null, received: 0, expected: 0, startedAt: null, finishedAt: null, error: null };
const running = (received: number): ResyncStatus => ({ ...idle, state: "running", peer: "n2", received, expected: 100, startedAt: "2026-11-22T10:00:00.000Z" });

/** An agent's answers, one cluster.status resync after another; the last repeats. cluster.resync answers `started`. */
function scripted(statuses: ResyncStatus[], started: Record<string, unknown> = {}): ApiClient {
  let i = 0;
  return {
    async call<T>(method: string): Promise<T> {
      if (method === "cluster.resync") return started as T;
      if (method !== "cluster.status") return {} as T;
      const r = statuses[Math.min(i++, statuses.length - 1)]!;
      return { resync: r } as T;
    },
    close: () => undefined,
  };
}

describe("runResync", () => {
  it("follows a run to its end", async () => {
    const done: ResyncStatus = { ...running(100), state: "done", finishedAt: "2026-11-22T10:00:05.000Z" };
    const out = new PassThrough();
    let printed = "";
    out.on("data", (d: Buffer) => (printed += d.toString()));
    const r = await runResync(scripted([idle, running(10), running(60), done]), { json: true, stdout: out, pollMs: 1 });
    expect(r.state).toBe("done");
    const last = printed.trim().split("\n").at(-1)!;
    expect(JSON.parse(last)).toMatchObject({ state: "done", received: 100 });
  });

  it("waits out a relay catch-up under way, and follows the full resync that comes after it", async () => {
    const catchUp = (received: number, state: ResyncStatus["state"] = "running"): ResyncStatus =>
      ({ ...running(received), full: false, peer: "n3", state, startedAt: "2026-11-22T09:59:59.000Z" });
    const full = (received: number, state: ResyncStatus["state"] = "running"): ResyncStatus => ({ ...running(received), full: true, state, startedAt: "2026-11-22T10:00:01.000Z" });
    const out = new PassThrough();
    let printed = "";
    out.on("data", (d: Buffer) => (printed += d.toString()));
    // Before, it reported the catch-up's end as the resync's.
    const r = await runResync(scripted([catchUp(1), catchUp(5), catchUp(9, "done"), full(10), full(100, "done")], { started: true, running: true }), { json: true, stdout: out, pollMs: 1 });
    expect(r).toMatchObject({ state: "done", full: true, received: 100 });
    const lines = printed.trim().split("\n").map((l) => JSON.parse(l) as ResyncStatus);
    expect(lines.every((l) => l.full === true)).toBe(true);
  });

  it("joined to a resync that waits for a relay catch-up, waits too, and does not take the catch-up's end for it", async () => {
    const catchUp = (received: number, state: ResyncStatus["state"] = "running"): ResyncStatus => ({ ...running(received), full: false, peer: "n3", state });
    const full = (received: number, state: ResyncStatus["state"] = "running"): ResyncStatus => ({ ...running(received), full: true, state, startedAt: "2026-11-22T10:00:03.000Z" });
    const r = await runResync(scripted([catchUp(1), catchUp(5), catchUp(9, "done"), full(10), full(100, "done")], { started: false, running: true }), { json: true, stdout: new PassThrough(), pollMs: 1 });
    expect(r).toMatchObject({ state: "done", full: true, received: 100 });
  });

  it("follows the resync under way that the agent joined it to", async () => {
    const full = (received: number, state: ResyncStatus["state"] = "running"): ResyncStatus => ({ ...running(received), full: true, state });
    // It finished before the first look: joined, it is ours all the same.
    const r = await runResync(scripted([full(50), full(100, "done")], { started: false, running: true }), { json: true, stdout: new PassThrough(), pollMs: 1 });
    expect(r).toMatchObject({ state: "done", received: 100 });
  });

  it("prints a peer's error with its control and bidirectional characters made visible", async () => {
    const failed: ResyncStatus = { ...running(10), state: "failed", error: "peer says \u001b[2J\u001b]0;pwned\u0007\u202edone", finishedAt: "2026-11-22T10:00:05.000Z" };
    const out = new PassThrough();
    let printed = "";
    out.on("data", (d: Buffer) => (printed += d.toString()));
    await runResync(scripted([idle, failed]), { json: false, stdout: out, pollMs: 1 });
    expect(printed).toBe("resync from n2 failed after 10 changes: peer says \\x1b[2J\\x1b]0;pwned\\x07\\u202edone\n");
  });

  it("stops with an error when the agent forgets the run (it restarted), instead of following it forever", async () => {
    const r = runResync(scripted([idle, running(10), idle]), { json: true, stdout: new PassThrough(), pollMs: 1 });
    await expect(r).rejects.toThrow(/the agent no longer reports this resync \(it restarted meanwhile\?\); .*run `locmesh resync` again/);
  });
});

describe("runKamailioReload", () => {
  const idleReload = IDLE_RELOAD;
  const reload = reloadStatus;

  /** An agent's answers, one cluster.status kamailio.reload after another; the last repeats. */
  function scriptedReload(statuses: KamailioReloadStatus[]): ApiClient {
    let i = 0;
    return {
      async call<T>(method: string): Promise<T> {
        if (method !== "cluster.status") return {} as T;
        return { kamailio: { reload: statuses[Math.min(i++, statuses.length - 1)]! } } as T;
      },
      close: () => undefined,
    };
  }

  it("with --json prints the reload's own fields on each line, not a resync's", async () => {
    const out = new PassThrough();
    let printed = "";
    out.on("data", (d: Buffer) => (printed += d.toString()));
    const r = await runKamailioReload(scriptedReload([idleReload, reload(100), reload(300, "done")]), { json: true, stdout: out, pollMs: 1 });
    expect(r.state).toBe("done");
    const lines = printed.trim().split("\n").map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines.at(-1)).toEqual(reload(300, "done"));
    for (const l of lines) {
      expect(Object.keys(l)).toEqual(expect.arrayContaining(["state", "done", "total", "startedAt", "finishedAt", "error"]));
      for (const resyncField of ["peer", "received", "expected"]) expect(l).not.toHaveProperty(resyncField);
    }
  });

  it("without --json prints plain lines counting writes", async () => {
    const out = new PassThrough();
    let printed = "";
    out.on("data", (d: Buffer) => (printed += d.toString()));
    await runKamailioReload(scriptedReload([idleReload, reload(100), reload(300, "done")]), { json: false, stdout: out, pollMs: 1 });
    expect(printed.trim().split("\n")).toEqual(["kamailio reload: running, 100 of ~300 writes", "kamailio reload done: 300 writes"]);
  });

  it("follows its own whole reload, not a reload by difference under way before it, after which it runs", async () => {
    const out = new PassThrough();
    let printed = "";
    out.on("data", (d: Buffer) => (printed += d.toString()));
    const byDiff = { ...reload(50), reason: "kamailio restarted", whole: false };
    const whole = (done: number, state: KamailioReloadStatus["state"] = "running") => ({ ...reload(done, state), startedAt: "2026-11-22T10:00:09.000Z", whole: true });
    const r = await runKamailioReload(
      scriptedReload([byDiff, byDiff, { ...byDiff, state: "done", done: 300 }, whole(100), whole(300, "done")]),
      { json: false, stdout: out, pollMs: 1, startTimeoutMs: 1000 },
    );
    expect(r).toMatchObject({ state: "done", whole: true, startedAt: "2026-11-22T10:00:09.000Z" });
    expect(printed.trim().split("\n")).toEqual(["kamailio reload: running, 100 of ~300 writes", "kamailio reload done: 300 writes"]);
    // A whole one under way is joined.
    const joined = await runKamailioReload(scriptedReload([whole(100), whole(300, "done")]), { json: false, stdout: new PassThrough(), pollMs: 1 });
    expect(joined).toMatchObject({ state: "done", whole: true });
  });

  it("says which writes Kamailio refused, and makes the command fail for them (exit 1)", async () => {
    const out = new PassThrough();
    let printed = "";
    out.on("data", (d: Buffer) => (printed += d.toString()));
    const refused = { ...reload(300, "done"), refused: 2 };
    const r = await runKamailioReload(scriptedReload([idleReload, refused]), { json: false, stdout: out, pollMs: 1 });
    expect(printed.trim()).toBe('kamailio reload done: 300 writes, 2 of them REFUSED by Kamailio and skipped (the log\'s "reload skipped" lines name them)');
    expect(reloadFailure(r)?.message).toMatch(/^kamailio reload done, but Kamailio refused 2 write\(s\)/);
    expect(reloadFailure(reload(300, "done"))).toBeNull();
    expect(reloadFailure({ ...reload(10, "failed"), error: "Kamailio went away" })?.message).toBe("kamailio reload failed: Kamailio went away");
  });
});

/**
 * On a terminal the progress is a cli-progress bar, which turns the terminal's line wrapping off
 * (ESC[?7l) and redraws on a timer until stopped. Before, only a run's end stopped it: after a
 * failed poll (an agent paused: "did not answer cluster.status") the timer kept the command alive
 * (11 minutes in the review, until Ctrl-C) and the wrapping stayed off.
 */
describe("the progress bar on a terminal", () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  /** cluster.status answers `answers` in turn (a function throws), then keeps failing as the last one. */
  function failingAgent(answers: (() => unknown)[]): ApiClient {
    let i = 0;
    return {
      async call<T>(method: string): Promise<T> {
        if (method !== "cluster.status") return { started: true } as T;
        return answers[Math.min(i++, answers.length - 1)]!() as T;
      },
      close: () => undefined,
    };
  }
  const paused = () => {
    throw new AgentUnreachableError("the locmesh agent or hub at http://127.0.0.1:7180 did not answer cluster.status within 10000 ms");
  };

  it.each([
    ["a resync", "resync from n2 [", (client: ApiClient, out: PassThrough) => runResync(client, { json: false, stdout: out, pollMs: 1 }),
      [() => ({ resync: idle }), () => ({ resync: running(10) }), () => ({ resync: running(20) }), paused]],
    ["a kamailio reload", "kamailio reload [", (client: ApiClient, out: PassThrough) => runKamailioReload(client, { json: false, stdout: out, pollMs: 1 }),
      [() => ({ kamailio: { reload: IDLE_RELOAD } }), () => ({ kamailio: { reload: reloadStatus(100) } }), paused]],
  ] as const)("%s: a poll that fails stops the bar, restores line wrapping and leaves no redraw timer behind", async (_what, bar, follow, answers) => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout"] });
    const { out, printed } = terminalStream();
    await expect(follow(failingAgent([...answers]), out)).rejects.toBeInstanceOf(AgentUnreachableError);
    expect(printed()).toContain(bar);
    expect(wrapRestored(printed())).toBe(true);
    expect(vi.getTimerCount()).toBe(0);
  });

  it("Ctrl-C (the signal) stops following at once, even while a poll waits for the agent, and puts the bar away", async () => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout"] });
    const { out, printed } = terminalStream();
    const stop = new AbortController();
    let polls = 0;
    const client: ApiClient = {
      async call<T>(method: string): Promise<T> {
        if (method !== "cluster.status") return { started: true } as T;
        if (++polls === 1) return { resync: idle } as T;
        if (polls <= 3) return { resync: running(polls * 10) } as T;
        stop.abort(); // Ctrl-C while this poll waits for an agent that never answers
        return new Promise<T>(() => undefined);
      },
      close: () => undefined,
    };
    const r = runResync(client, { json: false, stdout: out, pollMs: 1, signal: stop.signal });
    await expect(r).rejects.toBeInstanceOf(FollowStopped);
    await expect(r).rejects.toThrow(/^stopped following; the resync goes on in the agent \(Ctrl-C does not stop it\): follow it with `locmesh status`$/);
    expect(wrapRestored(printed())).toBe(true);
    expect(vi.getTimerCount()).toBe(0);
  }, 5000);
});
