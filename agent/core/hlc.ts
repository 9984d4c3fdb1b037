/**
 * Hybrid logical clock (Kulkarni et al., "Logical Physical Clocks", 2014), packed into one integer:
 * wall-clock milliseconds × 1024 plus a logical counter. A counter that overflows spills into the
 * millisecond part, which keeps the stamp monotonic and still within 2^53 until the year 2249.
 *
 * Every local change takes a stamp greater than any stamp this node has made or seen, so a change
 * made after seeing another always wins over it, whatever the wall clocks say. Except a stamp more
 * than `maxFollowMs` (a year) ahead of this node's clock: it is stored, but not followed. A peer
 * whose clock reads centuries ahead (or a stamp near 2^53 from a faulty one) would otherwise push
 * every later stamp of every node past 2^53, where peers refuse them and replication stops.
 */
import { HLC_UNITS_PER_MS } from "../contract/records.js";

export interface Hlc {
  /** A fresh stamp for a local change. */
  now(): number;
  /** Merge a stamp from a peer so that our next stamp is later. */
  observe(remote: number): void;
  /** The last stamp made or observed. */
  last(): number;
}

export interface HlcDeps {
  wallMillis: () => number;
  /** Start after this stamp, e.g. the newest in the journal after a restart. */
  initial?: number;
  /** Called when a peer's stamp is ahead of our wall clock by more than `maxDriftMs`; `followed` false past `maxFollowMs`. */
  onDrift?: (aheadMs: number, followed: boolean) => void;
  maxDriftMs?: number;
  /** Stamps further ahead of the wall clock than this are not followed (default a year: far beyond any real clock skew, far below 2^53). */
  maxFollowMs?: number;
}

export function createHlc(deps: HlcDeps): Hlc {
  const maxDrift = (deps.maxDriftMs ?? 60_000) * HLC_UNITS_PER_MS;
  const maxFollow = (deps.maxFollowMs ?? 365 * 24 * 3600_000) * HLC_UNITS_PER_MS;
  const tooFar = (stamp: number): boolean => stamp - deps.wallMillis() * HLC_UNITS_PER_MS > maxFollow;
  // The journal's newest stamp may be such a peer's, stored before.
  let last = deps.initial !== undefined && !tooFar(deps.initial) ? deps.initial : 0;
  return {
    now() {
      const wall = deps.wallMillis() * HLC_UNITS_PER_MS;
      last = wall > last ? wall : last + 1;
      return last;
    },
    observe(remote) {
      if (remote <= last) return;
      const wall = deps.wallMillis() * HLC_UNITS_PER_MS;
      const far = remote - wall > maxFollow;
      if (remote - wall > maxDrift) deps.onDrift?.(Math.round((remote - wall) / HLC_UNITS_PER_MS), !far);
      if (!far) last = remote;
    },
    last: () => last,
  };
}
