/**
 * `locmesh demo` as a newcomer runs it: `node bin/locmesh.js demo` brings up three real Kamailio
 * nodes with their agents; a phone registered at node 1 shows up in node 2's and node 3's agents
 * and in node 3's Kamailio; the commands the banner prints work as pasted; Ctrl-C (SIGINT) leaves
 * no Kamailio or agent behind. Runs in a temp folder (--dir) on ports away from the defaults.
 */
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createApiClient } from "../../agent/cli/api-client.js";
import { demoPorts } from "../../agent/cli/demo-ports.js";
import type { Location } from "../../agent/contract/records.js";
import { createFifoClient } from "../../agent/kamailio/fifo-client.js";
import { createUsrlocRpc } from "../../agent/kamailio/usrloc-rpc.js";
import { silentLogger } from "../../agent/ops/logger.js";
import { ROOT, sleep, waitFor } from "../support/agent-process.js";
import { modulesDir } from "../support/kamailio-process.js";
import { tcpFree, udpFree } from "../support/ports.js";
import { sippRegister, type Registered } from "../support/sipp.js";
import { sippCall, startPhone } from "../support/sipp-call.js";

const run = promisify(execFile);
const TOKEN = "locmesh-demo-api-token";
const DOMAIN = "example.com";
// Derived ports (demoPorts): agents base+1..3 and base+81..83; Kamailio sip+1..3, sip+101..103,
// sip+201..203. Both below Linux's ephemeral range (32768+), so no client socket takes one
// meanwhile; chosen in beforeAll among bases whose every port is free.
let BASE = 0;
let SIP_BASE = 0;
const apiUrl = (i: number) => `http://127.0.0.1:${BASE + 80 + i}`;

/** Every port the demo binds for its 3 nodes is free now (TCP, and UDP for SIP and jsonrpcs). */
async function demoPortsFree(base: number, sipBase: number): Promise<boolean> {
  for (const p of [1, 2, 3].map((i) => demoPorts(i, base, sipBase))) {
    for (const port of [p.mesh, p.api, p.sip, p.evapi]) if (!(await tcpFree(port))) return false;
    for (const port of [p.sip, p.rpc]) if (!(await udpFree(port))) return false;
  }
  return true;
}

/** A random base whose ports are all free (a leftover demo or another test may hold some). */
async function freeBases(): Promise<{ base: number; sipBase: number }> {
  for (let tries = 0; tries < 20; tries++) {
    const base = 20_000 + Math.floor(Math.random() * 50) * 100;
    if (await demoPortsFree(base, base + 5000)) return { base, sipBase: base + 5000 };
  }
  throw new Error("no base port between 20000 and 24900 with all of the demo's ports free, in 20 tries");
}

let dir: string;
let demo: ChildProcess;
let out = "";
let err = "";
let exited: Promise<number | null>;
let phone: Registered;

