/**
 * The agent config's zod schema and the wording of its problems. Kept apart from the loader so the
 * loader reads as "gather the raw values, validate, freeze", and so the messages an operator sees
 * are written in one place.
 */
import { isIP } from "node:net";
import { z } from "zod";
import { NODE_ID_RE } from "../contract/ids.js";
import { isTimeZone } from "../kamailio/kamailio-db-encoding.js";

/** An http(s) origin: scheme, host and port only, as a browser sends it in `Origin`. */
function isWebOrigin(v: string): boolean {
  if (!URL.canParse(v)) return false;
  const u = new URL(v);
  // No wildcards: a browser sends one exact origin, and `*` would never match it.
  return (u.protocol === "http:" || u.protocol === "https:") && u.username === "" && u.password === "" && u.pathname === "/" &&
    !/[?#*]/.test(v) && v === v.trim();
}

export { NODE_ID_RE };
const NODE_ID_RULE = "must be 1-63 letters, digits, '.', '_' or '-', starting with a letter or digit";

/** File checks go through this so unit tests can run without touching the disk. */
export interface ConfigFs {
  readText(path: string): string;
  isFile(path: string): boolean;
  /** The file's mode bits (stat), for secretFilesOpenToOthers; undefined when unknown. */
  mode?(path: string): number | undefined;
}

export const LOG_LEVELS = ["trace", "debug", "info", "warn", "error", "fatal", "silent"] as const;

const nodeId = z.string().regex(NODE_ID_RE, NODE_ID_RULE);
const int = (min: number, max: number) => z.number().int().min(min).max(max);

/** "host:port", "[v6]:port" or { host, port }. Port 0 is allowed: tests bind an ephemeral port. */
export const listenSchema = z.preprocess(
  (v, ctx) => {
    if (typeof v === "object" && v !== null) return v;
    const m = typeof v === "string" ? (/^\[([^\]]+)\]:(\d{1,5})$/.exec(v) ?? /^([^:\s[\]]+):(\d{1,5})$/.exec(v)) : null;
    if (!m) {
      ctx.addIssue({ code: "custom", message: `must be "host:port" (e.g. 0.0.0.0:7100), got ${JSON.stringify(v)?.slice(0, 80)}` });
      return z.NEVER;
    }
    return { host: m[1], port: Number(m[2]) };
  },
  z.strictObject({
    host: z.string().regex(/^[^\s/]+$/, "must be a host name or IP address"),
    port: int(0, 65535),
  }),
);

/**
 * Ports fetch() and browsers refuse to dial (the Fetch standard's "bad ports"): an API there could
 * be reached neither by the CLI nor by the web UI.
 */
export const FETCH_BAD_PORTS: ReadonlySet<number> = new Set([
  1, 7, 9, 11, 13, 15, 17, 19, 20, 21, 22, 23, 25, 37, 42, 43, 53, 69, 77, 79, 87, 95, 101, 102, 103, 104, 109, 110, 111, 113,
  115, 117, 119, 123, 135, 137, 139, 143, 161, 179, 389, 427, 465, 512, 513, 514, 515, 526, 530, 531, 532, 540, 548, 554, 556,
  563, 587, 601, 636, 989, 990, 993, 995, 1719, 1720, 1723, 2049, 3659, 4045, 4190, 5060, 5061, 6000, 6566, 6665, 6666, 6667,
  6668, 6669, 6679, 6697, 10080,
]);

/** Environment variables only carry text; accept the usual spellings of a yes/no. */
export const flag = z.preprocess((v) => {
  if (typeof v !== "string") return v;
  const s = v.trim().toLowerCase();
  if (["true", "1", "yes", "on"].includes(s)) return true;
  if (["false", "0", "no", "off"].includes(s)) return false;
  return v;
}, z.boolean());

function isWsUrl(v: string): boolean {
  try {
    const u = new URL(v);
    return (u.protocol === "ws:" || u.protocol === "wss:") && u.hostname !== "";
  } catch {
    return false;
  }
}

const secret = (what: string) => z.string().min(16, `must be at least 16 characters (a ${what} shorter than that is guessable)`);
/**
 * Further secrets a node accepts besides its own, while one is rotated (README, "Rotating the
 * cluster key and API token"): a few at most, the old and the next one.
 */
const acceptedSecrets = (what: string) => z.array(secret(what)).max(8).default([]);

