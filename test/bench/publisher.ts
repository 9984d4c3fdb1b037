/**
 * Bulk load through an agent's local API: `location.publish` requests of `batchSize` edits, at
 * most `inFlight` of them unanswered at any time on one WebSocket (how a registrar integration
 * with a send queue would drive it).
 */
import { ApiMethod, type PublishResult } from "../../agent/contract/api-protocol.js";
import { bindingEdit } from "./workload.js";
import type { WsRpcClient } from "./ws-client.js";

export interface BulkPlan {
  prefix: string;
  count: number;
  batchSize: number;
  nowSec: number;
}

/** The params of each publish request, serialised; lazily, so a million edits need not sit in memory. */
export function* publishFrames(plan: BulkPlan): Generator<string> {
  for (let from = 0; from < plan.count; from += plan.batchSize) {
    const edits = [];
    for (let i = from; i < Math.min(plan.count, from + plan.batchSize); i++) edits.push(bindingEdit(plan.prefix, i, plan.nowSec));
    yield JSON.stringify({ edits });
  }
}

export interface BulkOutcome {
  requests: number;
  accepted: number;
  /** performance.now() when the first request left and when the last answer came back. */
  firstSentAt: number;
  lastAnsweredAt: number;
}

export async function publishBulk(
  client: WsRpcClient,
  frames: Iterable<string>,
  opts: { inFlight: number; onProgress?: (accepted: number) => void },
): Promise<BulkOutcome> {
  const it = frames[Symbol.iterator]();
  let requests = 0;
  let accepted = 0;
  let outstanding = 0;
  let exhausted = false;
  let failure: Error | null = null;
  const firstSentAt = performance.now();
  let lastAnsweredAt = firstSentAt;

  return new Promise<BulkOutcome>((resolve, reject) => {
    const finishIfDone = () => {
      if (outstanding > 0 || !(exhausted || failure)) return;
      if (failure) reject(failure);
      else resolve({ requests, accepted, firstSentAt, lastAnsweredAt });
    };
    const fill = () => {
      while (!exhausted && !failure && outstanding < opts.inFlight) {
        const next = it.next();
        if (next.done) {
          exhausted = true;
          break;
        }
        outstanding++;
        requests++;
        client.sendJson(ApiMethod.LocationPublish, next.value, (error, result) => {
          outstanding--;
          lastAnsweredAt = performance.now();
          if (error) failure ??= new Error(`location.publish failed: ${error.code} ${error.message}`);
          else {
            accepted += (result as PublishResult).accepted;
            opts.onProgress?.(accepted);
          }
          fill();
          finishIfDone();
        });
      }
      finishIfDone();
    };
    fill();
  });
}
