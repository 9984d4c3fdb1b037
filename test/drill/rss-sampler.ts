/**
 * Samples processes' resident memory (VmRSS in /proc/<pid>/status) at a fixed interval and keeps
 * each one's peak, so a drill can show that memory stays bounded while it loads the cluster.
 */
import { readFileSync } from "node:fs";

export interface RssSampler {
  /** Stops sampling; returns each name's peak RSS in MB (0 when it was never sampled). */
  stop(): Record<string, number>;
}

/** `pids` is asked on every tick, so a restarted process is followed under its new pid. */
export function sampleRss(pids: () => Record<string, number | undefined>, everyMs = 200): RssSampler {
  const peak: Record<string, number> = {};
  const tick = () => {
    for (const [name, pid] of Object.entries(pids())) {
      const mb = pid === undefined ? null : rssMb(pid);
      peak[name] = Math.max(peak[name] ?? 0, mb ?? 0);
    }
  };
  tick();
  const timer = setInterval(tick, everyMs);
  return {
    stop() {
      clearInterval(timer);
      tick();
      return { ...peak };
    },
  };
}

/** Resident memory of a live process in MB, or null when it is gone. */
export function rssMb(pid: number): number | null {
  try {
    const m = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Math.round(Number(m[1]) / 1024) : null;
  } catch {
    return null;
  }
}
