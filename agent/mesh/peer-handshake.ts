/**
 * One peer session's handshake: the server sends auth.challenge, the client answers auth.hello with
 * a proof made with its cluster key and the server proves itself back with the same key (auth.ts).
 * Each side checks the protocol version and who the other is; the server gives up on a client that
 * does not finish in time, and counts refusals (the address's limit, metrics). A peer that passes is
 * admitted only if it holds no more of this node's own changes than the journal does; `admitted`
 * then makes the session ready (peer-session.ts).
 */
import { ErrorCode, RpcError } from "../contract/errors.js";
import { PEER_PARAMS, PROTOCOL_VERSION, PeerMethod, helloResult, type HelloResult } from "../contract/protocol.js";
import { JOURNAL_BEHIND_REMEDY } from "../contract/cluster-status.js";
import type { VersionVector } from "../contract/records.js";
import type { JournalBehind } from "../core/journal-behind.js";
import type { Replica } from "../core/replica.js";
import type { KeyRing } from "../ops/key-ring.js";
import type { Logger } from "../ops/logger.js";
import type { AuthFailureReason, Metrics } from "../ops/metrics.js";
import { toRpcError, type RpcServer } from "../rpc/server.js";
import { clientProof, keyOfClientProof, newNonce, proofMatches, serverProof } from "./auth.js";
import { closeReason } from "./close-reason.js";
import type { z } from "zod";

/**
 * What a caller whose proof matched none of this node's keys is told, whatever else was wrong: a
 * key-less scanner cannot tell a listed node id from an unlisted one by it. The node's own log
 * says which (peer-keys.ts).
 */
export const unprovenRefusal = (nodeId: string): string => `wrong key or unknown node id; ${nodeId}'s log says which`;

/** What the node id an unproven caller claimed is to this node: one it takes, one it does not list, or its own. */
export type ClaimedId = "listed" | "unlisted" | "own id";

/** What a session's handshake is told by whoever makes the session (mesh.ts). */
export interface HandshakeDeps {
  role: "client" | "server";
  nodeId: string;
  /** The cluster keys, read at each handshake: a client proves itself with `own`, a server takes a proof made with any of them. */
  keys: Pick<KeyRing, "current" | "all">;
  /** For a client: the node id it meant to reach. */
  expectedPeer?: string;
  isAllowed(nodeId: string): boolean;
  /**
   * The journal was found behind what a peer holds of this node's own changes (see admit):
   * true from then on for every session of this process, so that none replicates.
   */
  journalBehind?: Pick<JournalBehind, "isSet" | "set">;
  /**
   * A server-side handshake was refused (wrong key, unknown node id, …, none in time), claiming
   * `nodeId`: logged by the mesh (peer-keys.ts). For a wrong key, `claim` says what that node id
   * is to this node: the caller was not told, the operator is.
   */
  onAuthFailed?(reason: AuthFailureReason, nodeId: string | null, claim?: ClaimedId): void;
  /** A server-side handshake succeeded. */
  onAuthenticated?(): void;
  /** A server-side handshake succeeded with `key`, one of `keys` (peer-keys.ts counts and logs it). */
  onPeerKey?(peer: string, key: string): void;
}

export interface Handshake {
  /** Server side: send the challenge, and close the session if the client has not authenticated within `authTimeoutMs`. */
  challenge(): void;
}

