/**
 * Issue 3, aliases in alias_db's `dbaliases` table (`kamailio.aliases: dbaliases`): node 2's
 * Kamailio keeps usrloc in memory and looks aliases up with alias_db in a real PostgreSQL, which
 * its agent writes (alias_db has no RPC). While that PostgreSQL is down an alias cannot go in; it
 * must wait, be reported, and go in once PostgreSQL is back, and it must not hold back the bindings
 * that node 1 journaled after it: those go over the FIFO into a Kamailio that is up. Before, the
 * alias held back its whole batch of 500 changes, and so every later change of node 1 with it.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ClusterStatus } from "../../agent/contract/cluster-status.js";
import { waitFor } from "../support/agent-process.js";
import { TEST_DOMAIN, startKamailioCluster, type ClusterNode, type KamailioCluster } from "../support/kamailio-cluster.js";
import { createKamailioPostgres } from "../support/kamailio-schema.js";
import { startPostgres, type PostgresProcess } from "../support/postgres-process.js";
import { sippRegister } from "../support/sipp.js";
import { sippCall, sippRegisterLoad, startPhone } from "../support/sipp-call.js";

let dir: string;
let pg: PostgresProcess;
let cluster: KamailioCluster;
let n1: ClusterNode;
let n2: ClusterNode;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "locmesh-kaliasdb-"));
  pg = await startPostgres();
  const url = await createKamailioPostgres(await pg.createDatabase("kamailio"));
  cluster = await startKamailioCluster({
    baseDir: dir,
    n: 2,
    node: (i) =>
      i === 1
        ? {
            // usrloc in memory (db_mode 0); alias_db, looked up before lookup("location"), on PostgreSQL.
            kamailio: {
              extraCfg: [`loadmodule "db_postgres.so"`, `loadmodule "alias_db.so"`, `modparam("alias_db", "db_url", "${url}")`, `modparam("alias_db", "use_domain", 1)`, "#!define WITH_ALIAS_DB"].join("\n"),
            },
            agentKamailio: { aliases: "dbaliases", db: { url, dbMode: 0 } },
          }
        : {},
  });
  [n1, n2] = cluster.nodes as [ClusterNode, ClusterNode];
}, 90_000);

afterAll(async () => {
  await cluster?.close();
  await pg?.close();
  rmSync(dir, { recursive: true, force: true });
});

const status = (node: ClusterNode) => node.agent.call<ClusterStatus>("cluster.status");
const aliasRows = () => pg.query<{ alias_username: string; username: string }>("SELECT alias_username, username FROM dbaliases ORDER BY id", [], "kamailio");

describe("aliases in alias_db's table while its database is down", () => {
  it("waits and is reported while node 1's later bindings go in, then goes in and routes once PostgreSQL is back", async () => {
    const carol = await sippRegister({ dir, sipPort: n1.kamailio.sipPort, user: "carol", domain: TEST_DOMAIN, expires: 600 });
    await waitFor("carol on n2", async () => (await n2.lookup(`carol@${TEST_DOMAIN}`)).length === 1);

    await pg.stop();
    await n1.agent.call("alias.set", { alias: `sip:nick@${TEST_DOMAIN}`, target: `sip:carol@${TEST_DOMAIN}` });
    // More than a batch of the sink (500) after the alias, all from node 1.
    const load = await sippRegisterLoad({ dir, sipPort: n1.kamailio.sipPort, count: 600, rate: 300, domain: TEST_DOMAIN, prefix: "load" });
    expect(load.ok, load.output).toBe(true);
    await waitFor("the last REGISTER at n1 in n2's Kamailio while PostgreSQL is down", async () => (await n2.lookup(`load600@${TEST_DOMAIN}`)).length === 1, 30_000);

    // The writes of that last batch may still be on their way: the alias alone is left once they are in.
    const waiting = await waitFor("only the alias pending on n2", async () => {
      const s = await status(n2);
      return s.pendingWrites === 1 ? s : null;
    });
    // The writer itself works (the bindings go over jsonrpcs); status says what waits, and why.
    expect(waiting.kamailio?.writer).toBe("rpc");
    expect(waiting.kamailio?.aliasesWaiting).toBe(1);
    expect(waiting.kamailio?.lastError).toMatch(/^1 alias waits for alias_db's database: alias_db's database is unreachable .*alias nick@example\.com → sip:carol@example\.com stays pending, bindings go on$/);

    await pg.start();
    await waitFor("the alias in alias_db's table", async () => (await aliasRows()).length === 1, 30_000);
    expect(await aliasRows()).toEqual([{ alias_username: "nick", username: "carol" }]);
    await waitFor("n2's writes done", async () => {
      const s = await status(n2);
      return s.pendingWrites === 0 && s.kamailio?.aliasesWaiting === undefined && !/alias waits/.test(s.kamailio?.lastError ?? "");
    });

    const phone = startPhone({ dir, port: carol.localPort, name: "carol" });
    try {
      await sippCall({ dir, proxyPort: n2.kamailio.sipPort, to: `sip:nick@${TEST_DOMAIN}` });
      await expect.poll(() => phone.answered()).toBe(1);
    } finally {
      await phone.stop();
    }
  }, 120_000);
});
