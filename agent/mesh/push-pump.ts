/**
 * Streams this replica's own changes to one peer: up to `window` batches in flight, each
 * acknowledged only once the peer has it on disk, each retried with back-off (p-retry) while the
 * failure is transient. Where it starts and what it skips follow the peer's version vector, which
 * acknowledgements and the peer's status notifications keep current.
 */
import pRetry, { AbortError } from "p-retry";
import type { BatchParams, BatchResult } from "../contract/protocol.js";
import type { VersionVector } from "../contract/records.js";
import { nextBatch } from "../core/outbound.js";
import type { Replica } from "../core/replica.js";
import { isTransient } from "../core/transient.js";
import type { Logger } from "../ops/logger.js";
import type { Metrics } from "../ops/metrics.js";
import { toRpcError } from "../rpc/server.js";

export interface PushPumpDeps {
  replica: Replica;
  peerId: string;
  /** The peer's version vector; the pump raises our own entry in it as acks arrive. */
  peerVector: VersionVector;
  send(batch: BatchParams): Promise<BatchResult>;
  /** False once the session is closing: the pump stops. */
  isOpen(): boolean;
  signal: AbortSignal;
  /** The peer refused a batch for good (not a transient failure). */
  onRejected(reason: string): void;
  options: { batchSize: number; window: number; retry: { minMs: number; maxMs: number } };
  log: Logger;
  metrics: Metrics;
  nowMs: () => number;
}

export interface PushPump {
  /** Send whatever the peer is missing; cheap to call on every commit. */
  wake(): void;
  close(): void;
}

export function createPushPump(deps: PushPumpDeps): PushPump {
  const { replica, peerVector, options, metrics, log } = deps;
  const self = replica.replicaId;
  const labels = { peer: deps.peerId };
  let sentUpTo = -1;
  let inflight = 0;
  let pumping = false;
  let again = false;

  const acked = () => peerVector[self] ?? 0;

  function wake(): void {
    if (!deps.isOpen()) return;
    if (pumping) {
      again = true;
      return;
    }
    pumping = true;
    void fillWindow()
      .catch((err: unknown) => log.error({ err }, "push pump failed"))
      .finally(() => {
        pumping = false;
        if (again) {
          again = false;
          wake();
        }
      });
  }

  async function fillWindow(): Promise<void> {
    // With nothing in flight, anything sent but not acknowledged (a gap at the peer) goes again.
    if (sentUpTo < 0 || (inflight === 0 && sentUpTo > acked())) sentUpTo = acked();
    while (deps.isOpen() && inflight < options.window) {
      const have = (await replica.versionVector())[self] ?? 0;
      const batch = await nextBatch(replica.store, self, sentUpTo, have, options.batchSize);
      if (!batch) return;
      sentUpTo = batch.upTo;
      inflight++;
      void deliver(batch).finally(() => {
        inflight--;
        wake();
      });
    }
  }

  async function deliver(batch: BatchParams): Promise<void> {
    const started = deps.nowMs();
    try {
      const res = await pRetry(() => deps.send(batch), {
        retries: Number.POSITIVE_INFINITY,
        minTimeout: options.retry.minMs,
        maxTimeout: options.retry.maxMs,
        randomize: true,
        signal: deps.signal,
        shouldRetry: ({ error }) => isTransient(error),
        onFailedAttempt: ({ error, attemptNumber }) => {
          if (!deps.isOpen()) return;
          metrics.peerRetries.inc(labels);
          log.warn({ attempt: attemptNumber, err: error.message }, "batch not acknowledged; retrying");
        },
      });
      metrics.changesSent.inc(labels, batch.changes.length);
      metrics.batchSeconds.observe(labels, (deps.nowMs() - started) / 1000);
      if (res.have > (peerVector[batch.origin] ?? 0)) peerVector[batch.origin] = res.have;
    } catch (err) {
      if (!deps.isOpen() || err instanceof AbortError || deps.signal.aborted) return;
      const e = toRpcError(err);
      log.error({ err: e.message, code: e.code }, "peer rejected a batch; reconnecting");
      deps.onRejected("batch rejected");
    }
  }

  const unsubscribe = replica.onCommitted(() => wake());
  return { wake, close: unsubscribe };
}
