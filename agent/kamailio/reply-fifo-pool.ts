/**
 * A small pool of reply FIFOs in Kamailio's `fifo_reply_dir`, one per request in flight.
 *
 * Node has no mkfifo(3), so each FIFO costs one `mkfifo` process (about 2 ms); reusing them keeps
 * that off the per-call path. A FIFO is reused only after its own reply was read to EOF. One whose
 * call timed out is unlinked and never reused: Kamailio may still answer that call later, and by
 * then the name is gone, so its open() fails with ENOENT at once instead of writing a stale reply
 * into the next caller's FIFO (jsonrpcs_fifo.c jsonrpc_open_reply_fifo retries only on ENXIO).
 */
import { execFileSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { chownSync, lstatSync, readdirSync, unlinkSync } from "node:fs";
import { join } from "node:path";

/** Kamailio builds `fifo_reply_dir + reply_name` in a 128-byte buffer, NUL included (doc §1.3). */
const KAMAILIO_MAX_REPLY_PATH = 127;

export interface ReplySlot {
  /** Bare name sent as `reply_name`. */
  readonly name: string;
  readonly path: string;
}

export interface ReplyFifoPool {
  /** A free FIFO, a new one while under `max`, or the next one released. */
  acquire(): Promise<ReplySlot>;
  release(slot: ReplySlot): void;
  /** Unlinks a FIFO that must not be reused. */
  discard(slot: ReplySlot): void;
  /** Unlinks every FIFO of the pool; waiting acquirers are rejected. */
  close(): void;
}

export interface ReplyFifoPoolOptions {
  dir: string;
  max: number;
  /** Names are `<prefix>_<pid>_<pool>_<n>`: no '.', '/' or '\', which Kamailio refuses. */
  prefix?: string;
  /** mkfifo mode. Kamailio must be able to write it; see fifo-client.ts. */
  mode?: number;
  /**
   * Give each FIFO to this user and group after making it (root only): `locmesh check` run as
   * root gives its reply FIFOs to the owner of Kamailio's request FIFO, who can then write them
   * whatever their mode.
   */
  chownTo?: { uid: number; gid: number };
  pid?: number;
  /**
   * Whose FIFOs (the node id). Its hash starts the pool tag, so that FIFOs of this owner and this
   * pid that no pool of this process made are known to be a previous life's (an agent running as
   * PID 1 in a container has that pid after every restart) and removed; another agent with the same
   * pid sharing the directory (PID 1 in another container) has another owner and keeps its own.
   * Without an owner, FIFOs of this pid are left alone.
   */
  owner?: string;
}

export function createReplyFifoPool(opts: ReplyFifoPoolOptions): ReplyFifoPool {
  const prefix = opts.prefix ?? "locmesh";
  const pid = opts.pid ?? process.pid;
  const mode = (opts.mode ?? 0o600).toString(8);
  if (!/^[A-Za-z0-9_-]+$/.test(prefix)) throw new Error(`reply FIFO prefix "${prefix}" may only hold letters, digits, '_' and '-'`);
  // A random pool tag keeps two clients in one process (tests, benches) from sharing names.
  // 32 bits of the owner's hash: two node ids share a mark about once in four billion pairs.
  const ownerMark = opts.owner === undefined ? null : createHash("sha256").update(opts.owner).digest("hex").slice(0, 8);
  const tag = `${ownerMark ?? randomBytes(4).toString("hex")}${randomBytes(2).toString("hex")}`;
  const longest = join(opts.dir, `${prefix}_${pid}_${tag}_${Number.MAX_SAFE_INTEGER}`);
  if (Buffer.byteLength(longest) > KAMAILIO_MAX_REPLY_PATH) {
    throw new Error(`reply FIFO path ${longest} may exceed Kamailio's 127-byte limit; use a shorter fifo_reply_dir`);
  }
  removeStale(opts.dir, prefix, pid, ownerMark);
  livePools.add(`${pid}_${tag}`);

  const free: ReplySlot[] = [];
  const all = new Set<ReplySlot>();
  const waiters: { resolve: (s: ReplySlot) => void; reject: (e: Error) => void }[] = [];
  let counter = 0;
  let closed = false;

  function create(): ReplySlot {
    const name = `${prefix}_${pid}_${tag}_${++counter}`;
    const path = join(opts.dir, name);
    rmIfExists(path);
    try {
      execFileSync("mkfifo", ["-m", mode, path], { stdio: ["ignore", "ignore", "pipe"] });
    } catch (err) {
      const stderr = String((err as { stderr?: unknown }).stderr ?? "").trim();
      throw new Error(`cannot create reply FIFO ${path}: ${stderr || (err as Error).message}; check fifo_reply_dir exists and is writable`, { cause: err });
    }
    if (opts.chownTo) chownSync(path, opts.chownTo.uid, opts.chownTo.gid);
    const slot = { name, path };
    all.add(slot);
    return slot;
  }

  function handOut(slot: ReplySlot): void {
    const w = waiters.shift();
    if (w) w.resolve(slot);
    else free.push(slot);
  }

  return {
    async acquire() {
      if (closed) throw new Error("reply FIFO pool is closed");
      const slot = free.pop();
      if (slot) return slot;
      if (all.size < opts.max) return create();
      return new Promise<ReplySlot>((resolve, reject) => waiters.push({ resolve, reject }));
    },
    release(slot) {
      if (closed || !all.has(slot)) return;
      handOut(slot);
    },
    // Called from a timed-out call's timer: it must not throw, or the agent would crash (say the
    // reply directory was removed under it). A replacement that cannot be made fails the waiter
    // it was for, with the reason.
    discard(slot) {
      if (!all.delete(slot)) return;
      try {
        rmIfExists(slot.path);
      } catch {
        // The name is dropped from the pool either way; a FIFO left behind is removed as stale later.
      }
      if (closed || waiters.length === 0) return;
      try {
        handOut(create());
      } catch (err) {
        waiters.shift()!.reject(err as Error);
      }
    },
    close() {
      closed = true;
      livePools.delete(`${pid}_${tag}`);
      for (const w of waiters.splice(0)) w.reject(new Error("reply FIFO pool closed"));
      for (const slot of all) rmIfExists(slot.path);
      all.clear();
      free.length = 0;
    },
  };
}

function rmIfExists(path: string): void {
  try {
    unlinkSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
  }
}

/** The pools open in this process, as `<pid>_<tag>`: FIFOs of our own pid but another tag are a previous life's. */
const livePools = new Set<string>();

/**
 * Removes reply FIFOs left by earlier agent processes that are gone (kill -9 skips close()). One
 * that had this process's own pid and owner is gone too unless a pool of this process made it: an
 * agent that runs as PID 1 in a container has the same pid after every restart (owner above).
 */
function removeStale(dir: string, prefix: string, ownPid: number, ownerMark: string | null): void {
  const re = new RegExp(`^${prefix}_(\\d+)_([0-9a-f]+)_\\d+$`);
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return;
  }
  for (const name of names) {
    const m = re.exec(name);
    if (!m) continue;
    const pid = Number(m[1]);
    const tag = m[2]!;
    const gone = pid === ownPid
      ? ownerMark !== null && tag.startsWith(ownerMark) && !livePools.has(`${pid}_${tag}`)
      : !isAlive(pid);
    if (!gone) continue;
    const path = join(dir, name);
    try {
      if (lstatSync(path, { throwIfNoEntry: false })?.isFIFO()) rmIfExists(path);
    } catch {
      // Another user's, in a sticky folder such as /tmp (EPERM): it stays, and no name is shared with it.
    }
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}
