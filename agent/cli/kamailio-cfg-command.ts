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
import { canonicalSipPeers, sameSipPeers, sipPeersOf } from "../kamailio/sip-peers.js";
import { replaceFile } from "./replace-file.js";

/** A new include: readable by its group (Kamailio's), not by everyone (it holds the bulk channel's token). */
const INCLUDE_MODE = 0o640;

interface Opts {
  config?: string;
  instructions?: boolean;
  evapi?: string;
  agentAddress?: string;
  peers?: string;
  aliases?: string;
  includePath: string;
  output?: string;
}

export function registerKamailioCfgCommand(program: Command, io: { env: NodeJS.ProcessEnv; stdout: NodeJS.WritableStream; stderr: NodeJS.WritableStream }): void {
  program
    .command("kamailio-cfg")
    .description("print the kamailio.cfg include that connects this node's Kamailio to its agent")
    .option("-c, --config <file>", "agent config to take evapi address, alias mode and peers from", io.env["LOCMESH_CONFIG"])
    .option("--instructions", "print the lines to add to your own kamailio.cfg instead")
    .option("--evapi <host:port>", "evapi bind address (default: the config's kamailio.evapi, else 127.0.0.1:8448)")
    .option("--agent-address <ip>", "the only address allowed to connect to evapi (default: the evapi host)")
    .option("--peers <ips>", "comma-separated SIP source IPs of the other Kamailio nodes, '' for none, fixed in the include (default: the config's kamailio.sipPeers, else the hosts of mesh.peers, which the agent keeps current in Kamailio)")
    .option("--aliases <mode>", "usrloc (SER-style aliases domain) or dbaliases (alias_db)")
    .option("--include-path <path>", "where you will install the include (used in --instructions)", DEFAULT_INCLUDE_PATH)
    .option("-o, --output <file>", "write the include into this file instead of printing it: in one step (a failed run leaves the old file as it was), keeping the old file's mode and owner (a new file gets 0640)")
    // Not `> include`: the shell empties the file first, and a failed run would leave it empty.
    .addHelpText("after", `\nExample:\n  locmesh kamailio-cfg -c /etc/locmesh/agent.yaml -o ${DEFAULT_INCLUDE_PATH}\n  locmesh kamailio-cfg --instructions`)
    .action((opts: Opts) => {
      let text: string;
      try {
        text = render(opts, io.env, (warning) => io.stderr.write(`locmesh: ${warning}\n`));
      } catch (err) {
        // A flag or the config: a usage or config error, as for every command (README "Exit codes").
        io.stderr.write(`${(err as Error).message}\n`);
        process.exitCode = 2;
        return;
      }
      if (opts.output === undefined) {
        io.stdout.write(text);
        return;
      }
      try {
        const wrote = replaceFile(opts.output, text, { newMode: INCLUDE_MODE });
        io.stderr.write(`locmesh: wrote ${opts.output} (mode ${wrote.mode.toString(8).padStart(4, "0")}${wrote.created ? ", a new file: give Kamailio's group read access, e.g. chgrp kamailio" : ""})\n`);
        if (!wrote.ownerKept) io.stderr.write(`locmesh: ${opts.output} now belongs to this user, not its old owner (only root can keep it): check that Kamailio can still read it\n`);
      } catch (err) {
        // The include could not be written: the operation failed.
        io.stderr.write(`${(err as Error).message}\n`);
        process.exitCode = 1;
      }
    });
}

