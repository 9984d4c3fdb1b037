/**
 * A node's secrets of one kind, its cluster keys or its API tokens, so that they can be rotated
 * with no restart and no refusal (README, "Rotating the cluster key and API token"), the way
 * credentials are rotated elsewhere: accept the new one besides the old, switch, drop the old.
 * `own` is the one the node names as its own (mesh.secret, the key it proves itself with; or
 * api.token), `accepted` those it takes besides (mesh.acceptedSecrets, api.acceptedTokens). SIGHUP
 * replaces the whole set (`set`); sessions already up are not touched. The ring remembers who last
 * used each key, so the operator can see when an old one is no longer used.
 */
import { createHmac } from "node:crypto";
import type { CredentialsStatus, KeysStatus } from "../contract/cluster-status.js";
import type { Logger } from "./logger.js";

export interface KeySet {
  own: string;
  /** Without `own`, without repeats, in the config's order. */
  accepted: readonly string[];
}

/** Which of a node's keys one is, as metrics label it. */
export type KeyRole = "own" | "accepted";

export interface KeyRing {
  current(): KeySet;
  /** `own`, then the accepted ones. */
  all(): readonly string[];
  /** Null for a key the ring does not hold. */
  roleOf(key: string): KeyRole | null;
  /** Replaces the keys (SIGHUP); what it knew of keys it no longer holds is forgotten. */
  set(next: { own: string; accepted: readonly string[] }): void;
  /** A peer (its node id) or an API client (its address) proved itself with `key`, one the ring holds. */
  noteUse(key: string, by: string): void;
  status(): KeysStatus;
}

/**
 * A key's id: the first 8 hex digits of an HMAC-SHA256 keyed with it. It names the same key alike
 * on every node, and holds nothing that would let anyone authenticate.
 */
export function keyId(key: string): string {
  return createHmac("sha256", key).update("locmesh key id").digest("hex").slice(0, 8);
}

/** `accepted` without `own` and without repeats: a key listed twice, or listed as accepted while it is the own one, counts once. */
export function keySet(own: string, accepted: readonly string[]): KeySet {
  return Object.freeze({ own, accepted: Object.freeze([...new Set(accepted)].filter((k) => k !== own)) });
}

export function createKeyRing(initial: { own: string; accepted: readonly string[] }, deps: { nowMs?: () => number } = {}): KeyRing {
  const nowMs = deps.nowMs ?? Date.now;
  let keys = keySet(initial.own, initial.accepted);
  let all: readonly string[] = [keys.own, ...keys.accepted];
  const lastUse = new Map<string, { at: number; by: string }>();

  return {
    current: () => keys,
    all: () => all,
    roleOf: (key) => (key === keys.own ? "own" : keys.accepted.includes(key) ? "accepted" : null),
    set(next) {
      keys = keySet(next.own, next.accepted);
      all = [keys.own, ...keys.accepted];
      for (const key of lastUse.keys()) if (!all.includes(key)) lastUse.delete(key);
    },
    noteUse(key, by) {
      if (all.includes(key)) lastUse.set(key, { at: nowMs(), by });
    },
    status() {
      const now = nowMs();
      return {
        own: keyId(keys.own),
        accepted: keys.accepted.map((key) => {
          const use = lastUse.get(key);
          return {
            id: keyId(key),
            lastUsedAt: use ? new Date(use.at).toISOString() : null,
            lastUsedAgeSeconds: use ? Math.max(0, Math.round((now - use.at) / 1000)) : null,
            lastUsedBy: use?.by ?? null,
          };
        }),
      };
    },
  };
}

/**
 * What changed between two sets, in ids, for the SIGHUP log line; null when nothing did. E.g.
 * `own 77aa01fe (was 3f2a9c1b); also accepts 3f2a9c1b`.
 */
export function describeKeyChange(before: KeySet, after: KeySet): string | null {
  const same = before.own === after.own && before.accepted.length === after.accepted.length && before.accepted.every((k, i) => k === after.accepted[i]);
  if (same) return null;
  const own = before.own === after.own ? `own ${keyId(after.own)}` : `own ${keyId(after.own)} (was ${keyId(before.own)})`;
  const accepted = after.accepted.length === 0 ? "accepts no other" : `also accepts ${after.accepted.map(keyId).join(", ")}`;
  const dropped = [before.own, ...before.accepted].filter((k) => k !== after.own && !after.accepted.includes(k));
  return `${own}; ${accepted}${dropped.length > 0 ? `; no longer accepts ${dropped.map(keyId).join(", ")}` : ""}`;
}

/** A daemon's two rings: its cluster keys and its API tokens. */
export interface Credentials {
  clusterKeys: KeyRing;
  apiTokens: KeyRing;
}

/** The settings they come from (an agent's or a hub's config). */
export interface CredentialSettings {
  mesh: { secret: string; acceptedSecrets: readonly string[] };
  api: { token: string; acceptedTokens: readonly string[] };
}

export function createCredentials(c: CredentialSettings, deps: { nowMs?: () => number } = {}): Credentials {
  return {
    clusterKeys: createKeyRing({ own: c.mesh.secret, accepted: c.mesh.acceptedSecrets }, deps),
    apiTokens: createKeyRing({ own: c.api.token, accepted: c.api.acceptedTokens }, deps),
  };
}

export const credentialsStatus = (c: Credentials): CredentialsStatus => ({ clusterKeys: c.clusterKeys.status(), apiTokens: c.apiTokens.status() });

/**
 * SIGHUP: takes the keys and tokens of a config read again, and logs what changed, by key id; says
 * whether anything did. Sessions already up (peers, hubs, signed-in WebSockets) stay up; the next
 * handshake or request is checked against the new set.
 */
export function applyCredentials(c: Credentials, next: CredentialSettings, log: Logger): boolean {
  const keys = describeKeyChange(c.clusterKeys.current(), keySet(next.mesh.secret, next.mesh.acceptedSecrets));
  const tokens = describeKeyChange(c.apiTokens.current(), keySet(next.api.token, next.api.acceptedTokens));
  c.clusterKeys.set({ own: next.mesh.secret, accepted: next.mesh.acceptedSecrets });
  c.apiTokens.set({ own: next.api.token, accepted: next.api.acceptedTokens });
  const up = "sessions already up stay up";
  if (keys !== null) log.info({ clusterKeys: keys }, `SIGHUP: cluster keys applied: ${keys} (${up}; new handshakes use these)`);
  if (tokens !== null) log.info({ apiTokens: tokens }, `SIGHUP: API tokens applied: ${tokens} (${up}; new requests and sign-ins use these)`);
  return keys !== null || tokens !== null;
}
