/**
 * Tells when this node has caught up with a peer (or hub) once: its journal holds everything that
 * peer held when their session began, every origin but this node's current one. A journal started
 * empty waits for this before anything is concluded from what it lacks (agent.ts, journal seeding):
 * until then it does not know what the cluster holds.
 */
import type { VersionVector } from "../contract/records.js";
import type { Replica } from "../core/replica.js";

export interface CatchUpWatch {
  /** A session became ready; `vector` is what the peer held then. */
  peerReady(peer: string, vector: VersionVector): void;
  peerGone(peer: string): void;
  close(): void;
}

export function createCatchUpWatch(deps: { replica: Replica; onCaughtUp: (peer: string) => void; onError: (err: unknown) => void }): CatchUpWatch {
  const { replica } = deps;
  const targets = new Map<string, VersionVector>();
  let done = false;
  let checking = false;
  let again = false;
  const stopListening = replica.onApplied(() => void check());

  function finish(peer: string): void {
    done = true;
    targets.clear();
    stopListening();
    deps.onCaughtUp(peer);
  }

  async function check(): Promise<void> {
    if (done || targets.size === 0) return;
    if (checking) {
      again = true;
      return;
    }
    checking = true;
    try {
      do {
        again = false;
        const mine = await replica.versionVector();
        for (const [peer, target] of targets) {
          const covered = Object.entries(target).every(([origin, have]) => origin === replica.replicaId || (mine[origin] ?? 0) >= have);
          if (covered) return finish(peer);
        }
      } while (again && !done);
    } catch (err) {
      deps.onError(err);
    } finally {
      checking = false;
    }
  }

  return {
    peerReady(peer, vector) {
      if (done) return;
      targets.set(peer, { ...vector });
      void check();
    },
    peerGone(peer) {
      targets.delete(peer);
    },
    close() {
      done = true;
      stopListening();
    },
  };
}
