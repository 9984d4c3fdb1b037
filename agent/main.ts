/**
 * The `locmesh` binary's composition root: the only place that reads argv and the environment,
 * installs signal handlers and exits.
 */
import { Command } from "commander";
import { startAgent } from "./agent.js";
import { ConfigError, envOverrideOnReload, loadAgentConfig, redactConfig } from "./config/agent-config.js";
import { planReload } from "./config/reload-plan.js";
import { registerCheckCommand } from "./cli/check-command.js";
import { registerClientCommands } from "./cli/client-commands.js";
import { endQuietlyWhenOutputCloses } from "./cli/closed-output.js";
import { DemoAborted, runDemo } from "./cli/demo.js";
import { registerKamailioCfgCommand } from "./cli/kamailio-cfg-command.js";
import { applyCredentials } from "./ops/key-ring.js";
import { reloadTls } from "./mesh/tls-reload.js";
import { createLogger } from "./ops/logger.js";
import { handleSignals } from "./ops/daemon.js";
import { packageRoot, packageVersion } from "./ops/paths.js";
import { redactUrl } from "./ops/redact-url.js";
import { registerHubCommands } from "../hub/main.js";

// Every command's output, for a reader that may go away early (`locmesh alias ls --all | head`).
// The daemons' logs do not go through process.stdout (pino writes to fd 1 itself).
endQuietlyWhenOutputCloses([process.stdout, process.stderr], (code) => process.exit(code));

const program = new Command()
  .name("locmesh")
  .description("Keeps Kamailio SIP proxy clusters in agreement about where users are.")
  .version(packageVersion(), "-V, --version", "print the locmesh version")
  .showHelpAfterError()
  // A wrong flag or argument is a usage error, 2 (commander's own is 1, which means "failed" here).
  .exitOverride((err) => process.exit(err.exitCode === 0 ? 0 : 2))
  .addHelpText("after", "\nExit codes: 0 done; 1 the agent refused or the operation failed; 2 usage or config error;\n3 the agent is not reachable; 4 the API token was refused; 130 stopped following with Ctrl-C (resync);\n141 the output's reader went away (as SIGPIPE).");

program
  .command("agent")
  .description("run the locmesh agent for this node (journal, peer mesh, local API)")
  .option("-c, --config <file>", "config file (YAML or JSON); LOCMESH_* variables override it", process.env["LOCMESH_CONFIG"])
  .addHelpText(
    "after",
    "\nSignals: SIGTERM/SIGINT stop gracefully; SIGHUP re-reads the config file and the secret files and applies, keeping the sessions already up\n" +
      "(the environment stays the one the agent started with: a LOCMESH_* variable keeps overriding its setting, and the log says so at each SIGHUP):\n" +
      "- a changed mesh.peers and hub.urls (an agent stays on its hub while it is still listed, and leaves one no longer listed for the first that answers),\n" +
      "  then moves an agent on another hub to the first of its hub.urls if that one answers;\n" +
      "- in hub mode, a changed hub.failbackAfterSec (the checks of the first hub start over with it);\n" +
      "- the other Kamailio nodes' SIP IPs (kamailio.sipPeers, else mesh.peers' hosts), set at once in Kamailio's list of nodes that may relay calls;\n" +
      "- mesh.tls's files, read again (a renewed certificate or CA), used from the next handshake; files that cannot be used are logged and the running ones stay;\n" +
      "- the cluster keys (mesh.secret, mesh.acceptedSecrets) and the API tokens (api.token, api.acceptedTokens): README \"Rotating the cluster key and API token\".\n" +
      "Other changed settings, switching into or out of hub mode (hub.urls set or emptied) and TLS on or off take effect at the next restart; the log names them.\n" +
      "Peers dropped from mesh.peers by a change that also turns on mesh.acceptUnlisted or sets hub.urls are kept until that restart, and a mesh.peers that\n" +
      "lists the id the agent runs as (a changed nodeId waits for the restart too) is not applied; the log says so as an error.\n" +
      "An agent in hub mode with no mesh.peers and mesh.acceptUnlisted off does not open its peer port (mesh.listen).",
  )
  .action(async (opts: { config?: string }) => {
    const load = (onWarning?: (message: string) => void, onEnvOverride?: (setting: string, variable: string) => void) =>
      loadAgentConfig({ file: opts.config, env: process.env, ...(onWarning ? { onWarning } : {}), ...(onEnvOverride ? { onEnvOverride } : {}) });
    const warnings: string[] = [];
    let config;
    try {
      config = load((w) => warnings.push(w));
    } catch (err) {
      if (err instanceof ConfigError) {
        process.stderr.write(`${err.message}\n`);
        process.exit(2);
      }
      throw err;
    }
    const log = createLogger({ level: config.log.level, nodeId: config.nodeId });
    log.info({ config: redactConfig(config) }, "starting locmesh agent");
    for (const w of warnings) log.warn(w);
    // Before the start: a signal during it must not end the process unheard.
    const signals = handleSignals(log);
    let agent;
    try {
      agent = await startAgent(config, { log });
    } catch (err) {
      log.fatal({ err }, "agent failed to start");
      process.stderr.write(`locmesh agent failed to start: ${(err as Error).message}\n`);
      process.exit(1);
    }
    let running = config;
    signals.started(agent, () => {
      try {
        const next = load((w) => log.warn(w), (setting, variable) => log.warn(envOverrideOnReload(setting, variable)));
        const plan = planReload(running, next);
        if (plan.peersHeld) log.error({ kept: plan.peersHeld.kept, configured: next.mesh.peers.map((p) => p.id) }, plan.peersHeld.message);
        agent.setPeers(plan.peers);
        if (plan.hubUrls) agent.setHubUrls(plan.hubUrls);
        agent.setSipPeers(plan.sipPeers);
        if (plan.hubUrlsRefused) log.warn({ running: running.hub.urls.map(redactUrl), configured: next.hub.urls.map(redactUrl) }, plan.hubUrlsRefused);
        if (plan.hubFailbackAfterSec !== null) {
          const outcome = agent.setHubFailback(plan.hubFailbackAfterSec);
          log.info({ was: running.hub.failbackAfterSec, failbackAfterSec: plan.hubFailbackAfterSec, outcome }, "SIGHUP: hub.failbackAfterSec applied");
        }
        if (plan.tls) reloadTls(agent.mesh, plan.tls, log);
        applyCredentials(agent.credentials, next, log);
        running = plan.running;
        // An operator rebalancing hubs by hand: an agent on another hub moves to its first one now
        // if that one takes sessions (agent/mesh/failback.ts does it on its own, after a while).
        if (running.hub.urls.length > 0) void agent.mesh.failBackToPreferredHub().then((outcome) => log.info({ outcome }, "SIGHUP: checked the preferred hub"));
        if (plan.restartNeeded.length > 0) log.warn({ settings: plan.restartNeeded }, "SIGHUP applies only mesh.peers, hub.urls, hub.failbackAfterSec, kamailio.sipPeers, mesh.tls, the cluster keys and the API tokens: these changed settings take effect when the agent restarts");
      } catch (err) {
        log.error({ err: (err as Error).message }, "config reload failed; keeping the running config");
      }
    });
  });

