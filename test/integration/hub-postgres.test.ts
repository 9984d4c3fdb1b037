/**
 * A hub whose PostgreSQL fails it, against real processes: `locmesh hub` and `locmesh hub migrate`
 * with no PostgreSQL at the configured address, or behind a path that takes TCP and never answers
 * (test/support/freezable-proxy.ts, frozen).
 */
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ROOT, freePort } from "../support/agent-process.js";
import { startFreezableProxy } from "../support/freezable-proxy.js";
import { SECRET, TOKEN } from "../support/hub-process.js";

const BIN = join(ROOT, "bin", "locmesh.js");
/** Put in every postgres.url here: it must show in no output. */
const PASSWORD = "pg-password-never-shown";
let dir: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "locmesh-hub-pg-"));
});

afterAll(() => {
  if (dir && !process.env["LOCMESH_KEEP_TEST_DIRS"]) rmSync(dir, { recursive: true, force: true });
});

/** A hub config file for PostgreSQL at `pgPort`, with `postgres` settings merged in. */
async function hubConfig(name: string, pgPort: number, postgres: Record<string, unknown> = {}): Promise<string> {
  const path = join(dir, `${name}.json`);
  const config = {
    nodeId: name,
    mesh: { listen: `127.0.0.1:${await freePort()}`, secret: SECRET, acceptUnlisted: true },
    api: { listen: `127.0.0.1:${await freePort()}`, token: TOKEN },
    postgres: { url: `postgres://locmesh:${PASSWORD}@127.0.0.1:${pgPort}/locmesh`, ...postgres },
  };
  writeFileSync(path, JSON.stringify(config), { mode: 0o600 });
  return path;
}

interface Exit {
  code: number | null;
  output: string;
  ms: number;
}

/**
 * Runs `locmesh hub <args>` without blocking this process (a proxy in it may have to keep
 * answering); SIGKILLed after `limitMs`, which shows as code null.
 */
function hubCommand(args: string[], limitMs = 30_000): Promise<Exit> {
  const started = Date.now();
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("LOCMESH_") && !k.startsWith("PG")));
  const child = spawn(process.execPath, [BIN, "hub", ...args], { env, stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  for (const s of [child.stdout, child.stderr]) s.on("data", (d: Buffer) => (output += d.toString()));
  const kill = setTimeout(() => child.kill("SIGKILL"), limitMs);
  return new Promise((resolve) =>
    child.once("close", (code) => {
      clearTimeout(kill);
      resolve({ code, output, ms: Date.now() - started });
    }),
  );
}

describe("a hub without its PostgreSQL", () => {
  it("`hub migrate` and `hub` exit 1 naming PostgreSQL, its host:port and what to check, never the password, when nothing listens there", async () => {
    const pgPort = await freePort();
    const config = await hubConfig("hub-refused", pgPort);
    for (const args of [["migrate", "--config", config], ["--config", config]]) {
      const r = await hubCommand(args);
      expect(r.code, r.output).toBe(1);
      expect(r.output).toContain(`cannot reach PostgreSQL at 127.0.0.1:${pgPort}`);
      expect(r.output).toMatch(/Check that PostgreSQL is running/);
      expect(r.output).not.toContain(PASSWORD);
    }
  });

  it("`hub migrate` and `hub` give up within postgres.connectTimeoutMs when PostgreSQL's address takes TCP and never answers", async () => {
    const silent = await startFreezableProxy(await freePort());
    silent.freeze();
    try {
      const config = await hubConfig("hub-silent", silent.port, { connectTimeoutMs: 1000 });
      for (const args of [["migrate", "--config", config], ["--config", config]]) {
        const r = await hubCommand(args);
        expect(r.code, r.output).toBe(1);
        // 1 s, and a generous margin for a busy machine: without the timeout this waits for ever.
        expect(r.ms).toBeLessThan(15_000);
        expect(r.output).toContain(`PostgreSQL at 127.0.0.1:${silent.port} did not answer within 1000 ms (postgres.connectTimeoutMs)`);
        expect(r.output).not.toContain(PASSWORD);
      }
    } finally {
      await silent.close();
    }
  });
});
