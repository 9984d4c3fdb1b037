/** Structured JSON logs (pino): one child logger per component, tagged with node and peer ids. */
import { pino, type Logger, type DestinationStream } from "pino";

export type { Logger };

export function createLogger(opts: { level: string; nodeId: string; destination?: DestinationStream }): Logger {
  const base = pino(
    {
      level: opts.level,
      base: { node: opts.nodeId },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      redact: {
        paths: ["secret", "token", "*.secret", "*.token", "config.mesh.secret", "config.api.token", "config.mesh.acceptedSecrets[*]", "config.api.acceptedTokens[*]"],
        censor: "[redacted]",
      },
    },
    opts.destination ?? pino.destination({ fd: 1, sync: false }),
  );
  return base;
}

/** A logger that drops everything, for tests that do not look at logs. */
export function silentLogger(): Logger {
  return pino({ level: "silent" });
}
