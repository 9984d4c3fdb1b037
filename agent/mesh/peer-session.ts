/**
 * One authenticated, bidirectional replication session with a peer over any message transport.
 *
 * After the handshake both sides are symmetric:
 * - a push pump (push-pump.ts) streams this replica's own changes to the peer;
 * - the peer's batches are applied in arrival order; pulls are served from the journal;
 * - both sides send their version vector every `statusIntervalMs`, which drives lag figures and
 *   relay pulls (see pull-coordinator.ts).
 * Where the pump starts is decided by the peer's version vector from the handshake (peer-handshake.ts),
 * so a peer that was away gets exactly what it is missing, and an empty peer gets a snapshot.
 */
import { JSONRPCClient, createJSONRPCErrorResponse, isJSONRPCResponse, type JSONRPCRequest, type JSONRPCResponse } from "json-rpc-2.0";
import type { BatchesNotStored } from "../contract/cluster-status.js";
import { ErrorCode, RpcError } from "../contract/errors.js";
import { PEER_PARAMS, PeerMethod, pullResult, type BatchResult, type PullParams, type PullResult } from "../contract/protocol.js";
import { hlcToMillis, type Change, type VersionVector } from "../contract/records.js";
import { servePull } from "../core/outbound.js";
import type { Replica } from "../core/replica.js";
import { InvalidBatchError } from "../core/store.js";
import { changesAhead, isEmptyVector } from "../core/version-vector.js";
import type { Logger } from "../ops/logger.js";
import type { Metrics } from "../ops/metrics.js";
import { MAX_BATCH, createRpcServer, parseFrame, type RpcAnswer } from "../rpc/server.js";
import { createBatchesInFlight } from "./batches-in-flight.js";
import { createBatchesNotStored } from "./batches-not-stored.js";
import { fastBatch } from "./fast-batch.js";
import { createHandshake, type HandshakeDeps } from "./peer-handshake.js";
import { REFUSED_RETRY_MS, createPushPump, type PushPump } from "./push-pump.js";
import { arrayFrame, requestFrame } from "./request-frame.js";
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

/** The handshake's (who may peer, with which keys, what to tell of it) are in peer-handshake.ts. */
export interface SessionDeps extends HandshakeDeps {
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
  /** The peer refused a batch of `origin`'s changes for good (batch-refusals.ts); the pump holds that origin back, the session stays up. */
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
  /** The peer's batches this side failed to store since it last stored one (batches-not-stored.ts); null while none failed. */
  batchesNotStored(): BatchesNotStored | null;
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
  const abort = new AbortController();
  const timers: NodeJS.Timeout[] = [];
  let pushPump: PushPump | null = null;
  let deliveryError: string | null = null;
  const notStored = createBatchesNotStored({ nowMs });

  const rpc = createRpcServer<Ctx>({ log, onError: (code) => metrics.rpcErrors.inc({ surface: "peer", code: String(code) }) });
  /** While requests are gathered into one frame (sendTogether): their frames so far. */
  let gathering: (string | Buffer)[] | null = null;
  const client = new JSONRPCClient((req) => {
    const frame = requestFrame(req);
    if (gathering) gathering.push(frame);
    else deps.transport.send(frame);
  });
  /** The requests `make` sends (json-rpc-2.0's client sends as it is asked, synchronously) go as one frame, a JSON-RPC batch. */
  const sendTogether = <T>(make: () => T): T => {
    gathering = [];
    try {
      return make();
    } finally {
      const frames = gathering;
      gathering = null;
      if (frames.length === 1) deps.transport.send(frames[0]!);
      else if (frames.length > 1) deps.transport.send(arrayFrame(frames));
    }
  };
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

