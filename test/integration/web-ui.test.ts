/**
 * The web UI in a real browser (Debian's chromium via playwright-core) against two real agent
 * processes: sign-in and refusal, an alias added on node 1's page appearing on node 2's page by
 * itself (and again after its agent restarts), validation messages, Add refusing an alias that
 * exists, an edit overtaken by another node's change, a save refused while reconnecting, paging
 * back from an emptied page, very long aliases, finding a binding and its detail, hostile SIP data
 * shown as text, cluster health, and phone width. Screenshots of each page go to test-artifacts/web/.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ClusterStatus } from "../../agent/contract/cluster-status.js";
import { keyId } from "../../agent/ops/key-ring.js";
import { AgentProcess, ROOT, makeCluster } from "../support/agent-process.js";
import { launchBrowser, type Browser } from "../support/browser.js";

/** The longest alias there can be (128 characters without the scheme) and a 400-character target. */
const LONG_ALIAS = `sip:${"x".repeat(116)}@example.com`;
const LONG_TARGET = `sip:${"y".repeat(384)}@example.org`;
const HOSTILE_UA = `<img src=x onerror="window.__pwned=1;alert(1)">Evil/1.0 <script>window.__pwned=2</script>`;
const NEXT_KEY = "next-cluster-key-0123456789abcdef";
const NEXT_TOKEN = "next-api-token-0123456789abcdef";
let dir: string;
let nodes: AgentProcess[];
let browser: Browser;
let page1: Page;
let page2: Page;
const dialogs: string[] = [];
/** Console errors and uncaught exceptions from every page (a CSP violation shows up here too). */
const pageErrors: string[] = [];

beforeAll(async () => {
  if (!existsSync(join(ROOT, "web", "dist", "index.html"))) throw new Error("web/dist is not built: run npm run build (or bash .ci/setup)");
  dir = mkdtempSync(join(tmpdir(), "locmesh-web-ui-"));
  nodes = await makeCluster(dir, 2);
  // Mid-way through a key rotation: n1 proves itself with the next cluster key, n2 with the
  // current one, and each accepts the other's, so whichever dials, the handshake is taken with an
  // accepted key and the Cluster page has key use to show. n2 also accepts a next API token.
  const current = node(0).spec.secret;
  node(0).spec.secret = NEXT_KEY;
  node(0).spec.config = { mesh: { acceptedSecrets: [current] } };
  node(1).spec.config = { mesh: { acceptedSecrets: [NEXT_KEY] }, api: { acceptedTokens: [NEXT_TOKEN] } };
  await Promise.all(nodes.map((n) => n.start()));
  browser = await launchBrowser();
  browser.context.on("dialog", (d) => void (dialogs.push(d.message()), d.dismiss()));
  browser.context.on("page", watchErrors);
  page1 = await browser.newPage();
  page2 = await browser.newPage();
});

afterAll(async () => {
  await browser?.close();
  await Promise.all((nodes ?? []).map((n) => n.stop()));
  if (dir && !process.env["LOCMESH_KEEP_TEST_DIRS"]) rmSync(dir, { recursive: true, force: true });
});

const node = (i: number) => nodes[i]!;

function watchErrors(page: Page) {
  page.on("pageerror", (err) => pageErrors.push(`uncaught: ${err.message}`));
  page.on("console", (msg) => {
    // The refused sign-in and the restart test make the browser log failed requests on purpose.
    if (msg.type() === "error" && !/WebSocket connection to .* failed|ERR_CONNECTION_REFUSED/.test(msg.text())) pageErrors.push(msg.text());
  });
}

async function signIn(page: Page, agent: AgentProcess, token = agent.spec.token) {
  await page.goto(agent.apiUrl + "/");
  await page.getByLabel("API token").fill(token);
  await page.keyboard.press("Enter");
}

/** The alias's target as `agent` holds it, or null. */
async function aliasTarget(agent: AgentProcess, alias: string): Promise<string | null> {
  const r = await agent.call<{ items: { alias: string; target: string }[] }>("alias.list", { search: alias });
  return r.items.find((a) => a.alias === alias)?.target ?? null;
}

/** How far the list's table sticks out of its card sideways (> 0: some of it needs scrolling to see). */
const wrapOverflow = (page: Page) => page.locator(".table-wrap").evaluate((el) => el.scrollWidth - el.clientWidth);

