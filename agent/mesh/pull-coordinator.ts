/**
 * Relay catch-up and explicit resyncs, one pull run at a time. Each node pushes its own changes
 * to its peers; what a node cannot get from the origin itself (the origin is down, partitioned
 * away, or is an old epoch of a node that lost its disk) it pulls from a peer that has it. Pull
 * runs never overlap, so two peers never send the same relayed changes at once.
 */
import type { ResyncStatus } from "../contract/cluster-status.js";
import type { Replica } from "../core/replica.js";
import { InvalidBatchError } from "../core/store.js";
import { anyAhead, originsAhead } from "../core/version-vector.js";
import type { Logger } from "../ops/logger.js";
import type { Metrics } from "../ops/metrics.js";
import type { PeerSession } from "./peer-session.js";

export interface PullCoordinatorDeps {
  replica: Replica;
  log: Logger;
  metrics: Metrics;
  batchSize: number;
  /** Give an origin this long to connect and push by itself before relaying its changes. */
  relayDelayMs: number;
  sessions: () => PeerSession[];
  readySince: (s: PeerSession) => number;
  nowMs?: () => number;
}

export interface PullCoordinator {
  /** Re-check whether any peer holds changes we should pull. */
  evaluate(): void;
  /**
   * A peer's version vector moved (its status, an acknowledgement): re-checked within
   * VECTOR_CHECK_MS, once for all that moved meanwhile. A hub hears from a hundred agents several
   * times a second each, and every check reads every agent's vector.
   */
  vectorChanged(): void;
  /**
   * Full resync: pull everything the peer holds, ignoring what we think we have. One runs at a
   * time: asked for while one runs, that one is joined (`joined`), from whichever peer it pulls.
   * `done` settles when it ends (rejects when it failed).
   */
  resync(peer: PeerSession): { joined: boolean; done: Promise<void> };
  status(): ResyncStatus;
  close(): void;
}

/** How soon a moved peer vector is looked at (pull-coordinator's vectorChanged). */
export const VECTOR_CHECK_MS = 100;

/** How long the end of a full resync stays in status while a relay catch-up runs after it. */
export const FULL_RESYNC_SHOWN_MS = 10_000;

