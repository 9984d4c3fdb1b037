/**
 * The `locmesh` operator commands as an operator runs them: `node bin/locmesh.js ...` in a child
 * process against a real agent, checking what they print and how they exit, including with a wrong
 * token and with no agent listening.
 */
import { spawn } from "node:child_process";
import { chmodSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { evapiBulkToken } from "../../agent/kamailio/evapi-bulk.js";
import { AgentProcess, ROOT, freePort, waitFor } from "../support/agent-process.js";
import { BIN, cli, folderNotWritableToCli } from "../support/cli-run.js";

const TOKEN = "cli-test-api-token-0123456789";
const VERSION = (JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { version: string }).version;
let dir: string;
let agent: AgentProcess;

const target = () => ["--url", agent.apiUrl, "--token", TOKEN];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "locmesh-cli-"));
  agent = new AgentProcess({
    id: "cli1", meshPort: await freePort(), apiPort: await freePort(), dir: join(dir, "cli1"),
    // The peer's URL carries a password, which must show nowhere.
    secret: "cli-test-mesh-secret-0123456789", token: TOKEN, peers: [{ id: "far", url: `ws://far:pw-in-url@127.0.0.1:${await freePort()}` }],
  });
  await agent.start();
});

afterAll(async () => {
  await agent?.stop();
  if (dir && !process.env["LOCMESH_KEEP_TEST_DIRS"]) rmSync(dir, { recursive: true, force: true });
});

