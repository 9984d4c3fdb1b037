/**
 * The web UI's Cluster page on a real hub and a real agent in hub mode: which hub each agent is on,
 * that only the agent offers a resync, and the hub's PostgreSQL card, while PostgreSQL answers and while the path to it is frozen (as a
 * partition freezes it: test/support/freezable-proxy.ts). Two hubs on one PostgreSQL 15, hub1
 * reaching it through the freezable path; a1 prefers hub1, a2 hub2.
 */
import { existsSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Locator, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ROOT, type AgentProcess } from "../support/agent-process.js";
import { publishAliases } from "../support/aliases.js";
import { launchBrowser, type Browser } from "../support/browser.js";
import { startFreezableProxy, type FreezableProxy } from "../support/freezable-proxy.js";
import { makeHubCluster, type HubProcess, stopHubCluster } from "../support/hub-process.js";
import { startPostgres, type PostgresProcess } from "../support/postgres-process.js";

/** Short, so that hub1 gives PostgreSQL up in seconds; the defaults are in the README. */
const TIMEOUTS = { connectTimeoutMs: 1000, queryTimeoutMs: 2000, keepAliveIdleMs: 1000, unreachableAfterMs: 1500 };
let dir: string;
let pgServer: PostgresProcess;
let path: FreezableProxy;
let hubs: HubProcess[];
let agents: AgentProcess[];
let browser: Browser;
let hubPage: Page;
let agentPage: Page;

beforeAll(async () => {
  if (!existsSync(join(ROOT, "web", "dist", "index.html"))) throw new Error("web/dist is not built: run npm run build (or bash .ci/setup)");
  dir = mkdtempSync(join(tmpdir(), "locmesh-web-hub-"));
  pgServer = await startPostgres();
  const pgUrl = await pgServer.createDatabase("locmesh");
  path = await startFreezableProxy(pgServer.port);
  ({ hubs, agents } = await makeHubCluster(dir, { hubs: 2, agents: 2, pgUrl, hubConfig: { postgres: TIMEOUTS } }));
  hubs[0]!.spec.config = { postgres: { ...TIMEOUTS, url: pgUrl.replace(`:${pgServer.port}/`, `:${path.port}/`) } };
  await Promise.all(hubs.map((h) => h.start()));
  await Promise.all(agents.map((a) => a.start()));
  await publishAliases(agents[0]!, 0, 5, "web-hub-");
  browser = await launchBrowser();
  hubPage = await browser.newPage();
  agentPage = await browser.newPage();
}, 60_000);

afterAll(async () => {
  path?.thaw();
  await browser?.close();
  await stopHubCluster({ agents, hubs, closers: [path, pgServer], dir });
});

async function openCluster(page: Page, node: AgentProcess): Promise<void> {
  await page.goto(`${node.apiUrl}/`);
  await page.getByLabel("API token").fill(node.spec.token);
  await page.keyboard.press("Enter");
  await page.getByRole("link", { name: "Cluster" }).click();
  await page.getByRole("heading", { name: "Peer links" }).waitFor();
}

const card = (page: Page, title: string) => page.locator(".card", { has: page.getByRole("heading", { name: title }) });
/** The element's text, or null while there is none (textContent() would wait for one). */
const textOf = async (l: Locator) => ((await l.count()) === 0 ? null : l.textContent());
/** The Hub cell of the peer link to `peer`, or null while there is no such row. */
const hubCell = (page: Page, peer: string) => textOf(page.locator(`tr[data-peer="${peer}"] td[data-label="Hub"]`));
/** The value beside `name` in a stats card, or null when the card does not show it. */
async function stat(c: Locator, name: string): Promise<string | null> {
  const row = c.locator(".stat", { has: c.page().locator("dt", { hasText: new RegExp(`^${name}$`) }) });
  return (await row.count()) === 0 ? null : row.locator("dd").textContent();
}
/** Under the test's own limit (below), so that a wait that fails says what it waited for. */
const poll = { timeout: 20_000 };

