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

/** What the agent answers to the n-th call of a method: its result, or "hang". */
export type AgentScript = (method: string, n: number) => unknown;

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
      const { id, method } = JSON.parse(body) as { id: number; method: string };
      methods.push(method);
      const n = (counts.get(method) ?? 0) + 1;
      counts.set(method, n);
      const result = agent.script(method, n);
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

/** Runs `locmesh <args> --url <the agent> --token …` in this process; stdout a terminal with `tty`. */
export function runClientCli(port: number, args: string[], o: { tty?: boolean; signals?: EventEmitter } = {}): CliRun {
  const stdout = o.tty ? Object.assign(new PassThrough(), { isTTY: true, columns: 100 }) : new PassThrough();
  const stderr = new PassThrough();
  let out = "";
  let err = "";
  stdout.on("data", (d: Buffer) => (out += d.toString("utf8")));
  stderr.on("data", (d: Buffer) => (err += d.toString("utf8")));
  const program = new Command().exitOverride();
  registerClientCommands(program, { env: {}, stdout, stderr, ...(o.signals ? { signals: o.signals } : {}) });
  let settled = false;
  const done = program
    .parseAsync(["node", "locmesh", ...args, "--url", `http://127.0.0.1:${port}`, "--token", "t".repeat(24)])
    .finally(() => (settled = true));
  return { done, settled: () => settled, out: () => out, err: () => err };
}
