/**
 * Gathers the raw config before validation: the file (YAML, or JSON since JSON is YAML), the
 * environment overrides on top, and secrets read from files. Records where each overridden value
 * came from so a problem with it can name the variable or file to fix.
 */
import { readFileSync, statSync } from "node:fs";
import { dirname, isAbsolute, resolve } from "node:path";
import { isScalar, parseDocument } from "yaml";
import type { z } from "zod";
import { flag, listenSchema, type ConfigFs } from "./config-schema.js";
import { redactUserinfo } from "../ops/redact-url.js";
import type { SecretFile } from "./secret-file-modes.js";

export const nodeFs: ConfigFs = {
  readText: (path) => readFileSync(path, "utf8"),
  isFile: (path) => {
    try {
      return statSync(path).isFile();
    } catch {
      return false;
    }
  },
  mode: (path) => {
    try {
      return statSync(path).mode;
    } catch {
      return undefined;
    }
  },
};

type Raw = Record<string, unknown>;

/** Each variable and the setting it overrides. Values are text; the schema converts them. */
export const ENV_VARS: readonly { name: string; path: readonly [string] | readonly [string, string] }[] = [
  { name: "LOCMESH_NODE_ID", path: ["nodeId"] },
  { name: "LOCMESH_DATA_DIR", path: ["dataDir"] },
  { name: "LOCMESH_MESH_LISTEN", path: ["mesh", "listen"] },
  { name: "LOCMESH_MESH_SECRET", path: ["mesh", "secret"] },
  { name: "LOCMESH_MESH_PEERS", path: ["mesh", "peers"] },
  { name: "LOCMESH_MESH_ACCEPT_UNLISTED", path: ["mesh", "acceptUnlisted"] },
  { name: "LOCMESH_API_LISTEN", path: ["api", "listen"] },
  { name: "LOCMESH_API_TOKEN", path: ["api", "token"] },
  { name: "LOCMESH_JOURNAL_SYNCHRONOUS", path: ["journal", "synchronous"] },
  { name: "LOCMESH_LOG_LEVEL", path: ["log", "level"] },
  { name: "LOCMESH_KAMAILIO_FIFO", path: ["kamailio", "fifo"] },
  { name: "LOCMESH_KAMAILIO_EVAPI", path: ["kamailio", "evapi"] },
];

/** A secret that may be given inline or as a path to a file holding it (e.g. a mounted secret). */
export interface SecretRef {
  section: "mesh" | "api";
  key: "secret" | "token";
  fileKey: "secretFile" | "tokenFile";
}
export const MESH_SECRET: SecretRef = { section: "mesh", key: "secret", fileKey: "secretFile" };
export const API_TOKEN: SecretRef = { section: "api", key: "token", fileKey: "tokenFile" };

/**
 * Further secrets a node accepts while one is rotated: a list given inline, or a list of paths of
 * files holding one each (README, "Rotating the cluster key and API token"). No environment
 * variable sets them: SIGHUP re-reads the files, never the environment, which is fixed at start.
 */
export interface SecretListRef {
  section: "mesh" | "api";
  key: "acceptedSecrets" | "acceptedTokens";
  fileKey: "acceptedSecretFiles" | "acceptedTokenFiles";
  /** What each file holds, for messages. */
  what: string;
}
export const ACCEPTED_SECRETS: SecretListRef = { section: "mesh", key: "acceptedSecrets", fileKey: "acceptedSecretFiles", what: "cluster key" };
export const ACCEPTED_TOKENS: SecretListRef = { section: "api", key: "acceptedTokens", fileKey: "acceptedTokenFiles", what: "API token" };

/** Settings holding file paths; relative ones in the file are relative to the file's folder. */
const FILE_PATHS: readonly (readonly string[])[] = [
  ["dataDir"],
  ["mesh", "secretFile"],
  ["api", "tokenFile"],
  ["mesh", "acceptedSecretFiles"],
  ["api", "acceptedTokenFiles"],
  ["mesh", "tls", "cert"],
  ["mesh", "tls", "key"],
  ["mesh", "tls", "ca"],
];

