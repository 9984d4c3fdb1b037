/**
 * The peer protocol: the methods peers (and hubs) speak to each other, their parameter and result
 * shapes, and their validators. Peers speak JSON-RPC 2.0 over WebSocket. The local API's methods are
 * in api-protocol.ts, what cluster.status reports in cluster-status.ts and kamailio-status.ts, the
 * shared record schemas in record-schemas.ts.
 * No Node imports here: the web UI imports the contract.
 */
import { z } from "zod";
import { changeSchema, nodeId, replicaId, versionVectorSchema } from "./record-schemas.js";

/** Bumped on any incompatible change to the peer protocol. */
export const PROTOCOL_VERSION = 1;

export const PeerMethod = {
  /** server → client notification, first message on a peer connection. */
  Challenge: "auth.challenge",
  /** client → server request: proves the cluster key and exchanges version vectors. */
  Hello: "auth.hello",
  /** a run of one origin's changes; the receiver acks after it is durable. */
  Batch: "repl.batch",
  /** ask a peer for what it holds beyond a version vector (relay catch-up, full resync). */
  Pull: "repl.pull",
  /** periodic notification: the sender's version vector and pending writes. */
  Status: "repl.status",
} as const;

export const challengeParams = z.strictObject({
  protocol: z.number().int(),
  nodeId,
  nonce: z.string().regex(/^[0-9a-f]{32,64}$/),
});
export type ChallengeParams = z.infer<typeof challengeParams>;

export const helloParams = z.strictObject({
  protocol: z.number().int(),
  nodeId,
  replicaId,
  nonce: z.string().regex(/^[0-9a-f]{32,64}$/),
  mac: z.string().regex(/^[0-9a-f]{64}$/),
  vv: versionVectorSchema,
});
export type HelloParams = z.infer<typeof helloParams>;

/** What a server answers to auth.hello; checked by the client like any other peer input. */
export const helloResult = z.strictObject({
  nodeId,
  replicaId,
  mac: z.string().regex(/^[0-9a-f]{64}$/),
  vv: versionVectorSchema,
});
export type HelloResult = z.infer<typeof helloResult>;

/**
 * A run of one origin's changes. `after`..`upTo` is the sequence range the sender covers: every
 * change of `origin` in that range that the sender still holds (superseded versions are skipped).
 * The receiver may raise its version vector to `upTo` only if it already held `after`.
 */
export const batchParams = z.strictObject({
  origin: replicaId,
  after: z.number().int().min(0),
  upTo: z.number().int().min(0),
  changes: z.array(changeSchema).max(5000),
});
export type BatchParams = z.infer<typeof batchParams>;

export interface BatchResult {
  /** The receiver's version-vector entry for the batch's origin after applying it. */
  have: number;
}

export const pullParams = z.strictObject({
  vv: versionVectorSchema,
  limit: z.number().int().min(1).max(5000),
  /** Origins the caller does not want (it gets them directly from their owners). */
  skip: z.array(replicaId).max(10_000).default([]),
  /** Ask for an estimate of how many changes are still to come (costs a count; once per pull run). */
  count: z.boolean().default(false),
});
export type PullParams = z.infer<typeof pullParams>;

export interface PullResult {
  /** Empty when the caller is up to date with everything the sender holds. */
  batch: BatchParams | null;
  /** Changes still to come after this batch (an estimate for progress display). */
  remaining: number;
}

/** A pull's answer, checked by the puller as a pushed batch is checked by its receiver. */
export const pullResult: z.ZodType<PullResult> = z.strictObject({
  batch: batchParams.nullable(),
  remaining: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
});

export const statusParams = z.strictObject({
  vv: versionVectorSchema,
  /** Changes the sender still has to write into its Kamailio (temporary failures show here). */
  pendingWrites: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER).optional(),
});
export type StatusParams = z.infer<typeof statusParams>;

/** Each peer method's params schema: the peer sessions validate with these (agent/mesh/peer-session.ts, peer-handshake.ts). */
export const PEER_PARAMS = {
  [PeerMethod.Challenge]: challengeParams,
  [PeerMethod.Hello]: helloParams,
  [PeerMethod.Batch]: batchParams,
  [PeerMethod.Pull]: pullParams,
  [PeerMethod.Status]: statusParams,
} as const satisfies Record<(typeof PeerMethod)[keyof typeof PeerMethod], z.ZodType>;
