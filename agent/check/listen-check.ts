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

/** What `listen`'s API answered to /healthz: its status and the node id it gave, or why it did not answer. */
export type Health = { status: number; nodeId: unknown } | { error: unknown };

/** Asks /healthz once; the checks read the answer (whether the daemon runs, and the API port's line). */
export async function healthOf(listen: Listen, timeoutMs: number): Promise<Health> {
  try {
    const res = await fetch(`${listenToUrl(listen)}/healthz`, { signal: AbortSignal.timeout(timeoutMs) });
    const body = (await res.json().catch(() => null)) as { ok?: unknown; nodeId?: unknown } | null;
    return { status: res.status, nodeId: body?.ok === true ? body.nodeId : undefined };
  } catch (err) {
    return { error: err };
  }
}

/** The API answered as node `nodeId`: the daemon runs, whatever else says. */
export const answersAs = (h: Health, nodeId: string): boolean => "status" in h && h.status === 200 && h.nodeId === nodeId;

export async function checkApiPort(o: PortCheck & { listen: Listen; health: Health }): Promise<CheckResult> {
  const subject = "api port";
  if (!o.running) return freeToListen(subject, o.listen, o.daemon, "local API", "api.listen.port");
  const at = listenToUrl(o.listen);
  const h = o.health;
  if ("error" in h) return { subject, state: "fail", detail: `the running ${o.daemon} does not answer at ${at}/healthz: ${reason(h.error)} (stopped by a signal, or busy; locmesh status says the same)` };
  if (answersAs(h, o.nodeId)) return { subject, state: "ok", detail: `the running ${o.daemon} answers at ${at}` };
  const who = typeof h.nodeId === "string" ? `node ${h.nodeId}` : `HTTP ${h.status}`;
  return { subject, state: "fail", detail: `${at} answers as ${who}, not as this node's ${o.daemon}: another program or another node holds api.listen` };
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
