/**
 * `locmesh check`: everything a node's agent needs, looked at once, before the agent starts or
 * beside a running one: its config, its journal, its two ports, mesh.tls's files, every peer or
 * hub, and the local Kamailio. Each part says what it found and, when the agent could not work
 * that way, what to do (check-result.ts). Nothing here changes what it looks at.
 */
import { listenToUrl, type AgentConfig } from "../config/agent-config.js";
import { journalPathOf } from "../journal/journal-inspect.js";
import { PEER_PORT_UNWANTED, peerPortWanted } from "../mesh/peer-listener.js";
import type { Logger } from "../ops/logger.js";
import { errorText, type CheckReport, type CheckResult } from "./check-result.js";
import { checkJournal } from "./journal-check.js";
import { checkKamailio } from "./kamailio-check.js";
import { checkLinks, checkTls } from "./link-check.js";
import { answersAs, checkApiPort, checkPeerPort, healthOf } from "./listen-check.js";

export interface RunChecksOptions {
  config: AgentConfig;
  /** The config file read, for the report; null when the environment alone gave the settings. */
  configFile: string | null;
  /** What loading the config warned of (a secret file others may read, ...). */
  configWarnings: readonly string[];
  /** Per probe: a peer's challenge, a Kamailio call, a database's answer. */
  timeoutMs: number;
  /** For the clients the checks borrow from the agent (their own logging); the report is the output. */
  log: Logger;
}

export async function runChecks(o: RunChecksOptions): Promise<CheckReport> {
  const { config } = o;
  const checks: CheckResult[] = [{ subject: "config", state: "ok", detail: describeConfig(config) }];
  for (const w of o.configWarnings) checks.push({ subject: "config", state: "warn", detail: w });
  // An agent answering as this node runs, whatever its journal says (a dataDir this user cannot
  // read, or one the service gets from its own environment).
  const health = await healthOf(config.api.listen, o.timeoutMs);
  const answers = answersAs(health, config.nodeId);
  const journal = checkJournal({ dataDir: config.dataDir, nodeId: config.nodeId });
  checks.push(journal.result);
  if (answers && journal.agentRunning === false) {
    checks.push({ subject: "journal", state: "warn", detail: `the agent answering at ${listenToUrl(config.api.listen)} does not hold ${journalPathOf(config.dataDir)}: it runs with another dataDir than this config gives (LOCMESH_DATA_DIR in its environment, or another config file?)` });
  }
  const agentRunning = answers || journal.agentRunning === true;
  /** null: whether an agent runs could not be told; what it alone may touch (evapi) is then left alone. */
  const known: boolean | null = agentRunning ? true : journal.agentRunning === null ? null : false;
  const tls = checkTls(config);
  if (tls.result) checks.push(tls.result);
  const port = { nodeId: config.nodeId, daemon: "agent", running: agentRunning, timeoutMs: o.timeoutMs };
  const { mesh, hub } = config;
  const peerPortOpen = peerPortWanted({ hubMode: hub.urls.length > 0, peers: mesh.peers.length, acceptUnlisted: mesh.acceptUnlisted });
  checks.push(
    await checkApiPort({ ...port, listen: config.api.listen, health }),
    await checkPeerPort({ ...port, listen: mesh.listen, tls: mesh.tls !== null, ca: tls.ca, unwanted: peerPortOpen ? null : PEER_PORT_UNWANTED }),
  );
  checks.push(...(await guarded("peers", () => checkLinks({ config, ca: tls.ca, timeoutMs: o.timeoutMs }))));
  const kamailio = config.kamailio;
  if (kamailio) checks.push(...(await guarded("kamailio", () => checkKamailio({ config, kamailio, agentRunning: known, timeoutMs: o.timeoutMs, log: o.log }))));
  else checks.push({ subject: "kamailio", state: "skip", detail: "no kamailio section: the agent replicates without writing into a Kamailio (README: Attach to your Kamailio)" });
  return { daemon: "agent", nodeId: config.nodeId, config: o.configFile, running: known, checks };
}

/** A part that threw where it should have said: one FAIL line with the error, and the other parts still run. */
async function guarded(subject: string, part: () => Promise<CheckResult[]>): Promise<CheckResult[]> {
  try {
    return await part();
  } catch (err) {
    return [{ subject, state: "fail", detail: `the check itself failed here: ${errorText(err)}` }];
  }
}

function describeConfig(c: AgentConfig): string {
  const plural = (n: number, what: string) => `${n} ${what}${n === 1 ? "" : "s"}`;
  const links = c.hub.urls.length > 0 ? `hub mode with ${plural(c.hub.urls.length, "hub")}` : `a mesh with ${plural(c.mesh.peers.length, "peer")}`;
  const unlisted = c.mesh.acceptUnlisted ? ", unlisted nodes accepted" : "";
  const kamailio = c.kamailio ? `attached to the Kamailio at ${c.kamailio.fifo}` : "no Kamailio";
  return `valid: node ${c.nodeId}, ${links}${unlisted}, ${kamailio}, dataDir ${c.dataDir}`;
}
