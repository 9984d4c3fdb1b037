/**
 * One authenticated, bidirectional replication session with a peer over any message transport.
 *
 * After the handshake both sides are symmetric:
 * - a push pump (push-pump.ts) streams this replica's own changes to the peer;
 * - the peer's batches are applied in arrival order; pulls are served from the journal;
 * - both sides send their version vector every `statusIntervalMs`, which drives lag figures and
 *   relay pulls (see pull-coordinator.ts).
 * Where the pump starts is decided by the peer's version vector from the handshake, so a peer that
 * was away gets exactly what it is missing, and an empty peer gets a snapshot.
 */
import { JSONRPCClient, createJSONRPCErrorResponse, isJSONRPCResponse, type JSONRPCRequest, type JSONRPCResponse } from "json-rpc-2.0";
import { ErrorCode, RpcError } from "../contract/errors.js";
import {
  JOURNAL_BEHIND_REMEDY, PEER_PARAMS, PROTOCOL_VERSION, PeerMethod, helloResult, pullResult,
  type BatchResult, type HelloResult, type PullParams, type PullResult,
} from "../contract/protocol.js";
import { hlcToMillis, type Change, type VersionVector } from "../contract/records.js";
import { servePull } from "../core/outbound.js";
import type { JournalBehind } from "../core/journal-behind.js";
import type { Replica } from "../core/replica.js";
import { InvalidBatchError } from "../core/store.js";
import { changesAhead, isEmptyVector } from "../core/version-vector.js";
import type { Logger } from "../ops/logger.js";
import type { KeyRing } from "../ops/key-ring.js";
import type { AuthFailureReason, Metrics } from "../ops/metrics.js";
import { createRpcServer, parseErrorResponse, parseFrame, toRpcError } from "../rpc/server.js";
import { clientProof, keyOfClientProof, newNonce, proofMatches, serverProof } from "./auth.js";
import { closeReason } from "./close-reason.js";
import { fastBatch } from "./fast-batch.js";
import { createPushPump, type PushPump } from "./push-pump.js";
import { requestFrame } from "./request-frame.js";
import { z } from "zod";

export interface SessionOptions {
  batchSize: number;
  /**
   * The largest frame a peer takes (its mesh.maxMessageBytes; every node is expected to have the
   * same): batches and pull answers are cut short to fit, whatever batchSize says.
   */
  maxMessageBytes?: number;
  window: number;
  requestTimeoutMs: number;
  statusIntervalMs: number;
  retry: { minMs: number; maxMs: number };
  authTimeoutMs?: number;
  /** Relay (hub) only: gather changes stored within this many ms into one batch per agent. */
  relayLingerMs?: number;
}

export interface Transport {
  /** One text frame; a Buffer holds its UTF-8 bytes. */
  send(frame: string | Buffer): void;
  close(code: number, reason: string): void;
  readonly remote: string;
}

export interface SessionDeps {
  role: "client" | "server";
  nodeId: string;
  /** The cluster keys, read at each handshake: a client proves itself with `own`, a server takes a proof made with any of them. */
  keys: Pick<KeyRing, "current" | "all">;
  /** For a client: the node id it meant to reach. */
  expectedPeer?: string;
  isAllowed(nodeId: string): boolean;
  /** This side is a hub: push every origin it holds, not only its own changes. */
  relay?: boolean;
  /** The peer is a hub (we dialed it as one): it pushes us every origin, so never pull from it. */
  peerIsHub?: boolean;
  replica: Replica;
  /** Our pending Kamailio writes, reported to the peer with every status. */
  pendingWrites?: () => number;
  transport: Transport;
  log: Logger;
  metrics: Metrics;
  options: SessionOptions;
  nowMs?: () => number;
  onReady(session: PeerSession): void;
  onPeerVector(session: PeerSession): void;
  onClosed(session: PeerSession, reason: string): void;
  /**
   * The journal was found behind what a peer holds of this node's own changes (see becomeReady):
   * true from then on for every session of this process, so that none replicates.
   */
  journalBehind?: Pick<JournalBehind, "isSet" | "set">;
  /** A server-side handshake was refused (wrong key, unknown node id, …, none in time), claiming `nodeId`: logged by the mesh (peer-keys.ts). */
  onAuthFailed?(reason: AuthFailureReason, nodeId: string | null): void;
  /** A server-side handshake succeeded. */
  onAuthenticated?(): void;
  /** A server-side handshake succeeded with `key`, one of `keys` (peer-keys.ts counts and logs it). */
  onPeerKey?(peer: string, key: string): void;
  /** The peer refused a batch of `origin`'s changes for good (batch-refusals.ts); the session then closes (4004). */
  onBatchRefused?(peer: string, origin: string, reason: string, changes: readonly Change[]): void;
  /** The peer acknowledged a batch of `origin`'s changes. */
  onBatchAcknowledged?(peer: string, origin: string): void;
}

