import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { createReplyFifoPool } from "../../agent/kamailio/reply-fifo-pool.js";

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe("reply FIFO pool", () => {
  it("reuses a released FIFO, replaces a discarded one for a waiter, and never throws from discard", async () => {
    const dir = mkdtempSync(join(tmpdir(), "lmrf-"));
    dirs.push(dir);
    const pool = createReplyFifoPool({ dir, max: 1, pid: 4242 });
    const a = await pool.acquire();
    expect(existsSync(a.path)).toBe(true);
    pool.release(a);
    expect(await pool.acquire()).toBe(a);

    // A caller waits for the only FIFO; its call times out and it is discarded: a new one goes to the waiter.
    const waiting = pool.acquire();
    pool.discard(a);
    const b = await waiting;
    expect(b.path).not.toBe(a.path);
    expect(existsSync(a.path)).toBe(false);

    // The reply directory disappears (a /tmp cleaner): discarding must not throw, and the waiter
    // learns why it gets no FIFO.
    const next = pool.acquire();
    rmSync(dir, { recursive: true, force: true });
    expect(() => pool.discard(b)).not.toThrow();
    await expect(next).rejects.toThrow(/cannot create reply FIFO .*check fifo_reply_dir exists and is writable/);
    pool.close();
  });

  it("removes the FIFOs a previous life of this agent left with the same pid (PID 1 in a container), and no one else's", async () => {
    const dir = mkdtempSync(join(tmpdir(), "lmrf-"));
    dirs.push(dir);
    const fifo = (name: string) => {
      execFileSync("mkfifo", [join(dir, name)]);
      return join(dir, name);
    };
    // A pool of agent n1 as PID 1, open in this process: its tag begins with n1's mark.
    const before = createReplyFifoPool({ dir, max: 1, pid: 1, owner: "n1" });
    const earlierLife = (await before.acquire()).path;
    const mark = /locmesh_1_([0-9a-f]{8})[0-9a-f]{4}_/.exec(earlierLife)![1]!;
    // What n1's previous life, killed before its close(), left: the same pid and mark, another tag.
    const stale = fifo(`locmesh_1_${mark}ffff_3`);
    // Another agent (n2), PID 1 in another container sharing the directory, and a live process's.
    const otherAgent = fifo(`locmesh_1_${mark === "00000000" ? "11111111" : "00000000"}aaaa_1`);
    const otherRunning = fifo(`locmesh_${process.ppid}_0badc0de_1`);
    const first = createReplyFifoPool({ dir, max: 1, pid: 1, owner: "n1" });
    expect(existsSync(stale)).toBe(false);
    expect(existsSync(earlierLife)).toBe(true); // its pool is open in this process
    expect(existsSync(otherAgent)).toBe(true);
    expect(existsSync(otherRunning)).toBe(true);
    const held = await first.acquire();
    // A second pool of the same owner in this process leaves the first one's alone.
    const second = createReplyFifoPool({ dir, max: 1, pid: 1, owner: "n1" });
    expect(existsSync(held.path)).toBe(true);
    second.close();
    first.close();
    before.close();
  });
});