export interface Gathered {
  raw: Raw;
  /** Dotted path → where its value came from, for values that did not come from the file. */
  sources: Map<string, string>;
  /** Problems found while gathering, already formatted as "path: message". */
  problems: string[];
  /** Paths whose schema issues would only repeat a gathering problem (an unreadable secret file). */
  reported: Set<string>;
  /** Files holding secrets, for secretFilesOpenToOthers. */
  secretFiles: SecretFile[];
  /** Settings the file sets one way and a LOCMESH_* variable another: the variable wins (envOverrides). */
  overridden: { setting: string; variable: string }[];
}

const isRecord = (v: unknown): v is Raw => typeof v === "object" && v !== null && !Array.isArray(v);

/**
 * What SIGHUP logs for a setting the file sets and a LOCMESH_* variable overrides: the process keeps
 * the environment it started with, so an edit of that setting in the file is not applied, ever.
 */
export const envOverrideOnReload = (setting: string, variable: string): string =>
  `SIGHUP: the config file's ${setting} is not applied: ${variable} in the environment the process started with overrides it, and a reload keeps that environment. ` +
  `To take the file's, remove ${variable} from the service's environment (systemctl edit) and restart`;

/** Every problem with a config, one "path: what is wrong" line each, in one error. */
export class ConfigError extends Error {
  override readonly name = "ConfigError";
  constructor(
    readonly problems: string[],
    file?: string,
  ) {
    const where = file === undefined ? "the locmesh config" : `the locmesh config (${file})`;
    const n = problems.length === 1 ? "1 problem" : `${problems.length} problems`;
    super(`${where} has ${n}:\n${problems.map((p) => `  - ${p}`).join("\n")}`);
  }
}

export function gatherConfig(opts: {
  file?: string;
  env: Record<string, string | undefined>;
  fs: ConfigFs;
  cwd: string;
  secrets: readonly SecretRef[];
  /** Lists of further accepted secrets to read from their files (ACCEPTED_SECRETS, ACCEPTED_TOKENS). */
  secretLists?: readonly SecretListRef[];
  /** The variables that apply (default: all of ENV_VARS); a hub takes only those of its settings, and LOCMESH_POSTGRES_URL. */
  envVars?: typeof ENV_VARS;
  /**
   * Further secrets the file holds inline, by name (a hub: "the postgres.url password"), for
   * secretFilesOpenToOthers. Asked before the variables apply: one that overrides the setting
   * leaves the file holding the secret all the same.
   */
  inlineSecrets?: (raw: Raw) => string[];
}): Gathered {
  const g: Gathered = { raw: {}, sources: new Map(), problems: [], reported: new Set(), secretFiles: [], overridden: [] };
  if (opts.file !== undefined) {
    const file = resolve(opts.cwd, opts.file);
    g.raw = readConfigFile(file, opts.fs);
    resolveFilePaths(g.raw, dirname(file));
    const inline = [...opts.secrets, ...(opts.secretLists ?? [])].filter((r) => holdsInline(g.raw[r.section], r.key));
    g.secretFiles.push({ setting: "the config file", path: file, holds: [...inline.map((r) => `${r.section}.${r.key}`), ...(opts.inlineSecrets?.(g.raw) ?? [])] });
  }
  // Missing sections become empty so their required fields are reported by name ("mesh.secret:
  // required") rather than as one opaque "mesh: required".
  for (const s of ["mesh", "api", "journal", "log"]) if (g.raw[s] === undefined) g.raw[s] = {};
  applyEnv(g, opts.env, opts.cwd, opts.envVars ?? ENV_VARS);
  for (const ref of opts.secrets) readSecretFile(g, ref, opts.fs);
  for (const ref of opts.secretLists ?? []) readSecretFiles(g, ref, opts.fs);
  const tls = isRecord(g.raw["mesh"]) ? g.raw["mesh"]["tls"] : undefined;
  if (isRecord(tls) && typeof tls["key"] === "string" && tls["key"] !== "") g.secretFiles.push({ setting: "mesh.tls.key", path: tls["key"] });
  return g;
}

