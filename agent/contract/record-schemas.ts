/**
 * The wire contract's shared pieces: the schemas of a record, a change and a version vector, and of
 * the fields they are made of (bounded text, SIP URIs, AoRs, node and replica ids), which the peer
 * protocol (protocol.ts) and the local API (api-protocol.ts) both check their params with.
 * No Node imports here: the web UI imports this file.
 */
import { z } from "zod";
import { NODE_ID_RE, REPLICA_ID_RE } from "./ids.js";
import { LIMITS, checkSipUri, checkSocket, normalizeAor, unstorable } from "./sip-uri.js";
import type { Change, VersionVector } from "./records.js";

/** A stored text field: bounded, and only what Kamailio can hold as it is (sip-uri.ts unstorable). */
export const text = (max: number) =>
  z.string().max(max).superRefine((v, ctx) => {
    const problem = unstorable(v);
    if (problem) ctx.addIssue({ code: "custom", message: problem });
  });
export const uint32 = z.number().int().min(0).max(4294967295);
export const nodeId = z
  .string()
  .regex(NODE_ID_RE, "node ids are 1-63 letters, digits, '.', '_' or '-'");
export const replicaId = z.string().regex(REPLICA_ID_RE, "not a replica id");

export const sipUri = z.string().superRefine((v, ctx) => {
  const problem = checkSipUri(v);
  if (problem) ctx.addIssue({ code: "custom", message: `SIP URI ${JSON.stringify(v.slice(0, 80))} ${problem}` });
});

export const aor = z.string().transform((v, ctx) => {
  const r = normalizeAor(v);
  if ("error" in r) {
    ctx.addIssue({ code: "custom", message: `AoR ${JSON.stringify(v.slice(0, 80))} ${r.error}` });
    return z.NEVER;
  }
  return r.aor;
});

export const socketText = z.string().superRefine((v, ctx) => {
  const problem = checkSocket(v);
  if (problem) ctx.addIssue({ code: "custom", message: `socket ${JSON.stringify(v.slice(0, 80))} ${problem}` });
});

export const bindingValueSchema = z.strictObject({
  expires: z.number().int().min(0).max(2 ** 40),
  q: z.number().min(-1).max(1),
  path: text(LIMITS.path),
  received: text(LIMITS.received),
  socket: socketText,
  callid: text(LIMITS.callid),
  cseq: uint32,
  userAgent: text(LIMITS.userAgent),
  flags: uint32,
  cflags: uint32,
  methods: uint32,
  instance: text(LIMITS.instance),
  regId: uint32,
  owner: nodeId,
  ruid: text(64),
});

export const aliasValueSchema = z.strictObject({ target: sipUri });

const changeBase = {
  hlc: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
  origin: replicaId,
  seq: z.number().int().min(1).max(Number.MAX_SAFE_INTEGER),
};

const locRecord = { kind: z.literal("loc"), key: aor, sub: sipUri, value: bindingValueSchema.nullable() };
const aliasRecord = { kind: z.literal("alias"), key: aor, sub: z.literal(""), value: aliasValueSchema.nullable() };

/**
 * A change without its version (kind, key, sub, value): what a peer checks of a record. Told apart
 * by `kind`, so a refusal names the field and value at fault ("key: AoR "alice" must look like
 * user@domain…") rather than a plain union's "Invalid input".
 */
export const recordSchema = z.discriminatedUnion("kind", [z.strictObject(locRecord), z.strictObject(aliasRecord)]);

export const changeSchema: z.ZodType<Change> = z.discriminatedUnion("kind", [
  z.strictObject({ ...locRecord, ...changeBase }),
  z.strictObject({ ...aliasRecord, ...changeBase }),
]) as z.ZodType<Change>;

export const versionVectorSchema: z.ZodType<VersionVector> = z
  .record(replicaId, z.number().int().min(0).max(Number.MAX_SAFE_INTEGER))
  .refine((v) => Object.keys(v).length <= 10_000, "version vector has too many origins");
