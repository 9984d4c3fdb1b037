/**
 * The demo's Kamailio processes: one per node, in the foreground (-DD -E) with its own generated
 * cfg (demo-kamailio-cfg.ts), runtime dir (-Y) and pid file (-P) under the demo folder, stderr to a
 * log file there. The Debian kamailio service, /run/kamailio and port 5060 are never involved.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync, writeSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { createFifoClient } from "../kamailio/fifo-client.js";
import { silentLogger } from "../ops/logger.js";
import { demoKamailioCfg, demoLocmeshInclude } from "./demo-kamailio-cfg.js";

export const KAMAILIO_BIN = "/usr/sbin/kamailio";
export const KAMAILIO_INSTALL =
  "bash .ci/setup   (or: apt-get update && apt-get install -y kamailio kamailio-extra-modules kamailio-json-modules sip-tester)";

/** What one demo node's Kamailio is and where its files are. */
export interface DemoKamailioSpec {
  nodeId: string;
  /** Runtime dir: cfg, include, FIFO, reply FIFOs, pid file and log. */
  dir: string;
  sipPort: number;
  rpcPort: number;
  evapiPort: number;
  domain: string;
  /** The agent's evapi bulk token (derived from the demo's cluster key). */
  bulkToken: string;
}

export interface DemoKamailio extends DemoKamailioSpec {
  cfg: string;
  include: string;
  log: string;
  fifo: string;
  /** SIGTERM, SIGKILL after 5 s, then any worker that outlived the attendant. */
  stop(): Promise<void>;
}

const MODULES = ["jsonrpcs", "usrloc", "registrar", "rr", "evapi", "kex", "path"];

/** The modules folder (/usr/lib/<arch>/kamailio/modules), or an error that says how to install. */
export function findKamailio(): string {
  const lib = "/usr/lib";
  const arch = existsSync(lib) ? readdirSync(lib).find((d) => existsSync(join(lib, d, "kamailio", "modules", "jsonrpcs.so"))) : undefined;
  if (!existsSync(KAMAILIO_BIN) || arch === undefined) {
    throw new Error(`Kamailio is not installed (no ${KAMAILIO_BIN} or jsonrpcs.so). Install it with: ${KAMAILIO_INSTALL}\nor run the agents alone: locmesh demo --no-kamailio`);
  }
  const dir = join(lib, arch, "kamailio", "modules");
  const missing = MODULES.filter((m) => !existsSync(join(dir, `${m}.so`)));
  if (missing.length > 0) throw new Error(`Kamailio modules ${missing.join(", ")} are missing from ${dir}. Install them with: ${KAMAILIO_INSTALL}`);
  return dir;
}

export function kamailioFiles(dir: string): { cfg: string; include: string; log: string; fifo: string; pidFile: string } {
  return {
    cfg: join(dir, "kamailio.cfg"),
    include: join(dir, "locmesh.cfg"),
    log: join(dir, "kamailio.log"),
    fifo: join(dir, "kamailio_rpc.fifo"),
    pidFile: join(dir, "kamailio.pid"),
  };
}

export async function startDemoKamailio(spec: DemoKamailioSpec, modulesDir: string, readyTimeoutMs: number): Promise<DemoKamailio> {
  const files = kamailioFiles(spec.dir);
  refuseIfStillRunning(files.pidFile, files.cfg);
  // Everything in the runtime dir is written per run; stale FIFOs from a killed run must not stay.
  rmSync(spec.dir, { recursive: true, force: true });
  mkdirSync(spec.dir, { recursive: true });
  writeFileSync(files.include, demoLocmeshInclude(spec.evapiPort, files.include, spec.bulkToken));
  writeFileSync(files.cfg, demoKamailioCfg({
    nodeId: spec.nodeId, dir: spec.dir, modulesDir, sipPort: spec.sipPort, rpcPort: spec.rpcPort, domain: spec.domain, includePath: files.include,
  }));

  const child = spawnKamailio(files);
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  let workers: number[] = [];
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 5000);
      await exited;
      clearTimeout(timer);
    }
    // The attendant takes its children down when it exits normally; after a SIGKILL it cannot.
    for (const pid of workers) if (isKamailioOf(pid, files.cfg)) killQuietly(pid);
  };
  try {
    workers = await waitUntilAnswering(child, files, readyTimeoutMs);
  } catch (err) {
    await stop();
    throw new Error(`Kamailio for ${spec.nodeId} did not start: ${(err as Error).message}\nsee ${files.log}:\n${logTail(files.log)}`, { cause: err });
  }
  return { ...spec, cfg: files.cfg, include: files.include, log: files.log, fifo: files.fifo, stop };
}

function spawnKamailio(files: ReturnType<typeof kamailioFiles>): ChildProcess {
  const fd = openSync(files.log, "a");
  try {
    writeSync(fd, `--- locmesh demo: starting Kamailio at ${new Date().toISOString()} ---\n`);
    const dir = join(files.cfg, "..");
    return spawn(KAMAILIO_BIN, ["-DD", "-E", "-Y", dir, "-P", files.pidFile, "-f", files.cfg], { stdio: ["ignore", fd, fd] });
  } finally {
    closeSync(fd); // the child holds its own copy
  }
}

/** Ready once the FIFO answers (its process is forked last, after every module's init). Returns the worker pids. */
async function waitUntilAnswering(child: ChildProcess, files: ReturnType<typeof kamailioFiles>, timeoutMs: number): Promise<number[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`kamailio exited (${child.exitCode ?? child.signalCode}) during startup`);
    const rpc = createFifoClient({ fifoPath: files.fifo, replyDir: join(files.fifo, ".."), timeoutMs: 500, log: silentLogger(), maxInFlight: 1, autoResync: false });
    try {
      if (existsSync(files.fifo)) {
        await rpc.call("core.version");
        const rows = await rpc.call<{ PID: number }[]>("core.psx");
        return rows.map((r) => r.PID).filter((pid) => pid !== child.pid);
      }
    } catch (err) {
      if (Date.now() > deadline) throw new Error(`no answer on ${files.fifo} within ${timeoutMs / 1000} s (${(err as Error).message})`, { cause: err });
    } finally {
      await rpc.close();
    }
    if (Date.now() > deadline) throw new Error(`${files.fifo} did not appear within ${timeoutMs / 1000} s`);
    await sleep(100);
  }
}

/** A Kamailio from an earlier demo run that was killed (not Ctrl-C'd) still holds the ports. */
function refuseIfStillRunning(pidFile: string, cfg: string): void {
  let pid: number;
  try {
    pid = Number(readFileSync(pidFile, "utf8").trim());
  } catch {
    return;
  }
  if (Number.isInteger(pid) && pid > 0 && isKamailioOf(pid, cfg)) {
    throw new Error(`a Kamailio from an earlier demo run is still running (pid ${pid}, ${cfg}); stop it first: kill ${pid}`);
  }
}

/** The process runs Kamailio with this cfg (Linux /proc; workers are forks, so they share the command line). */
export function isKamailioOf(pid: number, cfg: string): boolean {
  try {
    const argv = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
    return argv[0] === KAMAILIO_BIN && argv.includes(cfg);
  } catch {
    return false;
  }
}

function killQuietly(pid: number): void {
  try {
    process.kill(pid, "SIGKILL");
  } catch {
    // already gone
  }
}

export function logTail(path: string, lines = 15): string {
  try {
    return readFileSync(path, "utf8").trimEnd().split("\n").slice(-lines).map((l) => `  | ${l}`).join("\n");
  } catch {
    return "  (no log)";
  }
}
