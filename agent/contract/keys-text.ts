/**
 * What a node's `cluster.status` says of its cluster keys and API tokens (`credentials`: KeysStatus,
 * filled in by ops/key-ring.ts), written once for both places that show it: `locmesh status`
 * (agent/cli/client-output.ts) and the web UI's Cluster page (web/src/pages/cluster-cards.tsx), so
 * that they cannot drift apart. Pure, and free of Node: the web build imports it. Durations are
 * written by the caller, as each surface writes them.
 */
import type { DurationText } from "./postgres-standing.js";
import type { AcceptedKeyStatus, KeysStatus } from "./cluster-status.js";

/**
 * A node's keys of one kind by id: its own, and each further one it accepts with when it was last
 * used and by whom, which says during a rotation whether an old one may be dropped yet. E.g.
 * `77aa01fe (mesh.secret); also accepts 3f2a9c1b (last used by n2 4m10s ago, at 2026-…)`.
 */
export function keysText(k: KeysStatus, ownSetting: string, dur: DurationText): string {
  const own = `${k.own} (${ownSetting})`;
  if (k.accepted.length === 0) return `${own}; accepts no other`;
  const others = k.accepted.map((a) =>
    a.lastUsedBy === null ? `${a.id} (not used since this node started)` : `${a.id} (last used by ${a.lastUsedBy} ${dur(a.lastUsedAgeSeconds ?? 0)} ago, at ${a.lastUsedAt})`,
  );
  return `${own}; also accepts ${others.join(", ")}`;
}

/** The accepted keys whose last use was by `by` (a peer's node id, or an API client's address). */
export function acceptedKeysLastUsedBy(k: KeysStatus | undefined, by: string): AcceptedKeyStatus[] {
  return k?.accepted.filter((a) => a.lastUsedBy === by) ?? [];
}
