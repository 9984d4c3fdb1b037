/**
 * A peer's batches that are queued or being applied here, by range. A sender whose request timed
 * out (mesh.requestTimeoutMs, 15 s by default, while a hub's statement may take up to its
 * postgres.queryTimeoutMs, 30 s) sends the same range again; queued behind the first, every resend
 * was applied once more, one after another, so a stall of the store doubled the load that followed
 * it and could keep requests timing out (found by the replication-core audit). A resend of a range
 * still queued or running now waits for the first one's answer instead, under its own id.
 */
import { PeerMethod } from "../contract/protocol.js";
import type { RpcAnswer } from "../rpc/server.js";

export interface BatchesInFlight {
  /** The range a batch request is for, or null for any other frame (a notification, another method, a malformed one). */
  rangeOf(frame: unknown): string | null;
  /** The answer to the same range's request still queued or running, if any. */
  pending(range: string): Promise<RpcAnswer> | undefined;
  /** The first request for `range` was queued; `answer` settles with its answer. */
  track(range: string, answer: Promise<RpcAnswer>): void;
}

export function createBatchesInFlight(): BatchesInFlight {
  const byRange = new Map<string, Promise<RpcAnswer>>();
  return {
    rangeOf(frame) {
      if (typeof frame !== "object" || frame === null) return null;
      const f = frame as { method?: unknown; id?: unknown; params?: { origin?: unknown; after?: unknown; upTo?: unknown } };
      if (f.method !== PeerMethod.Batch || f.id === undefined || f.id === null || typeof f.params !== "object" || f.params === null) return null;
      const { origin, after, upTo } = f.params;
      if (typeof origin !== "string" || !Number.isSafeInteger(after) || !Number.isSafeInteger(upTo)) return null;
      return `${origin} ${after as number} ${upTo as number}`;
    },
    pending: (range) => byRange.get(range),
    track(range, answer) {
      const shared = answer.catch(() => null);
      byRange.set(range, shared);
      void shared.then(() => {
        if (byRange.get(range) === shared) byRange.delete(range);
      });
    },
  };
}
