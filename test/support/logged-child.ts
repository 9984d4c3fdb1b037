/**
 * A server process started for a test (Kamailio, PostgreSQL): its stderr kept as a bounded tail
 * for error messages, and its exit observable while the caller waits for it to become ready.
 */
import { spawn, type ChildProcess, type SpawnOptions } from "node:child_process";

export interface LoggedChild {
  proc: ChildProcess;
  /** Resolves when the process has exited. */
  exited: Promise<void>;
  /** The exit code once it exited (-1 for a signal), else undefined. */
  exitCode(): number | null | undefined;
}

export function spawnLogged(cmd: string, args: readonly string[], opts: SpawnOptions, log: string[]): LoggedChild {
  const proc = spawn(cmd, args, { ...opts, stdio: ["ignore", "ignore", "pipe"] });
  let code: number | null | undefined;
  const exited = new Promise<void>((resolve) =>
    proc.once("exit", (c, signal) => {
      code = c ?? (signal ? -1 : null);
      resolve();
    }),
  );
  proc.stderr?.setEncoding("utf8");
  proc.stderr?.on("data", (s: string) => {
    log.push(...s.split("\n").filter(Boolean));
    if (log.length > 2000) log.splice(0, log.length - 1000);
  });
  return { proc, exited, exitCode: () => code };
}

/** The process exists (signal 0 checks without sending anything). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
