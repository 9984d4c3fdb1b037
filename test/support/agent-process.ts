/**
 * Real agent processes for integration tests and benchmarks: each runs `bin/locmesh.js agent`
 * from the built dist/, with its own config, journal folder and ports on 127.0.0.1.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { createWriteStream, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { packageRoot } from "../../agent/ops/paths.js";
import { freePort } from "./ports.js";

export { freePort };

// From the package root, whether this file runs from source (tests) or from dist/ (benchmarks).
export const ROOT = packageRoot();
const BIN = join(ROOT, "bin", "locmesh.js");


export interface NodeSpec {
  id: string;
  meshPort: number;
  apiPort: number;
  dir: string;
  secret: string;
  token: string;
  peers: { id: string; url: string }[];
  /** Top-level config sections that replace the defaults below wholesale. */
  extra?: Record<string, unknown>;
  /** Settings merged key by key into the config (e.g. { mesh: { tls: {...}, acceptUnlisted: true } }). */
  config?: Record<string, unknown>;
  /** Extra environment for the daemon, e.g. libfaketime's LD_PRELOAD and FAKETIME for clock-skew drills. */
  env?: Record<string, string>;
}

export class RpcCallError extends Error {
  constructor(readonly code: number, message: string, readonly data?: unknown) {
    super(message);
  }
}

export class AgentProcess {
  /** The `locmesh` subcommand that runs this daemon. */
  protected readonly command: string = "agent";
  child: ChildProcess | null = null;
  exited: Promise<number | null> = Promise.resolve(null);
  private logFlushed: Promise<void> = Promise.resolve();
  /** `nodeArgs` go to node before the script, e.g. --cpu-prof for the benchmarks. */
  constructor(
    readonly spec: NodeSpec,
    readonly nodeArgs: readonly string[] = [],
  ) {}

  get apiUrl(): string {
    return `http://127.0.0.1:${this.spec.apiPort}`;
  }
  get meshUrl(): string {
    const tls = (this.spec.config?.["mesh"] as { tls?: unknown } | undefined)?.tls;
    return `${tls ? "wss" : "ws"}://127.0.0.1:${this.spec.meshPort}`;
  }
  get configPath(): string {
    return join(this.spec.dir, "config.json");
  }

  writeConfig(): void {
    mkdirSync(this.spec.dir, { recursive: true });
    // It holds the secrets: owner-only, as an operator's should be (the agent warns otherwise).
    writeFileSync(this.configPath, JSON.stringify(deepMerge(this.baseConfig(), this.spec.config ?? {}), null, 2), { mode: 0o600 });
  }

  protected baseConfig(): Record<string, unknown> {
    return {
      nodeId: this.spec.id,
      dataDir: join(this.spec.dir, "data"),
      mesh: {
        listen: `127.0.0.1:${this.spec.meshPort}`,
        secret: this.spec.secret,
        peers: this.spec.peers,
        retry: { minMs: 50, maxMs: 1000 },
        statusIntervalMs: 250,
      },
      api: { listen: `127.0.0.1:${this.spec.apiPort}`, token: this.spec.token },
      journal: { synchronous: "normal" },
      log: { level: "info" },
      ...this.spec.extra,
    };
  }

  /** Rewrites the config with a new peer list and sends SIGHUP, as an operator would. */
  reloadPeers(peers: { id: string; url: string }[]): void {
    this.spec.peers = peers;
    this.reload();
  }

  /** Rewrites the config with a new hub.urls and sends SIGHUP, as an operator would. */
  reloadHubs(urls: string[]): void {
    const hub = this.spec.config?.["hub"] as Record<string, unknown> | undefined;
    this.spec.config = { ...this.spec.config, hub: { ...hub, urls } };
    this.reload();
  }

  /** Rewrites the config from `spec` (changed by the caller) and sends SIGHUP, as an operator would. */
  reload(): void {
    this.writeConfig();
    if (!this.child || this.child.exitCode !== null) throw new Error(`${this.command} ${this.spec.id} is not running`);
    this.child.kill("SIGHUP");
  }

