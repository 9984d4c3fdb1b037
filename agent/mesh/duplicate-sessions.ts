/**
 * A peer that keeps opening a second session. One duplicate is normal: a peer that reconnected
 * while its old connection was still half-open here (mesh.ts closes one of the two). Many within
 * seconds mean two nodes run with the same nodeId (a cloned config or VM), each dialling and
 * pushing the other off: an endless flap that replicates nothing reliably and that info-level
 * lines alone hid (the hub dry run, F32). Said at warn, at most once a minute per peer, with the
 * hosts the sessions came from within the window (not their ports: each redial takes a new one).
 */
export interface DuplicateSessions {
  /** A second session with `peer` from `remotes`; the line to warn with, or null. */
  note(peer: string, remotes: readonly string[]): string | null;
}

export function createDuplicateSessions(o: { nowMs?: () => number; windowMs?: number; threshold?: number; everyMs?: number } = {}): DuplicateSessions {
  const nowMs = o.nowMs ?? Date.now;
  const windowMs = o.windowMs ?? 10_000;
  const threshold = o.threshold ?? 5;
  const everyMs = o.everyMs ?? 60_000;
  const seen = new Map<string, { events: { at: number; hosts: string[] }[]; warnedAt: number | null }>();
  return {
    note(peer, remotes) {
      const now = nowMs();
      const entry = seen.get(peer) ?? { events: [], warnedAt: null };
      seen.set(peer, entry);
      entry.events = entry.events.filter((e) => now - e.at < windowMs);
      entry.events.push({ at: now, hosts: remotes.map(hostOf) });
      if (entry.events.length < threshold || (entry.warnedAt !== null && now - entry.warnedAt < everyMs)) return null;
      entry.warnedAt = now;
      const hosts = [...new Set(entry.events.flatMap((e) => e.hosts))].sort();
      return `${peer} opened a second session ${entry.events.length} times in ${Math.round(windowMs / 1000)} s (from ${hosts.join(", ")}): ` +
        `two nodes may run with nodeId ${peer} (a copied config or VM), each pushing the other off. Give every node its own nodeId; ` +
        "until then neither replicates reliably";
    },
  };
}

/** "10.0.0.1:40000" or "[2001:db8::1]:40000" → the host alone; anything else as it is. */
function hostOf(remote: string): string {
  const m = /^(\[[^\]]+\]|[^:]+):\d+$/.exec(remote);
  return m ? m[1]! : remote;
}
