/**
 * The `changes.applied` summaries for subscribers that asked for them (the web UI): how many
 * records of each kind changed, at most once per interval, so that a screen knows to refresh
 * without being sent every change of a resync.
 */
import type { Change, RecordKind } from "../contract/records.js";

export interface ChangeSummary {
  add(changes: readonly Change[]): void;
  close(): void;
}

export function createChangeSummary(deps: {
  intervalMs: number;
  /** Someone wants summaries: otherwise nothing is counted or timed. */
  wanted: () => boolean;
  send: (params: { counts: Record<RecordKind, number> }) => void;
}): ChangeSummary {
  let counts: Record<RecordKind, number> = { loc: 0, alias: 0 };
  let timer: NodeJS.Timeout | null = null;
  let closed = false;
  const flush = () => {
    timer = null;
    const sent = counts;
    counts = { loc: 0, alias: 0 };
    if (sent.loc + sent.alias > 0) deps.send({ counts: sent });
  };
  return {
    add(changes) {
      if (closed || changes.length === 0 || !deps.wanted()) return;
      for (const c of changes) counts[c.kind]++;
      if (timer === null) {
        timer = setTimeout(flush, deps.intervalMs);
        timer.unref();
      }
    },
    close() {
      closed = true;
      if (timer) clearTimeout(timer);
      timer = null;
    },
  };
}
