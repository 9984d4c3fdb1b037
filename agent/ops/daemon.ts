/**
 * What every locmesh daemon does once started: stop gracefully on SIGTERM/SIGINT (forced after
 * 10 s), optionally reload on SIGHUP. Only composition roots call this (it installs signal handlers
 * and exits the process).
 */
import type { Logger } from "./logger.js";

export function runUntilSignalled(daemon: { close(): Promise<void> }, log: Logger, onReload?: () => void): void {
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, "stopping");
    const force = setTimeout(() => process.exit(1), 10_000);
    force.unref();
    daemon.close().then(
      () => process.exit(0),
      (err: unknown) => {
        log.error({ err }, "error while stopping");
        process.exit(1);
      },
    );
  };
  process.on("SIGTERM", () => stop("SIGTERM"));
  process.on("SIGINT", () => stop("SIGINT"));
  if (onReload) process.on("SIGHUP", onReload);
}
