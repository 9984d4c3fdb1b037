/**
 * The agent's config loader: file (YAML or JSON, optional) → environment overrides → secrets from
 * files → one zod validation that reports every problem at once → a frozen, fully defaulted object.
 * The composition root calls it once and passes the result down; nothing else reads env or files.
 */
import { resolve } from "node:path";
import type { z } from "zod";
import { buildConfigSchema, configErrorMap, formatPath, listenSchema, type ConfigFs, type ParsedConfig } from "./config-schema.js";
import { crossFieldProblems, listenClash } from "./cross-field.js";
import { ACCEPTED_SECRETS, ACCEPTED_TOKENS, API_TOKEN, ConfigError, ENV_VARS, envOverrideOnReload, MESH_SECRET, gatherConfig, nodeFs, type Gathered } from "./config-sources.js";
import { secretFilesOpenToOthers } from "./secret-file-modes.js";
import { redactUrl } from "../ops/redact-url.js";

export { ConfigError, envOverrideOnReload };
export type { ConfigFs };

export interface Listen {
  host: string;
  port: number;
}

export interface AgentConfig {
  nodeId: string;
  dataDir: string;
  mesh: {
    listen: Listen;
    /** The cluster key this node proves itself with. */
    secret: string;
    /** Further cluster keys it accepts from peers while one is rotated. */
    acceptedSecrets: string[];
    peers: { id: string; url: string }[];
    acceptUnlisted: boolean;
    tls: { cert: string; key: string; ca: string | null } | null;
    batchSize: number;
    window: number;
    requestTimeoutMs: number;
    statusIntervalMs: number;
    maxMessageBytes: number;
    retry: { minMs: number; maxMs: number };
  };
  /** `acceptedTokens`: further API tokens taken besides `token` while it is rotated. */
  api: { listen: Listen; token: string; acceptedTokens: string[]; maxMessageBytes: number; /** Reverse proxies not limited one by one (ops/auth-throttle.ts apiExempt). */ trustedProxies: string[]; /** Pages besides the API's own that may open its WebSocket (api/ws-origin.ts). */ allowedOrigins: string[] };
  journal: { synchronous: "full" | "normal"; cacheMiB: number; retentionHours: number; purgeIntervalSec: number };
  /**
   * Hubs to dial (one at a time, failing over in turn); empty outside hub mode. On another hub
   * than the first, move back to the first once it has taken sessions for failbackAfterSec (0: never).
   */
  hub: { urls: string[]; failbackAfterSec: number };
  log: { level: "trace" | "debug" | "info" | "warn" | "error" | "fatal" | "silent" };
  /** The local Kamailio; null when the agent is not attached to one. */
  kamailio: KamailioConfig | null;
}

export type KamailioConfig = NonNullable<ParsedConfig["kamailio"]>;

export interface LoadOptions {
  file?: string;
  env: Record<string, string | undefined>;
  /** Defaults to the real file system; unit tests pass an in-memory one. */
  fs?: ConfigFs;
  /** Base for relative paths given in env or defaults. Defaults to process.cwd(). */
  cwd?: string;
  /** Told of what loads but deserves the operator's attention (a secret file every user can read). */
  onWarning?: (message: string) => void;
  /** Told of each setting the file sets one way and a LOCMESH_* variable another (the variable wins). */
  onEnvOverride?: (setting: string, variable: string) => void;
}

/** Passes secretFilesOpenToOthers's lines to `onWarning`. */
export function warnOpenSecrets(g: Gathered, fs: ConfigFs, onWarning: ((message: string) => void) | undefined): void {
  if (!onWarning || !fs.mode) return;
  for (const line of secretFilesOpenToOthers(g.secretFiles, (p) => fs.mode?.(p))) onWarning(line);
}

export function loadAgentConfig(opts: LoadOptions): AgentConfig {
  const cwd = opts.cwd ?? process.cwd();
  const fs = opts.fs ?? nodeFs;
  const g = gatherConfig({ file: opts.file, env: opts.env, fs, cwd, secrets: [MESH_SECRET, API_TOKEN], secretLists: [ACCEPTED_SECRETS, ACCEPTED_TOKENS] });
  const result = buildConfigSchema(fs).safeParse(g.raw, { error: configErrorMap });
  const problems = [
    ...g.problems,
    ...(result.success ? [] : describeIssues(result.error.issues, g)),
    ...crossFieldProblems(g.raw).map((p) => annotate(p.path, p.message, g)),
  ];
  const clash = result.success ? listenClash(result.data.mesh.listen, result.data.api.listen) : null;
  if (clash) problems.push(annotate(clash.path, clash.message, g));
  if (!result.success || problems.length > 0) throw new ConfigError(problems, opts.file);
  warnOpenSecrets(g, fs, opts.onWarning);
  for (const o of g.overridden) opts.onEnvOverride?.(o.setting, o.variable);
  const c = result.data;
  const config: AgentConfig = {
    ...c,
    // Default data dir is per node id so several demo/test agents can share one working folder.
    dataDir: c.dataDir ?? resolve(cwd, "data", c.nodeId),
  };
  return deepFreeze(config);
}

/** The keys and tokens, which SIGHUP applies on agents and hubs alike (ops/key-ring.ts). */
export const CREDENTIAL_SETTINGS = ["mesh.secret", "mesh.acceptedSecrets", "api.token", "api.acceptedTokens"] as const;
/** What SIGHUP applies on an agent. */
export const AGENT_RELOADED_SETTINGS: readonly string[] = ["mesh.peers", "hub.urls", "kamailio.sipPeers", ...CREDENTIAL_SETTINGS];

