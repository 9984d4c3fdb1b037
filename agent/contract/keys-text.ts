/**
 * What a node's `cluster.status` says of its cluster keys and API tokens (`credentials`: KeysStatus,
 * filled in by ops/key-ring.ts), written once for both places that show it: `locmesh status`
 * (agent/cli/client-output.ts) and the web UI's Cluster page (web/src/pages/cluster-cards.tsx), so
 * that they cannot drift apart. Pure, and free of Node: the web build imports it. Durations are
 * written by the caller, as each surface writes them.
 *
 * "Last used" means the same for both kinds, and the text says what it counts: the last time this
 * node took the key from someone, in whichever role it had here then (a cluster key used while it
 * was this node's mesh.secret counts as a token used while it was api.token does), since this node
 * began holding it (its start, or the SIGHUP that gave it back after one dropped it: the ring
 * forgets a dropped key's uses). What one use is differs only as the two are taken: a peer's
 * handshake when it dials this node, and an API request or sign-in.
 */
import type { DurationText } from "./postgres-standing.js";
import type { AcceptedKeyStatus, KeysStatus } from "./cluster-status.js";

export type KeyKind = "clusterKeys" | "apiTokens";

const KINDS: Record<KeyKind, { own: string; use: string }> = {
  clusterKeys: {
    own: "mesh.secret",
    use: "a peer's handshake with it when dialing this node, while it was mesh.secret or accepted here (a session counts once, at its handshake)",
  },
  apiTokens: {
    own: "api.token",
    use: "an API request or sign-in with it, while it was api.token or accepted here (a signed-in web UI tab counts once, at its sign-in)",
  },
};

/**
 * A node's keys of one kind by id: its own, and each further one it accepts with when it was last
 * used and by whom, which says during a rotation whether an old one may be dropped yet, then what
 * counts as a use. E.g. `77aa01fe (mesh.secret); also accepts 3f2a9c1b (last used by n2 4m10s ago,
 * at 2026-…). A use: a peer's handshake with it …`.
 */
export function keysText(k: KeysStatus, kind: KeyKind, dur: DurationText): string {
  const { own: ownSetting, use } = KINDS[kind];
  const own = `${k.own} (${ownSetting})`;
  if (k.accepted.length === 0) return `${own}; accepts no other`;
  const others = k.accepted.map((a) =>
    a.lastUsedBy === null ? `${a.id} (not used since this node began holding it)` : `${a.id} (last used by ${a.lastUsedBy} ${dur(a.lastUsedAgeSeconds ?? 0)} ago, at ${a.lastUsedAt})`,
  );
  return `${own}; also accepts ${others.join(", ")}. A use: ${use}`;
}

/** The accepted keys whose last use was by `by` (a peer's node id, or an API client's address). */
export function acceptedKeysLastUsedBy(k: KeysStatus | undefined, by: string): AcceptedKeyStatus[] {
  return k?.accepted.filter((a) => a.lastUsedBy === by) ?? [];
}
