/**
 * Acknowledging registrar events to Kamailio, so that none is lost when the agent dies with events
 * read and not journaled (or still in the sockets): the include keeps every event its drain sent
 * until the agent says it is journaled, and sends the rest again when the agent's event connection
 * comes back (cfg-include-register.ts, LOCMESH_DRAIN and LOCMESH_FORGET).
 *
 * Events arrive in the order the drain numbered them, and are journaled in any order (one AoR's in
 * order, different AoRs side by side: registrar-intake.ts). What the agent acknowledges is the
 * number of the last event up to which every event it read is journaled (or given up: a failed or
 * unreadable event sent again would fail again). It tells Kamailio by setting $shv(ACKED_SHV) over
 * jsonrpcs at most every `intervalMs`, so the acknowledgement costs one RPC however fast REGISTERs
 * come. One that is lost or late only makes the include send some events twice after a reconnect,
 * and an event read twice changes nothing the first reading did not (registrar-input.ts).
 */
import type { Logger } from "../ops/logger.js";

/** How often the agent tells Kamailio how far it has journaled, at most. */
export const ACK_INTERVAL_MS = 100;

export interface EventAcks {
  /** An event numbered `n` was read; call the result once it is journaled or given up. */
  taken(n: number): () => void;
  /** The number up to which every event read is done; null before any (for tests and status). */
  done(): number | null;
  /** The event connection is down: nothing is sent until reset() (Kamailio may be restarting). */
  pause(): void;
  /**
   * A new event connection: numbering may have started over (Kamailio restarted). A send begun
   * before counts for nothing after it.
   */
  reset(): void;
  /** Sends the last acknowledgement now (before the agent stops). */
  flush(): Promise<void>;
  close(): void;
}

export function createEventAcks(deps: {
  /** Sets the include's acknowledgement ($shv(ACKED_SHV), pv.shvSet). */
  send(n: number): Promise<void>;
  log: Logger;
  intervalMs?: number;
}): EventAcks {
  const { log } = deps;
  /** Events read and not yet behind the done mark, in the order read: [number, done]. */
  let reading: { n: number; finished: boolean }[] = [];
  let head = 0;
  let mark: number | null = null;
  let sentMark: number | null = null;
  let sending: Promise<void> | null = null;
  let failingSince: number | null = null;
  /**
   * Sends wait while the event connection is down: a mark of a Kamailio that restarted meanwhile,
   * retried into the new one, would make it forget events numbered anew that were never journaled.
   */
  let paused = false;
  /** Bumped by reset(): a send's outcome is recorded only for the connection it was made for. */
  let generation = 0;

  const advance = () => {
    while (head < reading.length && reading[head]!.finished) mark = reading[head++]!.n;
    // Drop what is behind the mark now and then, not on every event.
    if (head > 1024 && head * 2 > reading.length) {
      reading = reading.slice(head);
      head = 0;
    }
  };

  function send(): Promise<void> {
    if (sending) return sending;
    if (paused || mark === null || mark === sentMark) return Promise.resolve();
    const n = mark;
    const made = generation;
    sending = deps.send(n).then(
      () => {
        if (made === generation) sentMark = n;
        if (failingSince !== null) log.info("registrar events are acknowledged to Kamailio again");
        failingSince = null;
      },
      (err: unknown) => {
        // One line per run of failures: Kamailio keeps the events meanwhile, at worst some are sent twice.
        if (failingSince === null) {
          failingSince = Date.now();
          log.warn({ err: (err as Error).message }, "cannot acknowledge registrar events to Kamailio (pv.shvSet); it keeps them and sends them again after a reconnect");
        }
      },
    ).finally(() => {
      sending = null;
    });
    return sending;
  }

  const timer = setInterval(() => void send(), deps.intervalMs ?? ACK_INTERVAL_MS);
  timer.unref();

  return {
    taken(n) {
      const entry = { n, finished: false };
      reading.push(entry);
      return () => {
        entry.finished = true;
        advance();
      };
    },
    done: () => mark,
    pause() {
      paused = true;
    },
    reset() {
      paused = false;
      generation++;
      reading = [];
      head = 0;
      mark = null;
      sentMark = null;
    },
    async flush() {
      await sending;
      await send();
    },
    close() {
      clearInterval(timer);
    },
  };
}
