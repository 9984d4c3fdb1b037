/**
 * What a node notes of the key each peer proved itself with (auth.ts, keyOfClientProof): the
 * last use of each key for `locmesh status`, a count per role, and a log line when it was an
 * accepted key rather than this node's own. During a rotation (README, "Rotating the cluster key
 * and API token") that is how the operator sees which nodes still prove with the old key, and
 * when none does any more.
 */
import type { Logger } from "../ops/logger.js";
import { keyId, type KeyRing } from "../ops/key-ring.js";
import type { Metrics } from "../ops/metrics.js";

export function createPeerKeyNotes(deps: { keys: KeyRing; metrics: Metrics; log: Logger }): (peer: string, key: string) => void {
  return (peer, key) => {
    const role = deps.keys.roleOf(key);
    if (role === null) return; // dropped by a SIGHUP within the handshake: nothing left to note
    deps.keys.noteUse(key, peer);
    deps.metrics.peerHandshakes.inc({ key: role });
    if (role === "accepted") {
      const own = keyId(deps.keys.current().own);
      deps.log.info(
        { peer, key: keyId(key), own },
        `${peer} proved itself with accepted cluster key ${keyId(key)}, not with this node's own (mesh.secret, ${own}): ` +
          "a key rotation is under way; drop that key from mesh.acceptedSecrets once no node proves with it (locmesh status: cluster keys)",
      );
    }
  };
}
