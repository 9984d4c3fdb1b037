/**
 * The web UI on a real Kamailio cluster: a binding registered with sipp (hostile User-Agent and
 * all) is found on another node's page, and an alias added in the browser takes effect in
 * Kamailio routing: a call to it reaches the target's phone through the other node.
 */
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
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

    const page = await browser.newPage();
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
      expect(answering.answered()).toBe(1);
    } finally {
      await answering.stop();
    }
  });
});
