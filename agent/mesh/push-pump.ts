/**
 * Streams changes to one peer: up to `window` batches in flight, each acknowledged only once the
 * peer has it on disk, each retried with back-off (p-retry) while the failure is transient. Where
 * it starts and what it skips follow the peer's version vector, which acknowledgements and the
 * peer's status notifications keep current.
 *
 * An agent pumps its own changes only (`relay: false`); a hub is a relay and pumps every origin it
 * holds to each agent (`relay: true`), the origins in turn so no origin starves: each push starts
 * after the origin that got the last batch.
 *
 * A push is one frame and takes one place in the window (`window` pushes in flight). It carries
 * one batch per origin that has changes to send, as a JSON-RPC batch of requests when there are
 * several, up to `batchSize` changes, `maxMessageBytes` and MAX_PUSH_BATCHES batches in all: a hub
 * relaying 100 busy nodes to an agent sends it one push where it used to send 100, and the agent
 * stores it in one journal commit (peer-session.ts). An origin's batch that would not fit whole
 * goes first in the next push, so every pump reads the same ranges (the hub shares them,
 * hub/range-cache.ts). Each batch is acknowledged, retried and refused on its own.
 *
 * An acknowledgement below its batch's end means the peer lacked the batch's start (an earlier
 * batch failed and is being retried): it could store the batch but not move its version vector.
 * The pump then sends nothing more of that origin until its batches in flight are back, and starts
 * again from what the peer has; pipelining on would keep the peer's vector stuck for as long as the
 * origin stays busy.
 *
 * A batch the peer refuses for good (not a temporary failure) holds back that origin only: the
 * pump sends nothing more of it for REFUSED_RETRY_MS, then tries again from what the peer has, and
 * goes on with every other origin meanwhile. The session used to close (4004) instead, so one
 * refused change stopped everything the link carried, both ways, at every reconnect: for a hub,
 * every origin it relays to that agent (found by the replication-core audit).
 */
import pRetry, { AbortError } from "p-retry";
import type { BatchParams, BatchResult } from "../contract/protocol.js";
import type { VersionVector } from "../contract/records.js";
import { nextBatch } from "../core/outbound.js";
import type { Replica } from "../core/replica.js";
import { TransientError, isTransient } from "../core/transient.js";
import type { Logger } from "../ops/logger.js";
import type { Metrics } from "../ops/metrics.js";
import { MAX_BATCH, toRpcError } from "../rpc/server.js";
import { batchBytes } from "./request-frame.js";

export interface PushPumpDeps {
  replica: Replica;
  peerId: string;
  /** Pump every origin held (a hub), not only this replica's own changes (an agent). */
  relay: boolean;
  /** The peer's own replica id: a relay never echoes the peer's changes back to it. */
  peerReplica: string;
  /** The peer's version vector; the pump raises its entries as acks arrive. */
  peerVector: VersionVector;
  /** Sends one batch as a push of its own (a resend). */
  send(batch: BatchParams): Promise<BatchResult>;
  /** Sends several batches as one push, one answer each; without it each goes as a push of its own. */
  sendPush?(batches: readonly BatchParams[]): Promise<BatchResult>[];
  /** False once the session is closing: the pump stops. */
  isOpen(): boolean;
  signal: AbortSignal;
  /** The peer refused a batch for good (not a transient failure): what it said, and the batch. Its origin is held back (REFUSED_RETRY_MS). */
  onRejected(reason: string, batch: BatchParams): void;
  /** The peer acknowledged a batch of `origin`'s changes. */
  onAcknowledged?(origin: string): void;
  /**
   * Why the last delivery attempt failed (it is being retried), or null once a batch is
   * acknowledged: what status shows as the link's last error while the session is up.
   */
  onDeliveryError?(error: string | null): void;
  options: { batchSize: number; maxMessageBytes?: number; window: number; retry: { minMs: number; maxMs: number }; relayLingerMs?: number };
  log: Logger;
  metrics: Metrics;
  nowMs: () => number;
}

/** The most batches one push carries: a JSON-RPC batch the receiver takes (agent/rpc/server.ts MAX_BATCH). */
export const MAX_PUSH_BATCHES = MAX_BATCH;

