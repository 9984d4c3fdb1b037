/**
 * `locmesh kamailio-cfg`: prints the kamailio.cfg include for this node (agent/kamailio/
 * cfg-include.ts) with the values from its agent config, or, with --instructions, the few lines an
 * operator adds to their own kamailio.cfg. Flags override what the config says.
 */
import { isIP } from "node:net";
import type { Command } from "commander";
import { ConfigError, loadAgentConfig } from "../config/agent-config.js";
import { DEFAULT_INCLUDE_PATH, kamailioInclude, kamailioIncludeInstructions } from "../kamailio/cfg-include.js";
import { evapiBulkToken } from "../kamailio/evapi-bulk.js";

interface Opts {
  config?: string;
  instructions?: boolean;
  evapi?: string;
  agentAddress?: string;
  peers?: string;
  aliases?: string;
  includePath: string;
}

export function registerKamailioCfgCommand(program: Command, io: { env: NodeJS.ProcessEnv; stdout: NodeJS.WritableStream; stderr: NodeJS.WritableStream }): void {
  program
    .command("kamailio-cfg")
    .description("print the kamailio.cfg include that connects this node's Kamailio to its agent")
    .option("-c, --config <file>", "agent config to take evapi address, alias mode and peers from", io.env["LOCMESH_CONFIG"])
    .option("--instructions", "print the lines to add to your own kamailio.cfg instead")
    .option("--evapi <host:port>", "evapi bind address (default: the config's kamailio.evapi, else 127.0.0.1:8448)")
    .option("--agent-address <ip>", "the only address allowed to connect to evapi (default: the evapi host)")
    .option("--peers <ips>", "comma-separated SIP source IPs of the other Kamailio nodes, '' for none (default: the hosts of mesh.peers, which must then be IP addresses; needed in hub mode, or when Kamailio's SIP addresses differ from the agents')")
    .option("--aliases <mode>", "usrloc (SER-style aliases domain) or dbaliases (alias_db)")
    .option("--include-path <path>", "where you will install the include (used in --instructions)", DEFAULT_INCLUDE_PATH)
    .addHelpText("after", `\nExample:\n  locmesh kamailio-cfg -c /etc/locmesh/agent.yaml > ${DEFAULT_INCLUDE_PATH}\n  locmesh kamailio-cfg --instructions`)
    .action((opts: Opts) => {
      try {
        io.stdout.write(render(opts, io.env, (warning) => io.stderr.write(`locmesh: ${warning}\n`)));
      } catch (err) {
        io.stderr.write(`${(err as Error).message}\n`);
        process.exitCode = 2;
      }
    });
}

function render(opts: Opts, env: NodeJS.ProcessEnv, warn: (text: string) => void): string {
  const config = opts.config ? loadConfig(opts.config, env) : null;
  // The include must match the agent's kamailio section (evapi address, alias mode): generated from
  // a config without one, it takes the defaults, and an agent configured later may disagree.
  if (config && !config.kamailio && !opts.instructions && (opts.evapi === undefined || opts.aliases === undefined)) {
    warn(`${opts.config} has no kamailio section: the include uses ${opts.evapi ?? "evapi 127.0.0.1:8448"} and ${opts.aliases ?? "usrloc"} aliases; ` +
      "add the agent's kamailio section first (see \"Attach to your Kamailio\"), then generate the include again");
  }
  const aliasMode = (opts.aliases ?? config?.kamailio?.aliases ?? "usrloc") as "usrloc" | "dbaliases";
  if (aliasMode !== "usrloc" && aliasMode !== "dbaliases") throw new Error(`--aliases must be usrloc or dbaliases, got ${JSON.stringify(opts.aliases)}`);
  if (opts.instructions) return kamailioIncludeInstructions({ includePath: opts.includePath, aliasMode });
  const evapi = opts.evapi ? parseHostPort(opts.evapi) : (config?.kamailio?.evapi ?? { host: "127.0.0.1", port: 8448 });
  const peers = opts.peers !== undefined
    ? opts.peers.split(",").map((s) => s.trim()).filter(Boolean)
    : config ? peersFromConfig(config) : [];
  return kamailioInclude({
    evapiListen: evapi,
    agentAddress: opts.agentAddress ?? evapi.host,
    aliasMode,
    meshPeers: peers,
    includePath: opts.includePath,
    // The bulk channel's token derives from the cluster key, which only the agent config has.
    ...(config ? { bulkToken: evapiBulkToken(config.mesh.secret, config.nodeId) } : {}),
  });
}

/**
 * The other nodes' SIP source addresses, taken from the agent's peer URLs. The include compares
 * them with `$si`, so a host name cannot be used, and a hub-mode config names no other node: both
 * are refused rather than left out, which would make the include relay nothing from them.
 */
function peersFromConfig(config: ReturnType<typeof loadConfig>): string[] {
  const hint = "pass the other nodes' Kamailio SIP source IPs with --peers ip1,ip2 (or --peers '' for a single node)";
  // Through a hub, nodes the config does not name send changes too (and their phones' calls).
  if (config.hub.urls.length > 0) {
    throw new Error(`the agent config uses a hub, through which nodes it does not name take part; ${hint}`);
  }
  const hosts = config.mesh.peers.map((p) => ({ id: p.id, host: new URL(p.url).hostname.replace(/^\[|\]$/g, "") }));
  const named = hosts.filter((h) => isIP(h.host) === 0);
  if (named.length > 0) {
    throw new Error(`mesh.peers ${named.map((h) => `${h.id} (${h.host})`).join(", ")}: not an IP address, and Kamailio matches requests by source IP; ${hint}`);
  }
  return hosts.map((h) => h.host);
}

function loadConfig(file: string, env: NodeJS.ProcessEnv) {
  try {
    return loadAgentConfig({ file, env });
  } catch (err) {
    if (err instanceof ConfigError) throw new Error(err.message);
    throw err;
  }
}

function parseHostPort(v: string): { host: string; port: number } {
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(v) ?? /^([^:]+):(\d+)$/.exec(v);
  if (!m) throw new Error(`--evapi must be host:port, got ${JSON.stringify(v)}`);
  return { host: m[1]!, port: Number(m[2]) };
}
