import { describe, expect, it } from "vitest";
import { ConfigError, envOverrideOnReload, type ConfigFs } from "../../agent/config/agent-config.js";
import { loadHubConfig, redactHubConfig } from "../../hub/hub-config.js";

const memFs = (files: Record<string, string>): ConfigFs => ({
  readText(path) {
    const text = files[path];
    if (text === undefined) throw Object.assign(new Error(`ENOENT: ${path}`), { code: "ENOENT" });
    return text;
  },
  isFile: (path) => path in files,
});

const FILE = "/etc/locmesh/hub.yaml";
const minimal = "nodeId: hub1\nmesh:\n  secret: 0123456789abcdef-mesh\n  agents: [sip1, sip2]\napi:\n  token: 0123456789abcdef-api\npostgres:\n  url: postgres://locmesh:pw@db/locmesh\n";
const load = (text: string, env: Record<string, string | undefined> = {}) => loadHubConfig({ file: FILE, env, fs: memFs({ [FILE]: text }), cwd: "/srv" });

function problemsOf(fn: () => unknown): string[] {
  try {
    fn();
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  throw new Error("expected a ConfigError");
}

describe("loadHubConfig", () => {
  it("refuses the API and the mesh on one port, as an agent's config does", () => {
    const clash = minimal.replace("mesh:\n", "mesh:\n  listen: 0.0.0.0:7300\n").replace("api:\n", "api:\n  listen: 127.0.0.1:7300\n");
    expect(problemsOf(() => load(clash))).toEqual([expect.stringMatching(/^api\.listen: is on port 7300, as mesh\.listen \(0\.0\.0\.0:7300\)/)]);
  });

  it("warns when the config file holding its secrets can be read by every user", () => {
    const warnings: string[] = [];
    const fs = (mode: number): ConfigFs => ({ ...memFs({ [FILE]: minimal }), mode: () => mode });
    loadHubConfig({ file: FILE, env: {}, fs: fs(0o100644), cwd: "/srv", onWarning: (w) => warnings.push(w) });
    expect(warnings).toEqual([
      "the config file (it holds mesh.secret and api.token and the postgres.url password): /etc/locmesh/hub.yaml can be read by every user on this host (mode 0644); chmod 600 it, or 640 with the service's group",
    ]);
    const onlyPassword = minimal.replace("  secret: 0123456789abcdef-mesh\n", "  secretFile: /k\n").replace("  token: 0123456789abcdef-api\n", "  tokenFile: /t\n");
    const files = { [FILE]: onlyPassword, "/k": "0123456789abcdef-mesh", "/t": "0123456789abcdef-api" };
    const modes: Record<string, number> = { [FILE]: 0o100644, "/k": 0o100600, "/t": 0o100600 };
    loadHubConfig({ file: FILE, env: {}, fs: { ...memFs(files), mode: (p) => modes[p] }, cwd: "/srv", onWarning: (w) => warnings.push(w) });
    expect(warnings.slice(1)).toEqual([
      "the config file (it holds the postgres.url password): /etc/locmesh/hub.yaml can be read by every user on this host (mode 0644); chmod 600 it, or 640 with the service's group",
    ]);
    warnings.splice(0);
    loadHubConfig({ file: FILE, env: {}, fs: { ...memFs({ ...files, [FILE]: onlyPassword.replace("locmesh:pw@", "locmesh@") }), mode: (p) => modes[p] }, cwd: "/srv", onWarning: (w) => warnings.push(w) });
    expect(warnings).toEqual([]);
    loadHubConfig({ file: FILE, env: {}, fs: fs(0o100640), cwd: "/srv", onWarning: (w) => warnings.push(w) });
    expect(warnings).toEqual([]);
  });

  it("fills the defaults: the shared NOTIFY channel, a pool of 10, no linger, PostgreSQL timeouts and keepalive", () => {
    const c = load(minimal);
    expect(c.nodeId).toBe("hub1");
    expect(c.mesh.agents).toEqual(["sip1", "sip2"]);
    expect(c.mesh.relayLingerMs).toBe(0);
    expect(c.mesh.acceptUnlisted).toBe(false);
    expect(c.mesh.listen).toEqual({ host: "0.0.0.0", port: 7100 });
    expect(c.postgres).toEqual({
      url: "postgres://locmesh:pw@db/locmesh", poolSize: 10, channel: "locmesh_changes",
      connectTimeoutMs: 10_000, queryTimeoutMs: 30_000, keepAliveIdleMs: 10_000, unreachableAfterMs: 15_000,
    });
    expect(c.journal).toEqual({ retentionHours: 24, purgeIntervalSec: 300, holdForAgentsDays: 14 });
    expect(Object.isFrozen(c)).toBe(true);
  });

  it("takes the database URL from LOCMESH_POSTGRES_URL and keeps passwords out of the log", () => {
    const c = load(minimal, { LOCMESH_POSTGRES_URL: "postgres://u:secret@other/db" });
    expect(c.postgres.url).toBe("postgres://u:secret@other/db");
    expect(JSON.stringify(redactHubConfig(c))).not.toMatch(/secret@|0123456789abcdef/);
  });

  it("records LOCMESH_POSTGRES_URL as an override of the file's postgres.url, as the other variables, for SIGHUP's warning, which shows no password", () => {
    const overrides: [string, string][] = [];
    const loadWith = (text: string, env: Record<string, string>) =>
      loadHubConfig({ file: FILE, env, fs: memFs({ [FILE]: text }), cwd: "/srv", onEnvOverride: (setting, variable) => overrides.push([setting, variable]) });
    expect(loadWith(minimal, { LOCMESH_POSTGRES_URL: " postgres://u:secret@other/db " }).postgres.url).toBe("postgres://u:secret@other/db");
    expect(overrides).toEqual([["postgres.url", "LOCMESH_POSTGRES_URL"]]);
    const warning = envOverrideOnReload(...overrides[0]!);
    expect(warning).toMatch(/^SIGHUP: the config file's postgres\.url is not applied: LOCMESH_POSTGRES_URL in the environment/);
    expect(warning).not.toMatch(/secret|pw|postgres:\/\//);
    // The same URL in both, or none in the file: nothing is overridden.
    overrides.splice(0);
    loadWith(minimal, { LOCMESH_POSTGRES_URL: "postgres://locmesh:pw@db/locmesh" });
    loadWith(minimal.replace("postgres:\n  url: postgres://locmesh:pw@db/locmesh\n", ""), { LOCMESH_POSTGRES_URL: "postgres://u:secret@other/db" });
    expect(overrides).toEqual([]);
  });

  it("takes a blank LOCMESH_POSTGRES_URL as unset, as the other variables", () => {
    expect(load(minimal, { LOCMESH_POSTGRES_URL: "  " }).postgres.url).toBe("postgres://locmesh:pw@db/locmesh");
    expect(problemsOf(() => load(minimal.replace("postgres:\n  url: postgres://locmesh:pw@db/locmesh\n", ""), { LOCMESH_POSTGRES_URL: " \t" }))).toEqual([
      "postgres.url: required; set postgres.url (postgres://user:password@host/db) in the config file or with LOCMESH_POSTGRES_URL",
    ]);
  });

  it("still counts the file's postgres.url password when LOCMESH_POSTGRES_URL overrides it, and not the variable's", () => {
    const warnings: string[] = [];
    const loadWith = (text: string) =>
      loadHubConfig({ file: FILE, env: { LOCMESH_POSTGRES_URL: "postgres://u:secret@other/db" }, fs: { ...memFs({ [FILE]: text }), mode: () => 0o100644 }, cwd: "/srv", onWarning: (w) => warnings.push(w) });
    loadWith(minimal);
    expect(warnings).toEqual([expect.stringMatching(/^the config file \(it holds mesh\.secret and api\.token and the postgres\.url password\)/)]);
    warnings.splice(0);
    loadWith(minimal.replace("locmesh:pw@", "locmesh@"));
    expect(warnings).toEqual([expect.stringMatching(/^the config file \(it holds mesh\.secret and api\.token\)/)]);
  });

  it("takes further cluster keys and API tokens to accept while they are rotated, from files too, and keeps them out of the log", () => {
    const text = minimal.replace("  agents:", "  acceptedSecretFiles: [/etc/locmesh/old.key]\n  agents:").replace("  token: 0123456789abcdef-api\n", "  token: 0123456789abcdef-api\n  acceptedTokens: [fedcba9876543210-api]\n");
    const c = loadHubConfig({ file: FILE, env: {}, fs: memFs({ [FILE]: text, "/etc/locmesh/old.key": "fedcba9876543210-mesh\n" }), cwd: "/srv" });
    expect([c.mesh.acceptedSecrets, c.api.acceptedTokens]).toEqual([["fedcba9876543210-mesh"], ["fedcba9876543210-api"]]);
    expect(JSON.stringify(redactHubConfig(c))).not.toMatch(/fedcba9876543210|0123456789abcdef/);
    expect(load(minimal).mesh.acceptedSecrets).toEqual([]);
  });

  it("leaves an agent's own variables alone when a hub shares the agents' environment", () => {
    const c = load(minimal, {
      LOCMESH_DATA_DIR: "/var/lib/locmesh", LOCMESH_MESH_PEERS: "n2=ws://10.0.0.2:7100", LOCMESH_JOURNAL_SYNCHRONOUS: "normal",
      LOCMESH_KAMAILIO_EVAPI: "127.0.0.1:8448", LOCMESH_LOG_LEVEL: "debug",
    });
    expect(c.log.level).toBe("debug");
    expect(c).not.toHaveProperty("kamailio");
    expect(c).not.toHaveProperty("dataDir");
  });

  it("takes the PostgreSQL timeouts from the file and refuses ones that would disable them", () => {
    const c = load(`${minimal}  connectTimeoutMs: 2000\n  queryTimeoutMs: 5000\n  keepAliveIdleMs: 3000\n`);
    expect(c.postgres).toMatchObject({ connectTimeoutMs: 2000, queryTimeoutMs: 5000, keepAliveIdleMs: 3000 });
    expect(problemsOf(() => load(`${minimal}  connectTimeoutMs: 0\n  queryTimeoutMs: 0\n`))).toEqual([
      expect.stringMatching(/^postgres\.connectTimeoutMs: /),
      expect.stringMatching(/^postgres\.queryTimeoutMs: /),
    ]);
  });

  it("refuses a hub that would accept no agent at all", () => {
    expect(problemsOf(() => load(minimal.replace("  agents: [sip1, sip2]\n", "")))).toEqual([expect.stringMatching(/^mesh\.agents: list the agents/)]);
    expect(load(minimal.replace("  agents: [sip1, sip2]\n", "  acceptUnlisted: true\n")).mesh.acceptUnlisted).toBe(true);
  });

  it("reports every problem at once: missing database, bad agent ids, agent-only settings", () => {
    const problems = problemsOf(() =>
      load("nodeId: hub1\nmesh:\n  secret: short\n  agents: ['bad id']\n  peers: []\napi:\n  token: 0123456789abcdef-api\n"),
    );
    expect(problems).toEqual(expect.arrayContaining([
      expect.stringMatching(/^mesh\.secret: must be at least 16/),
      expect.stringMatching(/^mesh\.agents\[0\]: must be an agent's node id/),
      "mesh.peers: a hub dials no peer: list the agents it accepts in mesh.agents (their node ids), and give the agents the hub's URL in hub.urls",
      "postgres.url: required; set postgres.url (postgres://user:password@host/db) in the config file or with LOCMESH_POSTGRES_URL",
    ]));
  });

  it("refuses an agent's journal settings (and hub.urls) as settings a hub does not use, saying to remove them, not as misspelt", () => {
    const problems = problemsOf(() => load(`${minimal}journal:\n  retentionHours: 48\n  synchronous: normal\n  cacheMiB: 64\nhub:\n  urls: [ws://10.0.0.9:7100]\n`));
    expect(problems).toEqual([
      "journal.synchronous: is an agent setting (how its SQLite journal syncs to disk), which a hub does not use: a hub commits to PostgreSQL (its synchronous_commit decides). Remove it from the hub's config",
      "journal.cacheMiB: is an agent setting (its SQLite journal's page cache), which a hub does not use: a hub keeps no journal of its own, its state is in PostgreSQL. Remove it from the hub's config",
      "hub: is an agent setting (the hubs an agent dials), which a hub does not use: hubs do not dial each other, they share PostgreSQL. Remove it from the hub's config",
    ]);
    expect(problems.join("\n")).not.toMatch(/unknown setting/);
    expect(problemsOf(() => load(`${minimal}journal:\n  retentionHourz: 48\n`))).toEqual(["journal.retentionHourz: unknown setting (check the spelling)"]);
  });

  it("refuses mesh.agents that lists the hub's own id or an agent twice, with every other problem", () => {
    expect(problemsOf(() => load(minimal.replace("agents: [sip1, sip2]", "agents: [sip1, hub1, sip2, sip1]").replace("secret: 0123456789abcdef-mesh", "secret: short")))).toEqual([
      expect.stringMatching(/^mesh\.secret: must be at least 16/),
      "mesh.agents[1]: is this hub's own id (nodeId hub1); a hub takes no session from itself. Remove it; if an agent runs with this id too, give the hub or the agent another (every node needs its own)",
      "mesh.agents[3]: duplicates mesh.agents[0] (sip1); list each agent once",
    ]);
    expect(problemsOf(() => load(minimal, { LOCMESH_NODE_ID: "sip2" }))).toEqual([
      "mesh.agents[1]: is this hub's own id (nodeId sip2, from LOCMESH_NODE_ID); a hub takes no session from itself. Remove it; if an agent runs with this id too, give the hub or the agent another (every node needs its own)",
    ]);
  });

  it("words its problems as an agent's loader does: the variable a value came from, one line per problem", () => {
    expect(problemsOf(() => load(minimal, { LOCMESH_POSTGRES_URL: "mysql://x", LOCMESH_MESH_LISTEN: "bad" }))).toEqual([
      expect.stringMatching(/^mesh\.listen: must be "host:port".* \(from LOCMESH_MESH_LISTEN\)$/),
      "postgres.url: must be a postgres:// connection URL (from LOCMESH_POSTGRES_URL)",
    ]);
    const unreadable = problemsOf(() => loadHubConfig({
      file: FILE, env: {}, cwd: "/srv",
      fs: memFs({ [FILE]: minimal.replace("  secret: 0123456789abcdef-mesh\n", "  secretFile: /no/such/key\n") }),
    }));
    expect(unreadable).toHaveLength(1);
    expect(unreadable[0]).toMatch(/^mesh\.secretFile: cannot read/);
  });
});