  async start(): Promise<void> {
    this.writeConfig();
    const log = createWriteStream(this.logPath, { flags: "a" });
    const child = spawn(process.execPath, [...this.nodeArgs, BIN, this.command, "--config", this.configPath], {
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, LOCMESH_CONFIG: "", ...this.spec.env },
    });
    child.stdout!.pipe(log);
    child.stderr!.pipe(log);
    this.logFlushed = new Promise((r) => log.once("finish", () => r()));
    this.child = child;
    this.exited = new Promise((r) => child.once("exit", (code) => r(code)));
    await this.waitReady();
  }

  /**
   * Waits until the daemon's log holds a line matching `re`. What it logs after an effect a test
   * can observe (a write in Kamailio) reaches the file through a pipe some milliseconds later.
   */
  async waitForLog(re: RegExp, timeoutMs = 5000): Promise<void> {
    await waitFor(`${this.spec.id}'s log to match ${re}`, async () => re.test(readFileSync(this.logPath, "utf8")), timeoutMs, 50);
  }

  /** The log file the daemon writes into. */
  get logPath(): string {
    return join(this.spec.dir, `${this.command}.log`);
  }

  async waitReady(timeoutMs = 15_000): Promise<void> {
    const until = Date.now() + timeoutMs;
    for (;;) {
      if (this.child?.exitCode !== null && this.child?.exitCode !== undefined) {
        // Both pipes end the log stream; its last lines are on disk once it finishes.
        await Promise.race([this.logFlushed, sleep(1000)]);
        // The log's end goes into the error: the temp folder holding the log is usually gone by
        // the time anyone reads a CI or bench failure.
        throw new Error(`${this.command} ${this.spec.id} exited with ${this.child.exitCode}; the end of ${this.logPath}:\n${logTail(this.logPath)}`);
      }
      try {
        const res = await fetch(`${this.apiUrl}/healthz`);
        // Another daemon on the same port (a port taken between choosing and binding) must not
        // pass for this one.
        if (res.ok && ((await res.json()) as { nodeId?: unknown }).nodeId === this.spec.id) return;
      } catch {
        // not up yet
      }
      if (Date.now() > until) throw new Error(`agent ${this.spec.id} did not come up`);
      await sleep(50);
    }
  }

  async call<T = unknown>(method: string, params: unknown = {}, token = this.spec.token): Promise<T> {
    const res = await fetch(`${this.apiUrl}/rpc`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
      body: JSON.stringify({ jsonrpc: "2.0", id: 1, method, params }),
    });
    const body = (await res.json()) as { result?: T; error?: { code: number; message: string; data?: unknown } };
    if (body.error) throw new RpcCallError(body.error.code, body.error.message, body.error.data);
    return body.result as T;
  }

  async metric(name: string, labels: Record<string, string> = {}): Promise<number> {
    const text = await (await fetch(`${this.apiUrl}/metrics?name=${encodeURIComponent(name)}`)).text();
    let sum = 0;
    for (const line of text.split("\n")) {
      if (!line.startsWith(name)) continue;
      const m = /^([a-z_]+)(\{[^}]*\})?\s+([0-9.e+-]+)$/.exec(line);
      if (!m || m[1] !== name) continue;
      const lbl = m[2] ?? "";
      if (Object.entries(labels).every(([k, v]) => lbl.includes(`${k}="${v}"`))) sum += Number(m[3]);
    }
    return sum;
  }

  /** Sends the running agent a signal (SIGSTOP and SIGCONT to freeze it). */
  signal(sig: NodeJS.Signals): void {
    this.child?.kill(sig);
  }

  kill9(): Promise<number | null> {
    this.child?.kill("SIGKILL");
    return this.exited;
  }

  async stop(): Promise<void> {
    if (!this.child || this.child.exitCode !== null) return;
    this.child.kill("SIGTERM");
    const t = setTimeout(() => this.child?.kill("SIGKILL"), 5000);
    await this.exited;
    clearTimeout(t);
    // The child's exit can come before the last of its output is in the log file: a test reads it next.
    await Promise.race([this.logFlushed, sleep(1000)]);
  }
}

const isPlainObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

function deepMerge(base: Record<string, unknown>, over: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(over)) {
    const b = out[k];
    out[k] = isPlainObject(b) && isPlainObject(v) ? deepMerge(b, v) : v;
  }
  return out;
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function waitFor<T>(what: string, fn: () => Promise<T | undefined | null | false>, timeoutMs = 20_000, everyMs = 50): Promise<T> {
  const until = Date.now() + timeoutMs;
  let lastErr: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (err) {
      lastErr = err;
    }
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}${lastErr ? `: ${(lastErr as Error).message}` : ""}`);
    await sleep(everyMs);
  }
}

/** A cluster of `n` agents that all list each other. */
export async function makeCluster(
  baseDir: string,
  n: number,
  opts: { secret?: string; extra?: Record<string, unknown>; config?: Record<string, unknown>; scheme?: "ws" | "wss" } = {},
): Promise<AgentProcess[]> {
  const ids = Array.from({ length: n }, (_, i) => `n${i + 1}`);
  const ports = await Promise.all(ids.map(async () => ({ mesh: await freePort(), api: await freePort() })));
  return ids.map(
    (id, i) =>
      new AgentProcess({
        id,
        meshPort: ports[i]!.mesh,
        apiPort: ports[i]!.api,
        dir: join(baseDir, id),
        secret: opts.secret ?? "integration-cluster-secret-0123456789",
        token: "integration-api-token-0123456789",
        peers: ids.filter((o) => o !== id).map((o, _j) => ({ id: o, url: `${opts.scheme ?? "ws"}://127.0.0.1:${ports[ids.indexOf(o)]!.mesh}` })),
        extra: opts.extra,
        config: opts.config,
      }),
  );
}

/** The last lines of a log file (about 2 KB), or a note that it could not be read. */
export function logTail(path: string, bytes = 2048): string {
  try {
    const text = readFileSync(path, "utf8");
    return text.slice(-bytes).split("\n").slice(text.length > bytes ? 1 : 0).join("\n").trimEnd();
  } catch (err) {
    return `(cannot read it: ${(err as Error).message})`;
  }
}