/** Built per load because the TLS file checks need the injected file system. */
export function buildConfigSchema(fs: ConfigFs) {
  const existingFile = z
    .string()
    .min(1)
    .refine((p) => fs.isFile(p), { error: (iss) => `no such file: ${String(iss.input)}` });

  const tls = z
    .strictObject({ cert: existingFile, key: existingFile, ca: existingFile.nullable().default(null) })
    .nullable()
    .default(null);

  const retry = z
    .strictObject({ minMs: int(1, 60_000).default(100), maxMs: int(1, 600_000).default(5000) })
    .refine((r) => r.minMs <= r.maxMs, { message: "must not be smaller than mesh.retry.minMs", path: ["maxMs"] })
    .default({ minMs: 100, maxMs: 5000 });

  return z.strictObject({
    nodeId,
    dataDir: z.string().min(1).optional(),
    mesh: z.strictObject({
      listen: listenSchema.default({ host: "0.0.0.0", port: 7100 }),
      secret: secret("cluster key"),
      acceptedSecrets: acceptedSecrets("cluster key"),
      peers: z
        .array(z.strictObject({ id: nodeId, url: z.string().refine(isWsUrl, "must be a ws:// or wss:// URL") }))
        .default([]),
      acceptUnlisted: flag.default(false),
      tls,
      batchSize: int(1, 5000).default(1000),
      window: int(1, 64).default(4),
      requestTimeoutMs: int(100, 600_000).default(15_000),
      statusIntervalMs: int(100, 60_000).default(1000),
      maxMessageBytes: int(65_536, 1 << 30).default(33_554_432),
      retry,
    }),
    api: z.strictObject({
      listen: listenSchema
        .refine((l) => !FETCH_BAD_PORTS.has(l.port), { error: (iss) => `port ${(iss.input as { port: number }).port} is one fetch and browsers refuse to dial (neither the CLI nor the web UI could reach it); pick another, e.g. 7180` })
        .default({ host: "127.0.0.1", port: 7180 }),
      token: secret("API token"),
      acceptedTokens: acceptedSecrets("API token"),
      maxMessageBytes: int(1024, 1 << 30).default(4_194_304),
      /**
       * Reverse proxies on other hosts in front of the API (the web UI): every browser arrives from
       * their address, so they are not limited one by one (sign-in guessing, connections per
       * client), as the host's own clients are not; they limit sign-ins themselves.
       */
      trustedProxies: z.array(z.string().refine((v) => isIP(v) !== 0, "must be an IP address (the proxy's, as the agent sees it connect)")).max(64).default([]),
      /**
       * Web pages, besides the API's own address, that may open its WebSocket (the web UI behind a
       * reverse proxy that rewrites Host): api/ws-origin.ts.
       */
      allowedOrigins: z.array(z.string().refine(isWebOrigin, "must be an origin such as https://locmesh.example.com (scheme, host, optional port; no path)")).max(64).default([]),
    }),
    journal: z.strictObject({
      synchronous: z.enum(["full", "normal"]).default("full"),
      cacheMiB: int(1, 65_536).default(32),
      retentionHours: int(1, 24 * 365).default(24),
      purgeIntervalSec: int(1, 86_400).default(300),
    }),
    // Hub mode (issue 4): dial one of these hubs, failing over in turn, instead of or besides peers.
    // failbackAfterSec: see agent/mesh/failback.ts; a few minutes, so that a hub restarted in a
    // rolling restart gets its agents back soon, but not while it may be restarting in a loop.
    hub: z
      .strictObject({
        urls: z.array(z.string().refine(isWsUrl, "must be a ws:// or wss:// URL")).default([]),
        failbackAfterSec: int(0, 86_400).default(120),
      })
      .default({ urls: [], failbackAfterSec: 120 }),
    log: z.strictObject({ level: z.enum(LOG_LEVELS).default("info") }),
    kamailio: kamailioSchema.nullable().default(null),
  });
}