/** A GET with the path sent exactly as written (fetch would normalise away "..").*/
function rawGet(agent: AgentProcess, path: string): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: "127.0.0.1", port: agent.spec.apiPort, path, method: "GET" }, (res) => {
      let body = "";
      res.setEncoding("utf8").on("data", (c: string) => (body += c)).on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on("error", reject).end();
  });
}

describe("serving the UI", () => {
  it("serves index.html at / with a CSP, hashed assets as immutable, and nothing outside web/dist", async () => {
    const index = await rawGet(node(0), "/");
    expect(index.status).toBe(200);
    expect(index.headers["content-type"]).toBe("text/html; charset=utf-8");
    expect(index.headers["content-security-policy"]).toMatch(/script-src 'self'/);
    expect(index.headers["cache-control"]).toBe("no-cache");
    const script = /src="\.\/(assets\/[^"]+\.js)"/.exec(index.body)?.[1];
    expect(script).toBeDefined();
    const asset = await rawGet(node(0), `/${script}`);
    expect(asset.headers["content-type"]).toBe("text/javascript; charset=utf-8");
    expect(asset.headers["cache-control"]).toMatch(/immutable/);
    for (const path of ["/../package.json", "/%2e%2e/package.json", "/assets/..%2f..%2f..%2fpackage.json", "/..%5cpackage.json", "/nope.html", "/%00"]) {
      const res = await rawGet(node(0), path);
      expect(res.status, path).toBe(404);
      expect(res.body, path).not.toContain('"name": "locmesh"');
    }
  });
});