export interface PeerSessionStatus {
  behindChanges: number;
  behindSeconds: number;
}

export interface PeerSession {
  readonly role: "client" | "server";
  readonly remote: string;
  readonly peerIsHub: boolean;
  /** Something was stored that the push pump may have to send (a hub learning of another hub's commit). */
  wake(): void;
  peerNodeId(): string | null;
  peerReplicaId(): string | null;
  peerVector(): VersionVector;
  /** What the peer last reported of its pending Kamailio writes. */
  peerPendingWrites(): number | undefined;
  isReady(): boolean;
  /** Why our last batch to the peer failed while it is retried (a hub without its PostgreSQL); null once one is acknowledged. */
  deliveryError(): string | null;
  /** Feed one text frame from the transport. */
  receive(text: string): void;
  /** The transport closed (or failed). */
  closed(reason: string): void;
  /** Ask the peer for what it holds beyond `params.vv` (one batch). */
  pull(params: Omit<PullParams, "count"> & { count?: boolean }): Promise<PullResult>;
  lag(): Promise<PeerSessionStatus>;
  close(code: number, reason: string): void;
}

interface Ctx {
  session: PeerSession;
}

export function createPeerSession(deps: SessionDeps): PeerSession {
  const { replica, options, metrics } = deps;
  const store = replica.store;
  const nowMs = deps.nowMs ?? Date.now;
  let log = deps.log.child({ part: "peer", remote: deps.transport.remote });
  let peerId: string | null = null;
  let peerReplica: string | null = null;
  let peerVV: VersionVector = {};
  let peerPending: number | undefined;
  let ready = false;
  let ended = false;
  const serverNonce = newNonce();
  const abort = new AbortController();
  const timers: NodeJS.Timeout[] = [];
  let pushPump: PushPump | null = null;
  let deliveryError: string | null = null;

  const rpc = createRpcServer<Ctx>({ log, onError: (code) => metrics.rpcErrors.inc({ surface: "peer", code: String(code) }) });
  const client = new JSONRPCClient((req) => deps.transport.send(requestFrame(req)));
  /**
   * A peer's answer, checked as its requests are (the cluster key proves who sent it, not that it
   * is well formed): `fast` returns it when it passes a cheap check, else the schema decides, and
   * an answer that fails says what was wrong.
   */
  const checkedAnswer = <T>(what: string, raw: unknown, fast: (raw: unknown) => T | null, schema: z.ZodType<T>): T => {
    const quick = fast(raw);
    if (quick !== null) return quick;
    const parsed = schema.safeParse(raw);
    if (parsed.success) return parsed.data;
    const issue = parsed.error.issues[0];
    throw new RpcError(ErrorCode.InvalidParams, `${peerId ?? "the peer"} answered ${what} with a malformed result (${issue?.path.join(".") || "result"}: ${issue?.message ?? "invalid"})`);
  };

  const request = <T>(method: string, params: unknown): Promise<T> =>
    client
      .timeout(options.requestTimeoutMs, (id) =>
        createJSONRPCErrorResponse(id, ErrorCode.TemporaryFailure, `no answer to ${method} within ${options.requestTimeoutMs} ms`),
      )
      .request(method, params as JSONRPCRequest["params"]) as Promise<T>;

  // Requests are handled strictly one after another, in arrival order: batches must be applied
  // in the order the peer sent them for its version-vector bookkeeping to hold.
  let inbound: Promise<void> = Promise.resolve();

  const session: PeerSession = {
    role: deps.role,
    remote: deps.transport.remote,
    peerIsHub: deps.peerIsHub ?? false,
    wake: () => pushPump?.nudge(),
    peerNodeId: () => peerId,
    peerReplicaId: () => peerReplica,
    peerVector: () => peerVV,
    peerPendingWrites: () => peerPending,
    isReady: () => ready,
    deliveryError: () => deliveryError,
    receive(text) {
      if (ended) return;
      const payload = parseFrame(text);
      if (payload === null) {
        deps.transport.send(JSON.stringify(parseErrorResponse()));
        return;
      }
      if (isResponseFrame(payload)) {
        client.receive(payload);
        return;
      }
      // Everything else is served as a request: junk gets an Invalid Request answer, not silence.
      inbound = inbound.then(async () => {
        const answer = await rpc.receive(payload, { session });
        if (answer !== null && !ended) deps.transport.send(JSON.stringify(answer));
      }).catch((err: unknown) => log.error({ err }, "could not answer a peer request"));
    },
    closed(reason) {
      if (ended) return;
      ended = true;
      ready = false;
      abort.abort(new Error(`session closed: ${reason}`));
      for (const t of timers) clearInterval(t);
      pushPump?.close();
      client.rejectAllPendingRequests(`connection closed: ${reason}`);
      deps.onClosed(session, reason);
    },
    async pull(params) {
      return checkedAnswer("pull", await request<unknown>(PeerMethod.Pull, { ...params, count: params.count ?? false }), (raw) => {
        // The fast check first: a pull answer can hold thousands of changes.
        const r = raw as { batch?: unknown; remaining?: unknown } | null;
        if (typeof r !== "object" || r === null || Object.keys(r).length !== 2 || !Number.isSafeInteger(r.remaining) || (r.remaining as number) < 0) return null;
        if (r.batch === null) return r as PullResult;
        return fastBatch(r.batch) ? (r as PullResult) : null;
      }, pullResult);
    },
    async lag() {
      const mine = await replica.versionVector();
      const behindChanges = changesAhead(mine, peerVV);
      let oldest: number | null = null;
      for (const [origin, have] of Object.entries(mine)) {
        if (have <= (peerVV[origin] ?? 0)) continue;
        const hlc = await store.firstHlcAfter(origin, peerVV[origin] ?? 0);
        if (hlc !== null && (oldest === null || hlc < oldest)) oldest = hlc;
      }
      const behindSeconds = oldest === null ? 0 : Math.max(0, (nowMs() - hlcToMillis(oldest)) / 1000);
      return { behindChanges, behindSeconds };
    },
    close(code, reason) {
      deps.transport.close(code, reason);
      session.closed(reason);
    },
  };

  const fail = (code: number, reason: string) => {
    session.close(code, reason);
  };

  // ---- handshake ---------------------------------------------------------------------------

  // A reason from the list whose series start at 0 (metrics.ts), so the compiler keeps them in step.
  const unauthorized = (reason: AuthFailureReason, nodeId: string | null): RpcError => {
    metrics.authFailures.inc({ reason });
    deps.onAuthFailed?.(reason, nodeId);
    setTimeout(() => fail(4001, `unauthorized: ${reason}`), 50).unref();
    return new RpcError(ErrorCode.Unauthorized, `unauthorized: ${reason}`);
  };

  async function becomeReady(id: string, replicaId: string, vv: VersionVector, mineAtHello: VersionVector) {
    // A peer holding more of this node's own changes than its journal does means the journal went
    // back in time: restored from an older copy (a VM snapshot, a backup), or its last commits lost
    // (journal.synchronous: normal and a power cut). New changes would then take sequence numbers
    // the cluster already holds for other changes, and neither side would ever get the other's.
    const self = replica.replicaId;
    const have = (await replica.versionVector())[self] ?? 0;
    // The connection may have gone while we looked (the server side gets here a turn after hello).
    if (ended) return;
    if (deps.journalBehind?.isSet()) {
      fail(4010, "journal behind peer: restored or lost commits; see the agent log");
      return;
    }
    if ((vv[self] ?? 0) > have) {
      metrics.journalBehind.set(1);
      log.error(
        { peer: id, peerHolds: vv[self], journalHas: have, replica: self },
        "this node's journal lacks changes of its own that the peer holds: it was restored from an older copy or lost its last commits; " +
          `it replicates with no peer, takes no API writes and writes nothing into its Kamailio until it is started afresh: ${JOURNAL_BEHIND_REMEDY}`,
      );
      deps.journalBehind?.set({ peer: id, peerHolds: vv[self] ?? 0, journalHas: have, at: new Date(nowMs()).toISOString() });
      fail(4010, "journal behind peer: restored or lost commits; see the agent log");
      return;
    }
    peerId = id;
    peerReplica = replicaId;
    peerVV = { ...vv };
    log = log.child({ peer: id });
    ready = true;
    log.info({ replica: replicaId, peerEmpty: isEmptyVector(vv), behind: changesAhead(mineAtHello, vv) }, "peer session ready");
    timers.push(setInterval(() => void sendStatus(), options.statusIntervalMs));
    pushPump = createPushPump({
      replica, peerId: id, peerVector: peerVV, options, log, metrics, nowMs, relay: deps.relay ?? false, peerReplica: replicaId,
      send: (batch) => request<BatchResult>(PeerMethod.Batch, batch),
      isOpen: () => ready && !ended,
      signal: abort.signal,
      onRejected: (reason, batch) => {
        deps.onBatchRefused?.(id, batch.origin, reason, batch.changes);
        // The close reason is the link's last error in status (dialer.ts): what the peer said.
        fail(4004, closeReason(`batch rejected: ${reason}`));
      },
      onAcknowledged: (origin) => deps.onBatchAcknowledged?.(id, origin),
      onDeliveryError: (error) => (deliveryError = error),
    });
    deps.onReady(session);
    pushPump.wake();
  }

  rpc.method(PeerMethod.Challenge, PEER_PARAMS[PeerMethod.Challenge], async (p) => {
    if (deps.role !== "client" || peerId !== null) throw new RpcError(ErrorCode.InvalidRequest, "unexpected challenge");
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
      const res = checkedAnswer("auth.hello", await request<unknown>(PeerMethod.Hello, {
        protocol: PROTOCOL_VERSION, nodeId: deps.nodeId, replicaId: replica.replicaId, nonce: clientNonce,
        mac: clientProof(key, ids), vv: mine,
      }), () => null, helloResult);
      if (res.nodeId !== p.nodeId || !proofMatches(serverProof(key, ids), res.mac)) {
        metrics.authFailures.inc({ reason: "server proof" });
        log.error({ peer: p.nodeId }, "the peer could not prove it holds this node's cluster key; check mesh.secret on both nodes (the peer must hold this node's as its mesh.secret or in mesh.acceptedSecrets)");
        fail(4001, "server proof failed");
        return;
      }
      await becomeReady(p.nodeId, res.replicaId, res.vv, mine);
    } catch (err) {
      const e = toRpcError(err);
      const refused = e.code === ErrorCode.Unauthorized || e.code === ErrorCode.ProtocolMismatch;
      if (e.code === ErrorCode.Unauthorized) log.error({ peer: p.nodeId, reason: e.message }, "the peer refused us; check that it accepts this node's mesh.secret (as its own mesh.secret or in mesh.acceptedSecrets) and that it lists this node");
      else log.warn({ peer: p.nodeId, err: e.message }, "handshake failed");
      // The close reason is what the dialer keeps as the link's last error: say why, not only that.
      fail(4001, closeReason(`${refused ? "refused by" : "handshake failed with"} ${p.nodeId}: ${e.message}`));
    }
  });

  rpc.method(PeerMethod.Hello, PEER_PARAMS[PeerMethod.Hello], async (p) => {
    if (deps.role !== "server" || ready) throw new RpcError(ErrorCode.InvalidRequest, "unexpected hello");
    if (p.protocol !== PROTOCOL_VERSION) {
      fail(4002, "protocol mismatch");
      throw new RpcError(ErrorCode.ProtocolMismatch, `this node speaks protocol ${PROTOCOL_VERSION}, you speak ${p.protocol}; upgrade the older node`);
    }
    if (p.nodeId === deps.nodeId) throw unauthorized("a node cannot peer with itself (duplicate nodeId?)", p.nodeId);
    if (!deps.isAllowed(p.nodeId)) throw unauthorized("unknown node id", p.nodeId);
    if (!p.replicaId.startsWith(`${p.nodeId}~`)) throw unauthorized("replica id does not match node id", p.nodeId);
    const ids = { clientId: p.nodeId, serverId: deps.nodeId, clientNonce: p.nonce, serverNonce };
    const key = keyOfClientProof(deps.keys.all(), ids, p.mac);
    if (key === null) throw unauthorized("wrong key", p.nodeId);
    deps.onAuthenticated?.();
    deps.onPeerKey?.(p.nodeId, key);
    const mine = await replica.versionVector();
    // Ready only after the answer is on the wire: the client must hear it before our first batch.
    setImmediate(() => void becomeReady(p.nodeId, p.replicaId, p.vv, mine));
    return { nodeId: deps.nodeId, replicaId: replica.replicaId, mac: serverProof(key, ids), vv: mine } satisfies HelloResult;
  });

  const requireReady = () => {
    if (!ready) throw new RpcError(ErrorCode.NotReady, "authenticate with auth.hello first");
  };

  // ---- replication -------------------------------------------------------------------------

  rpc.method(PeerMethod.Batch, z.unknown(), async (raw): Promise<BatchResult> => {
    requireReady();
    const p = fastBatch(raw) ?? PEER_PARAMS[PeerMethod.Batch].parse(raw);
    metrics.changesReceived.inc({ peer: peerId! }, p.changes.length);
    const outcome = await replica.apply(p, peerId!).catch((err: unknown) => {
      if (err instanceof InvalidBatchError) throw new RpcError(ErrorCode.InvalidParams, err.message);
      throw err;
    });
    metrics.changesApplied.inc({ peer: peerId! }, outcome.applied.length);
    // The sender only serves ranges it holds without gaps, so it has at least `upTo`.
    if (p.upTo > (peerVV[p.origin] ?? 0)) peerVV[p.origin] = p.upTo;
    return { have: outcome.have };
  });

  rpc.method(PeerMethod.Pull, PEER_PARAMS[PeerMethod.Pull], async (p): Promise<PullResult> => {
    requireReady();
    const res = await servePull(store, p, options.maxMessageBytes);
    if (res.batch) metrics.changesSent.inc({ peer: peerId! }, res.batch.changes.length);
    return res;
  });

  rpc.method(PeerMethod.Status, PEER_PARAMS[PeerMethod.Status], async (p) => {
    requireReady();
    for (const [o, n] of Object.entries(p.vv)) if (n > (peerVV[o] ?? 0)) peerVV[o] = n;
    if (p.pendingWrites !== undefined) peerPending = p.pendingWrites;
    deps.onPeerVector(session);
  });

  async function sendStatus() {
    if (!ready) return;
    try {
      const pendingWrites = deps.pendingWrites?.();
      client.notify(PeerMethod.Status, { vv: await replica.versionVector(), ...(pendingWrites === undefined ? {} : { pendingWrites }) });
    } catch {
      // The transport is closing; the close handler cleans up.
    }
  }

  // ---- start -------------------------------------------------------------------------------

  if (deps.role === "server") {
    client.notify(PeerMethod.Challenge, { protocol: PROTOCOL_VERSION, nodeId: deps.nodeId, nonce: serverNonce });
    const t = setTimeout(() => {
      if (!ready && !ended) {
        metrics.authFailures.inc({ reason: "timeout" });
        deps.onAuthFailed?.("timeout", null);
        fail(4001, "authentication timeout");
      }
    }, options.authTimeoutMs ?? 10_000);
    t.unref();
  }
  return session;
}

const isResponse = (x: unknown): x is JSONRPCResponse => typeof x === "object" && x !== null && !Array.isArray(x) && isJSONRPCResponse(x);

/** An answer to one of our requests (or a batch of them), as opposed to a request to serve. */
function isResponseFrame(payload: unknown): payload is JSONRPCResponse | JSONRPCResponse[] {
  return isResponse(payload) || (Array.isArray(payload) && payload.length > 0 && payload.every(isResponse));
}