/** Pids of processes whose command line mentions the demo's temp folder (its Kamailios and agents). */
function demoProcesses(): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/cmdline`, "utf8").includes(dir)) pids.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}

beforeAll(async () => {
  modulesDir(); // fails with the install command when Kamailio is missing
  ({ base: BASE, sipBase: SIP_BASE } = await freeBases());
  dir = mkdtempSync(join(tmpdir(), "locmesh-demo-"));
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("LOCMESH_")));
  demo = spawn(process.execPath, [join(ROOT, "bin", "locmesh.js"), "demo", "--dir", join(dir, ".demo"), "--base-port", String(BASE), "--sip-base-port", String(SIP_BASE)], {
    cwd: dir,
    env,
    stdio: ["ignore", "pipe", "pipe"],
  });
  exited = new Promise((resolve) => demo.once("exit", (code) => resolve(code)));
  demo.stdout?.setEncoding("utf8").on("data", (s: string) => (out += s));
  demo.stderr?.setEncoding("utf8").on("data", (s: string) => (err += s));
  const deadline = Date.now() + 30_000;
  while (!out.includes("Press Ctrl-C")) {
    if (demo.exitCode !== null) throw new Error(`demo exited ${demo.exitCode}:\n${err}\n${out}`);
    if (Date.now() > deadline) throw new Error(`no banner from the demo within 30 s:\n${err}\n${out}`);
    await sleep(100);
  }
}, 40_000);

afterAll(async () => {
  if (demo && demo.exitCode === null && demo.signalCode === null) {
    demo.kill("SIGTERM");
    await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
  }
  if (dir) {
    for (const pid of demoProcesses()) process.kill(pid, "SIGKILL"); // only after a failed test
    if (!process.env["LOCMESH_KEEP_TEST_DIRS"]) rmSync(dir, { recursive: true, force: true });
  }
});

describe("locmesh demo with Kamailio", () => {
  it("prints each node's SIP address, API URL, token, files and commands to try", () => {
    for (const i of [1, 2, 3]) {
      expect(out).toContain(`127.0.0.1:${SIP_BASE + i}`);
      expect(out).toContain(apiUrl(i));
      expect(out).toContain(`.demo/kamailio-n${i}/kamailio.cfg`);
      expect(out).toContain(`.demo/kamailio-n${i}/kamailio.log`);
    }
    expect(out).toContain(TOKEN);
    expect(out).toMatch(/^ {2}sipp -sf \.demo\/sipp-register\.xml -s alice /m);
    for (const cmd of ["location ls", "location show", "alias add", "status"]) expect(out).toContain(`locmesh.js ${cmd} --url`);
    expect(err).toBe("");
    const cfg = readFileSync(join(dir, ".demo", "kamailio-n1", "kamailio.cfg"), "utf8");
    expect(cfg).toContain(`alias="${DOMAIN}"`);
    expect(cfg).toContain(`#!include_file "${join(dir, ".demo", "kamailio-n1", "locmesh.cfg")}"`);
  });

  it("replicates a phone registered at node 1 to node 2's and node 3's agents and node 3's Kamailio", async () => {
    phone = await sippRegister({ dir, sipPort: SIP_BASE + 1, user: "alice", domain: DOMAIN, expires: 300, userAgent: "DemoPhone/1.0" });
    for (const i of [2, 3]) {
      const api = createApiClient({ url: apiUrl(i), token: TOKEN, timeoutMs: 2000 });
      try {
        await waitFor(`alice in node ${i}'s agent`, async () => {
          const r = await api.call<{ bindings: Location[] }>("location.lookup", { aor: `sip:alice@${DOMAIN}` });
          return r.bindings.some((b) => b.contact === phone.contact && b.owner === "n1");
        }, 10_000, 100);
      } finally {
        api.close();
      }
    }
    const kamDir = join(dir, ".demo", "kamailio-n3");
    const rpc = createFifoClient({ fifoPath: join(kamDir, "kamailio_rpc.fifo"), replyDir: kamDir, timeoutMs: 3000, log: silentLogger(), maxInFlight: 1, autoResync: false });
    try {
      const usrloc = createUsrlocRpc({ rpc });
      await waitFor("alice in node 3's Kamailio", async () =>
        (await usrloc.ulLookup("location", `alice@${DOMAIN}`)).some((c) => c.contact === phone.contact), 10_000, 100);
    } finally {
      await rpc.close();
    }
  });

  it("the banner's sipp and Kamailio lookup commands work as pasted", async () => {
    const line = (re: RegExp) => (out.split("\n").find((l) => re.test(l)) ?? "").trim();
    const sipp = line(/^ {2}sipp -sf /).replace("-s alice", "-s carol");
    await run("sh", ["-c", sipp], { cwd: dir, timeout: 15_000 });
    const lookup = line(/location show --kamailio /).replace("alice@", "carol@");
    expect(lookup).toContain(`--url ${apiUrl(2)}`);
    await waitFor("carol in node 2's Kamailio through the banner's lookup command", async () => {
      const r = await run("sh", ["-c", lookup], { cwd: dir, timeout: 5000 });
      return /contact\s+sip:carol@127\.0\.0\.1:/.test(r.stdout) && r.stdout.includes("the locmesh agent (replicated");
    }, 10_000, 200);
  });

  it("the banner's check command passes as pasted, beside the running agent", async () => {
    const check = (out.split("\n").find((l) => / check --config /.test(l)) ?? "").trim();
    expect(check).toMatch(/locmesh\.js check --config \.demo\/node1\/config\.yaml$/);
    const r = await run("sh", ["-c", check], { cwd: dir, timeout: 15_000 });
    expect(r.stdout).toMatch(/^locmesh check: node n1, config .*, its agent is running\n/);
    expect(r.stdout).toMatch(/\n\d+ checks passed\.\n$/);
  });

  it("routes a call to an alias added at node 1 through node 3's Kamailio to alice's phone", async () => {
    const api = createApiClient({ url: apiUrl(1), token: TOKEN, timeoutMs: 2000 });
    try {
      await api.call("alias.set", { alias: `sip:bob@${DOMAIN}`, target: `sip:alice@${DOMAIN}` });
    } finally {
      api.close();
    }
    const kamDir = join(dir, ".demo", "kamailio-n3");
    const rpc = createFifoClient({ fifoPath: join(kamDir, "kamailio_rpc.fifo"), replyDir: kamDir, timeoutMs: 3000, log: silentLogger(), maxInFlight: 1, autoResync: false });
    try {
      await waitFor("bob's alias in node 3's Kamailio", async () => (await createUsrlocRpc({ rpc }).ulLookup("aliases", `bob@${DOMAIN}`)).length === 1, 10_000, 100);
    } finally {
      await rpc.close();
    }
    const alice = startPhone({ dir, port: phone.localPort, name: "alice" });
    try {
      await sippCall({ dir, proxyPort: SIP_BASE + 3, to: `sip:bob@${DOMAIN}` });
      await expect.poll(() => alice.answered()).toBe(1);
    } finally {
      await alice.stop();
    }
  });

  it("stops everything on Ctrl-C (SIGINT): no Kamailio or agent of the demo remains", async () => {
    expect(demoProcesses().length).toBeGreaterThan(3);
    demo.kill("SIGINT");
    expect(await exited).toBe(0);
    expect(demoProcesses()).toEqual([]);
  }, 20_000);
});