/** Registers auth.challenge and auth.hello on the session's `rpc`. */
export function createHandshake<Ctx>(deps: HandshakeDeps & {
  rpc: Pick<RpcServer<Ctx>, "method">;
  replica: Replica;
  metrics: Metrics;
  nowMs: () => number;
  authTimeoutMs: number;
  /** The session's logger as it is now. */
  log: () => Logger;
  /** The session's own: where it stands, and its requests to the peer. */
  session: {
    peerId(): string | null;
    isReady(): boolean;
    isEnded(): boolean;
    fail(code: number, reason: string): void;
    request<T>(method: string, params: unknown): Promise<T>;
    notify(method: string, params: unknown): void;
    checkedAnswer<T>(what: string, raw: unknown, fast: (raw: unknown) => T | null, schema: z.ZodType<T>): T;
  };
  admitted(id: string, replicaId: string, vv: VersionVector, mineAtHello: VersionVector): void;
}): Handshake {
  const { replica, metrics, session } = deps;
  const fail = session.fail;
  const serverNonce = newNonce();

  // A reason from the list whose series start at 0 (metrics.ts), so the compiler keeps them in step.
  // `told` is what the caller hears, in the answer and the close frame: the reason itself, unless
  // the caller has not proved it holds a cluster key (see the hello handler).
  const unauthorized = (reason: AuthFailureReason, nodeId: string | null, told: string = reason, claim?: ClaimedId): RpcError => {
    metrics.authFailures.inc({ reason });
    deps.onAuthFailed?.(reason, nodeId, claim);
    setTimeout(() => fail(4001, closeReason(`unauthorized: ${told}`)), 50).unref();
    return new RpcError(ErrorCode.Unauthorized, `unauthorized: ${told}`);
  };

  async function admit(id: string, replicaId: string, vv: VersionVector, mineAtHello: VersionVector) {
    // A peer holding more of this node's own changes than its journal does means the journal went
    // back in time: restored from an older copy (a VM snapshot, a backup), or its last commits lost
    // (journal.synchronous: normal and a power cut). New changes would then take sequence numbers
    // the cluster already holds for other changes, and neither side would ever get the other's.
    const self = replica.replicaId;
    const have = (await replica.versionVector())[self] ?? 0;
    // The connection may have gone while we looked (the server side gets here a turn after hello).
    if (session.isEnded()) return;
    // A SIGHUP may have taken the caller out of this node's lists since its hello was checked: the
    // reload closed the sessions it found ready, and this one was not yet.
    if (deps.role === "server" && !deps.isAllowed(id)) {
      fail(1000, "peer removed from config");
      return;
    }
    if (deps.journalBehind?.isSet()) {
      fail(4010, "journal behind peer: restored or lost commits; see the agent log");
      return;
    }
    if ((vv[self] ?? 0) > have) {
      deps.log().error(
        { peer: id, peerHolds: vv[self], journalHas: have, replica: self },
        "this node's journal lacks changes of its own that the peer holds: it was restored from an older copy or lost its last commits; " +
          `it replicates with no peer, takes no API writes and writes nothing into its Kamailio until it is started afresh: ${JOURNAL_BEHIND_REMEDY}`,
      );
      deps.journalBehind?.set({ peer: id, peerHolds: vv[self] ?? 0, journalHas: have, at: new Date(deps.nowMs()).toISOString() });
      fail(4010, "journal behind peer: restored or lost commits; see the agent log");
      return;
    }
    deps.admitted(id, replicaId, vv, mineAtHello);
  }

  deps.rpc.method(PeerMethod.Challenge, PEER_PARAMS[PeerMethod.Challenge], async (p) => {
    const log = deps.log();
    if (deps.role !== "client" || session.peerId() !== null) throw new RpcError(ErrorCode.InvalidRequest, "unexpected challenge");
    if (p.protocol !== PROTOCOL_VERSION) {
      log.error({ theirs: p.protocol, ours: PROTOCOL_VERSION }, "peer speaks another protocol version; upgrade the older node");
      fail(4002, "protocol mismatch");
      return;
    }
    if (deps.expectedPeer && p.nodeId !== deps.expectedPeer) {
      log.error({ expected: deps.expectedPeer, reached: p.nodeId }, "dialed one node but reached another; check the peer URL");
      fail(4003, "wrong peer");
      return;
    }
    const clientNonce = newNonce();
    const ids = { clientId: deps.nodeId, serverId: p.nodeId, clientNonce, serverNonce: p.nonce };
    // The server answers with the key we prove ourselves with (auth.ts), whatever SIGHUP does meanwhile.
    const key = deps.keys.current().own;
    const mine = await replica.versionVector();
    try {
      const res = session.checkedAnswer("auth.hello", await session.request<unknown>(PeerMethod.Hello, {
        protocol: PROTOCOL_VERSION, nodeId: deps.nodeId, replicaId: replica.replicaId, nonce: clientNonce,
        mac: clientProof(key, ids), vv: mine,
      }), () => null, helloResult);
      if (res.nodeId !== p.nodeId || !proofMatches(serverProof(key, ids), res.mac)) {
        metrics.authFailures.inc({ reason: "server proof" });
        deps.log().error({ peer: p.nodeId }, "the peer could not prove it holds this node's cluster key; check mesh.secret on both nodes (the peer must hold this node's as its mesh.secret or in mesh.acceptedSecrets)");
        fail(4001, "server proof failed");
        return;
      }
      await admit(p.nodeId, res.replicaId, res.vv, mine);
    } catch (err) {
      const e = toRpcError(err);
      const refused = e.code === ErrorCode.Unauthorized || e.code === ErrorCode.ProtocolMismatch;
      if (e.code === ErrorCode.Unauthorized) deps.log().error({ peer: p.nodeId, reason: e.message }, "the peer refused us; check that it accepts this node's mesh.secret (as its own mesh.secret or in mesh.acceptedSecrets) and that it lists this node");
      else deps.log().warn({ peer: p.nodeId, err: e.message }, "handshake failed");
      // The close reason is what the dialer keeps as the link's last error: say why, not only that.
      fail(4001, closeReason(`${refused ? "refused by" : "handshake failed with"} ${p.nodeId}: ${e.message}`));
    }
  });

  deps.rpc.method(PeerMethod.Hello, PEER_PARAMS[PeerMethod.Hello], async (p) => {
    if (deps.role !== "server" || session.isReady()) throw new RpcError(ErrorCode.InvalidRequest, "unexpected hello");
    if (p.protocol !== PROTOCOL_VERSION) {
      fail(4002, "protocol mismatch");
      throw new RpcError(ErrorCode.ProtocolMismatch, `this node speaks protocol ${PROTOCOL_VERSION}, you speak ${p.protocol}; upgrade the older node`);
    }
    // The proof first: until the caller has shown it holds a key this node takes, it is told one
    // text whatever was wrong, so that anyone who can reach the port cannot learn which node ids
    // this node lists, nor make it report a duplicate of itself. The log and the metric keep the
    // reason (README, Security).
    const ids = { clientId: p.nodeId, serverId: deps.nodeId, clientNonce: p.nonce, serverNonce };
    const key = keyOfClientProof(deps.keys.all(), ids, p.mac);
    if (key === null) {
      const claim: ClaimedId = p.nodeId === deps.nodeId ? "own id" : deps.isAllowed(p.nodeId) ? "listed" : "unlisted";
      throw unauthorized("wrong key", p.nodeId, unprovenRefusal(deps.nodeId), claim);
    }
    if (p.nodeId === deps.nodeId) throw unauthorized("a node cannot peer with itself (duplicate nodeId?)", p.nodeId);
    if (!deps.isAllowed(p.nodeId)) throw unauthorized("unknown node id", p.nodeId);
    if (!p.replicaId.startsWith(`${p.nodeId}~`)) throw unauthorized("replica id does not match node id", p.nodeId);
    deps.onAuthenticated?.();
    deps.onPeerKey?.(p.nodeId, key);
    const mine = await replica.versionVector();
    // Ready only after the answer is on the wire: the client must hear it before our first batch.
    setImmediate(() => void admit(p.nodeId, p.replicaId, p.vv, mine));
    return { nodeId: deps.nodeId, replicaId: replica.replicaId, mac: serverProof(key, ids), vv: mine } satisfies HelloResult;
  });

  return {
    challenge() {
      session.notify(PeerMethod.Challenge, { protocol: PROTOCOL_VERSION, nodeId: deps.nodeId, nonce: serverNonce });
      const t = setTimeout(() => {
        if (!session.isReady() && !session.isEnded()) {
          metrics.authFailures.inc({ reason: "timeout" });
          deps.onAuthFailed?.("timeout", null);
          fail(4001, "authentication timeout");
        }
      }, deps.authTimeoutMs);
      t.unref();
    },
  };
}
