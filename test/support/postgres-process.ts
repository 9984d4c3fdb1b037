/**
 * Real PostgreSQL 15 servers for integration tests and benchmarks: `initdb` into a fresh temp dir,
 * then `postgres` in the foreground on 127.0.0.1:<free port> with its unix socket in that dir, so the
 * Debian cluster (port 5432, /var/run/postgresql) is never involved. PostgreSQL refuses to run as
 * root; when the tests run as root the server runs as the `postgres` system user (runuser).
 * A missing PostgreSQL fails the test with the command that installs it (house style: never skip).
 */
import { spawnSync, type ChildProcess } from "node:child_process";
import { chmodSync, chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import pg from "pg";
import { isAlive, spawnLogged } from "./logged-child.js";
import { freePort } from "./ports.js";

export const POSTGRES_INSTALL = "apt-get update && apt-get install -y postgresql-15   (or: bash .ci/setup)";

export interface PostgresProcess {
  readonly dir: string;
  readonly port: number;
  /** postgres://postgres@127.0.0.1:<port>/<database> (trust auth on loopback). */
  url(database?: string): string;
  /** CREATE DATABASE name; returns its URL. */
  createDatabase(name: string): Promise<string>;
  /** Runs SQL on a database (default "postgres") and returns the rows. */
  query<T extends Record<string, unknown> = Record<string, unknown>>(sql: string, params?: unknown[], database?: string): Promise<T[]>;
  logTail(lines?: number): string;
  /** Fast shutdown (SIGINT), SIGKILL after 10 s; the data dir stays. */
  stop(): Promise<void>;
  /** SIGKILL: no shutdown checkpoint, so the next start runs crash recovery. */
  kill(): Promise<void>;
  /** Starts again on the same data dir and port. */
  start(): Promise<void>;
  /** Stops and removes the data dir. */
  close(): Promise<void>;
}

export function postgresBinDir(): string {
  const base = "/usr/lib/postgresql";
  const versions = existsSync(base) ? readdirSync(base).filter((v) => existsSync(join(base, v, "bin", "postgres"))) : [];
  const v = versions.sort((a, b) => Number(b) - Number(a))[0];
  if (v === undefined) throw new Error(`PostgreSQL is not installed (nothing under ${base}/*/bin/postgres). Install it with: ${POSTGRES_INSTALL}`);
  return join(base, v, "bin");
}


/** PostgreSQL refuses to run as root: as root, its processes run as the postgres system user. */
function postgresUser(): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const uid = spawnSync("id", ["-u", "postgres"], { encoding: "utf8" });
  const gid = spawnSync("id", ["-g", "postgres"], { encoding: "utf8" });
  if (uid.status !== 0 || gid.status !== 0) {
    throw new Error(`running as root but there is no "postgres" user to run PostgreSQL as. Install it with: ${POSTGRES_INSTALL}`);
  }
  return { uid: Number(uid.stdout.trim()), gid: Number(gid.stdout.trim()) };
}

export async function startPostgres(opts: { settings?: Record<string, string> } = {}): Promise<PostgresProcess> {
  const bin = postgresBinDir();
  const dir = mkdtempSync(join(tmpdir(), "locmesh-pg-"));
  const dataDir = join(dir, "data");
  const user = postgresUser();
  if (user) chownSync(dir, user.uid, user.gid);
  chmodSync(dir, 0o700);
  const init = spawnSync(join(bin, "initdb"), ["-D", dataDir, "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8", "--locale=C"], {
    encoding: "utf8",
    ...user,
  });
  if (init.status !== 0) throw new Error(`initdb failed (${init.status}):\n${init.stdout}\n${init.stderr}`);

  const port = await freePort();
  const log: string[] = [];
  let child: ChildProcess | null = null;
  let exited: Promise<void> = Promise.resolve();
  const settings: Record<string, string> = {
    listen_addresses: "127.0.0.1",
    port: String(port),
    unix_socket_directories: dir,
    max_connections: "200",
    shared_buffers: "128MB",
    fsync: "on",
    ...opts.settings,
  };

  const url = (database = "postgres") => `postgres://postgres@127.0.0.1:${port}/${database}`;

  async function query<T extends Record<string, unknown>>(sql: string, params: unknown[] = [], database = "postgres"): Promise<T[]> {
    const client = new pg.Client({ connectionString: url(database) });
    await client.connect();
    try {
      return (await client.query<T>(sql, params)).rows;
    } finally {
      await client.end();
    }
  }

  async function start(): Promise<void> {
    const args = Object.entries(settings).flatMap(([k, v]) => ["-c", `${k}=${v}`]);
    const started = spawnLogged(join(bin, "postgres"), ["-D", dataDir, ...args], { ...user }, log);
    child = started.proc;
    exited = started.exited;
    const deadline = Date.now() + 30_000;
    for (;;) {
      if (started.exitCode() !== undefined) throw new Error(`postgres exited (code ${started.exitCode()}) during startup:\n${tail(40)}`);
      try {
        await query("SELECT 1");
        return;
      } catch (err) {
        if (Date.now() > deadline) throw new Error(`postgres did not accept connections on port ${port} within 30 s: ${(err as Error).message}\n${tail(40)}`);
        await sleep(100);
      }
    }
  }

  function tail(n = 60): string {
    return log.slice(-n).join("\n");
  }

  async function signalAndWait(signal: NodeJS.Signals): Promise<void> {
    const proc = child;
    child = null;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    const pid = proc.pid;
    let kids: number[] = [];
    if (signal === "SIGKILL" && pid !== undefined) kids = killTree(pid);
    else proc.kill(signal);
    const timedOut = await Promise.race([exited.then(() => false), sleep(10_000).then(() => true)]);
    if (timedOut && pid !== undefined) {
      kids = killTree(pid);
      await exited;
    }
    // Backends outlive a SIGKILLed postmaster for a moment; the next start needs them gone.
    const deadline = Date.now() + 10_000;
    while (kids.some(isAlive) && Date.now() < deadline) await sleep(50);
  }

  await start().catch(async (err: unknown) => {
    await signalAndWait("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
    throw err;
  });

  return {
    dir,
    port,
    url,
    async createDatabase(name) {
      await query(`CREATE DATABASE "${name.replace(/"/g, '""')}"`);
      return url(name);
    },
    query,
    logTail: tail,
    stop: () => signalAndWait("SIGINT"),
    kill: () => signalAndWait("SIGKILL"),
    start,
    async close() {
      await signalAndWait("SIGINT");
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** SIGKILL a process and its direct children (the postmaster's backends); returns the children. */
function killTree(pid: number): number[] {
  const kids = spawnSync("pgrep", ["-P", String(pid)], { encoding: "utf8" }).stdout.split("\n").filter(Boolean).map(Number);
  for (const p of [pid, ...kids]) {
    try {
      process.kill(p, "SIGKILL");
    } catch {
      // already gone
    }
  }
  return kids;
}
