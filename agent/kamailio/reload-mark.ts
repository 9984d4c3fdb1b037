/**
 * Keeps in the journal that a reload into Kamailio is under way, so that the agent's next start
 * knows when one never finished: the agent was restarted, killed or crashed in the middle of it,
 * or it failed and was not redone before the agent stopped. Which of its writes went in is then
 * unknown, so the next start says so (log, `locmesh status`, cluster.status) and reloads Kamailio
 * again. Without it a `locmesh resync --kamailio` cut short left Kamailio half written with nothing
 * saying so, and a cut-short reload of a restarted Kamailio was redone but reported as a restart.
 *
 * The mark lives in the journal's meta table (sqlite-meta.ts notes): written when a reload
 * starts, with its progress every SAVE_INTERVAL_MS or SAVE_EVERY_WRITES as it goes (each save is a commit),
 * with its error when it fails, and removed when it finishes.
 */
import type { KamailioReloadInterrupted, KamailioReloadStatus } from "../contract/kamailio-status.js";
import type { JournalNotes } from "../journal/sqlite-meta.js";
import type { Logger } from "../ops/logger.js";
import type { KamailioInstance } from "./core-rpc.js";

/** Where the mark is kept: the journal's notes (sqlite-meta.ts). */
export type ReloadNotes = JournalNotes;

/** An unfinished reload as kept: what the status shows, and the Kamailio instance it wrote into. */
export interface UnfinishedReload extends KamailioReloadInterrupted {
  instance: KamailioInstance | null;
}

export interface ReloadMark {
  /** The reload an earlier run of the agent left unfinished, as found when the mark was opened; null if none. */
  readonly previous: UnfinishedReload | null;
  /** Follows a reload's status: running saves it, done removes it, failed saves its error. */
  track(s: KamailioReloadStatus): void;
}

export const RELOAD_NOTE = "kamailio_reload";
const SAVE_INTERVAL_MS = 1000;
/**
 * Or every this many writes, whichever comes first: a reload over evapi writes ~30,000 a second,
 * and a mark saved once a second said "after at least 0 of 18,000 writes" of one cut short
 * within its first second. Each save is a commit: a few a second cost little.
 */
const SAVE_EVERY_WRITES = 5000;

export function openReloadMark(deps: {
  notes: ReloadNotes;
  /** The Kamailio instance being reloaded (the one last observed). */
  instance: () => KamailioInstance | null;
  log: Logger;
  nowMs?: () => number;
}): ReloadMark {
  const nowMs = deps.nowMs ?? Date.now;
  const previous = parse(deps.notes.readNote(RELOAD_NOTE));
  /** The run last saved (its startedAt), and when. */
  let savedRun: string | null = null;
  let savedAt = 0;
  let savedDone = 0;
  let warnedRun: string | null = null;

  function write(value: string | null, run: string | null): void {
    try {
      deps.notes.writeNote(RELOAD_NOTE, value);
    } catch (err) {
      // Costs only the notice after a restart (a full disk): the reload itself goes on.
      if (warnedRun !== run) deps.log.warn({ err: (err as Error).message }, "could not note the reload's progress in the journal");
      warnedRun = run;
    }
  }

  return {
    previous,
    track(s) {
      const run = s.startedAt;
      if (s.state === "done") {
        write(null, run);
        savedRun = null;
        return;
      }
      if (s.state !== "running" && s.state !== "failed") return;
      if (s.state === "running" && savedRun === run && nowMs() - savedAt < SAVE_INTERVAL_MS && s.done - savedDone < SAVE_EVERY_WRITES) return;
      savedRun = run;
      savedAt = nowMs();
      savedDone = s.done;
      const kept: UnfinishedReload = {
        reason: s.reason, startedAt: run ?? new Date(savedAt).toISOString(), done: s.done, total: s.total,
        error: s.state === "failed" ? (s.error ?? "no reason given") : null, whole: s.whole === true, instance: deps.instance(),
      };
      write(JSON.stringify(kept), run);
    },
  };
}

/** A mark as kept; one that does not read back still says that a reload did not finish. */
function parse(text: string | null): UnfinishedReload | null {
  if (text === null) return null;
  const unknown: UnfinishedReload = { reason: null, startedAt: "unknown", done: 0, total: 0, error: null, instance: null };
  try {
    const v = JSON.parse(text) as Partial<UnfinishedReload> | null;
    if (v === null || typeof v !== "object") return unknown;
    return {
      reason: typeof v.reason === "string" ? v.reason : null,
      startedAt: typeof v.startedAt === "string" ? v.startedAt : "unknown",
      done: typeof v.done === "number" ? v.done : 0,
      total: typeof v.total === "number" ? v.total : 0,
      error: typeof v.error === "string" ? v.error : null,
      whole: v.whole === true,
      instance: v.instance && typeof v.instance === "object" ? v.instance : null,
    };
  } catch {
    return unknown;
  }
}