export function createPullCoordinator(deps: PullCoordinatorDeps): PullCoordinator {
  const log = deps.log.child({ part: "pull" });
  const nowMs = deps.nowMs ?? Date.now;
  let running = false;
  let dirty = false;
  let closed = false;
  let timer: NodeJS.Timeout | null = null;
  let state: ResyncStatus = { state: "idle", peer: null, received: 0, expected: 0, startedAt: null, finishedAt: null, error: null };
  /** The full resync under way, if one is. */
  let fullRun: Promise<void> | null = null;
  /** The last full resync's status, and when (ms) it ended. */
  let lastFull: { status: ResyncStatus; endedMs: number } | null = null;

  const live = () => deps.sessions().filter((s) => s.isReady());

  async function relayCandidate(): Promise<{ session: PeerSession; skip: string[] } | null> {
    const sessions = live();
    const liveOrigins = new Set(sessions.map((s) => s.peerReplicaId()!).filter(Boolean));
    liveOrigins.add(deps.replica.replicaId);
    const mine = await deps.replica.versionVector();
    let best: { session: PeerSession; ahead: number } | null = null;
    let wait = Infinity;
    for (const s of sessions) {
      // A hub pushes us every origin it holds; pulling the same changes as well would double them.
      if (s.peerIsHub) continue;
      if (!anyAhead(s.peerVector(), mine, liveOrigins)) continue;
      const ahead = originsAhead(s.peerVector(), mine, liveOrigins);
      if (ahead.length === 0) continue;
      const readyFor = nowMs() - deps.readySince(s);
      if (readyFor < deps.relayDelayMs) {
        wait = Math.min(wait, deps.relayDelayMs - readyFor);
        continue;
      }
      const n = ahead.reduce((sum, o) => sum + (s.peerVector()[o]! - (mine[o] ?? 0)), 0);
      if (!best || n > best.ahead) best = { session: s, ahead: n };
    }
    if (!best && wait !== Infinity) schedule(wait + 5);
    return best ? { session: best.session, skip: [...liveOrigins] } : null;
  }

  async function run(session: PeerSession, full: boolean, skip: string[]): Promise<void> {
    const peer = session.peerNodeId();
    state = { state: "running", full, peer, received: 0, expected: 0, startedAt: new Date(nowMs()).toISOString(), finishedAt: null, error: null };
    let vv = full ? {} : await deps.replica.versionVector();
    let first = true;
    try {
      for (;;) {
        const res = await session.pull({ vv, limit: deps.batchSize, skip, count: first });
        if (first) state.expected = res.remaining + (res.batch?.changes.length ?? 0);
        first = false;
        if (!res.batch) break;
        deps.metrics.changesReceived.inc({ peer: peer! }, res.batch.changes.length);
        const outcome = await deps.replica.apply(res.batch, peer!);
        deps.metrics.changesApplied.inc({ peer: peer! }, outcome.applied.length);
        state.received += res.batch.changes.length;
        state.expected = Math.max(state.expected, state.received + res.remaining);
        // A full resync walks the peer's whole range; a relay pull follows our own vector.
        vv = full ? { ...vv, [res.batch.origin]: res.batch.upTo } : await deps.replica.versionVector();
      }
      state = { ...state, state: "done", finishedAt: new Date(nowMs()).toISOString() };
      log.info({ peer, received: state.received, full }, full ? "resync finished" : "relay catch-up finished");
    } catch (err) {
      state = { ...state, state: "failed", finishedAt: new Date(nowMs()).toISOString(), error: (err as Error).message };
      log.warn({ peer, err: (err as Error).message }, "pull failed; will try again");
      // A refused batch (a change stamped far ahead, a gap) stays refused: not every second.
      schedule(err instanceof InvalidBatchError ? 60_000 : 1000);
    }
  }

  async function loop(): Promise<void> {
    if (running || closed) {
      dirty = true;
      return;
    }
    running = true;
    try {
      do {
        dirty = false;
        const c = await relayCandidate();
        if (c) await run(c.session, false, c.skip);
      } while (dirty && !closed);
    } finally {
      running = false;
    }
  }

  /** A loop after `ms`, its timer unref'd; `cleared` runs as it fires. */
  function loopAfter(ms: number, cleared: () => void): NodeJS.Timeout {
    const t = setTimeout(() => {
      cleared();
      void loop();
    }, ms);
    t.unref();
    return t;
  }

  function schedule(ms: number) {
    if (closed || timer) return;
    timer = loopAfter(ms, () => (timer = null));
  }

  let vectorTimer: NodeJS.Timeout | null = null;
  return {
    evaluate: () => void loop(),
    vectorChanged() {
      // Its own timer: schedule()'s may be set for a minute (a refused batch).
      if (closed || vectorTimer) return;
      vectorTimer = loopAfter(VECTOR_CHECK_MS, () => (vectorTimer = null));
    },
    resync(session) {
      if (fullRun) return { joined: true, done: fullRun };
      const done = (async () => {
        // A relay catch-up under way goes first.
        while (running) await new Promise((r) => setTimeout(r, 20));
        running = true;
        try {
          await run(session, true, []);
        } finally {
          running = false;
          fullRun = null;
          lastFull = { status: { ...state }, endedMs: nowMs() };
        }
        // A relay catch-up asked for while the resync ran waited for it; run it now.
        if (dirty) void loop();
        if (state.state === "failed") throw new Error(state.error ?? "resync failed");
      })();
      fullRun = done;
      return { joined: false, done };
    },
    status: () => {
      // A full resync's end outshows a catch-up that started right after it, for a while; not
      // once another full resync is asked for (it waits for the catch-up: that is what shows).
      if (!fullRun && lastFull && state.full === false && nowMs() - lastFull.endedMs < FULL_RESYNC_SHOWN_MS) return { ...lastFull.status };
      return { ...state };
    },
    close() {
      closed = true;
      if (timer) clearTimeout(timer);
      if (vectorTimer) clearTimeout(vectorTimer);
    },
  };
}
