/**
 * A hub behind TLS, against a real PostgreSQL 15: agents reach it over wss:// and check it against
 * their mesh.tls.ca; its plain-ws listener does not exist. Its certificate renewed and SIGHUP sent,
 * the hub serves the new one from the next handshake, the sessions up stay, and a renewal gone wrong
 * leaves the running files (the hub's reload is hub/main.ts's, not the agent's).
 */
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AgentProcess, freePort, waitFor } from "../support/agent-process.js";
import { aliasLedger } from "../support/alias-ledger.js";
import { HubProcess, SECRET, TOKEN, hubOf, stopHubCluster } from "../support/hub-process.js";
import { startPostgres, type PostgresProcess } from "../support/postgres-process.js";
import { RpcWire, servedNodeId } from "../support/rpc-wire.js";
import { makeTestPki, type TestPki } from "../support/test-pki.js";

let dir: string;
let pgServer: PostgresProcess;
let hub: HubProcess;
const agents: AgentProcess[] = [];
let a: TestPki;
let b: TestPki;
/** The hub's own copies of its files, at the paths its config names, as a renewal job would replace them. */
let hubFiles: TestPki;
const { publish, expectEachChangeOnce } = aliasLedger(() => agents);

const logLines = (p: AgentProcess, text: string) => readFileSync(p.logPath, "utf8").split("\n").filter((l) => l.includes(text));

/** The node id the hub's TLS port answers with, checked against `ca`. */
const served = (ca: string) => servedNodeId(hub.spec.meshPort, ca);

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "locmesh-hub-tls-"));
  a = makeTestPki(join(dir, "pki-a"));
  b = makeTestPki(join(dir, "pki-b"));
  const d = join(dir, "hub-tls");
  mkdirSync(d, { recursive: true });
  hubFiles = { cert: join(d, "node.crt"), key: join(d, "node.key"), ca: join(d, "ca.crt") };
  for (const k of ["cert", "key", "ca"] as const) copyFileSync(a[k], hubFiles[k]);

  pgServer = await startPostgres();
  const pgUrl = await pgServer.createDatabase("locmesh");
  const hubPort = await freePort();
  hub = new HubProcess(
    { id: "hub1", meshPort: hubPort, apiPort: await freePort(), dir: join(dir, "hub1"), secret: SECRET, token: TOKEN, peers: [], config: { mesh: { tls: hubFiles } } },
    pgUrl,
  );
  for (const id of ["a1", "a2"]) {
    agents.push(new AgentProcess({
      id, meshPort: await freePort(), apiPort: await freePort(), dir: join(dir, id), secret: SECRET, token: TOKEN, peers: [],
      config: { mesh: { tls: a }, hub: { urls: [`wss://127.0.0.1:${hubPort}`] } },
    }));
  }
  await hub.start();
  await Promise.all(agents.map((x) => x.start()));
  await waitFor("both agents on the hub over wss", async () => (await Promise.all(agents.map(hubOf))).every((h) => h === "hub1"));
});

afterAll(async () => {
  await stopHubCluster({ agents, hubs: hub ? [hub] : [], closers: [pgServer], dir });
});

describe("a hub behind TLS", () => {
  it("relays agents' changes over wss://, and its port speaks only TLS with the cluster's CA", async () => {
    await publish(0, 5, "tls");
    await publish(1, 5, "tls");
    await expectEachChangeOnce();
    expect(await served(a.ca)).toBe("hub1");
    await expect(served(b.ca), "a CA that did not sign the hub's certificate").rejects.toThrow();
    await expect(RpcWire.open(`ws://127.0.0.1:${hub.spec.meshPort}/peer`), "plain ws:// on the TLS port").rejects.toThrow();
  });

  it("serves a renewed certificate after SIGHUP while the sessions up stay; a renewal gone wrong keeps the running files", async () => {
    const sessionsBefore = agents.map((x) => logLines(x, "peer session ready").length);
    copyFileSync(b.cert, hubFiles.cert);
    copyFileSync(b.key, hubFiles.key);
    hub.reload();
    await waitFor("the hub read mesh.tls again", async () => logLines(hub, "mesh.tls read again").length === 1);
    expect(logLines(hub, "mesh.tls read again")[0]).toMatch(/"outcome":"certificate valid until [A-Z][a-z]{2} .*GMT"/);
    expect(await served(b.ca)).toBe("hub1");
    await expect(served(a.ca)).rejects.toThrow();
    // The agents' sessions were not dropped by the renewal, and still carry changes both ways.
    await publish(0, 3, "renewed");
    await publish(1, 3, "renewed");
    await expectEachChangeOnce();
    expect(agents.map((x) => logLines(x, "peer session ready").length)).toEqual(sessionsBefore);

    // A key that is not the certificate's: logged naming the file, the hub keeps serving b's certificate.
    writeFileSync(hubFiles.key, readFileSync(a.key));
    hub.reload();
    await waitFor("the hub refused the bad files", async () => logLines(hub, "mesh.tls could not be read again").length === 1);
    expect(readFileSync(hub.logPath, "utf8")).toMatch(new RegExp(`mesh\\.tls\\.key: ${hubFiles.key.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")} is not the key of`));
    expect(await served(b.ca)).toBe("hub1");
    expect(hub.child?.exitCode).toBeNull();
    await publish(0, 2, "after-bad");
    await expectEachChangeOnce();
  });
});
