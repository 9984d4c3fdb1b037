/**
 * Real Kamailio 5.6 processes for integration tests and benchmarks. Each one runs in the foreground
 * (-DD -E) with a generated cfg (kamailio-cfg.ts), its own runtime dir (-Y), pid file (-P) and ports
 * on 127.0.0.1, so the Debian kamailio service, /run/kamailio and port 5060 are never involved.
 * When Kamailio is missing the test fails with the command that installs it (house style: never skip).
 */
import type { ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { createFifoClient } from "../../agent/kamailio/fifo-client.js";
import { silentLogger } from "../../agent/ops/logger.js";
import { kamailioInclude, type IncludeParams } from "../../agent/kamailio/cfg-include.js";
import { spawnLogged } from "./logged-child.js";
import { freePort, freeUdpPort } from "./ports.js";
import { kamailioCfg, type DmqCfg, type KamailioCfgParams, type LocmeshCfg } from "./kamailio-cfg.js";

export { freeUdpPort };

export const KAMAILIO_BIN = "/usr/sbin/kamailio";
export const KAMAILIO_INSTALL =
  "apt-get update && apt-get install -y kamailio kamailio-extra-modules kamailio-sqlite-modules " +
  "kamailio-postgres-modules kamailio-json-modules sip-tester sqlite3   (or: bash .ci/setup)";

export interface KamailioOptions {
  /** Extra environment for Kamailio, e.g. { TZ: "America/New_York" }. */
  env?: Record<string, string>;
  /** Serve jsonrpcs over UDP too (datagram transport) with this many workers. */
  dgramWorkers?: number;
  /** Serve jsonrpcs over HTTP (xhttp) too. */
  http?: boolean;
  extraCfg?: string;
  /** Shared memory in MB (-m); Kamailio's default is 64. */
  shmMb?: number;
  /** SIP port on 127.0.0.1 (default: a free one), e.g. chosen up front so dmq peers can name each other. */
  sipPort?: number;
  /** SIP over TCP too, on a free port of `host` (default 127.0.0.1; 0.0.0.0 for a wildcard listener). */
  sipTcp?: { host?: string };
  /** Kamailio's own dmq + dmq_usrloc replication (kamailio-cfg.ts DmqCfg) instead of locmesh. */
  dmq?: DmqCfg;
  /** Cfg lines right after save() instead of locmesh's include (kamailio-cfg.ts afterSave). */
  afterSave?: KamailioCfgParams["afterSave"];
  /** locmesh's kamailio.cfg include, wired in as an operator would; evapi on a free 127.0.0.1 port. */
  locmesh?: Omit<LocmeshCfg, "includePath"> & Partial<Pick<IncludeParams, "agentAddress" | "aliasMode" | "meshPeers" | "peersFixed" | "bulkToken">>;
}

export interface KamailioProcess {
  readonly dir: string;
  readonly fifoPath: string;
  readonly replyDir: string;
  readonly sipPort: number;
  readonly dgramPort: number | undefined;
  readonly httpPort: number | undefined;
  /** SIP over TCP's port, with the sipTcp option. */
  readonly sipTcpPort: number | undefined;
  /** evapi's TCP port on 127.0.0.1, with the locmesh option. */
  readonly evapiPort: number | undefined;
  /** PID of the main (attendant) process. */
  pid(): number;
  /** The last lines Kamailio wrote to stderr. */
  logTail(lines?: number): string;
  /** How many lines Kamailio has written to stderr so far: a mark for logSince(). */
  logMark(): number;
  /** The lines written after `mark` (as far as the kept tail reaches back). */
  logSince(mark: number): string;
  /** Kamailio's processes as core.psx lists them, e.g. "JSONRPCS FIFO". */
  processes(): Promise<{ pid: number; description: string }[]>;
  /** SIGTERM, then SIGKILL after 5 s; the runtime dir stays. */
  stop(): Promise<void>;
  /** Stops and starts again with the same cfg, dir and ports. */
  restart(): Promise<void>;
  /** SIGKILL to the attendant and every worker at once: a crash, no shutdown code runs. */
  kill9(): Promise<void>;
  /** Starts again after stop() or kill9(), with the same cfg, dir and ports. */
  start(): Promise<void>;
  /** Stops and removes the runtime dir. */
  close(): Promise<void>;
}

export function modulesDir(): string {
  const lib = "/usr/lib";
  const arch = readdirSync(lib).find((d) => existsSync(join(lib, d, "kamailio", "modules", "jsonrpcs.so")));
  if (!existsSync(KAMAILIO_BIN) || arch === undefined) {
    throw new Error(`Kamailio is not installed (no ${KAMAILIO_BIN} or jsonrpcs.so). Install it with: ${KAMAILIO_INSTALL}`);
  }
  return join(lib, arch, "kamailio", "modules");
}



export async function startKamailio(opts: KamailioOptions = {}): Promise<KamailioProcess> {
  const mods = modulesDir();
  const dir = mkdtempSync(join(tmpdir(), "locmesh-kam-"));
  const sipPort = opts.sipPort ?? (await freeUdpPort());
  const dgramPort = opts.dgramWorkers ? await freeUdpPort() : undefined;
  const httpPort = opts.http ? await freePort() : undefined;
  const sipTcpPort = opts.sipTcp ? await freePort() : undefined;
  const cfgPath = join(dir, "kamailio.cfg");
  const evapiPort = opts.locmesh ? await freePort() : undefined;
  const locmesh = opts.locmesh ? writeLocmeshInclude(dir, evapiPort as number, opts.locmesh) : undefined;
  writeFileSync(cfgPath, kamailioCfg({ dir, modulesDir: mods, sipPort, dgramPort, dgramWorkers: opts.dgramWorkers, httpPort, ...(sipTcpPort ? { sipTcp: { host: opts.sipTcp?.host ?? "127.0.0.1", port: sipTcpPort } } : {}), extra: opts.extraCfg, locmesh, dmq: opts.dmq, afterSave: opts.afterSave }));
  const fifoPath = join(dir, "kamailio_rpc.fifo");
  const log: string[] = [];
  /** Lines ever pushed onto `log` (it keeps only a tail): counted as spawnLogged splits them. */
  let written = 0;
  let child: ChildProcess | null = null;
  let exited: Promise<void> = Promise.resolve();
  let workers: number[] = [];

  const rpc = (timeoutMs: number) => createFifoClient({ fifoPath, replyDir: dir, timeoutMs, log: silentLogger(), maxInFlight: 1, autoResync: false });

  async function psx(): Promise<{ pid: number; description: string }[]> {
    const client = rpc(2000);
    try {
      const rows = await client.call<{ PID: number; DSC: string }[]>("core.psx");
      return rows.map((r) => ({ pid: r.PID, description: r.DSC }));
    } finally {
      await client.close();
    }
  }

  async function start(): Promise<void> {
    const args = ["-f", cfgPath, "-DD", "-E", "-Y", dir, "-P", join(dir, "kamailio.pid"), ...(opts.shmMb ? ["-m", String(opts.shmMb)] : [])];
    const started = spawnLogged(KAMAILIO_BIN, args, { env: { ...process.env, ...opts.env } }, log);
    const proc = started.proc;
    proc.stderr?.on("data", (s: string) => (written += s.split("\n").filter(Boolean).length));
    child = proc;
    exited = started.exited;
    // Ready when the FIFO answers core.version (the FIFO process is forked last, after mod init).
    const deadline = Date.now() + 15_000;
    for (;;) {
      if (started.exitCode() !== undefined) throw new Error(`kamailio exited (code ${started.exitCode()}) during startup:\n${tail(40)}`);
      const client = rpc(500);
      try {
        await client.call("core.version");
        break;
      } catch (err) {
        if (Date.now() > deadline) throw new Error(`kamailio did not answer on ${fifoPath} within 15 s: ${(err as Error).message}\n${tail(40)}`);
        await sleep(50);
      } finally {
        await client.close();
      }
    }
    try {
      workers = (await psx()).map((p) => p.pid).filter((pid) => pid !== proc.pid);
    } catch (err) {
      // It stopped right after it answered (a cfg that stops it at its first worker's start, as the
      // include's start checks do): its log says why, once its last lines are in.
      await Promise.race([exited, sleep(1000)]);
      throw new Error(`kamailio stopped as it started (core.psx: ${(err as Error).message}):\n${tail(40)}`);
    }
  }

  function tail(n = 60): string {
    return log.slice(-n).join("\n");
  }

  async function stop(): Promise<void> {
    const proc = child;
    child = null;
    if (proc && proc.exitCode === null && proc.signalCode === null) {
      proc.kill("SIGTERM");
      const killed = await Promise.race([exited.then(() => false), sleep(5000).then(() => true)]);
      if (killed) {
        proc.kill("SIGKILL");
        await exited;
      }
    }
    // The attendant normally takes its children down; make sure no worker outlives it: those
    // core.psx listed at the start, and any other of this cfg's (a Kamailio that stopped itself
    // during its start, as the include's use_domain check makes it, left processes forked after
    // that list, or before any list was made, running; seen in kamailio-use-domain.test.ts).
    for (const pid of new Set([...workers, ...processesOf(cfgPath)])) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // already gone
      }
    }
    workers = [];
    await goneAll();
  }

  /** Waits (up to 5 s) until no process of this cfg is left: a dying one still holds its sockets. */
  async function goneAll(): Promise<void> {
    const deadline = Date.now() + 5000;
    while (processesOf(cfgPath).length > 0 && Date.now() < deadline) await sleep(20);
  }

  await start().catch(async (err: unknown) => {
    await stop();
    rmSync(dir, { recursive: true, force: true });
    throw err;
  });

  return {
    dir, fifoPath, replyDir: dir, sipPort, dgramPort, httpPort, sipTcpPort, evapiPort,
    pid: () => child?.pid ?? 0,
    logTail: tail,
    logMark: () => written,
    logSince: (mark) => (written > mark ? log.slice(-(written - mark)).join("\n") : ""),
    processes: psx,
    stop,
    async restart() {
      await stop();
      await start();
    },
    async kill9() {
      const proc = child;
      child = null;
      // Every process of this cfg, not only those core.psx listed at the start, and wait until
      // they are all gone: a worker still dying holds its sockets (the jsonrpcs datagram socket,
      // the SIP port), and a start() right after would fail to bind them and exit 255.
      const pids = [...new Set([proc?.pid ?? 0, ...workers, ...processesOf(cfgPath)])].filter((pid) => pid > 0);
      for (const pid of pids) {
        try {
          process.kill(pid, "SIGKILL");
        } catch {
          // already gone
        }
      }
      workers = [];
      if (proc && proc.exitCode === null && proc.signalCode === null) await exited;
      await goneAll();
    },
    async start() {
      if (child) throw new Error("kamailio is already running");
      await start();
    },
    async close() {
      await stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** PIDs of the Kamailio processes running `cfgPath` (its own temp folder's, so no other test's). */
function processesOf(cfgPath: string): number[] {
  const out: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    let argv: string[];
    try {
      argv = readFileSync(join("/proc", entry, "cmdline"), "utf8").split("\0");
    } catch {
      continue; // gone meanwhile
    }
    if (argv[0] === KAMAILIO_BIN && argv[argv.indexOf("-f") + 1] === cfgPath) out.push(Number(entry));
  }
  return out;
}

function writeLocmeshInclude(dir: string, evapiPort: number, l: NonNullable<KamailioOptions["locmesh"]>): LocmeshCfg {
  const includePath = join(dir, "locmesh.cfg");
  writeFileSync(includePath, kamailioInclude({
    evapiListen: { host: "127.0.0.1", port: evapiPort },
    agentAddress: l.agentAddress ?? "127.0.0.1",
    aliasMode: l.aliasMode ?? "usrloc",
    meshPeers: l.meshPeers ?? ["127.0.0.1"],
    peersFixed: l.peersFixed ?? false,
    ...(l.bulkToken !== undefined ? { bulkToken: l.bulkToken } : {}),
  }));
  return { includePath, saveFlags: l.saveFlags, maxContacts: l.maxContacts, ownExpiredRoute: l.ownExpiredRoute };
}