program
  .command("demo")
  .description("start a local 3-node cluster on 127.0.0.1: a real Kamailio and a locmesh agent per node (Ctrl-C stops it)")
  .option("-n, --nodes <n>", "number of nodes", "3")
  .option("--dir <dir>", "folder for configs, journals, Kamailio runtime dirs and logs (default: .demo/ in the locmesh folder)")
  .option("--base-port <port>", "agent ports: node i meshes on <port>+i and serves its API on <port>+80+i", "7100")
  .option("--sip-base-port <port>", "Kamailio ports: node i takes SIP (udp, tcp) on <port>+i, jsonrpcs (udp) on <port>+100+i, evapi on <port>+200+i", "5070")
  .option("--domain <domain>", "the SIP domain the Kamailio nodes serve", "example.com")
  .option("--no-kamailio", "start the agents only, without Kamailio")
  .action(async (opts: { nodes: string; dir?: string; basePort: string; sipBasePort: string; domain: string; kamailio: boolean }) => {
    // Ctrl-C while starting stops what already runs (Kamailio included) before exiting.
    const starting = new AbortController();
    const abortStart = () => starting.abort();
    process.on("SIGINT", abortStart);
    process.on("SIGTERM", abortStart);
    let demo;
    try {
      demo = await runDemo({
        root: packageRoot(),
        dir: opts.dir,
        nodes: Number(opts.nodes),
        basePort: Number(opts.basePort),
        sipBasePort: Number(opts.sipBasePort),
        domain: opts.domain,
        kamailio: opts.kamailio,
        stdout: process.stdout,
        env: process.env,
        signal: starting.signal,
      });
    } catch (err) {
      if (err instanceof DemoAborted) process.exit(130);
      process.stderr.write(`demo failed to start: ${(err as Error).message}\n`);
      process.exit(1);
    }
    process.off("SIGINT", abortStart);
    process.off("SIGTERM", abortStart);
    // A second Ctrl-C must not kill this process before Kamailio is down (that would orphan it).
    let stopping = false;
    const stop = () => {
      if (stopping) return;
      stopping = true;
      process.stdout.write("locmesh demo: stopping...\n");
      void demo.stop().then(
        () => process.exit(0),
        (err: unknown) => {
          process.stderr.write(`demo did not stop cleanly: ${(err as Error).message}\n`);
          process.exit(1);
        },
      );
    };
    process.on("SIGINT", stop);
    process.on("SIGTERM", stop);
  });

registerHubCommands(program, { env: process.env });
registerClientCommands(program, { env: process.env, stdout: process.stdout, stderr: process.stderr });
registerKamailioCfgCommand(program, { env: process.env, stdout: process.stdout, stderr: process.stderr });
registerCheckCommand(program, { env: process.env, stdout: process.stdout, stderr: process.stderr });

await program.parseAsync(process.argv);
