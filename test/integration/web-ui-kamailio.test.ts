/**
 * The web UI on a real Kamailio cluster: a binding registered with sipp (hostile User-Agent and
 * all) is found on another node's page, an alias added in the browser takes effect in Kamailio
 * routing (a call to it reaches the target's phone through the other node), and the Cluster page's
 * Kamailio card shows what the agent's live cluster.status says, before and after Kamailio restarts.
 */
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Locator, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ClusterStatus } from "../../agent/contract/cluster-status.js";
import { ROOT, waitFor } from "../support/agent-process.js";
import { launchBrowser, type Browser } from "../support/browser.js";
import { TEST_DOMAIN, startKamailioCluster, type ClusterNode, type KamailioCluster } from "../support/kamailio-cluster.js";
import { sippRegister } from "../support/sipp.js";
import { sippCall, startPhone } from "../support/sipp-call.js";

const HOSTILE_UA = `<img src=x onerror="window.__pwned=1">Phone'"/2.0`;

let dir: string;
let cluster: KamailioCluster;
let browser: Browser;
let n1: ClusterNode;
let n2: ClusterNode;
let page: Page;

beforeAll(async () => {
  if (!existsSync(join(ROOT, "web", "dist", "index.html"))) throw new Error("web/dist is not built: run npm run build (or bash .ci/setup)");
  dir = mkdtempSync(join(tmpdir(), "locmesh-web-kam-"));
  cluster = await startKamailioCluster({ baseDir: dir, n: 2 });
  [n1, n2] = cluster.nodes as [ClusterNode, ClusterNode];
  browser = await launchBrowser();
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await cluster?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("web UI with Kamailio", () => {
  it("finds a sipp-registered binding on another node, and an alias added in the browser routes calls", async () => {
    const phone = await sippRegister({ dir, sipPort: n1.kamailio.sipPort, user: "dave", domain: TEST_DOMAIN, expires: 600, userAgent: HOSTILE_UA });
    await waitFor("dave in n2's Kamailio", async () => (await n2.lookup(`dave@${TEST_DOMAIN}`)).length === 1);

    page = await browser.newPage();
    await page.goto(`${n2.agent.apiUrl}/`);
    await page.getByLabel("API token").fill(n2.agent.spec.token);
    await page.keyboard.press("Enter");
    await page.getByRole("heading", { name: "Call forwarding" }).waitFor();

    await page.getByRole("link", { name: "Locations" }).click();
    await page.getByLabel("Search by AoR or contact").fill("dave");
    await page.getByRole("link", { name: `dave@${TEST_DOMAIN}` }).click();
    await expect.poll(() => page.locator('dd[data-field="User agent"]').textContent()).toBe(HOSTILE_UA);
    expect(await page.locator('dd[data-field="Owner node"]').textContent()).toBe("n1");
    expect(await page.locator("main img").count()).toBe(0);
    expect(await page.evaluate("window.__pwned")).toBeUndefined();
    await browser.screenshot(page, "10-sipp-binding-detail");

    // Forward "dial-dave" to dave from n2's page; a call to it through n1 rings dave's phone.
    await page.getByRole("link", { name: "Aliases" }).click();
    await page.getByLabel("Alias (who is called)").fill(`sip:dial-dave@${TEST_DOMAIN}`);
    await page.getByLabel("Forwards to").fill(`sip:dave@${TEST_DOMAIN}`);
    await page.getByRole("button", { name: "Add alias" }).click();
    await waitFor("alias in n1's Kamailio", async () => (await n1.lookup(`dial-dave@${TEST_DOMAIN}`, "aliases")).length === 1);
    const answering = startPhone({ dir, port: phone.localPort, name: "dave" });
    try {
      await sippCall({ dir, proxyPort: n1.kamailio.sipPort, to: `sip:dial-dave@${TEST_DOMAIN}` });
      await expect.poll(() => answering.answered()).toBe(1);
    } finally {
      await answering.stop();
    }
  });

  it("shows the agent's live Kamailio state on the Cluster page, and the reload after Kamailio restarts", async () => {
    const status = async () => (await n2.agent.call<ClusterStatus>("cluster.status")).kamailio!;
    const before = await status();
    expect(before).toMatchObject({ up: true, writer: "rpc", restarts: 0, events: { connected: true } });
    await page.getByRole("link", { name: "Cluster" }).click();
    const card = page.locator(".card", { has: page.getByRole("heading", { name: "Kamailio" }) });
    await expect.poll(() => stat(card, "Answering"), { timeout: 10_000 }).toBe("yes");
    expect(await stat(card, "Writing through")).toBe("Kamailio RPC (jsonrpcs)");
    expect(await stat(card, "Registrar events")).toMatch(/^connected, \d+ in$/);
    // Its agent keeps the list of nodes that may relay calls (mesh.peers' host, 127.0.0.1).
    await expect.poll(() => stat(card, "Nodes that may relay calls"), { timeout: 10_000 }).toBe("127.0.0.1 (may relay calls to this node's phones; kept current by the agent)");
    expect(await card.locator("dt", { hasText: "Reload" }).count()).toBe(before.reload.state === "idle" ? 0 : 1);

    // Restarted empty (db_mode 0), Kamailio is refilled by the agent; the card follows cluster.status.
    await n2.kamailio.restart();
    const after = await waitFor("n2's reload after the restart", async () => {
      const k = await status();
      return k.restarts === 1 && k.reload.state === "done" && k.up ? k : null;
    });
    expect(after.reload.total).toBeGreaterThanOrEqual(2); // dave's binding and the dial-dave alias
    const reload = `done (${after.reload.done.toLocaleString("en-US")} of ${after.reload.total.toLocaleString("en-US")})`;
    await expect.poll(() => stat(card, "Reload"), { timeout: 10_000 }).toBe(reload);
    expect(await stat(card, "Restarts seen")).toBe("1");
    expect(await stat(card, "Answering")).toBe("yes");
    expect(await stat(card, "Pending writes")).toBe(after.pendingWrites.toLocaleString("en-US"));
    await browser.screenshot(page, "11-cluster-kamailio-live");
  });
});

/** The value beside `name` in a stats card, or null when the card does not show it. */
async function stat(card: Locator, name: string): Promise<string | null> {
  const row = card.locator(".stat", { has: card.page().locator("dt", { hasText: new RegExp(`^${name}$`) }) });
  return (await row.count()) === 0 ? null : row.locator("dd").textContent();
}
