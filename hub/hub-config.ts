/**
 * The hub's config loader. A hub config is an agent config without a journal folder or peers to
 * dial, plus the agents it accepts (`mesh.agents`, or `mesh.acceptUnlisted`) and its PostgreSQL.
 * Same sources (file, LOCMESH_* variables, secret files), same one-error-with-every-problem rule.
 */
import { z } from "zod";
import { ConfigError, describeIssues, redactKeys, redactTokens, warnOpenSecrets, type AgentConfig, type LoadOptions } from "../agent/config/agent-config.js";
import { redactUrl } from "../agent/ops/redact-url.js";
import { NODE_ID_RE, buildConfigSchema, configErrorMap } from "../agent/config/config-schema.js";
import { listenClash, nodeIdListProblems } from "../agent/config/cross-field.js";
import { ACCEPTED_SECRETS, ACCEPTED_TOKENS, API_TOKEN, ENV_VARS, MESH_SECRET, gatherConfig, nodeFs, type Gathered } from "../agent/config/config-sources.js";

export interface HubConfig {
  nodeId: string;
  mesh: Omit<AgentConfig["mesh"], "peers"> & { agents: string[]; relayLingerMs: number };
  api: AgentConfig["api"];
  journal: Pick<AgentConfig["journal"], "retentionHours" | "purgeIntervalSec"> & {
    /**
     * A tombstone also stays until every agent a hub has seen within this many days holds it, so
     * that an agent down for longer than the retention still gets the removals made meanwhile. 0:
     * by the retention alone.
     */
    holdForAgentsDays: number;
  };
  postgres: {
    url: string;
    poolSize: number;
    channel: string;
    /** TCP connect plus PostgreSQL's startup and login, on every connection. */
    connectTimeoutMs: number;
    /** Client-side: a query with no answer this long fails and its connection is dropped. */
    queryTimeoutMs: number;
    /** TCP keepalive probes start after a connection was idle this long. */
    keepAliveIdleMs: number;
    /** No health check answered for this long: PostgreSQL counts as unreachable (pg-watch.ts). */
    unreachableAfterMs: number;
  };
  log: AgentConfig["log"];
}

/**
 * The LOCMESH_* variables a hub takes. An agent's own (LOCMESH_DATA_DIR, LOCMESH_MESH_PEERS,
 * LOCMESH_JOURNAL_SYNCHRONOUS, LOCMESH_KAMAILIO_*) are not a hub's settings: an environment shared
 * with agents (a compose file) leaves the hub alone rather than failing it with "unknown setting".
 * LOCMESH_POSTGRES_URL is applied as the others are (config-sources.ts): blank counts as unset, and
 * one that differs from the file's postgres.url is an override, which SIGHUP warns of by the
 * setting's and the variable's names (never the URL, which may hold a password).
 */
const HUB_ENV_VARS: typeof ENV_VARS = [
  ...ENV_VARS.filter((v) => !["dataDir", "mesh.peers", "journal.synchronous"].includes(v.path.join(".")) && v.path[0] !== "kamailio"),
  { name: "LOCMESH_POSTGRES_URL", path: ["postgres", "url"] },
];

