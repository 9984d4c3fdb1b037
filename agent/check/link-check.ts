/**
 * `locmesh check`'s look at the nodes this one replicates with: mesh.tls's files, then each peer
 * of mesh.peers and each hub of hub.urls, asked for its challenge (mesh/hub-probe.ts): it answers,
 * speaks this protocol version, and is the node the config names. The probe closes before
 * authenticating, so a running agent's sessions are never disturbed and nothing counts as a
 * refused key there; the cluster key itself is proven only by a session (`locmesh status` shows
 * a refused one).
 */
import type { AgentConfig } from "../config/agent-config.js";
import { peerUrl, probeHub } from "../mesh/hub-probe.js";
import { PRE_AUTH_MAX_FRAME } from "../mesh/peer-socket.js";
import { readTlsFiles } from "../mesh/tls-files.js";
import { redactUrl } from "../ops/redact-url.js";
import { errorText as reason, sentences, type CheckResult } from "./check-result.js";

/** mesh.tls's files: the result (none without TLS), and the CA the probes trust. */
export function checkTls(config: { mesh: Pick<AgentConfig["mesh"], "tls"> }): { result: CheckResult | null; ca: Buffer | undefined } {
  const tls = config.mesh.tls;
  if (tls === null) return { result: null, ca: undefined };
  try {
    const m = readTlsFiles(tls);
    return { result: { subject: "tls files", state: "ok", detail: `${tls.cert} and its key, valid until ${m.validTo}${tls.ca ? `; peers checked against ${tls.ca}` : ""}` }, ca: m.ca };
  } catch (err) {
    return { result: { subject: "tls files", state: "fail", detail: (err as Error).message }, ca: undefined };
  }
}

export async function checkLinks(o: { config: AgentConfig; ca: Buffer | undefined; timeoutMs: number }): Promise<CheckResult[]> {
  const probe = (url: string) => probeHub(peerUrl(url), { ca: o.ca, timeoutMs: o.timeoutMs, maxFrameBytes: PRE_AUTH_MAX_FRAME });
  const peers = o.config.mesh.peers.map(async (p): Promise<CheckResult> => {
    const subject = `peer ${p.id}`;
    const at = redactUrl(p.url);
    try {
      const id = await probe(p.url);
      if (id === p.id) return { subject, state: "ok", detail: `answers at ${at}` };
      return { subject, state: "fail", detail: `${at} answers as node ${id}, and mesh.peers names it ${p.id}: the handshake would refuse it. Fix the id or the URL in mesh.peers` };
    } catch (err) {
      return { subject, state: "fail", detail: sentences(`no session possible at ${at}: ${reason(err)}`, `Is its agent running, and its mesh.listen reachable from here (firewall, host, port, ws or wss)?`) };
    }
  });
  const hubs = o.config.hub.urls.map(async (url, i): Promise<CheckResult> => {
    const at = redactUrl(url);
    const subject = `hub ${i + 1}`;
    try {
      const id = await probe(url);
      return { subject, state: "ok", detail: `${at} answers as hub ${id}` };
    } catch (err) {
      const others = o.config.hub.urls.length > 1 ? " (the agent fails over to the other hubs meanwhile)" : "";
      return { subject, state: "fail", detail: sentences(`${at} takes no session now: ${reason(err)}`, `Is the hub running, its PostgreSQL up, and its port reachable from here?${others}`) };
    }
  });
  return Promise.all([...peers, ...hubs]);
}