function render(opts: Opts, env: NodeJS.ProcessEnv, warn: (text: string) => void): string {
  const config = opts.config ? loadConfig(opts.config, env) : null;
  // The include must match the agent's kamailio section (evapi address, alias mode): generated from
  // a config without one, it takes the defaults, and an agent configured later may disagree.
  if (config && !config.kamailio && !opts.instructions && (opts.evapi === undefined || opts.aliases === undefined)) {
    warn(`${opts.config} has no kamailio section: the include uses evapi ${opts.evapi ?? "127.0.0.1:8448"} and ${opts.aliases ?? "usrloc"} aliases; ` +
      "add the agent's kamailio section first (see \"Attach to your Kamailio\"), then generate the include again");
  }
  const aliasMode = (opts.aliases ?? config?.kamailio?.aliases ?? "usrloc") as "usrloc" | "dbaliases";
  if (aliasMode !== "usrloc" && aliasMode !== "dbaliases") throw new Error(`--aliases must be usrloc or dbaliases, got ${JSON.stringify(opts.aliases)}`);
  if (opts.evapi !== undefined) parseHostPort(opts.evapi); // refused before any warning
  if (!config && !opts.instructions) {
    warn("no agent config given (-c, or LOCMESH_CONFIG): the include has no evapi bulk channel, whose token derives from the cluster key " +
      "(the reload of a restarted Kamailio then goes over jsonrpcs, several times slower), and takes " +
      `evapi ${opts.evapi ?? "127.0.0.1:8448"} and ${aliasMode} aliases, which the agent's kamailio section must match; pass -c /etc/locmesh/agent.yaml`);
  }
  if (opts.instructions) return kamailioIncludeInstructions({ includePath: opts.includePath, aliasMode });
  const evapi = opts.evapi ? parseHostPort(opts.evapi) : (config?.kamailio?.evapi ?? { host: "127.0.0.1", port: 8448 });
  const { peers, fixed } = peerList(opts, config, warn);
  return kamailioInclude({
    evapiListen: evapi,
    agentAddress: opts.agentAddress ?? evapi.host,
    aliasMode,
    meshPeers: peers,
    peersFixed: fixed,
    includePath: opts.includePath,
    // The bulk channel's token derives from the cluster key, which only the agent config has.
    ...(config ? { bulkToken: evapiBulkToken(config.mesh.secret, config.nodeId) } : {}),
  });
}

/**
 * The other nodes' SIP source addresses (sip-peers.ts): --peers, else what the agent config says.
 * A list given with --peers that the config would not give is marked fixed in the include, so the
 * agent leaves it be; one that contradicts kamailio.sipPeers is refused, since the agent would
 * replace it as soon as it attaches.
 */
function peerList(opts: Opts, config: ReturnType<typeof loadConfig> | null, warn: (text: string) => void): { peers: string[]; fixed: boolean } {
  const hint = "pass the other nodes' Kamailio SIP source IPs with --peers ip1,ip2 (or --peers '' for a single node)";
  const fromConfig = config ? sipPeersOf(config) : null;
  if (opts.peers === undefined) {
    if (fromConfig === null) return { peers: [], fixed: false };
    if (fromConfig.peers === null) throw new Error(`${fromConfig.why}, or ${hint}`);
    return { peers: fromConfig.peers, fixed: false };
  }
  const given = opts.peers.split(",").map((s) => s.trim()).filter(Boolean);
  // Not IP addresses: left as given, for the include's own check to refuse with its message.
  const peers = given.every((ip) => isIP(ip) !== 0) ? canonicalSipPeers(given) : [...new Set(given)];
  if (fromConfig?.peers && sameSipPeers(peers, fromConfig.peers)) return { peers, fixed: false };
  if (fromConfig?.peers && fromConfig.from === "kamailio.sipPeers") {
    throw new Error(`--peers ${peers.join(",") || "''"} differs from kamailio.sipPeers (${fromConfig.peers.join(", ") || "none"}) in ${opts.config}, ` +
      "which the agent sets in Kamailio as it attaches: change kamailio.sipPeers instead, and leave out --peers");
  }
  if (config) {
    warn("with --peers the include's list of nodes is fixed: the agent leaves it as it is, and a node added later needs a new include and a Kamailio restart; " +
      "set kamailio.sipPeers in the agent config instead to have SIGHUP change it");
  }
  return { peers, fixed: true };
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
