/**
 * The hub daemon's composition root: `locmesh hub` (run a hub) and `locmesh hub migrate` (apply the
 * PostgreSQL migrations and exit). Registered on the one `locmesh` binary by agent/main.ts; this is
 * the only hub module that reads the environment, installs signal handlers or exits.
 */
import type { Command } from "commander";
import { CREDENTIAL_SETTINGS, ConfigError, envOverrideOnReload, settingsNeedingRestart } from "../agent/config/agent-config.js";
import { applyCredentials } from "../agent/ops/key-ring.js";
import { reloadTls } from "../agent/mesh/tls-reload.js";
import { tlsToReread } from "../agent/config/reload-plan.js";
import { createLogger } from "../agent/ops/logger.js";
import { handleSignals } from "../agent/ops/daemon.js";
import { agentRowStaleSeconds } from "./agent-registry.js";
import { agentsToApply } from "./agents-reload.js";
import { describeForget, forgetAgents } from "./forget-agents.js";
import { checkTimeout, writeCheckReport } from "../agent/cli/check-command.js";
import { runHubChecks } from "./hub-check.js";
import { migrateHubDatabase, startHub } from "./hub.js";
import { withPgClient } from "./pg-client.js";
import { loadHubConfig, redactHubConfig, type HubConfig } from "./hub-config.js";

/** What SIGHUP applies on a hub. */
const HUB_RELOADED_SETTINGS: readonly string[] = ["mesh.agents", ...CREDENTIAL_SETTINGS];

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

/** What `locmesh hub --help` says after the options: the settings a hub needs (README "Running a hub"). */
const HUB_HELP = `
Config (YAML or JSON; README "Running a hub" and "Config reference"):
  nodeId                     this hub's id: give every hub its own (required)
  mesh.secret / secretFile   the agents' cluster key (required)
  mesh.acceptedSecrets       further cluster keys it takes while the key is rotated
                             (or mesh.acceptedSecretFiles, a list of files)
  mesh.agents                the agents' node ids it accepts, or mesh.acceptUnlisted: true
  mesh.listen                where agents connect (0.0.0.0:7100); they list it in hub.urls
  api.listen                 local API, /metrics and web UI (127.0.0.1:7180)
  api.token / tokenFile      API token (required)
  api.acceptedTokens         further API tokens it takes while the token is rotated
                             (or api.acceptedTokenFiles)
  postgres.url               postgres://user:password@host/db, shared by all hubs (required; or LOCMESH_POSTGRES_URL)
  also: postgres.poolSize, postgres.channel, mesh.relayLingerMs, mesh.statusIntervalMs, journal.retentionHours, log.level

Signals: SIGTERM/SIGINT stop gracefully; SIGHUP re-reads the config file and the secret files (not the
environment) and applies mesh.agents (an agent taken out has its session closed), mesh.tls's files (read
again: a renewed certificate) and the cluster keys and API tokens, keeping the other sessions up; other changed settings are logged and need a restart. Key rotation: README "Rotating the cluster key and API token".`;

export function registerHubCommands(program: Command, io: { env: Record<string, string | undefined> }): void {
  const configOption = ["-c, --config <file>", "hub config file (YAML or JSON); LOCMESH_* variables override it", io.env["LOCMESH_CONFIG"]] as const;
  const hub = program
    .command("hub")
    .description("run a locmesh hub (migrates its database first): agents with hub.urls replicate through it; state lives in PostgreSQL")
    .option(...configOption)
    .addHelpText("after", HUB_HELP)
    .action((opts: { config?: string }) => runHub(opts.config, io.env));
  // The old spelling of `locmesh hub`, kept for scripts and units that use it.
  hub
    .command("run", { hidden: true })
    .option(...configOption)
    .action((_opts: unknown, cmd: Command) => runHub(configOf(cmd), io.env));

  hub
    .command("migrate")
    .description("apply pending PostgreSQL migrations and exit (refuses a database newer than this locmesh)")
    .option(...configOption)
    .action(async (_opts: unknown, cmd: Command) => {
      const config = loadOrExit(configOf(cmd), io.env);
      try {
        const applied = await migrateHubDatabase(config.postgres);
        process.stdout.write(applied.length > 0 ? `applied migrations ${applied.join(", ")}\n` : "the hub database is up to date\n");
      } catch (err) {
        process.stderr.write(`locmesh hub migrate failed: ${(err as Error).message}\n`);
        process.exit(1);
      }
    });

  hub
    .command("check")
    .description("check this hub's setup: config, PostgreSQL and its schema, its nodeId's claim, the other hubs, its ports (before starting it, or beside it)")
    .option(...configOption)
    .option("--timeout <ms>", "how long each probe may take", "3000")
    .option("--json", "print the report as JSON")
    .addHelpText("after", "\nIt changes nothing (no migration, no claim). Each FAIL line says what to do. Exit codes: 0 nothing failed; 1 something failed; 2 the config or a flag is wrong.")
    .action(async (opts: { timeout: string; json?: boolean }, cmd: Command) => {
      const timeoutMs = checkTimeout(opts.timeout, process.stderr);
      if (timeoutMs === null) return;
      const warnings: string[] = [];
      const file = configOf(cmd);
      const config = loadOrExit(file, io.env, (w) => warnings.push(w));
      await writeCheckReport("locmesh hub check", () => runHubChecks({ config, configFile: file ?? null, configWarnings: warnings, timeoutMs }), opts.json === true, process);
    });

  hub
    .command("forget")
    .description("drop stopped agents from the hubs' record (with mesh.acceptUnlisted, hubs report every agent they recorded as down until it is forgotten)")
    .argument("<nodeId...>", "the agents' node ids")
    .option(...configOption)
    .action(async (nodeIds: string[], _opts: unknown, cmd: Command) => {
      const config = loadOrExit(configOf(cmd), io.env);
      try {
        const outcome = await withPgClient(config.postgres, (client) => forgetAgents(client, nodeIds, agentRowStaleSeconds(config.mesh.statusIntervalMs), config.mesh.agents));
        process.stdout.write(`${describeForget(outcome)}\n`);
        if (outcome.connected.length > 0 || outcome.listed.length > 0) process.exit(1);
      } catch (err) {
        process.stderr.write(`locmesh hub forget failed: ${(err as Error).message}\n`);
        process.exit(1);
      }
    });
}

