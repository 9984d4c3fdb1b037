/**
 * How often a log line about something that repeats is written: the first at once, then at most
 * one every `everyMs` with how many happened since the last one. A hub retrying a stopped
 * PostgreSQL (hub/retry-pacing.ts), an agent none of whose hubs answers (mesh/no-hub-warning.ts)
 * and a peer or scanner redialling with a wrong key (mesh/peer-keys.ts) would otherwise write a
 * line per attempt. Counted per key (an address and reason, say), so one source's repeats neither
 * hide nor are hidden by another's. No timers: a line is only ever due when an event comes, so
 * events that stop within a minute of a line are not summed up (metrics count every one).
 *
 * At most `maxKeys` keys are remembered, those noted least recently going first: an entry
 * forgotten only means that key's next event is logged as a first one again.
 */
export interface PacedLine {
  /** Events since the last line, this one included. */
  count: number;
  /** The first line of this key's streak. */
  first: boolean;
  /** Events since the streak began (since the first event, or since `end`). */
  streak: number;
  /** Milliseconds since the streak's first event. */
  forMs: number;
  /** Milliseconds since the last line; null for the first. */
  sinceLastMs: number | null;
}

export interface LogPacing {
  /**
   * One more event of `key`: the line to write now, or null to stay quiet. With `from`, no line
   * until the streak holds that many events (they count toward the first line's `count`).
   */
  note(key?: string, o?: { from?: number }): PacedLine | null;
  /** The streak of `key` ended (the thing worked again): what it was, or null when there was none. */
  end(key?: string): { streak: number; logged: boolean; forMs: number } | null;
}

interface Entry {
  streak: number;
  unlogged: number;
  startedAt: number;
  loggedAt: number | null;
}

export function createLogPacing(o: { everyMs?: number; nowMs?: () => number; maxKeys?: number } = {}): LogPacing {
  const everyMs = o.everyMs ?? 60_000;
  const nowMs = o.nowMs ?? Date.now;
  const maxKeys = o.maxKeys ?? 10_000;
  const entries = new Map<string, Entry>();

  return {
    note(key = "", opts = {}) {
      const now = nowMs();
      const e = entries.get(key) ?? { streak: 0, unlogged: 0, startedAt: now, loggedAt: null };
      // Re-inserted, so that the Map's order is least recently noted first.
      entries.delete(key);
      if (entries.size >= maxKeys) entries.delete(entries.keys().next().value!);
      entries.set(key, e);
      e.streak++;
      e.unlogged++;
      if (e.streak < (opts.from ?? 1)) return null;
      if (e.loggedAt !== null && now - e.loggedAt < everyMs) return null;
      const line = { count: e.unlogged, first: e.loggedAt === null, streak: e.streak, forMs: now - e.startedAt, sinceLastMs: e.loggedAt === null ? null : now - e.loggedAt };
      e.loggedAt = now;
      e.unlogged = 0;
      return line;
    },
    end(key = "") {
      const e = entries.get(key);
      if (!e) return null;
      entries.delete(key);
      return { streak: e.streak, logged: e.loggedAt !== null, forMs: nowMs() - e.startedAt };
    },
  };
}
