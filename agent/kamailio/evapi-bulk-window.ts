/**
 * The bulk channel's flow control (evapi-bulk.ts): calls queue up and go out in chunks (a batch
 * frame, or the requests' frames closed by an ack frame: encodeChunk), with at most `maxInFlight`
 * bytes written and not yet acked (evapi 5.6.3 must get everything unacked in one read, see
 * evapi-bulk.ts's header). An ack settles its chunk's calls; one out of order, or one that does not
 * come within `ackTimeoutMs`, breaks the channel. Seqs start at a random number, so that answers
 * meant for an earlier channel in the same evapi slot (still queued in Kamailio's async workers when
 * it closed) are told apart and ignored.
 */
import { randomInt } from "node:crypto";
import { KamailioProtocolError, KamailioUnavailableError } from "./jsonrpcs-wire.js";

export interface PendingCall {
  id: number;
  method: string;
  /** The JSON-RPC request, and its length in UTF-8 bytes (frames are encoded a chunk at a time). */
  body: string;
  bodyBytes: number;
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

/** Room kept in a chunk for its ack frame or batch header (`<len>:locmesh-ack:<seq>,`). */
const ACK_RESERVE = 40;
/** A request's framing, at most: a netstring's length, colon and comma (a batch line takes 1). */
const FRAMING = 8;
/** Where a channel's seqs start: random, below 2^30 so they stay exact and fit Kamailio's int. */
export const randomStart = (): number => randomInt(1, 2 ** 30);

export interface BulkWindow {
  /** Queues a call: it goes out in a chunk on a later turn of the event loop. */
  push(call: PendingCall): void;
  /**
   * The include acked chunk `seq`, saying it ran `ran` of its requests (batch frames): its calls
   * succeed. A seq this channel has sent, other than the oldest chunk's (in order), or a batch not
   * run in full, breaks the channel; a seq it never sent is foreign (false), and changes nothing.
   */
  acked(seq: unknown, ran?: unknown): boolean;
  /** Whether this channel sent chunk `seq` (an answer naming another is meant for an earlier channel). */
  sent(seq: number): boolean;
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
  /** Requests per chunk are added until the chunk reaches this many bytes, or this many requests. */
  chunkBytes: number;
  maxCalls: number;
  ackTimeoutMs: number;
  /**
   * Whether chunks are acked in the order sent (an include that runs each request as its frame
   * comes). Batch frames run on several Kamailio processes and are acked as each finishes.
   */
  inOrder(): boolean;
  /** Chunk `seq` as written (ending in what asks the include to ack it), and its length in bytes. */
  encodeChunk(seq: number, calls: readonly PendingCall[]): { text: string; bytes: number };
  /** Writes one chunk's frames. */
  write(text: string): void;
  /** Why the channel broke; null while it works (nothing is sent after). */
  broken(): Error | null;
  breakChannel(err: Error): void;
  /** A chunk was written (for stats). */
  onChunk(): void;
}): BulkWindow {
  const { maxInFlight, chunkBytes, maxCalls } = deps;
  const queue: PendingCall[] = [];
  const inFlight: Chunk[] = [];
  const byId = new Map<number, PendingCall>();
  let bytesInFlight = 0;
  /** Bytes of the calls queued and not yet sent. */
  let queuedBytes = 0;
  const firstSeq = randomStart();
  let nextSeq = firstSeq;
  const sent = (seq: number): boolean => seq >= firstSeq && seq < nextSeq;
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
   * Sends full chunks (`chunkBytes`, or `maxCalls` requests) while one more fits under
   * `maxBytesInFlight`. A chunk less than full goes only when nothing is in flight (as Nagle's
   * algorithm does): otherwise the next ack sends it, fuller. Every chunk costs an ack route and a write on both sides.
   */
  function pump(): void {
    while (deps.broken() === null && queue.length > 0 && (inFlight.length === 0 || ((queuedBytes >= chunkBytes || queue.length >= maxCalls) && bytesInFlight + chunkBytes <= maxInFlight))) {
      const calls: PendingCall[] = [];
      let packed = 0;
      while (queue.length > 0 && calls.length < maxCalls) {
        const next = queue[0]!;
        // The ack frame must fit too: chunks of exactly chunkBytes tile maxBytesInFlight.
        if (calls.length > 0 && packed + next.bodyBytes + FRAMING + ACK_RESERVE > chunkBytes) break;
        queue.shift();
        queuedBytes -= next.bodyBytes + FRAMING;
        calls.push(next);
        packed += next.bodyBytes + FRAMING;
      }
      const seq = nextSeq++;
      const { text, bytes } = deps.encodeChunk(seq, calls);
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
      queuedBytes += call.bodyBytes + FRAMING;
      schedule();
    },
    acked(seq, ran) {
      if (typeof seq !== "number" || !sent(seq)) return false;
      const at = inFlight.findIndex((c) => c.seq === seq);
      const chunk = inFlight[at];
      if (chunk === undefined || (at > 0 && deps.inOrder())) {
        // A frame went missing (see the header): nothing from here back can be trusted to have run.
        deps.breakChannel(new KamailioProtocolError(`the evapi bulk channel acked chunk ${String(seq)} while chunk ${inFlight[0]?.seq ?? "none"} was due`));
        return true;
      }
      const wanted = chunk.calls.length;
      if (!deps.inOrder() && ran !== wanted) {
        // The worker's loop stopped early (max_while_loops): the calls after it never ran.
        deps.breakChannel(new KamailioProtocolError(`Kamailio ran ${String(ran)} of the ${wanted} requests of batch ${seq} on the evapi bulk channel (is the cfg's max_while_loops below ${wanted}?)`));
        return true;
      }
      inFlight.splice(at, 1);
      clearTimeout(chunk.timer);
      bytesInFlight -= chunk.bytes;
      for (const call of chunk.calls) {
        byId.delete(call.id);
        if (!call.settled) {
          call.settled = true;
          call.resolve({});
        }
      }
      // Not at once: the callers' next calls (their continuations run after this) join the chunk.
      schedule();
      return true;
    },
    sent,
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