/** How long the pump holds back an origin whose batch the peer refused, before it tries again. */
export const REFUSED_RETRY_MS = 60_000;

export interface PushPump {
  /** Send whatever the peer is missing; cheap to call on every commit. */
  wake(): void;
  /** New changes were stored: a relay waits `relayLingerMs` to send them together, an agent sends at once. */
  nudge(): void;
  close(): void;
}

export function createPushPump(deps: PushPumpDeps): PushPump {
  const { replica, peerVector, options, metrics, log } = deps;
  const self = replica.replicaId;
  const labels = { peer: deps.peerId };
  /**
   * Per origin: the last seq handed to the wire, batches not yet acknowledged, whether an ack
   * showed a gap, and until when (ms) nothing of it is sent because the peer refused a batch.
   */
  const progress = new Map<string, { sentUpTo: number; inflight: number; gap: boolean; refusedUntil: number }>();
  /** The latest refusedUntil of any origin: one is held back while it is ahead of now (no pass over every origin per acknowledgement). */
  let refusedUntilMax = 0;
  /** The origin that got the last batch; the next pass starts after it. */
  let lastSent = "";
  let inflight = 0;
  let pumping = false;
  let again = false;
  let retryTimer: NodeJS.Timeout | null = null;
  let refusedRetry: NodeJS.Timeout | null = null;

  /**
   * The origins to pump, sorted. A hub relaying a hundred origins to a hundred agents asks for them
   * on every push: the sorted list is kept while the vector holds the same origins (they come, and
   * do not go), rather than sorted again each time.
   */
  let originList: string[] = [];
  let originSet = new Set<string>();
  let originsOf: VersionVector | null = null;
  const origins = (vv: VersionVector): readonly string[] => {
    if (!deps.relay) return [self];
    // The hub's store hands out one vector until it changes (hub/pg-store.ts): the same object, the same origins.
    if (vv === originsOf) return originList;
    originsOf = vv;
    let n = 0;
    let same = true;
    for (const o in vv) {
      if (o === deps.peerReplica) continue;
      n++;
      if (same && !originSet.has(o)) same = false;
    }
    if (!same || n !== originList.length) {
      originList = Object.keys(vv).filter((o) => o !== deps.peerReplica).sort();
      originSet = new Set(originList);
    }
    return originList;
  };
  /** Where a pass over `list` starts: after the origin that got the last batch (the origins in turn). */
  const turnStart = (list: readonly string[]): number => {
    const i = list.findIndex((o) => o > lastSent);
    return i <= 0 ? 0 : i;
  };

  function wake(): void {
    if (!deps.isOpen()) return;
    if (pumping) {
      again = true;
      return;
    }
    pumping = true;
    void fillWindow()
      .catch((err: unknown) => {
        // A failed read (the journal or PostgreSQL busy or gone): try again after the retry
        // delay, rather than wait for the next commit or ack, which a quiet node may not have.
        log.error({ err }, "push pump failed; trying again");
        retryTimer ??= setTimeout(() => {
          retryTimer = null;
          wake();
        }, options.retry.maxMs);
      })
      .finally(() => {
        pumping = false;
        if (again) {
          again = false;
          wake();
        }
      });
  }

  async function fillWindow(): Promise<void> {
    const maxBytes = options.maxMessageBytes ?? Infinity;
    let sentAny = true;
    while (sentAny && deps.isOpen() && inflight < options.window) {
      sentAny = false;
      const vv = await replica.versionVector();
      // One push: the origins in turn, while it has room. Nothing of an origin's progress moves
      // until the push goes (send), so a read that fails midway leaves no origin marked as sent.
      const push: BatchParams[] = [];
      let changes = 0;
      let bytes = 2; // a JSON-RPC batch's brackets
      try {
        const list = origins(vv);
        const start = turnStart(list);
        const now = deps.nowMs();
        for (let k = 0; k < list.length; k++) {
          const origin = list[(start + k) % list.length]!;
          if (push.length >= MAX_PUSH_BATCHES || changes >= options.batchSize) break;
          const p = progressOf(origin);
          if (p.gap && p.inflight > 0) continue;
          const from = startOf(origin, p);
          // Nothing new of it (most origins, most of the time, on a hub of many): passed over first,
          // with no read, not even an await. (A gap noted with nothing in flight means nothing then.)
          if ((vv[origin] ?? 0) <= from) continue;
          if (p.refusedUntil > now) continue;
          if (!deps.isOpen()) return;
          p.gap = false;
          p.sentUpTo = from;
          // Read as every pump reads it (a whole batch), so a hub's pumps share the read and its JSON.
          const batch = await nextBatch(replica.store, origin, p.sentUpTo, vv[origin] ?? 0, options.batchSize, maxBytes);
          if (!batch) continue;
          const size = Number.isFinite(maxBytes) ? batchBytes(batch) + 1 : 0;
          // What does not fit whole goes first in the next push.
          if (push.length > 0 && (changes + batch.changes.length > options.batchSize || bytes + size > maxBytes)) break;
          changes += batch.changes.length;
          bytes += size;
          push.push(batch);
        }
      } finally {
        // A read that failed (the journal or PostgreSQL busy) sends what was read before it; the
        // failure goes on to wake()'s retry.
        if (push.length > 0 && deps.isOpen()) {
          send(push);
          sentAny = true;
        }
      }
    }
  }

  /**
   * Where the next batch of `origin` starts. With nothing in flight, from what the peer
   * acknowledged: anything sent but not acknowledged (a gap at the peer) goes again, anything it got
   * elsewhere is skipped.
   */
  const startOf = (origin: string, p: { sentUpTo: number; inflight: number } | undefined) =>
    !p || p.sentUpTo < 0 || p.inflight === 0 ? (peerVector[origin] ?? 0) : p.sentUpTo;

  const progressOf = (origin: string) => {
    let p = progress.get(origin);
    if (!p) progress.set(origin, (p = { sentUpTo: -1, inflight: 0, gap: false, refusedUntil: 0 }));
    return p;
  };

  /** Sends one push and follows each of its batches to its acknowledgement; the push holds a place in the window until all are settled. */
  function send(push: BatchParams[]): void {
    for (const b of push) {
      const p = progressOf(b.origin);
      p.sentUpTo = b.upTo;
      p.inflight++;
      lastSent = b.origin;
    }
    inflight++;
    metrics.pushesSent.inc(labels);
    let first: Promise<BatchResult>[];
    try {
      first = push.length > 1 && deps.sendPush ? deps.sendPush(push) : push.map((b) => deps.send(b));
    } catch (err) {
      // Not sent (the transport failed as it was written to): each batch is retried, as after a timeout.
      const failed = new TransientError(`the push could not be sent: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
      first = push.map(() => Promise.reject(failed));
    }
    void Promise.all(push.map((batch, i) =>
      deliver(batch, first[i]!).finally(() => {
        progressOf(batch.origin).inflight--;
      }),
    )).finally(() => {
      inflight--;
      afterAck();
    });
  }

  /** A peer's "temporary failure, retry later" arrives as a JSON-RPC error response, not an RpcError. */
  const retryable = (error: unknown): boolean => isTransient(error) || toRpcError(error).transient;

  /** Waits for `first`, the peer's answer to the batch as pushed, and sends it again while that fails for a while. */
  async function deliver(batch: BatchParams, first: Promise<BatchResult>): Promise<void> {
    const started = deps.nowMs();
    try {
      // p-retry only once the first answer failed (its attempt 1 is that answer again): it costs a
      // few percent of a hub's CPU per push, and nearly every push is acknowledged at once.
      const res = await first.catch(() => pRetry((attempt) => (attempt === 1 ? first : deps.send(batch)), {
        retries: Number.POSITIVE_INFINITY,
        minTimeout: options.retry.minMs,
        maxTimeout: options.retry.maxMs,
        randomize: true,
        signal: deps.signal,
        shouldRetry: ({ error }) => retryable(error),
        // p-retry calls this before shouldRetry: a refusal is not a retry (it is held back below).
        onFailedAttempt: ({ error, attemptNumber }) => {
          if (!deps.isOpen() || !retryable(error)) return;
          metrics.peerRetries.inc(labels);
          deps.onDeliveryError?.(`batch not acknowledged, retrying: ${error.message}`);
          log.warn({ attempt: attemptNumber, err: error.message }, "batch not acknowledged; retrying");
        },
      }));
      // An origin held back after a refusal keeps the link's last error until it is taken; and only
      // an acknowledgement that moved the peer's vector past the batch says the origin is taken (a
      // later batch of a refused origin is stored beyond the gap, acknowledged below its end).
      const now = deps.nowMs();
      if (refusedUntilMax <= now) deps.onDeliveryError?.(null);
      if (res.have >= batch.upTo) deps.onAcknowledged?.(batch.origin);
      metrics.changesSent.inc(labels, batch.changes.length);
      metrics.batchSeconds.observe(labels, (deps.nowMs() - started) / 1000);
      if (res.have > (peerVector[batch.origin] ?? 0)) peerVector[batch.origin] = res.have;
      if (res.have < batch.upTo) {
        const p = progress.get(batch.origin);
        if (p) p.gap = true;
      }
    } catch (err) {
      if (!deps.isOpen() || err instanceof AbortError || deps.signal.aborted) return;
      const e = toRpcError(err);
      // Logged with what to do where the refusal is kept (batch-refusals.ts).
      log.debug({ err: e.message, code: e.code }, "peer rejected a batch; holding back its origin");
      const p = progress.get(batch.origin);
      if (p) {
        p.refusedUntil = deps.nowMs() + REFUSED_RETRY_MS;
        refusedUntilMax = Math.max(refusedUntilMax, p.refusedUntil);
      }
      armRefusedRetry();
      deps.onRejected(e.message, batch);
    }
  }

  /** Wakes the pump when the first origin held back after a refusal may be tried again. */
  function armRefusedRetry(): void {
    if (refusedRetry !== null) return;
    const now = deps.nowMs();
    const next = Math.min(...[...progress.values()].map((p) => p.refusedUntil).filter((t) => t > now));
    if (!Number.isFinite(next)) return;
    refusedRetry = setTimeout(() => {
      refusedRetry = null;
      wake();
      armRefusedRetry();
    }, next - now);
    refusedRetry.unref?.();
  }

  // A relay gathers what arrives within `relayLingerMs` into one batch (as Kafka's linger.ms does):
  // each batch costs the receiving agent a journal fsync, and a hub stores many small batches from
  // many agents, so sending each on its own would cost every agent one fsync per batch the hub got.
  // The linger holds after an acknowledgement too: only a full batch goes at once, so a relay with
  // a linger sends each agent at most about one partial batch per `relayLingerMs`, however many
  // small batches the hub stores meanwhile (with a wake on every ack it sent one per round trip).
  const linger = deps.relay ? (options.relayLingerMs ?? 0) : 0;
  let lingering: NodeJS.Timeout | null = null;
  const nudge = () => {
    if (linger <= 0) return wake();
    lingering ??= setTimeout(() => {
      lingering = null;
      wake();
    }, linger);
  };
  function afterAck(): void {
    if (linger <= 0) return wake();
    void replica.versionVector().then((vv) => {
      // A full push's worth waiting, over the origins that may be sent now: it goes at once.
      const now = deps.nowMs();
      let waiting = 0;
      for (const o of origins(vv)) {
        const p = progress.get(o);
        if (p && (p.refusedUntil > now || (p.gap && p.inflight > 0))) continue;
        // From where fillWindow would start.
        waiting += Math.max(0, (vv[o] ?? 0) - startOf(o, p));
      }
      if (waiting >= options.batchSize) wake();
      else nudge();
    }, () => nudge());
  }
  // A relay forwards whatever it stores; an agent only what it made itself.
  const unsubscribe = deps.relay ? replica.onApplied(nudge) : replica.onCommitted(nudge);
  return {
    wake,
    nudge,
    close() {
      unsubscribe();
      if (lingering) clearTimeout(lingering);
      if (retryTimer) clearTimeout(retryTimer);
      if (refusedRetry) clearTimeout(refusedRetry);
    },
  };
}
