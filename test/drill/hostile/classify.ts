/**
 * What the agent must do with a fuzzed frame, decided before it is sent, from the wire contract
 * (agent/contract/protocol.ts and api-protocol.ts schemas, and JSON-RPC 2.0 itself), not from the agent's code:
 * how many answers it owes, which answers may be results (a well-formed read), and whether the
 * frame would legitimately change state (a well-formed write: such mutants are not sent, so any
 * change of state during the fuzz is a bug).
 */
import { z } from "zod";
import { PEER_PARAMS, PeerMethod } from "../../../agent/contract/protocol.js";
import { API_PARAMS, ApiMethod } from "../../../agent/contract/api-protocol.js";
import { MAX_BATCH } from "../../../agent/rpc/server.js";

/** Where a frame goes: the peer port before or after authenticating, or the local API. */
export type Surface = "peer-preauth" | "peer" | "api";

type Id = string | number | null;

export interface FrameVerdict {
  /** Response objects the agent owes (a batch answer counts each element). */
  answers: number;
  /** Ids of well-formed reads: their answers may be results. */
  readIds: Id[];
  /** Ids of every request in the frame, well-formed or not. */
  ids: Id[];
  /** Not to be sent: a well-formed write, a hello that would end the session, or ids that make answers ambiguous. */
  skip: string | null;
  /** Every request in it is well-formed. */
  valid: boolean;
}

const API_SCHEMAS = new Map<string, z.ZodType>(Object.entries(API_PARAMS));
const API_READS = new Set<string>([ApiMethod.LocationLookup, ApiMethod.LocationList, ApiMethod.AliasList, ApiMethod.ClusterStatus, ApiMethod.AuthLogin]);

const PEER_SCHEMAS = new Map<string, z.ZodType>(Object.entries(PEER_PARAMS));

const isId = (v: unknown): v is Id => v === null || typeof v === "string" || typeof v === "number";
const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);
const isResponse = (v: unknown): boolean => isObject(v) && v["jsonrpc"] === "2.0" && v["id"] !== undefined && (v["result"] !== undefined || v["error"] !== undefined);

interface One {
  answers: number;
  id: Id | undefined;
  read: boolean;
  valid: boolean;
  skip: string | null;
}

function one(x: unknown, surface: Surface): One {
  const bad = (answers: number, id: Id | undefined = undefined): One => ({ answers, id, read: false, valid: false, skip: null });
  if (!isObject(x)) return bad(1);
  const id = x["id"];
  if (id !== undefined && !isId(id)) return bad(1);
  if (x["jsonrpc"] !== "2.0" || typeof x["method"] !== "string" || x["result"] !== undefined || x["error"] !== undefined) return bad(1, id);
  const owed = id === undefined ? 0 : 1;
  const params = x["params"];
  if (params !== undefined && (typeof params !== "object" || params === null)) return bad(owed, id);
  const method = x["method"];
  const schema = (surface === "api" ? API_SCHEMAS : PEER_SCHEMAS).get(method);
  if (!schema || !schema.safeParse(params ?? {}).success) return bad(owed, id);
  if (surface === "api") {
    if (API_READS.has(method)) return { answers: owed, id, read: true, valid: true, skip: null };
    return { answers: owed, id, read: false, valid: true, skip: `well-formed ${method}` };
  }
  if (surface === "peer-preauth") {
    // Before authentication every method but hello is refused; a well-formed hello with a wrong
    // proof is refused too and ends the connection, so it is not sent in the middle of a stream.
    if (method === PeerMethod.Hello) return { answers: owed, id, read: false, valid: false, skip: "schema-valid hello" };
    return bad(owed, id);
  }
  if (method === PeerMethod.Batch) return { answers: owed, id, read: false, valid: true, skip: "well-formed repl.batch" };
  if (method === PeerMethod.Pull || method === PeerMethod.Status) return { answers: owed, id, read: true, valid: true, skip: null };
  return bad(owed, id); // hello and challenge once authenticated
}

/** What the agent must do with `text` sent on `surface`. */
export function classifyFrame(text: string, surface: Surface): FrameVerdict {
  let payload: unknown;
  try {
    payload = JSON.parse(text);
  } catch {
    return { answers: 1, readIds: [], ids: [], skip: null, valid: false };
  }
  // `null` is valid JSON, but nothing to serve: the agent answers a parse error.
  if (payload === null) return { answers: 1, readIds: [], ids: [], skip: null, valid: false };
  const peer = surface !== "api";
  if (peer && (isResponse(payload) || (Array.isArray(payload) && payload.length > 0 && payload.every(isResponse)))) {
    return { answers: 0, readIds: [], ids: [], skip: null, valid: false };
  }
  if (!Array.isArray(payload)) return verdictOf([one(payload, surface)]);
  if (payload.length === 0 || payload.length > MAX_BATCH) return { answers: 1, readIds: [], ids: [], skip: null, valid: false };
  return verdictOf(payload.map((x) => one(x, surface)));
}

function verdictOf(parts: One[]): FrameVerdict {
  const ids = parts.map((p) => p.id).filter((i): i is Id => i !== undefined);
  const readIds = parts.filter((p) => p.read && p.id !== undefined).map((p) => p.id as Id);
  const otherIds = new Set(parts.filter((p) => !p.read).map((p) => p.id));
  let skip = parts.find((p) => p.skip !== null)?.skip ?? null;
  if (skip === null && readIds.some((i) => i === null || otherIds.has(i))) skip = "a well-formed read shares its id";
  return { answers: parts.reduce((s, p) => s + p.answers, 0), readIds, ids, skip, valid: parts.every((p) => p.valid) };
}
