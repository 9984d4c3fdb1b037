/** Text for durations, expiries and counts. Pure: the clock is a parameter. */

export function formatDuration(totalSeconds: number): string {
  const s = Math.max(0, Math.round(totalSeconds));
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${String(s % 60).padStart(2, "0")}s`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h}h ${String(m % 60).padStart(2, "0")}m`;
  return `${Math.floor(h / 24)}d ${h % 24}h`;
}

/** A binding's absolute expiry (Unix seconds, 0 = permanent) as seen at `nowSec`. */
export function expiryText(expires: number, nowSec: number): string {
  if (expires === 0) return "permanent";
  if (expires <= nowSec) return "expired";
  return `in ${formatDuration(expires - nowSec)}`;
}

export function formatCount(n: number): string {
  return n.toLocaleString("en-US");
}

/** -1 is Kamailio's "no q given". */
export function formatQ(q: number): string {
  return q < 0 ? "not set" : q.toFixed(3).replace(/\.?0+$/, "") || "0";
}

/** "1–50 of 1,234", or "none" for an empty list. */
export function pageRange(offset: number, shown: number, total: number): string {
  if (total === 0 || shown === 0) return "none";
  return `${formatCount(offset + 1)}–${formatCount(offset + shown)} of ${formatCount(total)}`;
}

export function formatTime(iso: string | null): string {
  if (!iso) return "never";
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toLocaleString();
}
