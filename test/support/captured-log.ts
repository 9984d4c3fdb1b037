/** A real logger (pino) whose lines are kept in memory, for unit tests that check what is logged. */
import { pino } from "pino";
import type { Logger } from "../../agent/ops/logger.js";

export interface LogLine {
  /** pino's number: 30 info, 40 warn, 50 error. */
  level: number;
  msg: string;
}

export function capturedLog(): { log: Logger; lines: LogLine[] } {
  const lines: LogLine[] = [];
  const log: Logger = pino({ level: "info" }, { write: (s: string) => void lines.push(JSON.parse(s) as LogLine) });
  return { log, lines };
}
