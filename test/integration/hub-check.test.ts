/**
 * `locmesh hub check` against a real PostgreSQL 15 and real hubs (hub/hub-check.ts): beside a
 * running hub everything passes and it is found by its claim; before a first start the database
 * is empty and the ports are free; a nodeId claimed from another host, a database migrated by a
 * newer locmesh and a PostgreSQL that does not answer each fail, saying what to do. The check
 * changes nothing: the empty database stays empty.
 */
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freePort } from "../support/agent-process.js";
import { bySubject, checkRun } from "../support/cli-run.js";
import { HubProcess, SECRET, TOKEN, stopHubCluster } from "../support/hub-process.js";
import { startPostgres, type PostgresProcess } from "../support/postgres-process.js";
import { makeTestPki } from "../support/test-pki.js";

let dir: string;
let pgServer: PostgresProcess;
let hub: HubProcess;
let emptyUrl: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "locmesh-hub-check-"));
  pgServer = await startPostgres();
  const url = await pgServer.createDatabase("locmesh");
  emptyUrl = await pgServer.createDatabase("locmesh_new");
  hub = new HubProcess({ id: "hub1", meshPort: await freePort(), apiPort: await freePort(), dir: join(dir, "hub1"), secret: SECRET, token: TOKEN, peers: [], config: {} }, url);
  await hub.start();
}, 90_000);

afterAll(async () => {
  await stopHubCluster({ agents: [], hubs: [hub], closers: [pgServer], dir });
});

const check = (configPath: string) => checkRun(["hub", "check"], configPath);

/** hub1's config with `change` applied, written beside it (0600). */
async function variant(name: string, change: (c: Record<string, Record<string, unknown>>) => void | Promise<void>): Promise<string> {
  const config = JSON.parse(readFileSync(hub.configPath, "utf8")) as Record<string, Record<string, unknown>>;
  config["mesh"]!["listen"] = `127.0.0.1:${await freePort()}`;
  config["api"]!["listen"] = `127.0.0.1:${await freePort()}`;
  await change(config);
  const path = join(dir, `${name}.json`);
  writeFileSync(path, JSON.stringify(config), { mode: 0o600 });
  return path;
}