describe("the Cluster page of a hub and of an agent in hub mode", () => {
  it("says which hub each agent is on, that PostgreSQL answers at its address, and how old the hub's counts are", async () => {
    await openCluster(hubPage, hubs[0]!);
    await expect.poll(() => hubCell(hubPage, "a1"), poll).toBe("hub1 (this hub)");
    await expect.poll(() => hubCell(hubPage, "a2"), poll).toBe("hub2");
    const pg = card(hubPage, "PostgreSQL");
    expect(await textOf(pg)).toContain(`Answering at 127.0.0.1:${path.port} (last answered `);
    expect(await pg.locator(".badge").textContent()).toBe("up");
    expect(await pg.locator(".error").count()).toBe(0);
    const node = card(hubPage, "Node hub1");
    await expect.poll(() => stat(node, "Aliases"), poll).toBe("5");
    expect(await stat(node, "Counts")).toMatch(/^counted \d+s ago$/);
    // A hub has no Kamailio of its own: the figure is its agents' sum, and says so.
    expect(await stat(node, "Agents' pending Kamailio writes")).toBe("0");
    expect(await stat(node, "Pending Kamailio writes")).toBeNull();
    await browser.screenshot(hubPage, "12-hub-cluster");

    // The agent's one link is to its hub; an agent has no PostgreSQL card.
    await openCluster(agentPage, agents[0]!);
    await expect.poll(() => hubCell(agentPage, "hub1"), poll).toBe("hub1");
    expect(await card(agentPage, "PostgreSQL").count()).toBe(0);
    expect(await stat(card(agentPage, "Node a1"), "Counts")).toBeNull();
    expect(await stat(card(agentPage, "Node a1"), "Pending Kamailio writes")).toBe("0");
    // What of its own changes no hub holds yet, as `locmesh status` says it; a hub has no such line.
    await expect.poll(() => stat(card(agentPage, "Node a1"), "Unacknowledged by hub"), poll).toBe("0 (every change of this node is on a hub)");
    expect(await stat(node, "Unacknowledged by hub")).toBeNull();
  }, 60_000);

  it("offers no resync on a hub (it has no peer to resync from) and says how a hub fills; an agent's page offers it", async () => {
    const resyncButton = (page: Page) => page.getByRole("button", { name: "Resync from a peer" });
    expect(await resyncButton(hubPage).count()).toBe(0);
    expect(await textOf(hubPage.getByRole("note"))).toMatch(
      /^This is a hub: it has no peer to resync from, and needs no resync\. Each agent sends it its own changes .* To resync an agent, use that agent's web UI/,
    );
    expect(await resyncButton(agentPage).count()).toBe(1);
    expect(await agentPage.getByRole("note").count()).toBe(0);
  }, 60_000);

  it("lists the aliases on a hub without the Add form, Edit or Remove (a hub makes no changes), and says where to make them; an agent's page has them", async () => {
    await hubPage.getByRole("link", { name: "Aliases" }).click();
    await expect.poll(() => hubPage.locator("tr[data-alias]").count(), poll).toBe(5);
    await expect.poll(() => textOf(hubPage.getByRole("note")), poll).toMatch(/^This is a hub: it relays the agents' changes and makes none\. Add, edit and remove aliases on an agent's web UI/);
    expect(await hubPage.getByRole("button", { name: "Add alias" }).count()).toBe(0);
    expect(await hubPage.getByRole("button", { name: /^(Edit|Remove) / }).count()).toBe(0);
    await browser.screenshot(hubPage, "12b-hub-aliases");

    await agentPage.getByRole("link", { name: "Aliases" }).click();
    await expect.poll(() => agentPage.locator("tr[data-alias]").count(), poll).toBe(5);
    expect(await agentPage.getByRole("button", { name: "Add alias" }).count()).toBe(1);
    expect(await agentPage.getByRole("button", { name: /^Edit / }).count()).toBe(5);
    expect(await agentPage.getByRole("note").count()).toBe(0);
    // Back to the Cluster pages the tests below read.
    for (const page of [hubPage, agentPage]) {
      await page.getByRole("link", { name: "Cluster" }).click();
      await page.getByRole("heading", { name: "Peer links" }).waitFor();
    }
  }, 60_000);

  it("says PostgreSQL is unreachable, since when, why and what the hub does about it, and marks the counts stale, while its path is frozen", async () => {
    path.freeze();
    const pg = card(hubPage, "PostgreSQL");
    await expect.poll(() => textOf(pg), poll).toContain(`UNREACHABLE at 127.0.0.1:${path.port} since `);
    expect(await textOf(pg)).toMatch(/ \(last answered \d+s ago\)/);
    expect(await pg.locator(".badge").textContent()).toBe("down");
    expect(await pg.locator(".error").textContent()).toMatch(/^Last check: .+/);
    expect(await textOf(pg)).toContain("it has closed their sessions and refuses new ones until PostgreSQL answers, so they go to another hub whose PostgreSQL answers, if any");
    const node = card(hubPage, "Node hub1");
    await expect.poll(() => stat(node, "Counts"), poll).toMatch(/^STALE: counted \d+s ago; PostgreSQL does not answer$/);
    expect(await stat(node, "Aliases")).toBe("5 (stale)");
    // Refused by hub1, a1 went to hub2. hub1 cannot read that from PostgreSQL, so it shows every
    // agent not on it as where it last read it, unknown now, rather than as connected or down.
    await expect.poll(() => hubCell(agentPage, "hub2"), poll).toBe("hub2");
    // a1 was on hub1 when hub1 last read the rows: it says so, not "none".
    await expect.poll(() => hubCell(hubPage, "a1"), poll).toMatch(/^hub1 as of .+ \(unknown now\)$/);
    expect(await hubCell(hubPage, "a2")).toMatch(/^hub2 as of .+ \(unknown now\)$/);
    expect(await hubPage.locator('tr[data-peer="a2"] .badge').textContent()).toMatch(/^unknown since /);
    await browser.screenshot(hubPage, "13-hub-postgres-unreachable");
  }, 60_000);

  it("says PostgreSQL answers again once the path thaws, and where a1 is now", async () => {
    path.thaw();
    const pg = card(hubPage, "PostgreSQL");
    await expect.poll(() => textOf(pg), poll).toContain(`Answering at 127.0.0.1:${path.port}`);
    await expect.poll(() => stat(card(hubPage, "Node hub1"), "Counts"), poll).toMatch(/^counted \d+s ago$/);
    // It reads which hub each agent is on from PostgreSQL again: a1 stayed on hub2.
    await expect.poll(() => hubCell(hubPage, "a1"), poll).toBe("hub2");
  }, 60_000);
});