function hubSchema(fs: LoadOptions["fs"] & object) {
  const base = buildConfigSchema(fs);
  return z.strictObject({
    nodeId: base.shape.nodeId,
    mesh: base.shape.mesh.omit({ peers: true }).extend({
      agents: z.array(z.string().regex(NODE_ID_RE, "must be an agent's node id")).default([]),
      relayLingerMs: z.number().int().min(0).max(1000).default(0),
    }),
    api: base.shape.api,
    journal: z.strictObject({
      retentionHours: z.number().int().min(1).max(24 * 365).default(24),
      purgeIntervalSec: z.number().int().min(1).max(86_400).default(300),
      holdForAgentsDays: z.number().min(0).max(365).default(14),
    }),
    postgres: z.strictObject({
      url: z.string().regex(/^postgres(ql)?:\/\//, "must be a postgres:// connection URL"),
      poolSize: z.number().int().min(2).max(200).default(10),
      channel: z.string().regex(/^[a-z_][a-z0-9_]{0,62}$/, "must be a lower-case SQL identifier").default("locmesh_changes"),
      connectTimeoutMs: z.number().int().min(100).max(600_000).default(10_000),
      queryTimeoutMs: z.number().int().min(100).max(3_600_000).default(30_000),
      keepAliveIdleMs: z.number().int().min(1000).max(7_200_000).default(10_000),
      unreachableAfterMs: z.number().int().min(300).max(600_000).default(15_000),
    }),
    log: base.shape.log,
  });
}

/** What a hub's operator should do where an agent's remedies do not apply. */
const HUB_HINTS: Record<string, string> = {
  "mesh.peers": "a hub dials no peer: list the agents it accepts in mesh.agents (their node ids), and give the agents the hub's URL in hub.urls",
  "dataDir": "a hub keeps its state in PostgreSQL (postgres.url), not in a data directory",
  "postgres.url": "; set postgres.url (postgres://user:password@host/db) in the config file or with LOCMESH_POSTGRES_URL",
  "kamailio": "a hub is not attached to a Kamailio; that setting belongs in the agents' configs",
  // The agent's SQLite journal; a hub's state is in PostgreSQL, configured there.
  "journal.synchronous": "is an agent setting (how its SQLite journal syncs to disk), which a hub does not use: a hub commits to PostgreSQL (its synchronous_commit decides). Remove it from the hub's config",
  "journal.cacheMiB": "is an agent setting (its SQLite journal's page cache), which a hub does not use: a hub keeps no journal of its own, its state is in PostgreSQL. Remove it from the hub's config",
  "hub": "is an agent setting (the hubs an agent dials), which a hub does not use: hubs do not dial each other, they share PostgreSQL. Remove it from the hub's config",
};

export function loadHubConfig(opts: LoadOptions): HubConfig {
  const fs = opts.fs ?? nodeFs;
  const g = gatherConfig({
    file: opts.file, env: opts.env, fs, cwd: opts.cwd ?? process.cwd(), secrets: [MESH_SECRET, API_TOKEN], secretLists: [ACCEPTED_SECRETS, ACCEPTED_TOKENS],
    envVars: HUB_ENV_VARS, inlineSecrets: inlinePassword,
  });
  if (g.raw["postgres"] === undefined) g.raw["postgres"] = {};
  const result = hubSchema(fs).safeParse(g.raw, { error: configErrorMap });
  const problems = [...g.problems, ...(result.success ? [] : describeIssues(result.error.issues, g, [], HUB_HINTS)), ...agentIdProblems(g)];
  if (result.success && result.data.mesh.agents.length === 0 && !result.data.mesh.acceptUnlisted) {
    problems.push("mesh.agents: list the agents' node ids, or set mesh.acceptUnlisted: true (as it is, every agent would be refused)");
  }
  const clash = result.success ? listenClash(result.data.mesh.listen, result.data.api.listen) : null;
  if (clash) problems.push(`${clash.path}: ${clash.message}`);
  if (!result.success || problems.length > 0) throw new ConfigError(problems, opts.file);
  warnOpenSecrets(g, fs, opts.onWarning);
  for (const o of g.overridden) opts.onEnvOverride?.(o.setting, o.variable);
  return Object.freeze(result.data) as HubConfig;
}

/**
 * mesh.agents naming this hub or one agent twice: checked on the raw input, as an agent's mesh.peers
 * are (agent/config/cross-field.ts), so that they are reported with every other problem. Ids the
 * schema refuses are left to its message.
 */
function agentIdProblems(g: Gathered): string[] {
  const mesh = g.raw["mesh"];
  const agents = typeof mesh === "object" && mesh !== null ? (mesh as Record<string, unknown>)["agents"] : undefined;
  if (!Array.isArray(agents)) return [];
  const from = g.sources.get("nodeId");
  return nodeIdListProblems(agents, g.raw["nodeId"], (i) => `mesh.agents[${i}]`, {
    own: (id) =>
      `is this hub's own id (nodeId ${id}${from ? `, ${from}` : ""}); a hub takes no session from itself. ` +
      "Remove it; if an agent runs with this id too, give the hub or the agent another (every node needs its own)",
    twice: (first, id) => `duplicates mesh.agents[${first}] (${id}); list each agent once`,
  }).map((p) => `${p.path}: ${p.message}`);
}

/** A database password written in the config file makes that file a secret too (secret-file-modes.ts). */
function inlinePassword(raw: Record<string, unknown>): string[] {
  const pg = raw["postgres"];
  const url = typeof pg === "object" && pg !== null ? (pg as Record<string, unknown>)["url"] : undefined;
  try {
    return typeof url === "string" && new URL(url).password !== "" ? ["the postgres.url password"] : [];
  } catch {
    return []; // the schema reports a malformed URL
  }
}

export function redactHubConfig(c: HubConfig): object {
  return { ...c, mesh: { ...c.mesh, ...redactKeys(c.mesh) }, api: { ...c.api, ...redactTokens(c.api) }, postgres: { ...c.postgres, url: redactUrl(c.postgres.url) } };
}