function readConfigFile(file: string, fs: ConfigFs): Raw {
  let text: string;
  try {
    text = fs.readText(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
    throw new ConfigError([`cannot read the file (${code})`], file);
  }
  const doc = parseDocument(text, { prettyErrors: true });
  if (doc.errors.length > 0) throw new ConfigError(doc.errors.map((e) => `not valid YAML: ${e.message.split("\n")[0]}`), file);
  const value: unknown = doc.toJS();
  if (value === null || value === undefined) return {};
  if (!isRecord(value)) throw new ConfigError([`the file must hold a mapping of settings (key: value), not a list or a single value`], file);
  // YAML 1.2 reads a file mode written `0640` as the decimal 640 (and `0420` as 420, a valid but
  // other mode): a mode setting written with a leading zero is read as the octal it plainly is.
  for (const path of FILE_MODE_PATHS) {
    const node = doc.getIn(path, true);
    const source = isScalar(node) ? node.source : undefined;
    const parent = path.slice(0, -1).reduce<unknown>((o, k) => (isRecord(o) ? o[k] : undefined), value);
    if (typeof source === "string" && /^0[0-7]+$/.test(source) && isRecord(parent)) parent[path[path.length - 1]!] = parseInt(source, 8);
  }
  return value;
}

/** Settings that are file modes (see readConfigFile). */
const FILE_MODE_PATHS: readonly (readonly string[])[] = [["kamailio", "replyFifoMode"]];

/** A section holds the secret `key` inline: a string, or a list with something in it. */
function holdsInline(section: unknown, key: string): boolean {
  const v = isRecord(section) ? section[key] : undefined;
  return typeof v === "string" || (Array.isArray(v) && v.length > 0);
}

function resolveFilePaths(raw: Raw, baseDir: string): void {
  const resolved = (p: unknown) => (typeof p === "string" && p !== "" && !isAbsolute(p) ? resolve(baseDir, p) : p);
  for (const path of FILE_PATHS) {
    const parent = path.slice(0, -1).reduce<unknown>((o, k) => (isRecord(o) ? o[k] : undefined), raw);
    const key = path[path.length - 1] as string;
    if (!isRecord(parent) || !(key in parent)) continue;
    const v = parent[key];
    parent[key] = Array.isArray(v) ? v.map(resolved) : resolved(v);
  }
}

function applyEnv(g: Gathered, env: Record<string, string | undefined>, cwd: string, vars: typeof ENV_VARS): void {
  for (const { name, path } of vars) {
    const text = env[name];
    // An empty variable counts as unset: `LOCMESH_X= locmesh agent` should not blank a setting.
    if (text === undefined || text.trim() === "") continue;
    const [first, second] = path;
    const dotted = path.join(".");
    let value: unknown = text.trim();
    if (dotted === "mesh.peers") value = parsePeerList(text, g, name);
    if (dotted === "dataDir") value = resolve(cwd, text.trim());
    const inFile = second === undefined ? g.raw[first] : isRecord(g.raw[first]) ? (g.raw[first] as Raw)[second] : undefined;
    const secretRef = [MESH_SECRET, API_TOKEN].find((r) => r.section === first && r.key === second);
    const fileSecret = secretRef !== undefined && isRecord(g.raw[first]) && (g.raw[first] as Raw)[secretRef.fileKey] !== undefined;
    if ((inFile !== undefined && !sameSetting(dotted, inFile, value)) || fileSecret) g.overridden.push({ setting: dotted, variable: name });
    if (second === undefined) {
      g.raw[first] = value;
    } else {
      // A variable for a section the file does not have starts that section (an env-only config,
      // as in a container, attaches to Kamailio with LOCMESH_KAMAILIO_*). One the file turned off
      // (`kamailio: null`) or that is not a mapping is left alone: the schema reports the latter.
      if (g.raw[first] === undefined) g.raw[first] = {};
      const section = g.raw[first];
      if (!isRecord(section)) continue;
      section[second] = value;
      const ref = [MESH_SECRET, API_TOKEN].find((r) => r.section === first && r.key === second);
      if (ref) delete section[ref.fileKey]; // the variable wins over both file settings
    }
    g.sources.set(dotted, `from ${name}`);
  }
}

/**
 * Settings a variable's text and the file may write differently for one value (`true` and "yes",
 * { host, port } and "host:port"): compared as the schema reads them.
 */
const READ_AS: Record<string, z.ZodType> = { "mesh.acceptUnlisted": flag, "mesh.listen": listenSchema, "api.listen": listenSchema, "kamailio.evapi": listenSchema };

/**
 * Whether the file's value and a variable's are one value, as the schema reads them and whatever
 * the order of their keys: only a real difference is an override, worth SIGHUP's "remove the
 * variable and restart" (envOverrideOnReload). A value the schema refuses is compared as written
 * (the load reports it anyway).
 */
function sameSetting(dotted: string, inFile: unknown, fromEnv: unknown): boolean {
  const read = (v: unknown) => {
    const r = READ_AS[dotted]?.safeParse(v);
    return r?.success ? r.data : v;
  };
  return canonicalJson(read(inFile)) === canonicalJson(read(fromEnv));
}

/** JSON with each object's keys sorted. */
function canonicalJson(v: unknown): string {
  return JSON.stringify(v, (_k, x: unknown) => (isRecord(x) ? Object.fromEntries(Object.entries(x).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) : x));
}

/** "n2=ws://10.0.0.2:7100,n3=wss://n3.example:7100" → [{ id, url }, ...] */
function parsePeerList(text: string, g: Gathered, name: string): { id: string; url: string }[] {
  const peers: { id: string; url: string }[] = [];
  text.split(",").forEach((entry, i) => {
    const s = entry.trim();
    if (s === "") return;
    const eq = s.indexOf("=");
    if (eq <= 0) {
      // The entry may hold a URL with a password in it: never echoed as it is, parsed as a URL or not.
      g.problems.push(`mesh.peers[${i}]: ${JSON.stringify(redactUserinfo(s).slice(0, 80))} is not id=url (from ${name})`);
      return;
    }
    peers.push({ id: s.slice(0, eq).trim(), url: s.slice(eq + 1).trim() });
  });
  return peers;
}

function readSecretFile(g: Gathered, ref: SecretRef, fs: ConfigFs): void {
  const taken = takeFileSetting(g, ref);
  if (taken === null) return;
  const { section, where, target, value: path } = taken;
  if (typeof path !== "string" || path === "") {
    g.problems.push(`${where}: must be the path of a file holding the ${ref.key}`);
    g.reported.add(target);
    return;
  }
  const text = readOneSecret(g, fs, path, where, target);
  if (text !== undefined) section[ref.key] = text;
}

/** Like readSecretFile, for a list of files each holding one secret (ACCEPTED_SECRETS, ACCEPTED_TOKENS). */
function readSecretFiles(g: Gathered, ref: SecretListRef, fs: ConfigFs): void {
  const taken = takeFileSetting(g, ref);
  if (taken === null) return;
  const { section, where, target, value: paths } = taken;
  if (!Array.isArray(paths) || !paths.every((p) => typeof p === "string" && p !== "")) {
    g.problems.push(`${where}: must be a list of paths of files, each holding one ${ref.what} (e.g. [/etc/locmesh/next.key])`);
    g.reported.add(target);
    return;
  }
  // A file that cannot be read leaves "" in its place, whose schema issue is not repeated (reported).
  section[ref.key] = (paths as string[]).map((path, i) => readOneSecret(g, fs, path, `${where}[${i}]`, `${target}[${i}]`) ?? "");
}

/**
 * Takes a secret's file setting out of its section, to be replaced by what the file holds. Null
 * when it is not set, or when the secret is given inline as well (a problem).
 */
function takeFileSetting(g: Gathered, ref: SecretRef | SecretListRef): { section: Raw; where: string; target: string; value: unknown } | null {
  const section = g.raw[ref.section];
  if (!isRecord(section) || !(ref.fileKey in section)) return null;
  const where = `${ref.section}.${ref.fileKey}`;
  const target = `${ref.section}.${ref.key}`;
  const value = section[ref.fileKey];
  delete section[ref.fileKey];
  if (section[ref.key] !== undefined) {
    g.problems.push(`${where}: set either ${target} or ${where}, not both`);
    return null;
  }
  return { section, where, target, value };
}

/** The secret in the file at `path`, trimmed; undefined (and a problem under `where`) when it cannot be read. */
function readOneSecret(g: Gathered, fs: ConfigFs, path: string, where: string, target: string): string | undefined {
  try {
    const text = fs.readText(path).trim();
    g.sources.set(target, `read from ${path}`);
    g.secretFiles.push({ setting: where, path });
    return text;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
    g.problems.push(`${where}: cannot read ${path} (${code})`);
    g.reported.add(target);
    return undefined;
  }
}
