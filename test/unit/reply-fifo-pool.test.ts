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
});
