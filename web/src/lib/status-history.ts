/**
 * A rolling window of cluster.status samples and what the chart draws from it: changes applied per
 * second (from the growth of the version vector's total) and the worst peer lag.
 */
export interface StatusSample {
  /** Browser clock, ms. */
  atMs: number;
  /** Sum of the version vector: every change this node holds, from every origin. */
  changes: number;
  lagSeconds: number;
  lagChanges: number;
}

export interface RatePoint {
  atMs: number;
  changesPerSec: number;
  lagSeconds: number;
}

export function appendSample(history: readonly StatusSample[], s: StatusSample, windowMs: number): StatusSample[] {
  return [...history, s].filter((x) => x.atMs >= s.atMs - windowMs);
}

export function sampleOf(
  status: { vv: Record<string, number>; peers: { behindSeconds: number | null; behindChanges: number | null }[] },
  atMs: number,
): StatusSample {
  let changes = 0;
  for (const n of Object.values(status.vv)) changes += n;
  return {
    atMs,
    changes,
    // A disconnected peer's lag is unknown (null): the worst known one is charted.
    lagSeconds: Math.max(0, ...status.peers.map((p) => p.behindSeconds ?? 0)),
    lagChanges: Math.max(0, ...status.peers.map((p) => p.behindChanges ?? 0)),
  };
}

/** One point per sample after the first. A shrinking total (journal reset) counts as 0, not negative. */
export function ratePoints(history: readonly StatusSample[]): RatePoint[] {
  const out: RatePoint[] = [];
  for (let i = 1; i < history.length; i++) {
    const a = history[i - 1]!;
    const b = history[i]!;
    const dt = (b.atMs - a.atMs) / 1000;
    if (dt <= 0) continue;
    out.push({ atMs: b.atMs, changesPerSec: Math.max(0, b.changes - a.changes) / dt, lagSeconds: b.lagSeconds });
  }
  return out;
}

/** SVG path data for `values` spread over [0,width] × [height,0], scaled to `max`. */
export function linePath(points: readonly { x: number; y: number }[], box: { width: number; height: number; xMin: number; xMax: number; yMax: number }): string {
  const sx = (x: number) => ((x - box.xMin) / Math.max(1, box.xMax - box.xMin)) * box.width;
  // 2 units of margin top and bottom: a flat line at 0 or at the maximum stays visible.
  const sy = (y: number) => box.height - 2 - (Math.min(y, box.yMax) / Math.max(box.yMax, Number.EPSILON)) * (box.height - 4);
  return points.map((p, i) => `${i === 0 ? "M" : "L"}${sx(p.x).toFixed(1)},${sy(p.y).toFixed(1)}`).join(" ");
}

/** A round upper bound for an axis: 1, 2, 5, 10, 20, 50, ... */
export function niceMax(v: number): number {
  if (v <= 1) return 1;
  const mag = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 5, 10]) if (v <= m * mag) return m * mag;
  return 10 * mag;
}