describe("the web UI in a browser", () => {
  it("refuses a wrong token with a clear message and shows nothing else", async () => {
    await signIn(page1, node(0), "not-the-right-token");
    await expect.poll(() => page1.getByRole("alert").textContent()).toMatch(/token was refused/);
    expect(await page1.getByRole("navigation", { name: "Sections" }).count()).toBe(0);
    expect(await page1.evaluate("sessionStorage.length")).toBe(0);
    await browser.screenshot(page1, "01-sign-in-refused");
  });

  it("signs in with the API token on both nodes", async () => {
    await signIn(page1, node(0));
    await signIn(page2, node(1));
    for (const p of [page1, page2]) await p.getByRole("heading", { name: "Call forwarding" }).waitFor();
    await page1.getByRole("status", { name: "connection live" }).waitFor();
  });

  it("checks SIP URIs in the alias form before sending", async () => {
    await page1.getByLabel("Alias (who is called)").fill("bob at example");
    await page1.getByLabel("Forwards to").fill("alice@example.com");
    await page1.getByRole("button", { name: "Add alias" }).click();
    await expect.poll(() => page1.locator(".field-error").allTextContents()).toEqual([
      expect.stringMatching(/alias must look like user@domain/),
      expect.stringMatching(/target is not a sip:, sips: or tel: URI/),
    ]);
    await browser.screenshot(page1, "02-alias-validation");
  });

  it("an alias added on node 1's page appears on node 2's page without a reload", async () => {
    await page1.getByLabel("Alias (who is called)").fill("sip:Bob@Example.com");
    await page1.getByLabel("Forwards to").fill("sip:alice@example.com");
    await page1.getByLabel("Forwards to").press("Enter"); // keyboard only: Enter submits the form
    const row2 = page2.locator('tr[data-alias="bob@example.com"]');
    await expect.poll(() => row2.textContent(), { timeout: 10_000 }).toContain("sip:alice@example.com");

    // Edited on node 2, the new target shows on node 1; removed on node 1, it goes from node 2.
    await row2.getByRole("button", { name: "Edit bob@example.com" }).click();
    await page2.getByLabel("New target for bob@example.com").fill("sip:carol@example.com");
    await page2.keyboard.press("Enter");
    const row1 = page1.locator('tr[data-alias="bob@example.com"]');
    await expect.poll(() => row1.textContent(), { timeout: 10_000 }).toContain("sip:carol@example.com");
    await node(0).call("alias.set", { alias: "sip:dave@example.com", target: "sip:erin@example.org" });
    await page2.locator('tr[data-alias="dave@example.com"]').waitFor();
    await browser.screenshot(page2, "03-aliases-node2");

    // Keyboard only: the confirmation takes the focus, so Enter twice removes.
    await row1.getByRole("button", { name: "Remove bob@example.com" }).focus();
    await page1.keyboard.press("Enter");
    await row1.getByRole("button", { name: "Yes, remove" }).waitFor();
    await page1.keyboard.press("Enter");
    await expect.poll(() => row2.count(), { timeout: 10_000 }).toBe(0);
  });

  it("Add says what the agent noted about an alias it added (a chain Kamailio resolves one step)", async () => {
    await node(0).call("alias.set", { alias: "sip:hop@example.com", target: "sip:alice@example.com" });
    await page1.getByLabel("Alias (who is called)").fill("sip:chain@example.com");
    await page1.getByLabel("Forwards to").fill("sip:hop@example.com");
    await page1.getByRole("button", { name: "Add alias" }).click();
    await expect.poll(() => page1.locator("form.card p.note").allTextContents()).toEqual([
      expect.stringMatching(/^Added, but note: the target hop@example\.com is itself an alias \(to sip:alice@example\.com\): Kamailio resolves aliases one step/),
    ]);
    await browser.screenshot(page1, "03b-alias-note");
    for (const a of ["chain", "hop"]) await node(0).call("alias.remove", { alias: `sip:${a}@example.com` });
    // The next add starts without the note.
    await page1.getByLabel("Alias (who is called)").fill("bad alias");
    await page1.getByRole("button", { name: "Add alias" }).click();
    await expect.poll(() => page1.locator("form.card p.note").count()).toBe(0);
    await page1.getByLabel("Alias (who is called)").fill("");
    await page1.getByLabel("Forwards to").fill("");
  });

  it("Add refuses an alias that exists, saying where it forwards, and changes nothing", async () => {
    await page1.getByLabel("Alias (who is called)").fill("sip:Dave@example.com");
    await page1.getByLabel("Forwards to").fill("sip:mallory@example.com");
    await page1.getByRole("button", { name: "Add alias" }).click();
    await expect.poll(() => page1.locator("form.card [role=alert]").textContent())
      .toBe("Not saved: alias dave@example.com already forwards to sip:erin@example.org; edit it instead");
    expect(await aliasTarget(node(1), "dave@example.com")).toBe("sip:erin@example.org");
    expect(await page1.getByLabel("Alias (who is called)").inputValue()).toBe("sip:Dave@example.com");
  });

  it("keeps an open edit when the alias changes elsewhere, and Save then says so instead of undoing it", async () => {
    const row = page1.locator('tr[data-alias="dave@example.com"]');
    await row.getByRole("button", { name: "Edit dave@example.com" }).click();
    const input = page1.getByLabel("New target for dave@example.com");
    await input.fill("sip:frank@example.com");
    await node(1).call("alias.set", { alias: "sip:dave@example.com", target: "sip:grace@example.org" });
    await expect.poll(() => row.getByRole("status").textContent(), { timeout: 10_000 }).toBe("Changed meanwhile: it now forwards to sip:grace@example.org.");
    expect(await input.inputValue()).toBe("sip:frank@example.com");
    await input.press("Enter");
    await expect.poll(() => row.getByRole("alert").textContent()).toBe(
      "Not saved: dave@example.com was changed meanwhile and now forwards to sip:grace@example.org. Save again to replace that with yours, or Cancel.",
    );
    expect(await aliasTarget(node(0), "dave@example.com")).toBe("sip:grace@example.org");
    // The draft is kept, and a second Save, the change now seen, replaces it (it used to meet the
    // same conflict for ever, and only Cancel, which dropped the draft, got out).
    expect(await input.inputValue()).toBe("sip:frank@example.com");
    await input.press("Enter");
    await expect.poll(() => aliasTarget(node(0), "dave@example.com"), { timeout: 10_000 }).toBe("sip:frank@example.com");
    await expect.poll(() => row.getByRole("button", { name: "Edit dave@example.com" }).count()).toBe(1);
    await node(0).call("alias.set", { alias: "sip:dave@example.com", target: "sip:erin@example.org" });
    await expect.poll(() => row.textContent(), { timeout: 10_000 }).toContain("sip:erin@example.org");
  });

  it("says so when an alias being edited is removed elsewhere, with the unsaved target, instead of dropping the edit unsaid", async () => {
    await node(0).call("alias.set", { alias: "sip:lena@example.com", target: "sip:mia@example.org" });
    const row = page1.locator('tr[data-alias="lena@example.com"]');
    await row.getByRole("button", { name: "Edit lena@example.com" }).click();
    await page1.getByLabel("New target for lena@example.com").fill("sip:nora@example.com");
    await node(1).call("alias.remove", { alias: "sip:lena@example.com" });
    await expect.poll(() => row.count(), { timeout: 10_000 }).toBe(0);
    const note = page1.getByRole("status").filter({ hasText: "lena@example.com was removed elsewhere" });
    await expect.poll(() => note.textContent(), { timeout: 10_000 }).toBe(
      "lena@example.com was removed elsewhere while you were editing it; your unsaved target was sip:nora@example.com. Add it again above to keep it. Dismiss",
    );
    await note.getByRole("button", { name: "Dismiss" }).click();
    expect(await note.count()).toBe(0);
  });

  it("Remove points out a change seen while confirming, and is refused for one the page has not heard of", async () => {
    await node(0).call("alias.set", { alias: "sip:ivan@example.com", target: "sip:judy@example.org" });
    const row = page1.locator('tr[data-alias="ivan@example.com"]');
    await row.waitFor({ timeout: 10_000 });
    await row.getByRole("button", { name: "Remove ivan@example.com" }).click();
    await node(1).call("alias.set", { alias: "sip:ivan@example.com", target: "sip:kim@example.org" });
    await expect.poll(() => row.getByRole("status").textContent(), { timeout: 10_000 }).toBe("Changed meanwhile: it now forwards to sip:kim@example.org.");
    await row.getByRole("button", { name: "Yes, remove" }).click();
    await expect.poll(() => aliasTarget(node(1), "ivan@example.com"), { timeout: 10_000 }).toBe(null);

    // A page whose change notifications stop still shows the old target; the agent refuses to
    // remove the alias it no longer forwards to that target.
    await node(0).call("alias.set", { alias: "sip:ivan@example.com", target: "sip:judy@example.org" });
    let deaf = false;
    const page3 = await browser.newPage();
    await page3.routeWebSocket(/./, (ws) => {
      const server = ws.connectToServer();
      ws.onMessage((m) => server.send(m));
      server.onMessage((m) => !(deaf && String(m).includes('"changes.applied"')) && ws.send(m));
    });
    try {
      await signIn(page3, node(1));
      const row3 = page3.locator('tr[data-alias="ivan@example.com"]');
      await expect.poll(() => row3.textContent(), { timeout: 10_000 }).toContain("sip:judy@example.org");
      deaf = true;
      await node(0).call("alias.set", { alias: "sip:ivan@example.com", target: "sip:leo@example.org" });
      await expect.poll(() => aliasTarget(node(1), "ivan@example.com"), { timeout: 10_000 }).toBe("sip:leo@example.org");
      await row3.getByRole("button", { name: "Remove ivan@example.com" }).click();
      await row3.getByRole("button", { name: "Yes, remove" }).click();
      await expect.poll(() => row3.getByRole("alert").textContent()).toBe(
        "alias ivan@example.com forwards to sip:leo@example.org, not sip:judy@example.org: it was changed meanwhile, or that was never its target; remove it again if it should still go",
      );
      expect(await aliasTarget(node(1), "ivan@example.com")).toBe("sip:leo@example.org");
      expect(await row3.textContent()).toContain("sip:judy@example.org");
    } finally {
      await page3.close();
      await node(0).call("alias.remove", { alias: "ivan@example.com" });
    }
  });

  it("reconnects after the agent restarts and catches up on what it missed", async () => {
    // Under the header: why (watched from before the stop: the first redial, 500 ms on, replaces
    // it), then each redial's failure, and when it tries next.
    const note = page2.getByTestId("reconnect-note");
    const sawStopping = note.filter({ hasText: /^Not connected: the agent is stopping \(or restarting\)\. Trying again/ }).waitFor({ timeout: 10_000 });
    await node(1).stop();
    await page2.getByRole("status", { name: "connection reconnecting…" }).waitFor();
    await sawStopping;
    await expect.poll(() => note.textContent(), { timeout: 10_000 }).toMatch(new RegExp(`^Not connected: cannot reach the agent at ws://127\\.0\\.0\\.1:${node(1).spec.apiPort}/rpc\\. Trying again (in \\d+ s\\.Try now|now…)$`));
    await browser.screenshot(page2, "03c-reconnecting");
    // A save while disconnected fails at once, and is not sent once the connection is back.
    const dave = page2.locator('tr[data-alias="dave@example.com"]');
    await dave.getByRole("button", { name: "Edit dave@example.com" }).click();
    await page2.getByLabel("New target for dave@example.com").fill("sip:late@example.com");
    await page2.keyboard.press("Enter");
    await expect.poll(() => dave.getByRole("alert").textContent()).toBe("not connected to the agent; try again when the badge shows live");
    expect(await dave.getByRole("button", { name: "Save" }).isEnabled()).toBe(true);
    await node(0).call("alias.set", { alias: "sip:while-away@example.com", target: "sip:voicemail@example.com" });
    await node(1).start();
    // Back: Try now, rather than the rest of the back-off (unless a redial got there first).
    await page2.getByRole("button", { name: "Try now" }).click({ timeout: 2000 }).catch(() => undefined);
    await page2.getByRole("status", { name: "connection live" }).waitFor({ timeout: 15_000 });
    expect(await note.count()).toBe(0);
    await page2.locator('tr[data-alias="while-away@example.com"]').waitFor({ timeout: 15_000 });
    expect(await aliasTarget(node(1), "dave@example.com")).toBe("sip:erin@example.org");
    await page2.getByLabel("New target for dave@example.com").press("Escape");
  });

  it("steps back a page when the last page's only alias is removed", async () => {
    for (let i = 0; i < 26; i++) await node(0).call("alias.set", { alias: `sip:pg${String(i).padStart(2, "0")}@example.com`, target: "sip:desk@example.com" });
    const pager = page1.locator(".pager span");
    await page1.getByLabel("Search aliases").fill("pg");
    await expect.poll(() => pager.textContent(), { timeout: 10_000 }).toBe("1–25 of 26");
    await page1.getByRole("button", { name: "Next" }).click();
    await expect.poll(() => pager.textContent()).toBe("26–26 of 26");
    await page1.getByRole("button", { name: "Remove pg25@example.com" }).click();
    await page1.getByRole("button", { name: "Yes, remove" }).click();
    await expect.poll(() => pager.textContent(), { timeout: 10_000 }).toBe("1–25 of 25");
    expect(await page1.locator(".empty").count()).toBe(0);
    expect(await page1.getByRole("button", { name: "Previous" }).isDisabled()).toBe(true);
    await page1.getByLabel("Search aliases").fill("");
  });

  it("keeps Edit and Remove in view for very long aliases and targets", async () => {
    await node(0).call("alias.set", { alias: LONG_ALIAS, target: LONG_TARGET });
    await page1.getByLabel("Search aliases").fill("xxxxxxxxxx");
    const row = page1.locator(`tr[data-alias="${LONG_ALIAS.slice(4)}"]`);
    await row.waitFor({ timeout: 10_000 });
    expect(await wrapOverflow(page1)).toBeLessThanOrEqual(0);
    const wrap = (await page1.locator(".table-wrap").boundingBox())!;
    for (const name of ["Edit", "Remove"]) {
      const button = (await row.getByRole("button", { name: `${name} ${LONG_ALIAS.slice(4)}` }).boundingBox())!;
      expect(button.x + button.width, name).toBeLessThanOrEqual(wrap.x + wrap.width);
    }
    await browser.screenshot(page1, "03b-long-alias");
    await page1.getByLabel("Search aliases").fill("");
  });

  it("asks before signing out over an edit typed and not saved, and keeps it when told not to", async () => {
    const row = page1.locator('tr[data-alias="dave@example.com"]');
    await row.getByRole("button", { name: "Edit dave@example.com" }).click();
    const input = page1.getByLabel("New target for dave@example.com");
    await input.fill("sip:unsaved@example.com");
    await page1.getByRole("button", { name: "Sign out" }).click();
    await expect.poll(() => dialogs.length).toBe(1);
    expect(dialogs.splice(0)).toEqual(["The edit of dave@example.com is not saved. Sign out and drop it?"]);
    // Dismissed: still signed in, the draft as typed.
    expect(await input.inputValue()).toBe("sip:unsaved@example.com");
    expect(await page1.getByRole("button", { name: "Sign out" }).count()).toBe(1);
    await row.getByRole("button", { name: "Cancel" }).click();
    await expect.poll(() => row.getByRole("button", { name: "Edit dave@example.com" }).count()).toBe(1);
  });

  it("finds a binding by AoR and shows its detail, hostile user agent as text", async () => {
    const expires = Math.floor(Date.now() / 1000) + 3600;
    await node(1).call("location.publish", {
      edits: [
        { op: "upsert", binding: { aor: "sip:alice@example.com", contact: "sip:alice@10.0.0.7:5060;transport=udp", expires, userAgent: HOSTILE_UA, received: "sip:198.51.100.7:40123", path: "<sip:edge1.example.com;lr>" } },
        ...Array.from({ length: 60 }, (_, i) => ({ op: "upsert" as const, binding: { aor: `user${i}@example.com`, contact: `sip:user${i}@10.0.1.${i}:5060`, expires, userAgent: "Linphone/5.2" } })),
      ],
    });
    await page1.getByRole("link", { name: "Locations" }).click();
    await expect.poll(() => page1.locator(".pager span").textContent(), { timeout: 10_000 }).toBe("1–50 of 61");
    await browser.screenshot(page1, "04-locations");
    await page1.getByLabel("Search by AoR or contact").fill("10.0.0.7");
    await expect.poll(() => page1.locator(".pager span").textContent()).toBe("1–1 of 1");
    await page1.getByRole("link", { name: "alice@example.com" }).click();
    const ua = page1.locator('dd[data-field="User agent"]');
    await expect.poll(() => ua.textContent()).toBe(HOSTILE_UA);
    expect(await page1.locator('dd[data-field="Owner node"]').textContent()).toBe("n2");
    expect(await page1.locator('dd[data-field="Path"]').textContent()).toBe("<sip:edge1.example.com;lr>");
    expect(await page1.locator('dd[data-field="Expires"]').textContent()).toMatch(/^in (59m|1h)/);
    expect(await page1.locator("main img, main script").count()).toBe(0);
    expect(await page1.evaluate("window.__pwned")).toBeUndefined();
    expect(dialogs).toEqual([]);
    await browser.screenshot(page1, "05-binding-detail");

    // Another binding in the same page: nothing of the last one stays, and a success clears an error.
    const shown = await page1.evaluate<string>("location.hash");
    await page1.evaluate(`location.hash = "#/binding?aor=not-an-aor&contact=sip:x@y"`);
    await expect.poll(() => page1.getByRole("alert").textContent()).toMatch(/AoR "not-an-aor" must look like user@domain/);
    expect(await page1.locator("dl.details").count()).toBe(0);
    await page1.evaluate(`location.hash = ${JSON.stringify(shown)}`);
    await expect.poll(() => ua.textContent()).toBe(HOSTILE_UA);
    expect(await page1.getByRole("alert").count()).toBe(0);
  });

  it("says Loading while a list's page is on its way, instead of the rows of the search before alone", async () => {
    await page1.getByRole("link", { name: "Locations" }).first().click();
    await expect.poll(() => page1.locator(".pager span").textContent(), { timeout: 10_000 }).toBe("1–50 of 61");
    const loading = page1.getByRole("status").filter({ hasText: "Loading…" });
    expect(await loading.count()).toBe(0);
    // The agent stopped for a moment (SIGSTOP): the search's page cannot come yet.
    node(0).child!.kill("SIGSTOP");
    try {
      await page1.getByLabel("Search by AoR or contact").fill("nobody-matches-this");
      await expect.poll(() => loading.count(), { timeout: 5000 }).toBe(1);
    } finally {
      node(0).child!.kill("SIGCONT");
    }
    await expect.poll(() => page1.locator("p.empty").textContent(), { timeout: 10_000 }).toBe("Nothing matches “nobody-matches-this”.");
    expect(await loading.count()).toBe(0);
    await page1.getByLabel("Search by AoR or contact").fill("");
  });

  it("counts expiries down on the agent's clock, not a browser clock that is two hours fast", async () => {
    const page = await browser.newPage();
    try {
      // This page's clock only (page.clock would move every page of the shared browser context).
      await page.addInitScript(() => {
        const real = Date.now.bind(Date);
        Date.now = () => real() + 2 * 3600_000;
      });
      const expires = Math.floor(Date.now() / 1000) + 3600;
      await node(0).call("location.publish", { edits: [{ op: "upsert", binding: { aor: "sip:clockwise@example.com", contact: "sip:clockwise@10.0.0.99:5060", expires } }] });
      await signIn(page, node(0));
      await page.getByRole("link", { name: "Locations" }).click();
      await page.getByLabel("Search by AoR or contact").fill("clockwise");
      await expect.poll(() => page.locator(".pager span").textContent(), { timeout: 10_000 }).toBe("1–1 of 1");
      // The binding expires in an hour: by the browser's clock it has expired an hour ago.
      await expect.poll(() => page.locator('td[data-label="Expires"]').first().textContent()).toMatch(/^in (59m|1h)/);
      await page.getByRole("link", { name: "clockwise@example.com" }).click();
      await expect.poll(() => page.locator('dd[data-field="Expires"]').textContent()).toMatch(/^in (59m|1h).*\(.*\b(UTC|GMT[+-]?\d*|[A-Z]{3,4})\)$/);
    } finally {
      await page.close();
    }
  });

  it("shows cluster health: the peer link, counts and the charts", async () => {
    await page1.getByRole("link", { name: "Cluster" }).click();
    const peer = page1.locator('tr[data-peer="n2"]');
    await expect.poll(() => peer.textContent(), { timeout: 10_000 }).toContain("connected");
    // Mesh peers are on no hub: no Hub column (a hub's page has one: web-ui-hub.test.ts).
    expect(await page1.locator('th[scope="col"]', { hasText: /^Hub$/ }).count()).toBe(0);
    // Some traffic while the page polls, so the changes/s chart has something to draw.
    for (let i = 0; i < 10; i++) {
      await node(1).call("alias.set", { alias: `sip:load${i}@example.com`, target: "sip:desk@example.com" });
      await new Promise((r) => setTimeout(r, 400));
    }
    await expect.poll(() => page1.locator(".chart path.series").count(), { timeout: 10_000 }).toBe(2);
    await expect.poll(() => page1.locator(".chart figcaption strong").first().textContent(), { timeout: 10_000 }).not.toMatch(/^(–|0\.0 )/);
    expect(await page1.getByRole("heading", { name: "Node n1" }).count()).toBe(1);
    const version = (JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { version: string }).version;
    expect(await page1.locator(".stat-card").first().textContent()).toContain(`locmesh ${version}, protocol 1`);
    await browser.screenshot(page1, "06-cluster");
  });

  it("shows the cluster key and API token ids, and which peer last used each accepted key, as locmesh status does", async () => {
    // A request with n2's accepted token, so that its API tokens line has a last use to show.
    await node(1).call("cluster.status", {}, NEXT_TOKEN);
    await page2.getByRole("link", { name: "Cluster" }).click();
    const keys = (page: Page, name: string) => page.locator(".stats.keys .stat", { has: page.locator("dt", { hasText: new RegExp(`^${name}$`) }) }).locator("dd");
    const n1Key = keyId(NEXT_KEY);
    const n2Key = keyId(node(1).spec.secret);
    await expect.poll(() => keys(page2, "API tokens").textContent(), { timeout: 10_000 })
      .toMatch(new RegExp(`^${keyId(node(1).spec.token)} \\(api\\.token\\); also accepts ${keyId(NEXT_TOKEN)} \\(last used by 127\\.0\\.0\\.1 \\d+s ago, at \\d{4}-.*\\)\\. A use: an API request or sign-in with it, `));
    expect(await keys(page2, "Cluster keys").textContent()).toMatch(new RegExp(`^${n2Key} \\(mesh\\.secret\\); also accepts ${n1Key} \\((last used by n1 .* ago, at .*|not used since this node began holding it)\\)\\. A use: a peer's handshake with it when dialing this node, `));
    expect(await keys(page1, "Cluster keys").textContent()).toMatch(new RegExp(`^${n1Key} \\(mesh\\.secret\\); also accepts ${n2Key} \\(`));
    // The peer rows name the accepted key each peer was the last to prove itself with, as each
    // node's cluster.status says it; whichever node dialed, one of the two took its key.
    let marked = 0;
    for (const [page, n, peer, key] of [[page1, node(0), "n2", n2Key], [page2, node(1), "n1", n1Key]] as const) {
      const used = (await n.call<ClusterStatus>("cluster.status")).credentials!.clusterKeys.accepted.some((a) => a.lastUsedBy === peer);
      const mark = page.locator(`tr[data-peer="${peer}"] .peer-key`);
      await expect.poll(() => mark.count(), { timeout: 5000 }).toBe(used ? 1 : 0);
      if (used) expect(await mark.textContent()).toMatch(new RegExp(`^last to prove itself here with cluster key ${key} \\(one this node accepts now\\), \\d+s ago$`));
      marked += used ? 1 : 0;
    }
    expect(marked).toBeGreaterThan(0);
    await browser.screenshot(page2, "06b-cluster-keys-n2");
    await browser.screenshot(page1, "06c-cluster-keys-n1");
  });

  it("shows the Kamailio writer when cluster.status reports one, and a new journal that has not caught up", async () => {
    // Agents report `kamailio` once the Kamailio attachment lands; until then the page is fed one by
    // rewriting cluster.status answers on their way from the real agent to the page.
    const page = await browser.newPage();
    await page.routeWebSocket(/\/rpc$/, (ws) => {
      const server = ws.connectToServer();
      server.onMessage((frame) => {
        const msg = JSON.parse(String(frame)) as { result?: { replicaId?: string; kamailio?: unknown; journalSeeded?: boolean; peers?: { connectedSince: string | null }[] } };
        if (msg.result?.replicaId) {
          msg.result.journalSeeded = false;
          // As a hub shows an agent that is on another hub: connected there, since a time only that hub knows.
          for (const p of msg.result.peers ?? []) p.connectedSince = null;
          msg.result.kamailio = {
            up: false, writer: "database", pendingWrites: 1234, rejected: 0, restarts: 1,
            lastError: "FIFO /run/kamailio/kamailio_fifo: ENXIO <b>no reader</b>", lastErrorAt: new Date().toISOString(),
            events: { connected: true, received: 52, failed: 0 }, lastReconcile: null,
            reload: { state: "running", reason: "restart", total: 1200, done: 300, unchanged: 0, startedAt: null, finishedAt: null, rate: 150, channel: "evapi", error: null },
          };
        }
        ws.send(JSON.stringify(msg));
      });
    });
    try {
      await signIn(page, node(0));
      await page.getByRole("link", { name: "Cluster" }).click();
      const card = page.locator(".card", { has: page.getByRole("heading", { name: "Kamailio" }) });
      await expect.poll(() => card.textContent(), { timeout: 10_000 }).toContain("database fallback");
      expect(await card.textContent()).toContain("running (300 of 1,200)");
      expect(await card.textContent()).toContain("Answeringno");
      expect(await card.locator(".error").textContent()).toBe("FIFO /run/kamailio/kamailio_fifo: ENXIO <b>no reader</b>");
      expect(await page.getByRole("progressbar", { name: "Kamailio reload progress" }).getAttribute("value")).toBe("0.25");
      expect(await page.locator('td[data-label="Connected since"]').allTextContents()).toEqual(["—"]);
      const seed = page.getByRole("alert").filter({ has: page.getByRole("heading", { name: "New journal, not caught up yet" }) });
      expect(await seed.textContent()).toMatch(/This node's journal was made empty .* what it lists may be a fraction of the cluster's\. It catches up by itself/);
      await browser.screenshot(page, "09-cluster-kamailio");
    } finally {
      await page.close();
    }
  });

  it("is readable at phone width", async () => {
    const phone = await browser.newPage({ width: 390, height: 844 });
    try {
      await phone.goto(node(1).apiUrl + "/");
      // Keyboard only: the token field has the focus when the page opens.
      await phone.getByLabel("API token").waitFor();
      await phone.keyboard.type(node(1).spec.token);
      await phone.keyboard.press("Enter");
      await phone.locator('tr[data-alias="dave@example.com"]').waitFor();
      // The root never scrolls sideways, and tables stack into one block per row.
      const overflow = () => phone.evaluate<number>("document.documentElement.scrollWidth - document.documentElement.clientWidth");
      expect(await overflow()).toBeLessThanOrEqual(0);
      const edit = await phone.getByRole("button", { name: "Edit dave@example.com" }).boundingBox();
      expect(edit!.x + edit!.width).toBeLessThanOrEqual(390);
      await phone.getByLabel("Search aliases").fill("xxxxxxxxxx");
      const long = await phone.getByRole("button", { name: `Remove ${LONG_ALIAS.slice(4)}` }).boundingBox({ timeout: 10_000 });
      expect(long!.x + long!.width).toBeLessThanOrEqual(390);
      expect(await wrapOverflow(phone)).toBeLessThanOrEqual(0);
      expect(await overflow()).toBeLessThanOrEqual(0);
      await browser.screenshot(phone, "07-phone-aliases");
      await phone.getByRole("link", { name: "Cluster" }).click();
      await phone.locator('tr[data-peer="n1"]').waitFor();
      expect(await overflow()).toBeLessThanOrEqual(0);
      await browser.screenshot(phone, "08-phone-cluster");
    } finally {
      await phone.close();
    }
  });

  it("logged no errors and no Content-Security-Policy violations", () => {
    expect(pageErrors).toEqual([]);
  });
});
