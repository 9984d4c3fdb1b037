/**
 * `locmesh check`'s look at the agent's two ports. With no agent running: whether the agent could
 * listen there (bound and let go at once, the error worded as the agent's start words it). With one
 * running: whether it answers there (the API's /healthz, the peer port's challenge), as itself.
 */
import { createServer } from "node:net";
import type { AgentConfig } from "../config/agent-config.js";
import { listenToUrl } from "../config/agent-config.js";
import { peerUrl, probeHub } from "../mesh/hub-probe.js";
import { PEER_PORT_UNWANTED, peerPortWanted } from "../mesh/peer-listener.js";
import { PRE_AUTH_MAX_FRAME } from "../mesh/peer-socket.js";
import { listenFailure } from "../ops/listen.js";
import { errorText as reason, type CheckResult } from "./check-result.js";

type Listen = AgentConfig["api"]["listen"];

export async function checkApiPort(o: { config: AgentConfig; agentRunning: boolean; timeoutMs: number }): Promise<CheckResult> {
  const subject = "api port";
  const listen = o.config.api.listen;
  if (!o.agentRunning) return freeToListen(subject, listen, "local API", "api.listen.port");
  const url = `${listenToUrl(listen)}/healthz`;
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(o.timeoutMs) });
    const body = (await res.json().catch(() => null)) as { ok?: unknown; nodeId?: unknown } | null;
    if (res.status === 200 && body?.ok === true && body.nodeId === o.config.nodeId) return { subject, state: "ok", detail: `the running agent answers at ${listenToUrl(listen)}` };
    const who = typeof body?.nodeId === "string" ? `node ${body.nodeId}` : `HTTP ${res.status}`;
    return { subject, state: "fail", detail: `${listenToUrl(listen)} answers as ${who}, not as this node's agent: another program or another node's agent holds api.listen` };
  } catch (err) {
    return { subject, state: "fail", detail: `the running agent does not answer at ${url}: ${reason(err)} (an agent stopped by a signal, or busy; locmesh status says the same)` };
  }
}

export async function checkPeerPort(o: { config: AgentConfig; agentRunning: boolean; ca: Buffer | undefined; timeoutMs: number }): Promise<CheckResult> {
  const subject = "peer port";
  const { mesh, hub } = o.config;
  if (!peerPortWanted({ hubMode: hub.urls.length > 0, peers: mesh.peers.length, acceptUnlisted: mesh.acceptUnlisted })) {
    return { subject, state: "skip", detail: `not opened: ${PEER_PORT_UNWANTED}` };
  }
  if (!o.agentRunning) return freeToListen(subject, mesh.listen, "peer mesh", "mesh.listen.port");
  const url = listenToUrl(mesh.listen).replace(/^http/, mesh.tls ? "wss" : "ws");
  try {
    const id = await probeHub(peerUrl(url), { ca: o.ca, timeoutMs: o.timeoutMs, maxFrameBytes: PRE_AUTH_MAX_FRAME });
    if (id === o.config.nodeId) return { subject, state: "ok", detail: `the running agent answers at ${url}` };
    return { subject, state: "fail", detail: `${url} answers as node ${id}, not ${o.config.nodeId}: another node's agent holds mesh.listen` };
  } catch (err) {
    return { subject, state: "fail", detail: `the running agent does not answer at ${url}: ${reason(err)}` };
  }
}

/** Binds `listen` and lets it go: ok when the agent could listen there. */
function freeToListen(subject: string, listen: Listen, what: string, setting: string): Promise<CheckResult> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once("error", (err: NodeJS.ErrnoException) => resolve({ subject, state: "fail", detail: listenFailure(err, listen, what, setting).message }));
    server.listen(listen.port, listen.host, () => {
      server.close(() => resolve({ subject, state: "ok", detail: `${listen.host}:${listen.port} is free for the agent's ${what}` }));
    });
  });
}
