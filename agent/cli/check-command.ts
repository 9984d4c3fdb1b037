/**
 * `locmesh check`: runs agent/check/run-checks.ts for the node an agent config describes and
 * prints what it found (check-output.ts), or the report as JSON. Exit 0 when nothing failed, 1
 * when something did, 2 for a config or usage error.
 */
import type { Command } from "commander";
import { checkExitCode, type CheckReport } from "../check/check-result.js";
import { runChecks } from "../check/run-checks.js";
import { ConfigError, loadAgentConfig } from "../config/agent-config.js";
import { silentLogger } from "../ops/logger.js";
import { renderReport } from "./check-output.js";

interface Opts {
  config?: string;
  json?: boolean;
  timeout: string;
}

export function registerCheckCommand(program: Command, io: { env: NodeJS.ProcessEnv; stdout: NodeJS.WriteStream | NodeJS.WritableStream; stderr: NodeJS.WritableStream }): void {
  program
    .command("check")
    .description("check this node's setup: config, journal, ports, peers or hubs, and its Kamailio (before starting the agent, or beside it)")
    .option("-c, --config <file>", "the agent's config file (YAML or JSON); LOCMESH_* variables override it", io.env["LOCMESH_CONFIG"])
    .option("--timeout <ms>", "how long each probe may take (a peer's challenge, a Kamailio call, a database)", "3000")
    .option("--json", "print the report as JSON")
    .addHelpText(
      "after",
      "\nRun it as the agent's user (or root). It changes nothing: it reads the journal without opening it for writing,\n" +
        "asks each peer and hub for its challenge and closes before authenticating (the cluster key is proven only by a\n" +
        "session: locmesh status shows a refused one), calls read-only jsonrpcs methods, and connects to evapi only while no\n" +
        "agent runs. Each FAIL line says what to do. Exit codes: 0 nothing failed (warnings may remain); 1 something\n" +
        "failed; 2 the config or a flag is wrong.",
    )
    .action(async (opts: Opts) => {
      const timeoutMs = checkTimeout(opts.timeout, io.stderr);
      if (timeoutMs === null) return;
      const warnings: string[] = [];
      let config;
      try {
        config = loadAgentConfig({ file: opts.config, env: io.env, onWarning: (w) => warnings.push(w) });
      } catch (err) {
        if (!(err instanceof ConfigError)) throw err;
        io.stderr.write(`${err.message}\n`);
        process.exitCode = 2;
        return;
      }
      await writeCheckReport("locmesh check", () => runChecks({ config, configFile: opts.config ?? null, configWarnings: warnings, timeoutMs, log: silentLogger() }), opts.json === true, io);
    });
}

/** `--timeout`'s milliseconds; null (usage error said, exit code 2 set) when it is not one. */
export function checkTimeout(text: string, stderr: NodeJS.WritableStream): number | null {
  const ms = Number(text);
  if (Number.isInteger(ms) && ms >= 100 && ms <= 120_000) return ms;
  stderr.write(`--timeout must be a whole number of milliseconds from 100 to 120000, not "${text}"\n`);
  process.exitCode = 2;
  return null;
}

/**
 * Runs the checks and prints the report (as JSON with `json`), setting the exit code: 1 when a
 * check failed, or when the checks themselves threw (said on stderr as `<command> failed: …`).
 */
export async function writeCheckReport(
  command: string,
  run: () => Promise<CheckReport>,
  json: boolean,
  io: { stdout: NodeJS.WriteStream | NodeJS.WritableStream; stderr: NodeJS.WritableStream },
): Promise<void> {
  let report: CheckReport;
  try {
    report = await run();
  } catch (err) {
    io.stderr.write(`${command} failed: ${(err as Error).message}\n`);
    process.exitCode = 1;
    return;
  }
  const { stdout } = io;
  const columns = "columns" in stdout && typeof stdout.columns === "number" ? stdout.columns : 100;
  stdout.write(json ? `${JSON.stringify(report, null, 2)}\n` : renderReport(report, columns));
  process.exitCode = checkExitCode(report.checks);
}
