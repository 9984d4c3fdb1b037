/**
 * Mutual challenge-response authentication for peer connections. The cluster key never crosses the
 * wire: each side proves it holds the key by MACing the other side's fresh nonce, so a recorded
 * handshake is useless on any later connection (no replay), and a peer that cannot answer the
 * client's nonce is not trusted either.
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

export function proofMatches(expected: string, given: string): boolean {
  const a = Buffer.from(expected, "hex");
  const b = Buffer.from(given, "hex");
  return a.length === b.length && a.length > 0 && timingSafeEqual(a, b);
}
