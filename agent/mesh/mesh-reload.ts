/**
 * The mesh's lists that a config reload (SIGHUP) replaces: the peers it dials, the agents a hub
 * accepts and, in hub mode, the hubs it fails over across and how soon it fails back. The rest of the mesh reads them from
 * the one MeshLists object it shares with this module.
 */
import type { Logger } from "../ops/logger.js";
import { forgetPeerSeries, type Metrics } from "../ops/metrics.js";
import { redactUrl } from "../ops/redact-url.js";
import type { BatchRefusals } from "./batch-refusals.js";
import type { Dialer } from "./dialer.js";
import type { PeerListener } from "./peer-listener.js";
import type { PeerSession } from "./peer-session.js";
import { readTlsFiles, type TlsFiles } from "./tls-files.js";

/** The hub dialer's key among the mesh's dialers, and the name its link shows under (mesh-status.ts) until a hub answers. */
export const HUB = "hub";

export interface PeerEntry {
  id: string;
  url: string;
}

/** What the mesh was configured with, as the last reload left it. */
export interface MeshLists {
  peers: PeerEntry[];
  /** A hub's agents (mesh.agents). */
  allowed: readonly string[];
  hubUrls: string[];
  /** hub.failbackAfterSec in ms: the hub dialer's failback policy reads it each time it renews it. */
  hubFailbackAfterMs: number;
}

export interface MeshReload {
  /**
   * Replace the peer list (config reload): new peers are dialed, removed ones disconnected. In hub
   * mode this also opens or closes the peer port as the list stops or starts being empty.
   */
  setPeers(peers: readonly PeerEntry[]): void;
  /**
   * In hub mode, replace the hub list (config reload). The session stays up while its hub is still
   * listed (failback then follows the new first URL); one with a hub no longer listed is closed and
   * the new list is dialed from its start. Says what was done. Throws outside hub mode, and for an
   * empty list: switching between hub mode and the mesh alone needs a restart.
   */
  setHubUrls(urls: readonly string[]): string;
  /** In hub mode, a new hub.failbackAfterSec (config reload, Dialer.renewFailback). Says what was done; throws outside hub mode. */
  setHubFailback(afterMs: number): string;
  /**
   * On a hub: replace the agents it accepts (mesh.agents, config reload). An agent no longer listed
   * has its session closed and its series dropped, unless `acceptUnlisted` takes it anyway.
   */
  setAllowed(ids: readonly string[]): void;
  /**
   * mesh.tls's files read again (a renewed certificate, a new CA; config reload): the peer port
   * serves the new certificate from its next handshake and dials check peers against the new CA;
   * sessions up stay. Says until when the certificate is valid. Throws a TlsFilesError naming the
   * file, keeping the running ones, when they cannot be used.
   */
  setTls(files: TlsFiles): string;
}

export function createMeshReload(deps: {
  lists: MeshLists;
  acceptUnlisted: boolean;
  /** The mesh's dialers by peer id (HUB for the hub dialer) and ready sessions by node id: this module changes the first. */
  dialers: Map<string, Dialer>;
  sessions: ReadonlyMap<string, PeerSession>;
  dial(entry: PeerEntry): Dialer;
  refusals: Pick<BatchRefusals, "forget">;
  listener: Pick<PeerListener, "sync" | "setTls">;
  /** The CA the mesh's dials check peers against from now on. */
  setCa(ca: Buffer | undefined): void;
  metrics: Metrics;
  log: Logger;
}): MeshReload {
  const { lists, dialers, sessions, refusals, metrics, log } = deps;
  return {
    setPeers(next) {
      const nextIds = new Set(next.map((p) => p.id));
      for (const [id, d] of dialers) {
        if (id === HUB) continue;
        if (!nextIds.has(id) || next.find((p) => p.id === id)!.url !== d.target.urls[0]) {
          d.stop("peer removed from config");
          dialers.delete(id);
          if (!nextIds.has(id)) refusals.forget(id);
          if (!nextIds.has(id) && !deps.acceptUnlisted) {
            sessions.get(id)?.close(1000, "peer removed from config");
            forgetPeerSeries(metrics, id);
          }
        }
      }
      lists.peers = [...next];
      for (const p of lists.peers) if (!dialers.has(p.id)) dialers.set(p.id, deps.dial(p));
      log.info({ peers: lists.peers.map((p) => p.id) }, "peer list updated");
      // The new peers dial this node too; without the port they would only be dialed.
      deps.listener.sync().catch((err: unknown) => log.error({ err: (err as Error).message }, "could not open the peer port for the new mesh.peers: they cannot dial this node (it still dials them); fix it and send SIGHUP again"));
    },
    setAllowed(ids) {
      const next = new Set(ids);
      for (const id of lists.allowed) {
        if (next.has(id) || deps.acceptUnlisted || lists.peers.some((p) => p.id === id)) continue;
        sessions.get(id)?.close(1000, "agent removed from mesh.agents");
        forgetPeerSeries(metrics, id);
        refusals.forget(id);
      }
      lists.allowed = [...ids];
      log.info({ agents: lists.allowed }, "agent list updated");
    },
    setHubUrls(urls) {
      const d = dialers.get(HUB);
      if (!d || urls.length === 0) throw new Error("switching between hub mode and the mesh alone needs a restart");
      lists.hubUrls = [...urls];
      const outcome = d.setUrls(urls);
      log.info({ hubs: urls.map(redactUrl), outcome }, "hub list updated");
      return outcome;
    },
    setTls(files) {
      const m = readTlsFiles(files);
      deps.listener.setTls(files, m);
      deps.setCa(m.ca);
      return `certificate valid until ${m.validTo}`;
    },
    setHubFailback(afterMs) {
      const d = dialers.get(HUB);
      if (!d) throw new Error("not in hub mode");
      lists.hubFailbackAfterMs = afterMs;
      return d.renewFailback();
    },
  };
}