describe("locmesh CLI", () => {
  it("--help lists the commands and exits 0", async () => {
    const r = await cli(["--help"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^Usage: locmesh/m);
    for (const cmd of ["agent", "status", "alias", "location", "resync", "demo"]) expect(r.stdout).toMatch(new RegExp(`^\\s+${cmd}\\b`, "m"));
    expect(r.stderr).toBe("");
  });

  it("agent --help names every setting SIGHUP applies", async () => {
    const r = await cli(["agent", "--help"]);
    expect(r.code).toBe(0);
    const signals = r.stdout.slice(r.stdout.indexOf("Signals:"));
    for (const key of ["mesh.peers", "hub.urls", "hub.failbackAfterSec", "kamailio.sipPeers", "mesh.secret", "api.token"]) expect(signals).toContain(key);
  });

  it("hub --help lists the hub's options, the config it needs, and its subcommands", async () => {
    const r = await cli(["hub", "--help"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^Usage: locmesh hub \[options\] \[command\]/m);
    expect(r.stdout).toMatch(/^\s+-c, --config <file>\s+hub config file/m);
    for (const cmd of ["migrate", "forget"]) expect(r.stdout).toMatch(new RegExp(`^\\s+${cmd} \\[options\\]`, "m"));
    for (const key of ["nodeId", "mesh.secret", "mesh.agents", "api.token", "postgres.url"]) expect(r.stdout).toMatch(new RegExp(`^\\s+${key}\\b`, "m"));
    expect(r.stdout).toContain("Signals: SIGTERM/SIGINT stop gracefully");
    // The config option reaches a subcommand given after it or before it.
    const missing = join(dir, "no-such-hub.yaml");
    for (const args of [["hub", "migrate", "--config", missing], ["hub", "--config", missing, "migrate"], ["hub", "--config", missing]]) {
      const m = await cli(args);
      expect([m.code, m.stderr]).toEqual([2, `the locmesh config (${missing}) has 1 problem:\n  - cannot read the file (ENOENT)\n`]);
    }
  });

  it("--version prints package.json's version and exits 0", async () => {
    const r = await cli(["--version"]);
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toBe(VERSION);
  });

  it("status shows the node and its peers, taking address and token from --config", async () => {
    const r = await cli(["status", "--config", agent.configPath]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`^node\\s+cli1 \\(replica cli1~[0-9a-f]+, locmesh ${VERSION.replaceAll(".", "\\.")}, protocol 1,`, "m"));
    expect(r.stdout).toMatch(/^PEER\s+CONNECTED/m);
    // Never connected: its lag is unknown, shown as "-" (not 0), and null in the JSON.
    expect(r.stdout).toMatch(/^far\s+no\s+-\s+-\s+-\s+-\s+/m);

    const json = await cli(["status", "--json", ...target()]);
    expect(json.code).toBe(0);
    expect(JSON.parse(json.stdout)).toMatchObject({ nodeId: "cli1", version: VERSION, protocol: 1, peers: [{ nodeId: "far", connected: false, behindChanges: null, behindSeconds: null }] });
    expect(json.stdout).not.toContain("pw-in-url");
    expect(json.stdout).toContain("far:redacted@127.0.0.1");
    await waitFor("a dial attempt logged", async () => readFileSync(agent.logPath, "utf8").includes("cannot reach peer"));
    expect(readFileSync(agent.logPath, "utf8")).not.toContain("pw-in-url");
    const metrics = await (await fetch(`${agent.apiUrl}/metrics`)).text();
    expect(metrics).toContain(`locmesh_build_info{version="${VERSION}",protocol="1"} 1`);
  });

  it("alias add, ls and rm change what the agent stores", async () => {
    const add = await cli(["alias", "add", "sip:Sales@Example.com", "sip:alice@example.com", ...target()]);
    expect(add).toMatchObject({ code: 0, stderr: "" });
    expect(add.stdout.trim()).toBe("alias sales@example.com -> sip:alice@example.com");
    expect(await agent.call("alias.list", {})).toMatchObject({ items: [{ alias: "sales@example.com", target: "sip:alice@example.com" }] });
    // Replaces by default; with --if-absent an existing alias is left alone and the command fails.
    const notNew = await cli(["alias", "add", "--if-absent", "sip:sales@example.com", "sip:bob@example.com", ...target()]);
    expect([notNew.code, notNew.stderr.trim()]).toEqual([1, "locmesh: alias sales@example.com already forwards to sip:alice@example.com; edit it instead"]);
    // Each replacement says what it replaced, so a mistyped alias that overwrote another shows at once.
    for (const [to, said] of [["sip:bob@example.com", "(was sip:alice@example.com)"], ["sip:alice@example.com", "(was sip:bob@example.com)"], ["sip:alice@example.com", "(unchanged)"]] as const) {
      const r = await cli(["alias", "add", "sip:sales@example.com", to, ...target()]);
      expect([r.code, r.stdout.trim()]).toEqual([0, `alias sales@example.com -> ${to} ${said}`]);
      expect(await agent.call("alias.list", {})).toMatchObject({ items: [{ alias: "sales@example.com", target: to }] });
    }

    const ls = await cli(["alias", "ls"], { LOCMESH_API_URL: agent.apiUrl, LOCMESH_API_TOKEN: TOKEN });
    expect(ls.code).toBe(0);
    expect(ls.stdout).toMatch(/^ALIAS\s+TARGET$/m);
    expect(ls.stdout).toMatch(/^sales@example\.com\s+sip:alice@example\.com$/m);

    const stale = await cli(["alias", "rm", "sip:sales@example.com", "--expect-target", "sip:bob@example.com", ...target()]);
    expect([stale.code, stale.stderr.trim()]).toEqual([
      1, "locmesh: alias sales@example.com forwards to sip:alice@example.com, not sip:bob@example.com: it was changed meanwhile, or that was never its target; remove it again if it should still go",
    ]);
    // Printed as stored, as `alias add` and `alias ls` print it, not as typed.
    const rm = await cli(["alias", "rm", "sip:Sales@Example.COM", "--expect-target", "sip:alice@example.com", ...target()]);
    expect(rm.code).toBe(0);
    expect(rm.stdout.trim()).toBe("removed alias sales@example.com");
    expect((await cli(["alias", "ls", ...target()])).stdout.trim()).toBe("no aliases");

    const again = await cli(["alias", "rm", "sip:sales@example.com", ...target()]);
    expect(again.code).toBe(1);
    expect(again.stderr.trim()).toBe("locmesh: no alias sales@example.com");
    expect(again.stdout).toBe("");
    // A lookup of an unknown alias says so and exits 1, for scripts.
    const unknown = await cli(["alias", "show", "sip:sales@example.com", ...target()]);
    expect([unknown.code, unknown.stdout.trim()]).toEqual([1, "no alias sales@example.com"]);

    const bad = await cli(["alias", "add", "sip:x@example.com", "not a uri", ...target()]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/^locmesh: invalid params: target: SIP URI "not a uri"/);
  });

  it("alias add refuses an alias to itself, and notes what Kamailio will not follow: a chain, a tel: target, a part too long", async () => {
    const self = await cli(["alias", "add", "sip:desk@example.com", "sip:Desk@example.com;transport=tcp", ...target()]);
    expect([self.code, self.stderr.trim()]).toEqual([1, "locmesh: invalid params: target: an alias cannot forward to itself: give another target"]);

    expect((await cli(["alias", "add", "sip:bob@example.com", "sip:alice@example.com", ...target()])).code).toBe(0);
    const chain = await cli(["alias", "add", "sip:frank@example.com", "sip:bob@example.com", ...target()]);
    expect(chain.code).toBe(0);
    expect(chain.stdout.trim()).toBe("alias frank@example.com -> sip:bob@example.com");
    expect(chain.stderr.trim()).toBe(
      "locmesh: note: the target bob@example.com is itself an alias (to sip:alice@example.com): Kamailio resolves aliases one step, so calls to frank@example.com ring bob@example.com's own phones, not sip:alice@example.com's; point frank@example.com at sip:alice@example.com to forward there",
    );
    const tel = await cli(["alias", "add", "sip:fax@example.com", "tel:+15551234", "--json", ...target()]);
    expect(JSON.parse(tel.stdout)).toMatchObject({ alias: "fax@example.com", target: "tel:+15551234", notes: [expect.stringMatching(/^the target tel:\+15551234 is not a sip: URI with a user: .*\(a gateway route for tel:\)/)] });
    const long = await cli(["alias", "add", `sip:${"b".repeat(65)}@example.com`, "sip:alice@example.com", ...target()]);
    expect(long.stderr).toMatch(/^locmesh: note: the alias's user or host part is longer than 64 characters: .*USERNAME_MAX_SIZE and DOMAIN_MAX_SIZE/m);
    // Two aliases to each other: a loop, said as such (not "point it at itself").
    const loop = await cli(["alias", "add", "sip:bob@example.com", "sip:frank@example.com", ...target()]);
    expect(loop.stderr.trim()).toBe(
      "locmesh: note: frank@example.com is an alias back to bob@example.com: the two forward to each other, and Kamailio resolves one step, so calls to bob@example.com ring frank@example.com's own phones (and calls to frank@example.com ring bob@example.com's)",
    );
    // Each was set all the same; one without a note says nothing more.
    expect((await agent.call<{ total: number }>("alias.list", {})).total).toBe(4);
    const plain = await cli(["alias", "add", "sip:sales2@example.com", "sip:alice@example.com", ...target()]);
    expect(plain.stderr).toBe("");
    for (const a of ["bob", "frank", "fax", "b".repeat(65), "sales2"]) await agent.call("alias.remove", { alias: `${a}@example.com` });
  });

  it("location ls pages and location show prints one AoR's bindings", async () => {
    const expires = Math.floor(Date.now() / 1000) + 3600;
    await agent.call("location.publish", {
      edits: [
        { op: "upsert", binding: { aor: "sip:alice@example.com", contact: "sip:alice@192.0.2.1:5060", expires, userAgent: "Deskphone" } },
        { op: "upsert", binding: { aor: "sip:bob@example.com", contact: "sip:bob@192.0.2.2:5060", expires } },
      ],
    });
    // Read-only commands: run them side by side.
    const [ls, page, all, badLimit, show, none] = await Promise.all([
      cli(["location", "ls", ...target()]),
      cli(["location", "ls", "--limit", "1", ...target()]),
      cli(["location", "ls", "--limit", "1", "--all", "--json", ...target()]),
      cli(["location", "ls", "--limit", "0", ...target()]),
      cli(["location", "show", "sip:Alice@example.com", ...target()]),
      cli(["location", "show", "sip:nobody@example.com", ...target()]),
    ]);
    expect(ls.code).toBe(0);
    expect(ls.stdout).toMatch(/^AOR\s+CONTACT\s+EXPIRES\s+Q\s+OWNER$/m);
    expect(ls.stdout).toMatch(/^alice@example\.com\s+sip:alice@192\.0\.2\.1:5060\s.*\scli1$/m);
    expect(ls.stdout).toMatch(/^bob@example\.com\s+sip:bob@192\.0\.2\.2:5060\s.*\scli1$/m);

    expect(page.code).toBe(0);
    expect(page.stdout).toContain("showing 1 of 2 bindings; use --all");
    expect(JSON.parse(all.stdout)).toMatchObject({ total: 2, next: null, items: [{ aor: "alice@example.com" }, { aor: "bob@example.com" }] });
    expect(badLimit.code).toBe(2);
    expect(badLimit.stderr).toMatch(/must be a whole number from 1 to 1000/);

    expect(show.code).toBe(0);
    expect(show.stdout).toMatch(/^contact\s+sip:alice@192\.0\.2\.1:5060$/m);
    expect(show.stdout).toContain("Deskphone");
    expect(show.stdout).not.toContain("bob");
    expect(none).toMatchObject({ code: 0, stdout: "no bindings for nobody@example.com\n" });
    // This agent has no Kamailio to ask.
    const inKamailio = await cli(["location", "show", "--kamailio", "sip:alice@example.com", ...target()]);
    expect(inKamailio).toMatchObject({ code: 1, stdout: "" });
    expect(inKamailio.stderr).toMatch(/^locmesh: this agent is not attached to a Kamailio/);
  });

  it("kamailio-cfg puts the agent's bulk-channel token into the include only when given --config", async () => {
    const withConfig = await cli(["kamailio-cfg", "--config", agent.configPath]);
    // This agent has no kamailio section: the include is still printed, with a warning to stderr.
    expect(withConfig.stderr).toMatch(/^locmesh: .* has no kamailio section: the include uses evapi 127\.0\.0\.1:8448 and usrloc aliases; add the agent's kamailio section first/);
    expect(withConfig.code).toBe(0);
    expect(withConfig.stdout).toContain(`if ($evapi(msg) == "locmesh-hello:${evapiBulkToken("cli-test-mesh-secret-0123456789", "cli1")}") {`);
    expect(withConfig.stdout).toContain('jsonrpc_exec("$evapi(msg)")');
    const bare = await cli(["kamailio-cfg", "--evapi", "127.0.0.1:8448"]);
    expect(bare.code).toBe(0);
    // Said, since a reload without the bulk channel is several times slower.
    expect(bare.stderr).toMatch(/^locmesh: no agent config given \(-c, or LOCMESH_CONFIG\): the include has no evapi bulk channel.* pass -c \/etc\/locmesh\/agent\.yaml\n$/);
    expect(withConfig.stderr).not.toContain("no agent config given");
    // A bad flag is refused before any warning about the include it would have made.
    const bogus = await cli(["kamailio-cfg", "--aliases", "bogus"]);
    expect([bogus.code, bogus.stderr]).toEqual([2, '--aliases must be usrloc or dbaliases, got "bogus"\n']);
    expect(bare.stdout).toContain("event_route[evapi:message-received]");
    // No bulk route: nothing from evapi is run (the start check's own jsonrpc_exec is a fixed lookup).
    expect(bare.stdout).not.toContain('jsonrpc_exec("$evapi(msg)")');
  });

  it("kamailio-cfg --output replaces the include in one step, keeping its mode, and leaves it as it was when it fails", async () => {
    const include = join(dir, "locmesh.cfg");
    const created = await cli(["kamailio-cfg", "--config", agent.configPath, "-o", include]);
    expect(created.code).toBe(0);
    expect(created.stdout).toBe("");
    expect(created.stderr).toContain(`locmesh: wrote ${include} (mode 0640, a new file: give Kamailio's group read access`);
    expect(readFileSync(include, "utf8")).toContain(`locmesh-hello:${evapiBulkToken("cli-test-mesh-secret-0123456789", "cli1")}`);
    expect(statSync(include).mode & 0o777).toBe(0o640);
    // The operator tightened it: a new include keeps that mode (a shell's `> new && mv` would not).
    chmodSync(include, 0o600);
    const again = await cli(["kamailio-cfg", "--config", agent.configPath, "--aliases", "dbaliases", "-o", include]);
    expect(again.code).toBe(0);
    expect(again.stderr).toContain(`locmesh: wrote ${include} (mode 0600)`);
    expect(statSync(include).mode & 0o777).toBe(0o600);
    expect(readFileSync(include, "utf8")).not.toContain('modparam("usrloc", "preload", "aliases")'); // the new content
    // A run that fails (an unreadable config) leaves the include whole, and nothing beside it.
    const before = readFileSync(include, "utf8");
    const failed = await cli(["kamailio-cfg", "--config", join(dir, "no-such.yaml"), "-o", include]);
    expect(failed.code).toBe(2);
    expect(readFileSync(include, "utf8")).toBe(before);
    expect(readdirSync(dir).filter((f) => f.includes("locmesh.cfg"))).toEqual(["locmesh.cfg"]);
  });

  it("kamailio-cfg --output into a folder this user may not write into says so and what to do, and leaves nothing there", async () => {
    const ro = folderNotWritableToCli("locmesh-cfg-ro-");
    const folder = ro.folder;
    try {
      ro.seal();
      const include = join(folder, "locmesh.cfg");
      const r = await cli(["kamailio-cfg", "--evapi", "127.0.0.1:8448", "-o", include], {}, ro.as);
      // The include could not be written: the operation failed (1), not the usage (2).
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(`cannot write ${include}: the new file goes beside it, and this user may not create files in ${folder}; run as a user who may (root), or print it and install it by hand`);
      expect(readdirSync(folder)).toEqual([]);
    } finally {
      ro.remove();
    }
  });

  it("kamailio-cfg takes the nodes' SIP source IPs from the config, refuses what it cannot turn into them, and marks a --peers list fixed", async () => {
    const base = JSON.parse(readFileSync(agent.configPath, "utf8")) as { mesh: Record<string, unknown>; hub?: unknown; kamailio?: unknown };
    const write = (name: string, patch: (c: typeof base) => void) => {
      const c = structuredClone(base);
      patch(c);
      const file = join(dir, name);
      writeFileSync(file, JSON.stringify(c));
      return file;
    };
    const named = write("named-peers.json", (c) => {
      c.mesh["peers"] = [{ id: "sip2", url: "ws://sip2.example.com:7100" }, { id: "sip3", url: "ws://10.0.0.3:7100" }];
    });
    const hubMode = write("hub-mode.json", (c) => {
      c.mesh["peers"] = [];
      c.hub = { urls: ["ws://10.0.0.9:7200"] };
    });
    const both = write("peers-and-hub.json", (c) => {
      c.mesh["peers"] = [{ id: "sip3", url: "ws://10.0.0.3:7100" }];
      c.hub = { urls: ["ws://10.0.0.9:7200"] };
    });
    const sipPeers = write("sip-peers.json", (c) => {
      c.mesh["peers"] = [];
      c.hub = { urls: ["ws://10.0.0.9:7200"] };
      c.kamailio = { evapi: "127.0.0.1:8448", sipPeers: ["10.0.0.5", "10.0.0.6"] };
    });
    const ipPeers = write("ip-peers.json", (c) => {
      c.mesh["peers"] = [{ id: "sip3", url: "ws://10.0.0.3:7100" }, { id: "sip4", url: "ws://[2001:db8::4]:7100" }];
    });
    const [n, h, hb, given, ips, sp, contradicts, sameAsConfig] = await Promise.all([
      cli(["kamailio-cfg", "--config", named]),
      cli(["kamailio-cfg", "--config", hubMode]),
      cli(["kamailio-cfg", "--config", both]),
      cli(["kamailio-cfg", "--config", hubMode, "--peers", "10.0.0.2,10.0.0.3"]),
      cli(["kamailio-cfg", "--config", ipPeers]),
      cli(["kamailio-cfg", "--config", sipPeers]),
      cli(["kamailio-cfg", "--config", sipPeers, "--peers", "10.0.0.5"]),
      cli(["kamailio-cfg", "--config", ipPeers, "--peers", "10.0.0.3,2001:db8::4"]),
    ]);
    const list = (out: string) => /modparam\("pv", "shvset", "locmesh_peers=s:([^"]*)"\)/.exec(out)?.[1];
    const fixed = (out: string) => /modparam\("pv", "shvset", "locmesh_peers_fixed=i:(\d)"\)/.exec(out)?.[1];
    expect(n.code).toBe(2);
    expect(n.stdout).toBe("");
    expect(n.stderr).toContain("mesh.peers sip2 (sip2.example.com): not an IP address");
    expect(n.stderr).toContain("set kamailio.sipPeers");
    expect(n.stderr).toContain("--peers ip1,ip2");
    expect(h.code).toBe(2);
    expect(h.stderr).toContain("uses a hub, through which nodes it does not name take part");
    expect(hb.code).toBe(2);
    expect(hb.stderr).toContain("--peers ip1,ip2");
    // Given by hand where the config gives no list: fixed, and the operator is told what that means.
    expect(given.code).toBe(0);
    expect(list(given.stdout)).toBe("10.0.0.2,10.0.0.3");
    expect(fixed(given.stdout)).toBe("1");
    expect(given.stderr).toContain("with --peers the include's list of nodes is fixed");
    expect(ips.code).toBe(0);
    expect(list(ips.stdout)).toBe("10.0.0.3,2001:db8::4");
    expect(fixed(ips.stdout)).toBe("0");
    // kamailio.sipPeers wins over hub mode and mesh.peers; --peers may not contradict it.
    expect(sp.code).toBe(0);
    expect(list(sp.stdout)).toBe("10.0.0.5,10.0.0.6");
    expect(fixed(sp.stdout)).toBe("0");
    expect(contradicts.code).toBe(2);
    expect(contradicts.stderr).toContain("differs from kamailio.sipPeers (10.0.0.5, 10.0.0.6)");
    // --peers that says what the config says is not fixed: the agent keeps it current.
    expect(sameAsConfig.code).toBe(0);
    expect(fixed(sameAsConfig.stdout)).toBe("0");
    expect(sameAsConfig.stderr).not.toContain("fixed");
  });

  it("finds the agent through -c or LOCMESH_CONFIG; with --token it never reads the token file; a bad --url says so", async () => {
    const base = JSON.parse(readFileSync(agent.configPath, "utf8")) as { api: Record<string, unknown> };
    const withTokenFile = structuredClone(base);
    delete withTokenFile.api["token"];
    withTokenFile.api["tokenFile"] = join(dir, "no-such-token-file");
    const file = join(dir, "token-file.json");
    writeFileSync(file, JSON.stringify(withTokenFile));
    const [short, fromEnv, tokenGiven, noToken, noScheme, junk, badPort] = await Promise.all([
      cli(["status", "-c", agent.configPath, "--json"]),
      cli(["status", "--json"], { LOCMESH_CONFIG: agent.configPath }),
      cli(["status", "-c", file, "--token", TOKEN, "--json"]),
      cli(["status", "-c", file]),
      cli(["status", "--url", "127.0.0.1:7180", "--token", TOKEN]),
      cli(["status", "--token", TOKEN], { LOCMESH_API_URL: "foo" }),
      cli(["status", "--token", TOKEN], { LOCMESH_API_URL: "http://127.0.0.1:notaport" }),
    ]);
    for (const r of [short, fromEnv, tokenGiven]) {
      expect(r.stderr).toBe("");
      expect((JSON.parse(r.stdout) as { nodeId: string }).nodeId).toBe("cli1");
    }
    expect(noToken.code).toBe(2);
    expect(noToken.stderr).toMatch(/api\.tokenFile: cannot read/);
    expect(noScheme.code).toBe(2);
    expect(noScheme.stderr).toBe('locmesh: the API URL "127.0.0.1:7180" (from --url) is not an http:// or https:// URL; give the agent\'s API address, e.g. http://127.0.0.1:7180\n');
    expect(junk.stderr).toMatch(/the API URL "foo" \(from LOCMESH_API_URL\) is not an http/);
    // An http:// URL whose port is wrong is told so, not that it is no http:// URL.
    expect(badPort.code).toBe(2);
    expect(badPort.stderr).toBe('locmesh: the API URL "http://127.0.0.1:notaport" (from LOCMESH_API_URL) has port "notaport", which is not a number from 1 to 65535; give the agent\'s API address, e.g. http://127.0.0.1:7180\n');
  });

  it("a wrong token exits 4 and says which token to check; no token at all is a usage error, 2", async () => {
    const [r, missing] = await Promise.all([
      cli(["status", "--url", agent.apiUrl, "--token", "wrong-token-0123456789"]),
      cli(["status", "--url", agent.apiUrl]),
    ]);
    expect(r.code).toBe(4);
    expect(r.stdout).toBe("");
    expect(r.stderr).toMatch(/^locmesh: the agent at http:\/\/127\.0\.0\.1:\d+ refused the API token \(HTTP 401\); check --token, LOCMESH_API_TOKEN/);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/^locmesh: no API token: pass --token/);
  });

  it("resync --kamailio with --peer is a usage error, 2, saying the two exclude each other", async () => {
    const r = await cli(["resync", "--kamailio", "--peer", "n1", ...target()]);
    expect([r.code, r.stdout]).toEqual([2, ""]);
    expect(r.stderr.trim()).toBe(
      "locmesh: --kamailio and --peer exclude each other: --kamailio refills the local Kamailio from this node's journal, --peer picks the peer to resync the journal from; give one of them",
    );
  });

  it("resync --peer with an id that is no peer of this node names its peers; a listed peer that is down is said to be not connected", async () => {
    const unknown = await cli(["resync", "--peer", "n9", ...target()]);
    expect([unknown.code, unknown.stdout]).toEqual([1, ""]);
    expect(unknown.stderr.trim()).toBe("locmesh: n9 is not a peer of this node (its peers: far)");
    const down = await cli(["resync", "--peer", "far", ...target()]);
    expect(down.code).toBe(1);
    expect(down.stderr.trim()).toBe("locmesh: peer far is not connected: locmesh status says why its link is down; resync once it is");
  });

  it("ends quietly with 141, as POSIX tools do, when its reader goes away (`location ls --json --all | head -c 600`)", async () => {
    const expires = Math.floor(Date.now() / 1000) + 3600;
    for (let from = 0; from < 3000; from += 1000) {
      const edits = Array.from({ length: 1000 }, (_, i) => ({ op: "upsert", binding: { aor: `sip:pipe${from + i}@example.com`, contact: `sip:pipe${from + i}@192.0.2.7:5060`, expires } }));
      await agent.call("location.publish", { edits });
    }
    // About 800 KB of JSON: far more than a pipe holds, so the CLI is still writing when the reader goes.
    const child = spawn(process.execPath, [BIN, "location", "ls", "--json", "--all", ...target()], { stdio: ["ignore", "pipe", "pipe"] });
    let head = "";
    let stderr = "";
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.stdout.once("data", (d: Buffer) => {
      head = d.toString().slice(0, 600);
      child.stdout.destroy();
    });
    const code = await new Promise<number | null>((resolve) => child.once("exit", (c) => resolve(c)));
    expect(head).toMatch(/^\{\n {2}"items": \[/);
    expect(stderr).toBe("");
    expect(code).toBe(141);
  });

  it("no agent listening exits 3 and says the agent or hub is not reachable", async () => {
    const url = `http://127.0.0.1:${await freePort()}`;
    const r = await cli(["alias", "ls", "--url", url, "--token", TOKEN]);
    expect(r.code).toBe(3);
    expect(r.stdout).toBe("");
    expect(r.stderr.trim()).toBe(
      `locmesh: the locmesh agent or hub is not reachable at ${url} (ECONNREFUSED): is \`locmesh agent\` (or \`locmesh hub\`) running (\`locmesh check\`, or \`locmesh hub check\`, says what keeps one from starting), and is --url (or LOCMESH_API_URL) its API address?`,
    );
  });
});
