/**
 * What every locmesh daemon does with signals: stop gracefully on SIGTERM/SIGINT (forced after
 * 10 s, said in the log), reload on SIGHUP. Only composition roots call this (it installs signal
 * handlers and exits the process).
 *
 * The handlers go in before the daemon starts (handleSignals), since Node's default for SIGHUP is
 * to end the process: `systemctl restart` followed by a reload, or a reload during a long journal
 * migration, would kill the starting daemon. A stop asked during start stops it once started; a
 * reload asked then runs once started (the config it reads is newer than the one it started
 * with). While stopping, SIGHUP is ignored: a reload would dial peers on a closing mesh.
 */
import type { Logger } from "./logger.js";

/** How long a graceful stop may take before the process exits anyway. */
export const STOP_TIMEOUT_MS = 10_000;

export interface Signals {
  /** The daemon is up: from now on signals act on it (a stop or reload asked meanwhile, now). */
  started(daemon: { close(): Promise<void> }, onReload?: () => void): void;
}

export function handleSignals(log: Logger, exit: (code: number) => void = (code) => process.exit(code)): Signals {
  let daemon: { close(): Promise<void> } | null = null;
  let reload: (() => void) | null = null;
  let stopping: string | null = null;
  let reloadAsked = false;

  const close = (d: { close(): Promise<void> }) => {
    d.close().then(
      () => exit(0),
      (err: unknown) => {
        log.error({ err }, "error while stopping");
        exit(1);
      },
    );
  };
  /** The graceful stop begins: it gets STOP_TIMEOUT_MS from now (not from a signal during start, which may take longer). */
  const beginStop = (d: { close(): Promise<void> }, signal: string) => {
    const force = setTimeout(() => {
      log.error({ signal, afterMs: STOP_TIMEOUT_MS }, "did not stop in time (a Kamailio that does not answer, or a request still running?); exiting anyway: what was accepted is in the journal");
      exit(1);
    }, STOP_TIMEOUT_MS);
    force.unref();
    close(d);
  };
  const stop = (signal: string) => {
    if (stopping !== null) return;
    stopping = signal;
    log.info({ signal }, daemon === null ? "stopping once started (asked during start)" : "stopping");
    if (daemon !== null) beginStop(daemon, signal);
  };
  process.on("SIGTERM", () => stop("SIGTERM"));
  process.on("SIGINT", () => stop("SIGINT"));
  process.on("SIGHUP", () => {
    if (stopping !== null) return log.info("SIGHUP while stopping: ignored");
    if (daemon === null) {
      reloadAsked = true;
      return log.info("SIGHUP during start: the config is read again once started");
    }
    reload?.();
  });

  return {
    started(d, onReload) {
      daemon = d;
      reload = onReload ?? null;
      if (stopping !== null) return beginStop(d, stopping);
      if (reloadAsked) reload?.();
    },
  };
}
