/**
 * Hybrid logical clock (Kulkarni et al., "Logical Physical Clocks", 2014), packed into one integer:
 * wall-clock milliseconds × 1024 plus a logical counter. A counter that overflows spills into the
 * millisecond part, which keeps the stamp monotonic and still within 2^53 until the year 2249.
 *
 * Every local change takes a stamp greater than any stamp this node has made or seen, so a change
 * made after seeing another always wins over it, whatever the wall clocks say.
 */
import { HLC_UNITS_PER_MS, hlcToMillis, type Change } from "../contract/records.js";

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
  /** Called when a peer's stamp is ahead of our wall clock by more than `maxDriftMs`. */
  onDrift?: (aheadMs: number) => void;
  maxDriftMs?: number;
}

export function createHlc(deps: HlcDeps): Hlc {
  let last = deps.initial ?? 0;
  const maxDrift = (deps.maxDriftMs ?? 60_000) * HLC_UNITS_PER_MS;
  return {
    now() {
      const wall = deps.wallMillis() * HLC_UNITS_PER_MS;
      last = wall > last ? wall : last + 1;
      return last;
    },
    observe(remote) {
      if (remote <= last) return;
      const wall = deps.wallMillis() * HLC_UNITS_PER_MS;
      if (remote - wall > maxDrift) deps.onDrift?.(Math.round((remote - wall) / HLC_UNITS_PER_MS));
      last = remote;
    },
    last: () => last,
  };
}

/** Further ahead of this node's clock than any real skew, and still far below 2^53. */
export const MAX_STAMP_AHEAD_MS = 365 * 24 * 3600_000;

/**
 * A change stamped more than a year ahead of `nowMs` (replica.ts passes the later of this node's
 * clock and the newest stamp its journal held at start), said as a refusal, or null. Taken,
 * its stamp would become every node's clock (stamps are max(own clock, newest seen)): one near 2^53,
 * from a broken clock or a forged change, pushed every later stamp past 2^53, which peers refuse,
 * and replication stopped everywhere (the hostile-input dry run). Refused, it holds back only its
 * origin's later changes, and the refusal says why in that node's status.
 */
export function farAhead(changes: readonly Pick<Change, "hlc" | "origin" | "seq">[], nowMs: number): string | null {
  const i = changes.findIndex((c) => hlcToMillis(c.hlc) > nowMs + MAX_STAMP_AHEAD_MS);
  if (i < 0) return null;
  const c = changes[i]!;
  return `changes.${i}.hlc: ${c.origin}#${c.seq} is stamped ${new Date(Math.min(hlcToMillis(c.hlc), 8.64e15)).toISOString()}, ` +
    "more than a year ahead of this node's clock and of the newest stamp its journal held at start: the clock of the node that made it is wrong " +
    "(check NTP there), or this node's own clock is far behind and its journal new (check NTP here), or the change is forged";
}

