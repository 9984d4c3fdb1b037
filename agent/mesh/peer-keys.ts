/**
 * What a node notes of the keys peers prove themselves with, or fail to (auth.ts,
 * keyOfClientProof; the handshake is peer-session.ts).
 *
 * A handshake that succeeded: the last use of each key for `locmesh status`, a count per role, and
 * a log line when it was an accepted key rather than this node's own. During a rotation (README,
 * "Rotating the cluster key and API token") that is how the operator sees which nodes still prove
 * with the old key, and when none does any more.
 *
 * A handshake that was refused (a wrong key, an unknown node id, none in time): a log line. Every
 * one of either kind is counted in the metrics, but the log says the first at once and then at most
 * once a minute how many more there were (ops/log-pacing.ts), per peer and key, or per address and
 * reason: a peer or a scanner redialling every 50 ms would otherwise write a line each time.
 */
import type { Logger } from "../ops/logger.js";
import { createLogPacing } from "../ops/log-pacing.js";
import { keyId, type KeyRing } from "../ops/key-ring.js";
import type { AuthFailureReason, Metrics } from "../ops/metrics.js";
import type { ClaimedId } from "./peer-handshake.js";

export function createPeerKeyNotes(deps: { keys: KeyRing; metrics: Metrics; log: Logger; nowMs?: () => number }): (peer: string, key: string) => void {
  const lines = createLogPacing({ nowMs: deps.nowMs });
  return (peer, key) => {
    const role = deps.keys.roleOf(key);
    if (role === null) return; // dropped by a SIGHUP within the handshake: nothing left to note
    deps.keys.noteUse(key, peer);
    deps.metrics.peerHandshakes.inc({ key: role });
    if (role !== "accepted" || lines.note(`${peer} ${keyId(key)}`) === null) return;
    const own = keyId(deps.keys.current().own);
    deps.log.info(
      { peer, key: keyId(key), own },
      `${peer} proved itself with accepted cluster key ${keyId(key)}, not with this node's own (mesh.secret, ${own}): ` +
        "a key rotation is under way; drop that key from mesh.acceptedSecrets once no node proves with it " +
        "(locmesh status: cluster keys; logged at most once a minute per peer and key)",
    );
  };
}

/**
 * `address` (the connecting IP) refused for `reason`; `peer`: the node id it claimed, if it got that
 * far; `claim`, for a wrong key: what that id is to this node (peer-handshake.ts).
 */
export type PeerRefusalLog = (address: string, reason: AuthFailureReason, peer: string | null, claim?: ClaimedId) => void;

/** What to check, per reason (the dialing node logs its own side: "the peer refused us; …"). */
const REFUSAL_HINTS: Partial<Record<AuthFailureReason, string>> = {
  "wrong key": "it proved itself with a key this node neither holds nor accepts (mesh.secret, mesh.acceptedSecrets)",
  "unknown node id": "if it belongs to the cluster, list it in mesh.peers (on a hub: mesh.agents) and send SIGHUP",
  "a node cannot peer with itself (duplicate nodeId?)": "two nodes run with this node's nodeId, or a peer URL points back at this node",
  timeout: "it connected but did not authenticate in time (not a locmesh node, or one that stalled)",
};

/**
 * What the node id claimed with a wrong key adds to the hint. The caller was told only "wrong key
 * or unknown node id" (it proved no key): the operator is told both.
 */
const CLAIM_HINTS: Record<ClaimedId, string> = {
  listed: "; the node id it claimed is one this node lists: that node holds a key this node does not take (a key rotation done out of order?), or someone else uses its id",
  unlisted: "; the node id it claimed is not listed here either: a probe, or a node not added yet that holds another key",
  "own id": "; it claimed this node's own id: a probe, or a second node with this nodeId and another key",
};

export function createPeerRefusalLog(deps: { log: Logger; nowMs?: () => number }): PeerRefusalLog {
  const lines = createLogPacing({ nowMs: deps.nowMs });
  return (address, reason, peer, claim) => {
    const line = lines.note(`${address} ${reason}`);
    if (line === null) return;
    if (line.first) {
      const hint = `${REFUSAL_HINTS[reason] ?? ""}${claim ? CLAIM_HINTS[claim] : ""}`;
      deps.log.warn(
        { remote: address, peer, reason, ...(claim ? { claim } : {}) },
        `refused peer authentication (${reason})${hint ? `: ${hint}` : ""}; more refusals from ${address} for this reason are logged at most once a minute`,
      );
      return;
    }
    deps.log.warn(
      { remote: address, peer, reason, refused: line.count, sinceLastSec: Math.round(line.sinceLastMs! / 1000) },
      `refused peer authentication (${reason}) ${line.count} more time(s) from ${address} in the last ${Math.round(line.sinceLastMs! / 1000)} s (last as ${peer ?? "no node id"}); ` +
        "locmesh_auth_failures_total counts each one",
    );
  };
}
