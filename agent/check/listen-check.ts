/**
 * `locmesh check`'s (and `locmesh hub check`'s) look at a daemon's two ports. With the daemon not
 * running: whether it could listen there (bound and let go at once, the error worded as its start
 * words it). With it running: whether it answers there (the API's /healthz, the peer port's
 * challenge) as itself.
 */
import { createServer } from "node:net";
import { listenToUrl, type Listen } from "../config/agent-config.js";
import { peerUrl, probeHub } from "../mesh/hub-probe.js";
import { PRE_AUTH_MAX_FRAME } from "../mesh/peer-socket.js";
import { listenFailure } from "../ops/listen.js";
import { errorText as reason, type CheckResult } from "./check-result.js";

export interface PortCheck {
  /** The daemon's node id: what it answers as. */
  nodeId: string;
  /** "agent" or "hub", for the messages. */
  daemon: string;
  /** The daemon runs now (its journal is held, its node claim is fresh). */
  running: boolean;
  timeoutMs: number;
}

/** Whether `listen`'s API answers /healthz as node `nodeId` now: the daemon runs, whatever else says. */
export async function answersAsItself(listen: Listen, nodeId: string, timeoutMs: number): Promise<boolean> {
  try {
    const res = await fetch(`${listenToUrl(listen)}/healthz`, { signal: AbortSignal.timeout(timeoutMs) });
    const body = (await res.json().catch(() => null)) as { ok?: unknown; nodeId?: unknown } | null;
    return res.status === 200 && body?.ok === true && body.nodeId === nodeId;
  } catch {
    return false;
  }
}

export async function checkApiPort(o: PortCheck & { listen: Listen }): Promise<CheckResult> {
  const subject = "api port";
  if (!o.running) return freeToListen(subject, o.listen, o.daemon, "local API", "api.listen.port");
  const url = `${listenToUrl(o.listen)}/healthz`;
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(o.timeoutMs) });
    const body = (await res.json().catch(() => null)) as { ok?: unknown; nodeId?: unknown } | null;
    if (res.status === 200 && body?.ok === true && body.nodeId === o.nodeId) return { subject, state: "ok", detail: `the running ${o.daemon} answers at ${listenToUrl(o.listen)}` };
    const who = typeof body?.nodeId === "string" ? `node ${body.nodeId}` : `HTTP ${res.status}`;
    return { subject, state: "fail", detail: `${listenToUrl(o.listen)} answers as ${who}, not as this node's ${o.daemon}: another program or another node holds api.listen` };
  } catch (err) {
    return { subject, state: "fail", detail: `the running ${o.daemon} does not answer at ${url}: ${reason(err)} (stopped by a signal, or busy; locmesh status says the same)` };
  }
}

/** `unwanted`: why the daemon does not open its peer port (null: it does). */
export async function checkPeerPort(o: PortCheck & { listen: Listen; tls: boolean; ca: Buffer | undefined; unwanted: string | null }): Promise<CheckResult> {
  const subject = "peer port";
  if (o.unwanted !== null) return { subject, state: "skip", detail: `not opened: ${o.unwanted}` };
  if (!o.running) return freeToListen(subject, o.listen, o.daemon, "peer mesh", "mesh.listen.port");
  const url = listenToUrl(o.listen).replace(/^http/, o.tls ? "wss" : "ws");
  try {
    // Its certificate names the host its peers dial, not loopback: what counts here is that it answers as itself.
    const id = await probeHub(peerUrl(url), { ca: o.ca, timeoutMs: o.timeoutMs, maxFrameBytes: PRE_AUTH_MAX_FRAME, anyCertificate: true });
    if (id === o.nodeId) return { subject, state: "ok", detail: `the running ${o.daemon} answers at ${url}` };
    return { subject, state: "fail", detail: `${url} answers as node ${id}, not ${o.nodeId}: another node holds mesh.listen` };
  } catch (err) {
    return { subject, state: "fail", detail: `the running ${o.daemon} does not answer at ${url}: ${reason(err)}` };
  }
}

/** Binds `listen` and lets it go: ok when the daemon could listen there. */
function freeToListen(subject: string, listen: Listen, daemon: string, what: string, setting: string): Promise<CheckResult> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once("error", (err: NodeJS.ErrnoException) => resolve({ subject, state: "fail", detail: listenFailure(err, listen, what, setting).message }));
    server.listen(listen.port, listen.host, () => {
      server.close(() => resolve({ subject, state: "ok", detail: `${listen.host}:${listen.port} is free for the ${daemon}'s ${what}` }));
    });
  });
}
