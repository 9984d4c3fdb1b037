/**
 * The hub daemon's composition root: `locmesh hub` (run a hub) and `locmesh hub migrate` (apply the
 * PostgreSQL migrations and exit). Registered on the one `locmesh` binary by agent/main.ts; this is
 * the only hub module that reads the environment, installs signal handlers or exits.
 */
import type { Command } from "commander";
import { ConfigError } from "../agent/config/agent-config.js";
import { createLogger } from "../agent/ops/logger.js";
import { runUntilSignalled } from "../agent/ops/daemon.js";
import { staleSeconds } from "./agent-registry.js";
import { describeForget, forgetAgents } from "./forget-agents.js";
import { migrateHubDatabase, startHub } from "./hub.js";
import { withPgClient } from "./pg-client.js";
import { loadHubConfig, redactHubConfig, type HubConfig } from "./hub-config.js";

function loadOrExit(file: string | undefined, env: Record<string, string | undefined>, onWarning?: (message: string) => void): HubConfig {
  try {
    return loadHubConfig({ file, env, ...(onWarning ? { onWarning } : {}) });
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
}

export function registerHubCommands(program: Command, io: { env: Record<string, string | undefined> }): void {
  const hub = program
    .command("hub")
    .description("run a locmesh hub: agents with hub.urls replicate through it; state lives in PostgreSQL");
  const configOption = ["-c, --config <file>", "hub config file (YAML or JSON); LOCMESH_* variables override it", io.env["LOCMESH_CONFIG"]] as const;

  hub
    .command("run", { isDefault: true })
    .description("run the hub daemon (migrates the database first)")
    .option(...configOption)
    .addHelpText("after", "\nSignals: SIGTERM/SIGINT stop gracefully; SIGHUP is logged and ignored (config changes need a restart).")
    .action(async (opts: { config?: string }) => {
      const warnings: string[] = [];
      const config = loadOrExit(opts.config, io.env, (w) => warnings.push(w));
      const log = createLogger({ level: config.log.level, nodeId: config.nodeId });
      log.info({ config: redactHubConfig(config) }, "starting locmesh hub");
      for (const w of warnings) log.warn(w);
      let running;
      const stopOnFatal = (err: Error) => {
        log.fatal({ err: err.message }, "hub stopping");
        process.stderr.write(`locmesh hub stopped: ${err.message}\n`);
        void starting.then((hub) => hub.close(), () => undefined).finally(() => process.exit(1));
      };
      const starting = startHub(config, { log, onFatal: stopOnFatal });
      try {
        running = await starting;
      } catch (err) {
        log.fatal({ err }, "hub failed to start");
        process.stderr.write(`locmesh hub failed to start: ${(err as Error).message}\n`);
        process.exit(1);
      }
      // Without a handler Node ends the process on SIGHUP (an init system's "reload" sends it).
      runUntilSignalled(running, log, () => log.warn("SIGHUP: a hub reads its config only at start; restart it to apply changes (mesh.agents, postgres, ...)"));
    });

  hub
    .command("migrate")
    .description("apply pending PostgreSQL migrations and exit (refuses a database newer than this locmesh)")
    .option(...configOption)
    .action(async (opts: { config?: string }) => {
      const config = loadOrExit(opts.config, io.env);
      try {
        const applied = await migrateHubDatabase(config.postgres.url);
        process.stdout.write(applied.length > 0 ? `applied migrations ${applied.join(", ")}\n` : "the hub database is up to date\n");
      } catch (err) {
        process.stderr.write(`locmesh hub migrate failed: ${(err as Error).message}\n`);
        process.exit(1);
      }
    });

  hub
    .command("forget")
    .description("drop stopped agents from the hubs' record (with mesh.acceptUnlisted, hubs report every agent they recorded as down until it is forgotten)")
    .argument("<nodeId...>", "the agents' node ids")
    .option(...configOption)
    .action(async (nodeIds: string[], opts: { config?: string }) => {
      const config = loadOrExit(opts.config, io.env);
      try {
        const outcome = await withPgClient(config.postgres.url, (client) => forgetAgents(client, nodeIds, staleSeconds(config.mesh.statusIntervalMs)));
        process.stdout.write(`${describeForget(outcome)}\n`);
        if (outcome.connected.length > 0) process.exit(1);
      } catch (err) {
        process.stderr.write(`locmesh hub forget failed: ${(err as Error).message}\n`);
        process.exit(1);
      }
    });
}
