/**
 * `locmesh hub check`: what a hub needs, looked at once, before it starts or beside it, changing
 * nothing: its config, PostgreSQL (it answers, and its schema is one this locmesh can run or
 * migrate), whether a hub process holds this nodeId now (here: the running hub; elsewhere: a start
 * here would be refused), the other hubs on the database, mesh.tls's files and its two ports. The
 * same results and report as the agent's check (agent/check/).
 */
import { hostname } from "node:os";
import type { CheckReport, CheckResult } from "../agent/check/check-result.js";
import { errorText } from "../agent/check/check-result.js";
import { checkTls } from "../agent/check/link-check.js";
import { answersAs, checkApiPort, checkPeerPort, healthOf } from "../agent/check/listen-check.js";
import { formatDuration } from "../agent/cli/client-output.js";
import { redactUrl } from "../agent/ops/redact-url.js";
import type { HubConfig } from "./hub-config.js";
import { schemaTooNewError, schemaVersions } from "./migrate-postgres.js";
import { claimStaleSeconds, duplicateHubNode, listHubNodeClaims, processRuns, type HubNodeClaimRow } from "./node-claim.js";
import { withPgClient } from "./pg-client.js";
import { pgAddress } from "./pg-connection.js";

export interface RunHubChecksOptions {
  config: HubConfig;
  configFile: string | null;
  configWarnings: readonly string[];
  timeoutMs: number;
  /** This host's name, as the hub's node claim records it (default: os.hostname()). */
  host?: string;
}

export async function runHubChecks(o: RunHubChecksOptions): Promise<CheckReport> {
  const { config } = o;
  const host = o.host ?? hostname();
  const checks: CheckResult[] = [{ subject: "config", state: "ok", detail: describeConfig(config) }];
  for (const w of o.configWarnings) checks.push({ subject: "config", state: "warn", detail: w });

  let claims: HubNodeClaimRow[] | null = null;
  try {
    const found = await withPgClient({ ...config.postgres, connectTimeoutMs: o.timeoutMs, queryTimeoutMs: o.timeoutMs }, async (client) => ({
      version: (await client.query<{ server_version: string }>("SHOW server_version")).rows[0]?.server_version ?? "?",
      schema: await schemaVersions(client),
      claims: await listHubNodeClaims(client),
    }));
    claims = found.claims;
    checks.push(describeSchema(found.version, found.schema, config.postgres.url));
  } catch (err) {
    checks.push({ subject: "postgres", state: "fail", detail: errorText(err) });
  }

  const stale = claimStaleSeconds(config.mesh.statusIntervalMs);
  const live = (claims ?? []).filter((c) => c.ageSec < stale);
  const mine = live.find((c) => c.nodeId === config.nodeId);
  // A claim made on this host by a process that is gone is a dead hub's: its restart takes it over
  // at once (node-claim.ts), as the check counts it here.
  const here = mine !== undefined && mine.host === host;
  const claimedHere = here && processRuns(mine.pid);
  // Its API answering as this hub settles it, with PostgreSQL away too.
  const health = await healthOf(config.api.listen, o.timeoutMs);
  const running = answersAs(health, config.nodeId) || claimedHere;
  if (claims === null) {
    checks.push({ subject: "node id", state: "skip", detail: "not looked at: PostgreSQL does not answer" });
  } else if (mine === undefined) {
    checks.push({ subject: "node id", state: "ok", detail: `no hub process holds nodeId ${config.nodeId} on this database now` });
  } else if (here) {
    checks.push(claimedHere
      ? { subject: "node id", state: "ok", detail: `held by the running hub here (${mine.holder}), its claim refreshed ${formatDuration(mine.ageSec)} ago` }
      : { subject: "node id", state: "ok", detail: `claimed ${formatDuration(mine.ageSec)} ago by a hub here that no longer runs (${mine.holder}): a hub started now takes it over at once` });
  } else {
    checks.push({ subject: "node id", state: "fail", detail: duplicateHubNode(config.nodeId, mine.holder, `its claim was refreshed ${formatDuration(mine.ageSec)} ago; a hub started here would be refused`).message });
  }
  if (claims !== null) {
    const others = live.filter((c) => c.nodeId !== config.nodeId);
    checks.push({
      subject: "other hubs",
      state: "ok",
      detail: others.length === 0 ? "none runs on this database now" : others.map((c) => `${c.nodeId} (${c.holder})`).join("; "),
    });
  }

  const tls = checkTls(config);
  if (tls.result) checks.push(tls.result);
  const port = { nodeId: config.nodeId, daemon: "hub", running, timeoutMs: o.timeoutMs };
  checks.push(
    await checkApiPort({ ...port, listen: config.api.listen, health }),
    await checkPeerPort({ ...port, listen: config.mesh.listen, tls: config.mesh.tls !== null, ca: tls.ca, unwanted: null }),
  );
  return { daemon: "hub", nodeId: config.nodeId, config: o.configFile, running, checks };
}

function describeSchema(version: string, schema: { current: number; latest: number }, url: string): CheckResult {
  const at = `PostgreSQL ${version} at ${pgAddress(url)}`;
  if (schema.current > schema.latest) return { subject: "postgres", state: "fail", detail: `${at}: ${schemaTooNewError(schema.current, schema.latest).message}` };
  const state = schema.current === 0 ? "no hub tables yet: the hub makes them at its start (or `locmesh hub migrate`)"
    : schema.current < schema.latest ? `schema version ${schema.current}, migrated to ${schema.latest} at the hub's start (or \`locmesh hub migrate\`)`
    : `schema version ${schema.current}, this locmesh's`;
  return { subject: "postgres", state: "ok", detail: `${at} (${redactUrl(url)}) answers; ${state}` };
}

function describeConfig(c: HubConfig): string {
  // The loader refuses an empty mesh.agents without mesh.acceptUnlisted.
  const agents = c.mesh.acceptUnlisted ? "any agent with the cluster key (mesh.acceptUnlisted)" : `agents ${c.mesh.agents.join(", ")}`;
  return `valid: hub ${c.nodeId}, takes ${agents}`;
}
