/**
 * Runs the `locmesh` CLI as an operator does: `node bin/locmesh.js ...` in a child process, with
 * only the environment the test gives it (no LOCMESH_* from the caller).
 */
import { execFile } from "node:child_process";
import { join } from "node:path";
import { ROOT } from "./agent-process.js";

export const BIN = join(ROOT, "bin", "locmesh.js");

export interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** `as`: run it as this user and group (the tests' runner is root: to meet what an unprivileged operator meets). */
export function cli(args: string[], env: Record<string, string> = {}, as?: { uid: number; gid: number }): Promise<Run> {
  const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("LOCMESH_")));
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { env: { ...base, NO_COLOR: "1", ...env }, timeout: 20_000, ...as }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === "number" ? err.code : null) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}
