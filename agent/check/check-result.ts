/**
 * What `locmesh check` finds, one result per thing it looked at, and the exit code it makes
 * (cli/check-output.ts prints it). No I/O here.
 */
import { errorCode } from "../cli/api-client.js";

/**
 * ok: as the agent needs it. warn: works, but deserves a look (the detail says why). fail: the
 * agent cannot work this way; the detail says what to do. skip: not looked at, and why.
 */
export type CheckState = "ok" | "warn" | "fail" | "skip";

export interface CheckResult {
  /** What was looked at, e.g. "journal", "peer n2", "kamailio jsonrpcs". */
  subject: string;
  state: CheckState;
  /** What was found; for a failure, what to do about it. */
  detail: string;
}

export interface CheckReport {
  /** Whose node this is: an agent's, or a hub's (`locmesh hub check`). */
  daemon: "agent" | "hub";
  nodeId: string;
  /** The config file read; null when the settings came from the environment alone. */
  config: string | null;
  /**
   * Whether the daemon runs now (its API answers as this node, its journal is held, its node id
   * claimed from this host): some checks then ask it, or leave what it holds alone. null: it
   * could not be told.
   */
  running: boolean | null;
  checks: CheckResult[];
}

export function summaryLine(checks: readonly CheckResult[]): string {
  const failed = checks.filter((c) => c.state === "fail").length;
  const warned = checks.filter((c) => c.state === "warn").length;
  const looked = checks.filter((c) => c.state !== "skip").length;
  const warnings = warned === 0 ? "" : `, ${warned} with ${warned === 1 ? "a warning" : "warnings"}`;
  if (failed === 0) return `${looked === 1 ? "1 check" : `${looked} checks`} passed${warnings}.`;
  return `${failed} of ${looked} checks failed${warnings}: each FAIL line says what to do.`;
}

/** 0 when nothing failed (warnings included), 1 when something did. */
export function checkExitCode(checks: readonly CheckResult[]): 0 | 1 {
  return checks.some((c) => c.state === "fail") ? 1 : 0;
}

/** An error as one short phrase: fetch's "fetch failed" replaced by the code of what failed under it, a timeout said so. */
export function errorText(err: unknown): string {
  const e = err as Error;
  if (e.message === "fetch failed") return errorCode(e) ?? (e.cause as Error | undefined)?.message ?? e.message;
  if (e.name === "TimeoutError") return "no answer in time";
  return e.message;
}

/** Two sentences as one text: a full stop between them unless the first ends with its own. */
export function sentences(first: string, next: string): string {
  return /[.?!]$/.test(first) ? `${first} ${next}` : `${first}. ${next}`;
}
