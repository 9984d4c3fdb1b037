/**
 * Runs the `locmesh` CLI as an operator does: `node bin/locmesh.js ...` in a child process, with
 * only the environment the test gives it (no LOCMESH_* from the caller).
 */
import { execFile } from "node:child_process";
import { chmodSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { CheckReport, CheckResult } from "../../agent/check/check-result.js";
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

/**
 * `locmesh <command...> -c <config>` (check or hub check) run twice, for its JSON report and its
 * text, which must exit alike.
 */
export async function checkRun(command: string[], configPath: string): Promise<{ code: number | null; report: CheckReport; text: string }> {
  const args = [...command, "-c", configPath, "--timeout", "2000"];
  const [json, text] = [await cli([...args, "--json"]), await cli(args)];
  if (json.code !== text.code) throw new Error(`${command.join(" ")} exited ${json.code} with --json and ${text.code} without`);
  return { code: json.code, report: JSON.parse(json.stdout) as CheckReport, text: text.stdout };
}

/** A check report's results by subject ("journal", "kamailio fifo", ...). */
export const bySubject = (r: CheckReport): Record<string, CheckResult> => Object.fromEntries(r.checks.map((c) => [c.subject, c]));

/**
 * A folder others may enter and only its owner may write, met by the CLI as a user who may not
 * write it: the tests run as root, so the CLI runs as nobody (`as`); a runner that is not root
 * meets it as a 0555 folder of its own. Put files in first, then `seal()`; `remove()` at the end.
 */
export function folderNotWritableToCli(prefix: string): { folder: string; as: { uid: number; gid: number } | undefined; seal(): void; remove(): void } {
  const folder = mkdtempSync(join(tmpdir(), prefix));
  chmodSync(folder, 0o755);
  const root = process.getuid?.() === 0;
  return {
    folder,
    as: root ? { uid: 65534, gid: 65534 } : undefined,
    seal: () => {
      if (!root) chmodSync(folder, 0o555);
    },
    remove: () => {
      chmodSync(folder, 0o755);
      rmSync(folder, { recursive: true, force: true });
    },
  };
}