const absolutePath = z.string().regex(/^\//, "must be an absolute path");

/**
 * A file mode: a number (`0o622` in YAML; a YAML `0622` is read as octal by config-sources.ts,
 * though YAML 1.2 says 622), or a string of octal digits ("0622", "622", "0o622"). A number over
 * 0o777 (a JSON config's 622) is refused saying how to write it; one up to 0o777 is the mode it is.
 */
const fileMode = z.union([z.number(), z.string()]).transform((v, ctx) => {
  const fix = (digits: string) => `write it as 0o${digits} (YAML) or "0${digits}" (a string)`;
  if (typeof v === "string") {
    const m = /^(?:0o?)?([0-7]{1,3})$/.exec(v.trim());
    if (m) return parseInt(m[1]!, 8);
    ctx.addIssue({ code: "custom", message: `must be an octal mode such as "0622", got ${JSON.stringify(v.slice(0, 20))}` });
    return z.NEVER;
  }
  if (!Number.isInteger(v) || v < 0 || v > 0o777) {
    const digits = String(v);
    ctx.addIssue({ code: "custom", message: /^[0-7]{3}$/.test(digits) ? `${digits} is not a mode; ${fix(digits)}` : `must be a mode from 0o000 to 0o777, got ${v}` });
    return z.NEVER;
  }
  return v;
});

/** `udp:HOST:PORT` as in jsonrpcs' dgram_socket (unix datagram sockets cannot be used from Node). */
const udpRpc = z.string().regex(/^udp:(\[[0-9a-fA-F:.]+\]|[^:\s]+):\d{1,5}$/, 'must be "udp:HOST:PORT", as in modparam("jsonrpcs","dgram_socket",...)');

const kamailioDb = z.strictObject({
  url: z
    .string()
    .regex(/^(sqlite:\/\/\/|postgres(ql)?:\/\/)/, "must be Kamailio's db_url for db_sqlite (sqlite:///path) or db_postgres (postgres://...)"),
  /** The IANA zone Kamailio runs in: db_postgres writes timestamps in its local time. */
  timeZone: z.string().min(1).refine(isTimeZone, { error: (iss) => `${JSON.stringify(iss.input)} is not an IANA time zone (e.g. "UTC", "Europe/Berlin")` }).optional(),
  /** usrloc's db_mode on this Kamailio: 1/2 preload at start (a restart is repaired by difference). */
  dbMode: int(0, 4).default(0),
});

/** The local Kamailio. Absent: the agent replicates without writing into Kamailio. */
const kamailioSchema = z.strictObject({
  fifo: absolutePath.default("/run/kamailio/kamailio_rpc.fifo"),
  /** Kamailio's fifo_reply_dir (with modparam's trailing slash or without). */
  replyDir: absolutePath.default("/tmp"),
  /** Octal mode of reply FIFOs; Kamailio must be able to write them (0622 when it runs as another user). */
  replyFifoMode: fileMode.default(0o600),
  /** Optional second jsonrpcs transport for writes and reloads: faster than the FIFO alone. */
  dgram: udpRpc.nullable().default(null),
  timeoutMs: int(100, 120_000).default(5000),
  /** evapi's bind_addr: where Kamailio publishes registrar events. Null: no event input. */
  evapi: listenSchema.nullable().default(null),
  locationTable: z.string().regex(/^[A-Za-z0-9_]{1,64}$/).default("location"),
  aliases: z.enum(["usrloc", "dbaliases"]).default("usrloc"),
  aliasTable: z.string().regex(/^[A-Za-z0-9_]{1,64}$/).optional(),
  db: kamailioDb.nullable().default(null),
  /** Writes in flight at once. */
  window: int(1, 1024).default(32),
  /**
   * Registrar events read and not yet journaled, at most. When full, the agent stops reading evapi
   * (Kamailio waits) until half of them are journaled (kamailio/registrar-intake.ts).
   */
  eventQueue: int(16, 1_000_000).default(5000),
  /**
   * How long a registrar event's edits may wait so that a busy registrar's events share one
   * journal commit (ms; 0 = commit each at once). A commit's fsync costs more CPU than the edits.
   */
  eventLingerMs: int(0, 1000).default(5),
  reconcileIntervalSec: int(0, 86_400).default(300),
  /** Above this many live bindings the ul.dump reconciliation is skipped (its cost is quadratic). */
  reconcileMaxContacts: int(0, 10_000_000).default(20_000),
  checkIntervalSec: int(1, 3600).default(2),
  /** Writes per second when putting a restarted Kamailio back; 0 = as fast as it takes them. */
  reloadRate: int(0, 1_000_000).default(0),
  /**
   * The other Kamailio nodes' SIP source IPs, which may relay calls through this one to its phones
   * (route LOCMESH_INBOUND). Null: the hosts of mesh.peers when they are IP addresses. The agent
   * sets the list in Kamailio at every start of it and on SIGHUP (kamailio/sip-peer-list.ts).
   */
  sipPeers: z.array(z.string().refine((s) => isIP(s) !== 0, { error: (iss) => `${JSON.stringify(iss.input)} is not an IP address (Kamailio compares the request's source IP)` }))
    .max(10_000).nullable().default(null),
  /**
   * Refill a restarted Kamailio through the evapi bulk channel (evapi-bulk.ts) when its include has
   * the bulk route; false: over jsonrpcs only.
   */
  bulkReload: flag.default(true),
});


export type ParsedConfig = z.output<ReturnType<typeof buildConfigSchema>>;

/** ["mesh", "peers", 1, "url"] → "mesh.peers[1].url" */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = "";
  for (const key of path) out += typeof key === "number" ? `[${key}]` : out === "" ? String(key) : `.${String(key)}`;
  return out;
}

const TYPE_WORDS: Record<string, string> = {
  string: "a string",
  number: "a number",
  int: "a whole number",
  boolean: "true or false",
  object: "a mapping (key: value)",
  array: "a list",
};

/**
 * Per-parse error map: plain-English wording for the generic issues. Messages set on a field
 * (like the ws:// rule) take precedence; returning undefined falls back to zod's own text.
 */
export const configErrorMap: z.core.$ZodErrorMap = (iss) => {
  switch (iss.code) {
    case "invalid_type":
      if (iss.input === undefined) return "required";
      return `must be ${TYPE_WORDS[iss.expected] ?? iss.expected}`;
    case "too_small": {
      const n = String(iss.minimum);
      if (iss.origin === "string") return `must be at least ${n} characters`;
      if (iss.origin === "array") return `must have at least ${n} entries`;
      return `must be at least ${n}`;
    }
    case "too_big": {
      const n = String(iss.maximum);
      if (iss.origin === "string") return `must be at most ${n} characters`;
      if (iss.origin === "array") return `must have at most ${n} entries`;
      return `must be at most ${n}`;
    }
    case "invalid_value":
      return `must be one of ${iss.values.map((v) => String(v)).join(", ")}`;
    default:
      return undefined;
  }
};