/**
 * A subcommand's --config. `hub` takes the option too, and commander gives an option after the
 * subcommand (`hub migrate --config f`) to `hub`: it is read from wherever it landed.
 */
const configOf = (cmd: Command) => cmd.optsWithGlobals<{ config?: string }>().config;

/** `locmesh hub`: runs the hub until a signal, or exits 1 when it cannot start or must stop. */
async function runHub(file: string | undefined, env: Record<string, string | undefined>): Promise<void> {
  const warnings: string[] = [];
  const config = loadOrExit(file, env, (w) => warnings.push(w));
  const log = createLogger({ level: config.log.level, nodeId: config.nodeId });
  log.info({ config: redactHubConfig(config) }, "starting locmesh hub");
  for (const w of warnings) log.warn(w);
  let running;
  const stopOnFatal = (err: Error) => {
    log.fatal({ err: err.message }, "hub stopping");
    process.stderr.write(`locmesh hub stopped: ${err.message}\n`);
    // Bounded as a signal's stop is (agent/ops/daemon.ts); hub.close() runs once however many ask.
    setTimeout(() => process.exit(1), 10_000).unref();
    void starting.then((hub) => hub.close(), () => undefined).finally(() => process.exit(1));
  };
  // Before the start: a signal during it must not end the process unheard.
  const signals = handleSignals(log);
  const starting = startHub(config, { log, onFatal: stopOnFatal });
  try {
    running = await starting;
  } catch (err) {
    log.fatal({ err }, "hub failed to start");
    process.stderr.write(`locmesh hub failed to start: ${(err as Error).message}\n`);
    process.exit(1);
  }
  const hub = running;
  let agents: readonly string[] = config.mesh.agents;
  signals.started(hub, () => {
    try {
      const next = loadHubConfig({ file, env, onWarning: (w) => log.warn(w), onEnvOverride: (setting, variable) => log.warn(envOverrideOnReload(setting, variable)) });
      const { agents: wanted, held } = agentsToApply(config, next, agents);
      if (held) log.error({ kept: held.kept, configured: next.mesh.agents }, held.message);
      const agentsChanged = JSON.stringify(wanted) !== JSON.stringify(agents);
      if (agentsChanged) {
        hub.mesh.setAllowed(wanted);
        agents = wanted;
      }
      const tls = tlsToReread(config, next);
      if (tls) reloadTls(hub.mesh, tls, log);
      const applied = applyCredentials(hub.credentials, next, log);
      const later = settingsNeedingRestart(config, next, tls ? [...HUB_RELOADED_SETTINGS, "mesh.tls"] : HUB_RELOADED_SETTINGS);
      if (later.length > 0) log.warn({ settings: later }, "SIGHUP applies only mesh.agents, mesh.tls, the cluster keys and the API tokens on a hub: these changed settings take effect when the hub restarts");
      else if (!applied && !agentsChanged && !tls) log.info("SIGHUP: read the config again; nothing in it changed");
    } catch (err) {
      log.error({ err: (err as Error).message }, "config reload failed; keeping the running config");
    }
  });
}