describe("locmesh hub check", () => {
  it("beside the running hub: its claim, its ports answering, PostgreSQL at this locmesh's schema", async () => {
    const { code, report, text } = await check(hub.configPath);
    expect(code).toBe(0);
    expect(report).toMatchObject({ daemon: "hub", nodeId: "hub1", running: true });
    const c = bySubject(report);
    expect(c["postgres"]).toMatchObject({ state: "ok", detail: expect.stringMatching(/^PostgreSQL 15\.[^)]+\)? at 127\.0\.0\.1:\d+ \(postgres:\/\/postgres@127\.0\.0\.1:\d+\/locmesh\) answers; schema version \d+, this locmesh's$/) });
    expect(c["node id"]).toMatchObject({ state: "ok", detail: expect.stringMatching(/^held by the running hub here \(.*\), its claim refreshed \d+s ago$/) });
    expect(c["other hubs"]).toMatchObject({ state: "ok", detail: "none runs on this database now" });
    expect(c["api port"]).toMatchObject({ state: "ok", detail: `the running hub answers at ${hub.apiUrl}` });
    expect(c["peer port"]).toMatchObject({ state: "ok", detail: `the running hub answers at ${hub.meshUrl}` });
    expect(text).toMatch(/^locmesh check: node hub1, config .*, its hub is running\n/);
  }, 30_000);

  it("a second hub's config before its first start: ports free, the first hub listed; on an empty database, no tables yet, and none made", async () => {
    const second = await check(await variant("hub2", (c) => {
      c["nodeId"] = "hub2" as unknown as Record<string, unknown>;
    }));
    expect(second.code).toBe(0);
    expect(second.report.running).toBe(false);
    const c = bySubject(second.report);
    expect(c["node id"]).toMatchObject({ state: "ok", detail: "no hub process holds nodeId hub2 on this database now" });
    expect(c["other hubs"]).toMatchObject({ state: "ok", detail: expect.stringMatching(/^hub1 \(/) });
    expect(c["api port"]).toMatchObject({ state: "ok", detail: expect.stringMatching(/is free for the hub's local API$/) });

    const fresh = await check(await variant("fresh", (c) => {
      c["postgres"]!["url"] = emptyUrl;
    }));
    expect(fresh.code).toBe(0);
    expect(bySubject(fresh.report)["postgres"]).toMatchObject({ state: "ok", detail: expect.stringContaining("answers; no hub tables yet: the hub makes them at its start (or `locmesh hub migrate`)") });
    expect(await pgServer.query("SELECT count(*)::int AS n FROM pg_tables WHERE schemaname = 'public'", [], "locmesh_new")).toEqual([{ n: 0 }]);
  }, 30_000);

  it("a nodeId another host's hub holds, and a database from a newer locmesh: each fails saying what to do", async () => {
    await pgServer.query("INSERT INTO hub_nodes (node_id, instance, holder, host, pid) VALUES ('hub9', 'i-9', 'host elsewhere.example, pid 4242', 'elsewhere.example', 4242)", [], "locmesh");
    const taken = await check(await variant("hub9", (c) => {
      c["nodeId"] = "hub9" as unknown as Record<string, unknown>;
    }));
    expect(taken.code).toBe(1);
    expect(bySubject(taken.report)["node id"]).toMatchObject({
      state: "fail",
      detail: expect.stringMatching(/^another hub process uses nodeId "hub9" on this PostgreSQL database \(host elsewhere\.example, pid 4242; its claim was refreshed \d+s ago; a hub started here would be refused\)\. Give every hub its own nodeId/),
    });

    await pgServer.query("CREATE TABLE schema_migrations (version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now()); INSERT INTO schema_migrations (version, name) VALUES (999, 'future')", [], "locmesh_new");
    const newer = await check(await variant("newer", (c) => {
      c["postgres"]!["url"] = emptyUrl;
    }));
    expect(newer.code).toBe(1);
    expect(bySubject(newer.report)["postgres"]).toMatchObject({ state: "fail", detail: expect.stringMatching(/the hub database is at schema version 999 but this locmesh only knows up to \d+; run the newer locmesh hub that migrated it$/) });
  }, 30_000);

  it("a running hub on TLS with a certificate for the name agents dial: its peer port still answers as itself over loopback", async () => {
    const pki = makeTestPki(join(dir, "pki"), { san: "DNS:hub-tls.example" });
    const tlsHub = new HubProcess({
      id: "hubtls", meshPort: await freePort(), apiPort: await freePort(), dir: join(dir, "hubtls"), secret: SECRET, token: TOKEN, peers: [],
      config: { mesh: { tls: { cert: pki.cert, key: pki.key, ca: pki.ca } } },
    }, hub.pgUrl);
    await tlsHub.start();
    try {
      const { code, report } = await check(tlsHub.configPath);
      expect(code).toBe(0);
      const c = bySubject(report);
      expect(c["tls files"]).toMatchObject({ state: "ok", detail: expect.stringMatching(/node\.crt and its key, valid until .*; peers checked against .*ca\.crt$/) });
      expect(c["peer port"]).toMatchObject({ state: "ok", detail: `the running hub answers at ${tlsHub.meshUrl}` });
      expect(c["other hubs"]).toMatchObject({ state: "ok", detail: expect.stringMatching(/^hub1 \(/) });
    } finally {
      await tlsHub.stop();
    }
  }, 30_000);

  it("a PostgreSQL that does not answer: the reason, with what to check; the claim not looked at", async () => {
    const down = await check(await variant("down", async (c) => {
      c["postgres"]!["url"] = `postgres://postgres@127.0.0.1:${await freePort()}/locmesh`;
    }));
    expect(down.code).toBe(1);
    const c = bySubject(down.report);
    expect(c["postgres"]).toMatchObject({ state: "fail", detail: expect.stringMatching(/^cannot reach PostgreSQL at 127\.0\.0\.1:\d+: connect ECONNREFUSED .*Check that PostgreSQL is running and listens there/) });
    expect(c["node id"]).toMatchObject({ state: "skip" });

    // The running hub's own config with its PostgreSQL away: it still answers as itself, so its
    // ports are not taken for someone else's.
    const path = join(dir, "hub1-pg-away.json");
    const own = JSON.parse(readFileSync(hub.configPath, "utf8")) as Record<string, Record<string, unknown>>;
    own["postgres"]!["url"] = `postgres://postgres@127.0.0.1:${await freePort()}/locmesh`;
    writeFileSync(path, JSON.stringify(own), { mode: 0o600 });
    const away = await check(path);
    expect(away.report.running).toBe(true);
    expect(bySubject(away.report)["api port"]).toMatchObject({ state: "ok", detail: `the running hub answers at ${hub.apiUrl}` });
    expect(bySubject(away.report)["peer port"]).toMatchObject({ state: "ok", detail: `the running hub answers at ${hub.meshUrl}` });
  }, 30_000);
});
