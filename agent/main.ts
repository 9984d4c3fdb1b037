/**
 * The `locmesh` binary's composition root: the only place that reads argv and the environment,
 * installs signal handlers and exits.
 */
import { Command } from "commander";
import { startAgent } from "./agent.js";
import { ConfigError, loadAgentConfig, redactConfig } from "./config/agent-config.js";
import { registerClientCommands } from "./cli/client-commands.js";
import { runDemo } from "./cli/demo.js";
import { createLogger } from "./ops/logger.js";
import { runUntilSignalled } from "./ops/daemon.js";
import { packageRoot } from "./ops/paths.js";
import { registerHubCommands } from "../hub/main.js";

const program = new Command()
  .name("locmesh")
  .description("Keeps Kamailio SIP proxy clusters in agreement about where users are.")
  .showHelpAfterError();

program
  .command("agent")
  .description("run the locmesh agent for this node (journal, peer mesh, local API)")
  .option("-c, --config <file>", "config file (YAML or JSON); LOCMESH_* variables override it", process.env["LOCMESH_CONFIG"])
  .addHelpText("after", "\nSignals: SIGTERM/SIGINT stop gracefully; SIGHUP re-reads the config and applies a changed peer list.")
  .action(async (opts: { config?: string }) => {
    const load = () => loadAgentConfig({ file: opts.config, env: process.env });
    let config;
    try {
      config = load();
    } catch (err) {
      if (err instanceof ConfigError) {
        process.stderr.write(`${err.message}\n`);
        process.exit(2);
      }
      throw err;
    }
    const log = createLogger({ level: config.log.level, nodeId: config.nodeId });
    log.info({ config: redactConfig(config) }, "starting locmesh agent");
    let agent;
    try {
      agent = await startAgent(config, { log });
    } catch (err) {
      log.fatal({ err }, "agent failed to start");
      process.stderr.write(`locmesh agent failed to start: ${(err as Error).message}\n`);
      process.exit(1);
    }
    runUntilSignalled(agent, log, () => {
      try {
        const next = load();
        agent.setPeers(next.mesh.peers);
      } catch (err) {
        log.error({ err: (err as Error).message }, "config reload failed; keeping the running config");
      }
    });
  });

program
  .command("demo")
  .description("start a local 3-node demo cluster on 127.0.0.1 with embedded defaults (Ctrl-C stops it)")
  .option("-n, --nodes <n>", "number of nodes", "3")
  .action(async (opts: { nodes: string }) => {
    let demo;
    try {
      demo = await runDemo({ root: packageRoot(), nodes: Number(opts.nodes), stdout: process.stdout, env: process.env });
    } catch (err) {
      process.stderr.write(`demo failed to start: ${(err as Error).message}\n`);
      process.exit(1);
    }
    const stop = () => void demo.stop().then(() => process.exit(0));
    process.on("SIGINT", stop);
    process.on("SIGTERM", stop);
  });

registerHubCommands(program, { env: process.env });
registerClientCommands(program, { env: process.env, stdout: process.stdout, stderr: process.stderr });

await program.parseAsync(process.argv);
