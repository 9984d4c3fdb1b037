/**
 * The bulk channel's flow control (evapi-bulk.ts): calls queue up and go out in chunks, each closed
 * by an ack frame, with at most `maxInFlight` bytes written and not yet acked (evapi 5.6.3 must
 * get everything unacked in one read, see evapi-bulk.ts's header). An ack settles its chunk's calls;
 * one out of order, or one that does not come within `ackTimeoutMs`, breaks the channel.
 */
import { KamailioProtocolError, KamailioUnavailableError } from "./jsonrpcs-wire.js";

export interface PendingCall {
  id: number;
  method: string;
  /** The request as a netstring, and its length in bytes (frames are written as text, a chunk at a time). */
  frame: string;
  bytes: number;
  settled: boolean;
  resolve(v: unknown): void;
  reject(e: Error): void;
}

interface Chunk {
  seq: number;
  calls: PendingCall[];
  bytes: number;
  timer: NodeJS.Timeout;
}

/** Room kept in a chunk for its ack frame (`<len>:locmesh-ack:<seq>,`). */
const ACK_RESERVE = 32;

export interface BulkWindow {
  /** Queues a call: it goes out in a chunk on a later turn of the event loop. */
  push(call: PendingCall): void;
  /** The include acked chunk `seq`: its calls succeed. A seq other than the oldest chunk's breaks the channel. */
  acked(seq: unknown): void;
  /** The call with JSON-RPC id `id`, while it is not acked. */
  call(id: number): PendingCall | undefined;
  /** Every call not yet acked fails with `err`: the sent ones, then the queued ones. */
  failPending(err: Error): void;
  /** Calls sent and not yet acked, and calls queued. */
  unacked(): number;
  queued(): number;
}

/** Fails `call` with `err` unless it is settled already. */
export function failCall(call: PendingCall, err: Error): void {
  if (call.settled) return;
  call.settled = true;
  call.reject(err);
}

export function createBulkWindow(deps: {
  maxInFlight: number;
  /** Requests per chunk are added until the chunk reaches this many bytes. */
  chunkBytes: number;
  ackTimeoutMs: number;
  /** The netstring that asks the include to ack chunk `seq`, and its length in bytes. */
  ackFrame(seq: number): { frame: string; bytes: number };
  /** Writes one chunk's frames. */
  write(text: string): void;
  /** Why the channel broke; null while it works (nothing is sent after). */
  broken(): Error | null;
  breakChannel(err: Error): void;
  /** A chunk was written (for stats). */
  onChunk(): void;
}): BulkWindow {
  const { maxInFlight, chunkBytes } = deps;
  const queue: PendingCall[] = [];
  const inFlight: Chunk[] = [];
  const byId = new Map<number, PendingCall>();
  let bytesInFlight = 0;
  /** Bytes of the calls queued and not yet sent. */
  let queuedBytes = 0;
  let nextSeq = 1;
  let flushQueued = false;

  function schedule(): void {
    if (flushQueued) return;
    flushQueued = true;
    // Calls made in one turn of the event loop share chunks.
    setImmediate(() => {
      flushQueued = false;
      pump();
    });
  }

  /**
   * Sends full chunks while one more fits under `maxBytesInFlight`. A chunk smaller than
   * `chunkBytes` goes only when nothing is in flight (as Nagle's algorithm does): otherwise the
   * next ack sends it, fuller. Every chunk costs an ack route and a write on both sides.
   */
  function pump(): void {
    while (deps.broken() === null && queue.length > 0 && (inFlight.length === 0 || (queuedBytes >= chunkBytes && bytesInFlight + chunkBytes <= maxInFlight))) {
      const calls: PendingCall[] = [];
      let text = "";
      let bytes = 0;
      while (queue.length > 0) {
        const next = queue[0]!;
        // The ack frame must fit too: chunks of exactly chunkBytes tile maxBytesInFlight.
        if (calls.length > 0 && bytes + next.bytes + ACK_RESERVE > chunkBytes) break;
        queue.shift();
        queuedBytes -= next.bytes;
        calls.push(next);
        text += next.frame;
        bytes += next.bytes;
      }
      const seq = nextSeq++;
      const ack = deps.ackFrame(seq);
      text += ack.frame;
      bytes += ack.bytes;
      const timer = setTimeout(() => deps.breakChannel(new KamailioUnavailableError("ETIMEDOUT", `Kamailio did not ack chunk ${seq} of the evapi bulk channel within ${deps.ackTimeoutMs} ms`)), deps.ackTimeoutMs);
      inFlight.push({ seq, calls, bytes, timer });
      bytesInFlight += bytes;
      deps.onChunk();
      // One encoding and one buffer per chunk, not per request.
      deps.write(text);
    }
  }

  return {
    push(call) {
      byId.set(call.id, call);
      queue.push(call);
      queuedBytes += call.bytes;
      schedule();
    },
    acked(seq) {
      const oldest = inFlight[0];
      if (oldest === undefined || seq !== oldest.seq) {
        // A frame went missing (see the header): nothing from here back can be trusted to have run.
        deps.breakChannel(new KamailioProtocolError(`the evapi bulk channel acked chunk ${String(seq)} while chunk ${oldest?.seq ?? "none"} was due`));
        return;
      }
      inFlight.shift();
      clearTimeout(oldest.timer);
      bytesInFlight -= oldest.bytes;
      for (const call of oldest.calls) {
        byId.delete(call.id);
        if (!call.settled) {
          call.settled = true;
          call.resolve({});
        }
      }
      // Not at once: the callers' next calls (their continuations run after this) join the chunk.
      schedule();
    },
    call: (id) => byId.get(id),
    failPending(err) {
      for (const chunk of inFlight.splice(0)) {
        clearTimeout(chunk.timer);
        for (const call of chunk.calls) failCall(call, err);
      }
      for (const call of queue.splice(0)) failCall(call, err);
      queuedBytes = 0;
      bytesInFlight = 0;
      byId.clear();
    },
    unacked: () => inFlight.reduce((n, c) => n + c.calls.length, 0),
    queued: () => queue.length,
  };
}