/**
 * The settings (dotted paths) where `next` differs from the running config, those SIGHUP applies
 * (`applied`) aside: the rest waits for a restart, which the operator should be told rather than
 * find out. Paths only, never values (secrets).
 */
export function settingsNeedingRestart(running: object, next: object, applied: readonly string[] = AGENT_RELOADED_SETTINGS): string[] {
  const out: string[] = [];
  const walk = (a: unknown, b: unknown, path: string) => {
    if (applied.includes(path)) return;
    const objects = (x: unknown) => typeof x === "object" && x !== null && !Array.isArray(x);
    if (objects(a) && objects(b)) {
      const keys = new Set([...Object.keys(a as object), ...Object.keys(b as object)]);
      for (const k of [...keys].sort()) walk((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k], path === "" ? k : `${path}.${k}`);
    } else if (JSON.stringify(a) !== JSON.stringify(b)) out.push(path);
  };
  walk(running, next, "");
  return out;
}

/** What the CLI needs from an agent config: where the API listens and its token, if any. */
export function loadApiSettings(opts: LoadOptions & { readToken?: boolean }): { listen: Listen | null; token: string | null } {
  const cwd = opts.cwd ?? process.cwd();
  // Only the API token's file is read, and only when no token was given: the operator running the
  // CLI may not be allowed to read the mesh secret (nor, then, the token file), and needs neither.
  const g = gatherConfig({ file: opts.file, env: opts.env, fs: opts.fs ?? nodeFs, cwd, secrets: opts.readToken === false ? [] : [API_TOKEN] });
  const api = g.raw["api"] as Record<string, unknown> | undefined;
  const problems = [...g.problems];
  let listen: Listen | null = null;
  if (api?.["listen"] !== undefined) {
    const r = listenSchema.safeParse(api["listen"], { error: configErrorMap });
    if (r.success) listen = r.data;
    else problems.push(...describeIssues(r.error.issues, g, ["api", "listen"]));
  }
  if (problems.length > 0) throw new ConfigError(problems, opts.file);
  const token = api?.["token"];
  return { listen, token: typeof token === "string" && token !== "" ? token : null };
}

/** "http://host:port" for reaching the API from this machine; a wildcard bind is reached via loopback. */
export function apiUrlFromConfig(c: Pick<AgentConfig, "api">): string {
  return listenToUrl(c.api.listen);
}

export function listenToUrl(listen: Listen): string {
  let host = listen.host;
  if (host === "0.0.0.0") host = "127.0.0.1";
  else if (host === "::" || host === "[::]") host = "::1";
  return `http://${host.includes(":") ? `[${host}]` : host}:${listen.port}`;
}

/** A copy safe to log: secrets replaced, and any password in a peer URL removed. */
export function redactConfig(c: AgentConfig): object {
  return {
    ...c,
    mesh: {
      ...c.mesh,
      ...redactKeys(c.mesh),
      peers: c.mesh.peers.map((p) => ({ id: p.id, url: redactUrl(p.url) })),
    },
    api: { ...c.api, ...redactTokens(c.api) },
    kamailio: c.kamailio && { ...c.kamailio, db: c.kamailio.db && { ...c.kamailio.db, url: redactUrl(c.kamailio.db.url) } },
    hub: { ...c.hub, urls: c.hub.urls.map(redactUrl) },
  };
}

/** The cluster keys as a log shows them: how many, not what. Shared with the hub's config. */
export const redactKeys = (m: { acceptedSecrets: readonly string[] }) => ({ secret: "[redacted]", acceptedSecrets: m.acceptedSecrets.map(() => "[redacted]") });
export const redactTokens = (a: { acceptedTokens: readonly string[] }) => ({ token: "[redacted]", acceptedTokens: a.acceptedTokens.map(() => "[redacted]") });

/**
 * One line per problem: the setting's path, what is wrong, how to set a missing one, and where the
 * value came from (a file, a LOCMESH_* variable). `hints` add to or replace a message per path (a
 * hub names its own remedies).
 */
export function describeIssues(issues: readonly z.core.$ZodIssue[], g: Gathered, prefix: PropertyKey[] = [], hints: Record<string, string> = {}): string[] {
  const out: string[] = [];
  for (const iss of issues) {
    const path = [...prefix, ...iss.path];
    if (iss.code === "unrecognized_keys") {
      for (const key of iss.keys) {
        const dotted = formatPath([...path, key]);
        out.push(annotate(dotted, hints[dotted] ?? "unknown setting (check the spelling)", g));
      }
      continue;
    }
    const dotted = formatPath(path);
    if (g.reported.has(dotted)) continue;
    let message = iss.message;
    if (message === "required") message += hints[dotted] ?? requiredHint(dotted);
    out.push(annotate(dotted, message, g));
  }
  return out;
}

/** Appends where the value came from when it was not the file, e.g. "(from LOCMESH_MESH_PEERS)". */
function annotate(path: string, message: string, g: Gathered): string {
  let source: string | undefined;
  let best = -1;
  for (const [key, from] of g.sources) {
    const covers = path === key || path.startsWith(`${key}.`) || path.startsWith(`${key}[`);
    if (covers && key.length > best) [source, best] = [from, key.length];
  }
  return `${path || "(top level)"}: ${message}${source ? ` (${source})` : ""}`;
}

function requiredHint(path: string): string {
  const env = ENV_VARS.find((v) => v.path.join(".") === path)?.name;
  const ref = [MESH_SECRET, API_TOKEN].find((r) => `${r.section}.${r.key}` === path);
  if (ref && env) return `; set ${path} or ${ref.section}.${ref.fileKey} in the config file, or ${env}`;
  if (env) return `; set it in the config file or with ${env}`;
  return "";
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === "object" && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}
