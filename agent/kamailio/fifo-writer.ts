/**
 * Writes requests into Kamailio's request FIFO (`fifo_name`), one whole request at a time.
 *
 * The FIFO is opened per request with O_WRONLY|O_NONBLOCK, so a dead Kamailio shows at once:
 * ENOENT when the FIFO is gone (clean shutdown unlinks it), ENXIO when it exists but nobody reads it
 * (kill -9 leaves it behind). Opening per request also follows a Kamailio restart, which unlinks and
 * recreates the FIFO (jsonrpcs_fifo.c jsonrpc_init_fifo_file). Writes are synchronous on a
 * non-blocking fd: they never block the event loop and never interleave with each other. Writes of up
 * to PIPE_BUF (4096) bytes are atomic in the kernel too; a larger one may be cut short when the pipe is
 * nearly full, and then the rest must follow before anything else, or Kamailio's reader loses the
 * framing (kamailio-5.6.md §1.3).
 */
import { closeSync, constants, fstatSync, openSync, writeSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import { KamailioUnavailableError } from "./jsonrpcs-wire.js";

/** Enough spaces to overflow the reader's 8192-byte buffer from any state, which resets it (surprise 2). */
export const RESYNC_SPACES = 8200;
const RETRY_PARTIAL_MS = 2;

export interface FifoWriter {
  /** Writes the whole buffer or throws KamailioUnavailableError (nothing written unless `code` is EPARTIAL). */
  write(buf: Buffer, deadlineMs: number): Promise<void>;
  /** Writes RESYNC_SPACES spaces; the caller then sends a small probe, which absorbs the leftover. */
  writeResyncSpaces(deadlineMs: number): Promise<void>;
}

export function createFifoWriter(deps: { fifoPath: string; nowMs?: () => number }): FifoWriter {
  const nowMs = deps.nowMs ?? Date.now;
  // Set while the tail of a cut-short write is pending; later writes queue behind it.
  let busy: Promise<void> = Promise.resolve();
  let tailPending = false;

  function openRequestFifo(): number {
    let fd: number;
    try {
      fd = openSync(deps.fifoPath, constants.O_WRONLY | constants.O_NONBLOCK);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? "EIO";
      const why =
        code === "ENOENT" ? "does not exist (Kamailio is not running, or fifo_name points elsewhere)"
        // A Kamailio killed leaves its FIFO behind; one starting makes (or keeps) it some
        // milliseconds before its FIFO process opens it.
        : code === "ENXIO" ? "has no reader (Kamailio is not running: it was killed or crashed and left the FIFO behind; or it is starting and has not opened it yet)"
        : `cannot be opened (${code})`;
      throw new KamailioUnavailableError(code, `Kamailio FIFO ${deps.fifoPath} ${why}`, { cause: err });
    }
    // A regular file in its place (a FIFO replaced, a wrong fifo_name) would take every request and never answer.
    if (!fstatSync(fd).isFIFO()) {
      closeSync(fd);
      throw new KamailioUnavailableError("ENOTFIFO", `${deps.fifoPath} is not a FIFO (a regular file or something else is there): check jsonrpcs' fifo_name and kamailio.fifo, and remove what is in its place so that Kamailio makes its FIFO again at start`);
    }
    return fd;
  }

  /** Writes what the pipe takes now; returns the number of bytes written. */
  function writeNow(fd: number, buf: Buffer, offset: number): number {
    try {
      return writeSync(fd, buf, offset, buf.length - offset);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === "EAGAIN" || code === "EWOULDBLOCK") return 0;
      throw new KamailioUnavailableError(code ?? "EIO", `writing to Kamailio FIFO ${deps.fifoPath} failed (${code})`, { cause: err });
    }
  }

  async function writeRest(fd: number, buf: Buffer, offset: number, deadlineMs: number): Promise<void> {
    let off = offset;
    while (off < buf.length) {
      if (nowMs() > deadlineMs) {
        throw new KamailioUnavailableError("EPARTIAL", `Kamailio FIFO ${deps.fifoPath} stayed full; ${off} of ${buf.length} bytes written, framing needs a resync`);
      }
      await sleep(RETRY_PARTIAL_MS);
      off += writeNow(fd, buf, off);
    }
  }

  async function write(buf: Buffer, deadlineMs: number): Promise<void> {
    while (tailPending) await busy.catch(() => undefined);
    const fd = openRequestFifo();
    let closeNow = true;
    try {
      const n = writeNow(fd, buf, 0);
      if (n === 0) {
        // A full pipe (64 KiB of unread requests) means Kamailio is far behind or stuck; back off.
        throw new KamailioUnavailableError("EAGAIN", `Kamailio FIFO ${deps.fifoPath} is full: Kamailio is not reading requests; retry later`);
      }
      if (n < buf.length) {
        closeNow = false;
        tailPending = true;
        busy = writeRest(fd, buf, n, deadlineMs).finally(() => {
          tailPending = false;
          closeSync(fd);
        });
        await busy;
      }
    } finally {
      if (closeNow) closeSync(fd);
    }
  }

  return {
    write,
    writeResyncSpaces: (deadlineMs) => write(Buffer.alloc(RESYNC_SPACES, 0x20), deadlineMs),
  };
}
