/**
 * libfaketime (Debian package `faketime`) for processes that must run with a skewed wall clock:
 * LD_PRELOAD shifts time(), gettimeofday() and clock_gettime(CLOCK_REALTIME) by a fixed offset.
 * The monotonic clock stays true (FAKETIME_DONT_FAKE_MONOTONIC), so timers, timeouts and back-off
 * run at their real pace and only what the process reads as "now" moves.
 */
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";

export const FAKETIME_INSTALL = "apt-get install -y faketime   (or: bash .ci/setup)";

/** The preload library, e.g. /usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1. */
export function faketimeLibrary(): string {
  const lib = "/usr/lib";
  const arch = readdirSync(lib).find((d) => existsSync(join(lib, d, "faketime", "libfaketime.so.1")));
  if (arch === undefined) throw new Error(`libfaketime is not installed (no /usr/lib/*/faketime/libfaketime.so.1). Install it with: ${FAKETIME_INSTALL}`);
  return join(lib, arch, "faketime", "libfaketime.so.1");
}

/** Environment that runs a process with its wall clock `offsetSec` seconds off (0: none). */
export function skewedClockEnv(offsetSec: number): Record<string, string> {
  if (offsetSec === 0) return {};
  if (!Number.isInteger(offsetSec)) throw new RangeError(`clock offset must be whole seconds, got ${offsetSec}`);
  return {
    LD_PRELOAD: faketimeLibrary(),
    FAKETIME: `${offsetSec > 0 ? "+" : ""}${offsetSec}s`,
    FAKETIME_DONT_FAKE_MONOTONIC: "1",
  };
}
