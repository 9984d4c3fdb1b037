/**
 * Mutual challenge-response authentication for peer connections. The cluster key never crosses the
 * wire: each side proves it holds the key by MACing the other side's fresh nonce, so a recorded
 * handshake is useless on any later connection (no replay), and a peer that cannot answer the
 * client's nonce is not trusted either.
 *
 * While a key is rotated a node accepts several (ops/key-ring.ts): the client proves itself with
 * its own key, the server finds which of its keys made that proof (keyOfClientProof) and answers
 * with a proof made with the same key, the one key the client is sure to hold. So a node that
 * holds only the old key as its own and one that holds only the new one still authenticate each
 * other, as long as each accepts the other's.
 */
import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";

export const newNonce = (): string => randomBytes(16).toString("hex");

function mac(secret: string, parts: readonly string[]): string {
  return createHmac("sha256", secret).update(["locmesh-peer-auth-v1", ...parts].join("\n")).digest("hex");
}

export interface HandshakeIds {
  clientId: string;
  serverId: string;
  clientNonce: string;
  serverNonce: string;
}

/** What the dialing node sends to prove itself. */
export const clientProof = (secret: string, h: HandshakeIds): string =>
  mac(secret, ["client", h.clientId, h.serverId, h.serverNonce, h.clientNonce]);

/** What the accepting node answers to prove itself. */
export const serverProof = (secret: string, h: HandshakeIds): string =>
  mac(secret, ["server", h.serverId, h.clientId, h.clientNonce, h.serverNonce]);

/**
 * Which of `keys` made `given`, a client's proof over `h`; null when none did. Every key is
 * compared (in constant time), so how long this takes does not tell which one matched.
 */
export function keyOfClientProof(keys: readonly string[], h: HandshakeIds, given: string): string | null {
  let found: string | null = null;
  for (const key of keys) if (proofMatches(clientProof(key, h), given) && found === null) found = key;
  return found;
}

export function proofMatches(expected: string, given: string): boolean {
  const a = Buffer.from(expected, "hex");
  const b = Buffer.from(given, "hex");
  return a.length === b.length && a.length > 0 && timingSafeEqual(a, b);
}
