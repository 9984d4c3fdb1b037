/**
 * How the client commands find the agent (client-commands.ts resolveTarget, api-url.ts): a URL
 * with a user and password, and a config that need not be read.
 */
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { Command } from "commander";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { apiUrlFault } from "../../agent/cli/api-url.js";
import { UsageError, registerClientCommands, resolveTarget } from "../../agent/cli/client-commands.js";

const TOKEN = "t".repeat(24);
const dir = mkdtempSync(join(tmpdir(), "locmesh-target-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
afterEach(() => {
  process.exitCode = undefined;
});

/** Runs `locmesh <args>` with `env`; resolves with stderr and the exit code. */
async function runCli(args: string[], env: Record<string, string> = {}): Promise<{ err: string; code: number }> {
  const stderr = new PassThrough();
  let err = "";
  stderr.on("data", (d: Buffer) => (err += d.toString("utf8")));
  const program = new Command().exitOverride();
  registerClientCommands(program, { env, stdout: new PassThrough(), stderr });
  process.exitCode = undefined;
  await program.parseAsync(["node", "locmesh", ...args]);
  return { err, code: Number(process.exitCode ?? 0) };
}

describe("an API URL with a user and password", () => {
  // Node's fetch refuses such a URL; the CLI reported the agent "not reachable" (exit 3), printing
  // the password.
  it("is a usage error naming --token, without the password", async () => {
    expect(apiUrlFault("http://admin:s3cret@127.0.0.1:47381")).toBe(
      "has a user name and password in it, which the API does not take (fetch refuses to send them): give the API token with --token (or LOCMESH_API_TOKEN) and the URL without them, e.g. http://127.0.0.1:47381",
    );
    expect(apiUrlFault("https://admin@agent.example:8443/")).toMatch(/^has a user name in it, .* e\.g\. https:\/\/agent\.example:8443$/);
    const r = await runCli(["status", "--url", "http://admin:s3cret@127.0.0.1:47381", "--token", TOKEN]);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/^locmesh: the API URL "http:\/\/admin:redacted@127\.0\.0\.1:47381\/" \(from --url\) has a user name and password in it, .*--token/);
    expect(r.err).not.toContain("s3cret");
  });

  it("from LOCMESH_API_URL too; and a URL refused for something else does not show its password either", async () => {
    const env = await runCli(["status", "--token", TOKEN], { LOCMESH_API_URL: "http://admin:s3cret@127.0.0.1:47381" });
    expect(env.code).toBe(2);
    expect(env.err).toContain("(from LOCMESH_API_URL) has a user name and password in it");
    expect(env.err).not.toContain("s3cret");
    const port = await runCli(["status", "--url", "http://admin:s3cret@127.0.0.1:nope", "--token", TOKEN]);
    expect(port.code).toBe(2);
    expect(port.err).toContain('has port "nope"');
    expect(port.err).not.toContain("s3cret");
  });
});

describe("the config, when --url and a token are given", () => {
  const broken = join(dir, "broken.yaml");
  writeFileSync(broken, "api: [\n");
  const unreadable = join(dir, "unreadable.yaml");
  writeFileSync(unreadable, "api:\n  listen: 127.0.0.1:7180\n");
  chmodSync(unreadable, 0o000);

  // An exported LOCMESH_CONFIG the command does not need failed it (exit 2): an unreadable one
  // (mode 000 for this user), a broken one, one that is gone.
  it("is not read: a LOCMESH_CONFIG that cannot be read or parsed does not stop the command", () => {
    for (const file of [broken, unreadable, join(dir, "no-such.yaml")]) {
      expect(resolveTarget({ url: "http://127.0.0.1:7180", token: TOKEN }, { LOCMESH_CONFIG: file }), file).toEqual({ url: "http://127.0.0.1:7180", token: TOKEN });
      expect(resolveTarget({ url: "http://127.0.0.1:7180" }, { LOCMESH_CONFIG: file, LOCMESH_API_TOKEN: TOKEN }), file).toEqual({ url: "http://127.0.0.1:7180", token: TOKEN });
      // Given with -c, the same: nothing in it would be used.
      expect(resolveTarget({ url: "http://127.0.0.1:7180", token: TOKEN, config: file }, {}), file).toEqual({ url: "http://127.0.0.1:7180", token: TOKEN });
    }
  });

  it("is read when it has something to give: without --url (its api.listen comes before LOCMESH_API_URL), or without a token", () => {
    const good = join(dir, "good.yaml");
    writeFileSync(good, `api:\n  listen: 127.0.0.1:7999\n  token: ${"c".repeat(24)}\n`);
    expect(resolveTarget({}, { LOCMESH_CONFIG: good, LOCMESH_API_URL: "http://127.0.0.1:7180", LOCMESH_API_TOKEN: TOKEN })).toEqual({ url: "http://127.0.0.1:7999", token: TOKEN });
    expect(resolveTarget({ url: "http://127.0.0.1:7180" }, { LOCMESH_CONFIG: good })).toEqual({ url: "http://127.0.0.1:7180", token: "c".repeat(24) });
    expect(() => resolveTarget({ token: TOKEN }, { LOCMESH_CONFIG: broken })).toThrow();
    expect(() => resolveTarget({ url: "http://127.0.0.1:7180" }, { LOCMESH_CONFIG: broken })).toThrow();
    expect(() => resolveTarget({ url: "http://127.0.0.1:7180" }, {})).toThrow(UsageError);
  });
});
