import { PassThrough } from "node:stream";
import { describe, expect, it } from "vitest";
import type { ResyncStatus } from "../../agent/contract/protocol.js";
import type { ApiClient } from "../../agent/cli/api-client.js";
import { runResync } from "../../agent/cli/resync-progress.js";

const idle: ResyncStatus = { state: "idle", peer: null, received: 0, expected: 0, startedAt: null, finishedAt: null, error: null };
const running = (received: number): ResyncStatus => ({ ...idle, state: "running", peer: "n2", received, expected: 100, startedAt: "2026-11-22T10:00:00.000Z" });

/** An agent's answers, one cluster.status resync after another; the last repeats. */
function scripted(statuses: ResyncStatus[]): ApiClient {
  let i = 0;
  return {
    async call<T>(method: string): Promise<T> {
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

  it("stops with an error when the agent forgets the run (it restarted), instead of following it forever", async () => {
    const r = runResync(scripted([idle, running(10), idle]), { json: true, stdout: new PassThrough(), pollMs: 1 });
    await expect(r).rejects.toThrow(/the agent no longer reports this resync \(it restarted meanwhile\?\); .*run `locmesh resync` again/);
  });
});