  // Requests other than batches are served one after another, in arrival order. Batches must be
  // applied in the order the peer sent them for its version-vector bookkeeping to hold: each is
  // checked and put in the replica's queue as it arrives (serveBatch), and the replica applies its
  // queue in order, those that wait for the journal together in one transaction. So batches that
  // arrive while the journal is busy (a window of them, or a relay's frame of several origins) cost
  // the receiver one commit, not one each.
  let inbound: Promise<void> = Promise.resolve();
  /** Frames holding a batch that wait in `inbound`'s line (those of batches alone until they are queued in the replica). */
  let batchesInLine = 0;
  const inFlight = createBatchesInFlight();

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
    batchesNotStored: () => notStored.current(),
    receive(text) {
      if (ended) return;
      const frame = parseFrame(text);
      if (frame === null) {
        deps.transport.send(JSON.stringify(rpc.parseError()));
        return;
      }
      const payload = frame.json;
      if (isResponseFrame(payload)) {
        client.receive(payload);
        return;
      }
      const answered = (a: RpcAnswer) => {
        if (a !== null && !ended) deps.transport.send(JSON.stringify(a));
      };
      // Batches go to the replica's queue as they arrive, one or a JSON-RPC batch of them
      // (serveBatch); but not before the session is ready, nor past a frame still waiting in line
      // below, so that they stay in the order they came. A hub's first push can come in the same
      // read as the answer to our hello, before we have taken that answer in: the challenge is
      // served in this line and holds it until the session is ready (peer-handshake.ts), so a push
      // behind it waits its turn there and is queued then, as if it had come just after.
      const batches = isBatchRequest(payload) ? [payload] : Array.isArray(payload) && payload.length > 1 && payload.length <= MAX_BATCH && payload.every(isBatchRequest) ? payload : null;
      if (batches) {
        const serve = () =>
          void (Array.isArray(payload)
            ? Promise.all(batches.map(serveBatch)).then((answers) => answered(answers.filter((a): a is JSONRPCResponse => a !== null)))
            : serveBatch(batches[0]!).then(answered));
        if (ready && batchesInLine === 0) return serve();
        batchesInLine++;
        inbound = inbound.then(() => {
          batchesInLine--;
          serve();
        }).catch((err: unknown) => log.error({ err }, "could not serve a peer's batch"));
        return;
      }
      // Everything else is served as a request, one after another: junk gets an Invalid Request answer, not silence.
      const holdsBatch = Array.isArray(payload) && payload.some(isBatchRequest);
      if (holdsBatch) batchesInLine++;
      const answer = inbound.then(() => rpc.receive(payload, { session }));
      inbound = answer.then(answered).catch((err: unknown) => log.error({ err }, "could not answer a peer request")).finally(() => {
        if (holdsBatch) batchesInLine--;
      });
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

  // ---- handshake (peer-handshake.ts) -------------------------------------------------------

  const handshake = createHandshake({
    ...deps, rpc, replica, metrics, nowMs, authTimeoutMs: options.authTimeoutMs ?? 10_000, log: () => log,
    session: {
      peerId: () => peerId, isReady: () => ready, isEnded: () => ended, fail, request, checkedAnswer,
      notify: (method, params) => client.notify(method, params as JSONRPCRequest["params"]),
    },
    admitted: becomeReady,
  });

  /** Admitted by the handshake: the session is ready, and the push pump starts from what the peer holds. */
  function becomeReady(id: string, replicaId: string, vv: VersionVector, mineAtHello: VersionVector) {
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
      sendPush: (batches) => sendTogether(() => batches.map((b) => request<BatchResult>(PeerMethod.Batch, b))),
      isOpen: () => ready && !ended,
      signal: abort.signal,
      onRejected: (reason, batch) => {
        deps.onBatchRefused?.(id, batch.origin, reason, batch.changes);
        // The link's last error in status while the session stays up: what the peer said. The
        // pump holds back that origin only; the link goes on carrying the rest, both ways.
        deliveryError = `batch rejected: ${reason} (${batch.origin}'s later changes wait; tried again every ${REFUSED_RETRY_MS / 1000} s)`;
      },
      onAcknowledged: (origin) => deps.onBatchAcknowledged?.(id, origin),
      onDeliveryError: (error) => (deliveryError = error),
    });
    deps.onReady(session);
    pushPump.wake();
  }

  const requireReady = () => {
    if (!ready) throw new RpcError(ErrorCode.NotReady, "authenticate with auth.hello first");
  };

  // ---- replication -------------------------------------------------------------------------

  /**
   * A peer's batch, applied: checked and put in the replica's queue before this returns (before its
   * first await), so batches are queued in the order they are given here; resolved once stored.
   */
  async function applyBatch(raw: unknown): Promise<BatchResult> {
    requireReady();
    const p = fastBatch(raw) ?? PEER_PARAMS[PeerMethod.Batch].parse(raw);
    metrics.changesReceived.inc({ peer: peerId! }, p.changes.length);
    const outcome = await replica.apply(p, peerId!).catch((err: unknown) => {
      notStored.failed(err);
      if (err instanceof InvalidBatchError) throw new RpcError(ErrorCode.InvalidParams, err.message);
      throw err;
    });
    notStored.stored();
    metrics.changesApplied.inc({ peer: peerId! }, outcome.applied.length);
    // The sender only serves ranges it holds without gaps, so it has at least `upTo`.
    if (p.upTo > (peerVV[p.origin] ?? 0)) peerVV[p.origin] = p.upTo;
    return { have: outcome.have };
  }

  /**
   * One batch request's answer. A resend of a batch still queued or being applied gets the first
   * one's answer (batches-in-flight.ts); any other is applied now (applyBatch).
   */
  function serveBatch(req: BatchRequest): Promise<JSONRPCResponse | null> {
    const range = inFlight.rangeOf(req);
    const first = range === null ? undefined : inFlight.pending(range);
    // A single request's answer is one response (the range comes from one request, not a JSON-RPC batch).
    if (first !== undefined) return first.then((answer) => (answer === null || Array.isArray(answer) ? null : { ...answer, id: req.id }));
    const answer = rpc.answer(req.id, PeerMethod.Batch, applyBatch(req.params));
    if (range !== null) inFlight.track(range, answer);
    return answer;
  }

  // Also served in turn like any other request when it comes in a JSON-RPC batch with other requests.
  rpc.method(PeerMethod.Batch, z.unknown(), applyBatch);

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

  if (deps.role === "server") handshake.challenge();
  return session;
}

/** A repl.batch request (not a notification) that serveBatch takes; anything else goes the general way. */
interface BatchRequest {
  jsonrpc: "2.0";
  method: typeof PeerMethod.Batch;
  id: string | number;
  params: unknown;
}
const isBatchRequest = (x: unknown): x is BatchRequest => {
  if (typeof x !== "object" || x === null || Array.isArray(x)) return false;
  const r = x as Record<string, unknown>;
  return r["jsonrpc"] === "2.0" && r["method"] === PeerMethod.Batch && (typeof r["id"] === "string" || typeof r["id"] === "number") &&
    r["result"] === undefined && r["error"] === undefined;
};

const isResponse = (x: unknown): x is JSONRPCResponse => typeof x === "object" && x !== null && !Array.isArray(x) && isJSONRPCResponse(x);

/** An answer to one of our requests (or a batch of them), as opposed to a request to serve. */
function isResponseFrame(payload: unknown): payload is JSONRPCResponse | JSONRPCResponse[] {
  return isResponse(payload) || (Array.isArray(payload) && payload.length > 0 && payload.every(isResponse));
}
