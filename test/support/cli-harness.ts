/**
 * The CLI's client commands (agent/cli/client-commands.ts) driven in-process against a scripted
 * agent API on 127.0.0.1: a real HTTP server that answers each JSON-RPC method as a test says,
 * or takes the request and never answers ("hang"). For unit tests of what the commands print and
 * exit with, without an agent process.
 */
import type { EventEmitter } from "node:events";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { PassThrough } from "node:stream";
import { Command } from "commander";
import { registerClientCommands } from "../../agent/cli/client-commands.js";
import type { KamailioReloadStatus } from "../../agent/contract/kamailio-status.js";

/** What the agent answers to the n-th call of a method (given its params): its result, or "hang". */
export type AgentScript = (method: string, n: number, params: unknown) => unknown;

export interface ScriptedAgent {
  readonly port: number;
  /** The methods called, in order. */
  readonly methods: string[];
  /** Requests taken and not answered ("hang"). */
  hanging(): number;
  script: AgentScript;
  close(): Promise<void>;
}

export async function startScriptedAgent(script: AgentScript = () => null): Promise<ScriptedAgent> {
  const methods: string[] = [];
  const hanging: ServerResponse[] = [];
  const counts = new Map<string, number>();
  const agent = {
    port: 0,
    methods,
    hanging: () => hanging.length,
    script,
    async close() {
      for (const res of hanging) res.destroy();
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    let body = "";
    req.on("data", (d: Buffer) => (body += d.toString("utf8")));
    req.on("end", () => {
      const { id, method, params } = JSON.parse(body) as { id: number; method: string; params?: unknown };
      methods.push(method);
      const n = (counts.get(method) ?? 0) + 1;
      counts.set(method, n);
      const result = agent.script(method, n, params);
      if (result === "hang") return void hanging.push(res);
      res.setHeader("content-type", "application/json");
      res.end(JSON.stringify({ jsonrpc: "2.0", id, result: result ?? null }));
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  agent.port = (server.address() as { port: number }).port;
  return agent;
}

export interface CliRun {
  /** Settles once the command is done (its exit code is then in process.exitCode). */
  done: Promise<unknown>;
  settled(): boolean;
  out(): string;
  err(): string;
}

/** A stream that says it is a terminal (as cli-progress checks), and what was written to it. */
export function terminalStream(): { out: PassThrough; printed: () => string } {
  const out = Object.assign(new PassThrough(), { isTTY: true, columns: 100 });
  let printed = "";
  out.on("data", (d: Buffer) => (printed += d.toString("utf8")));
  return { out, printed: () => printed };
}

/** The progress bar turned line wrapping off (ESC[?7l), and turned it on again after that. */
export const wrapRestored = (t: string) => t.includes("\u001b[?7l") && t.lastIndexOf("\u001b[?7h") > t.lastIndexOf("\u001b[?7l");

/** cluster.status's kamailio.reload before any reload. */
export const IDLE_RELOAD: KamailioReloadStatus = { state: "idle", reason: null, total: 0, done: 0, unchanged: 0, startedAt: null, finishedAt: null, rate: 0, channel: null, error: null };

/** A reload of 300 writes, `done` of them written, as cluster.status reports it. */
export const reloadStatus = (done: number, state: KamailioReloadStatus["state"] = "running"): KamailioReloadStatus => ({
  ...IDLE_RELOAD, state, reason: "requested through the API", total: 300, done, startedAt: "2026-11-22T10:00:00.000Z", channel: "evapi",
  ...(state === "done" ? { finishedAt: "2026-11-22T10:00:02.000Z", rate: 150 } : {}),
});

/** Runs `locmesh <args> --url <the agent> --token …` in this process; stdout a terminal with `tty`. */
export function runClientCli(port: number, args: string[], o: { tty?: boolean; signals?: EventEmitter } = {}): CliRun {
  const terminal = terminalStream();
  const stdout = o.tty ? terminal.out : new PassThrough();
  const stderr = new PassThrough();
  let out = "";
  let err = "";
  if (!o.tty) stdout.on("data", (d: Buffer) => (out += d.toString("utf8")));
  stderr.on("data", (d: Buffer) => (err += d.toString("utf8")));
  const program = new Command().exitOverride();
  registerClientCommands(program, { env: {}, stdout, stderr, ...(o.signals ? { signals: o.signals } : {}) });
  let settled = false;
  const done = program
    .parseAsync(["node", "locmesh", ...args, "--url", `http://127.0.0.1:${port}`, "--token", "t".repeat(24)])
    .finally(() => (settled = true));
  return { done, settled: () => settled, out: () => (o.tty ? terminal.printed() : out), err: () => err };
}

/** Runs `locmesh <args>` against the agent to its end: what it printed and its exit code (process.exitCode, reset before). */
export async function runClientCliToEnd(port: number, args: string[]): Promise<{ out: string; err: string; code: number }> {
  process.exitCode = undefined;
  const run = runClientCli(port, args);
  await run.done;
  return { out: run.out(), err: run.err(), code: Number(process.exitCode ?? 0) };
}
