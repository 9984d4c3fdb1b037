/**
 * JSON-RPC plumbing shared by the peer protocol and the local API: methods declare a zod schema,
 * params are validated before the handler runs, and every failure leaves as a JSON-RPC error with
 * a code from contract/errors.ts and a message that says what to do. Internal errors are logged
 * with their stack and answered without it.
 */
import {
  JSONRPCErrorException,
  JSONRPCServer,
  createJSONRPCErrorResponse,
  createJSONRPCSuccessResponse,
  type JSONRPCErrorResponse,
  type JSONRPCID,
  type JSONRPCRequest,
  type JSONRPCResponse,
} from "json-rpc-2.0";
import { ZodError, type ZodType } from "zod";
import { ErrorCode, RpcError } from "../contract/errors.js";
import { isTransient } from "../core/transient.js";
import type { Logger } from "../ops/logger.js";

/**
 * zod's issues as one text per field, "path: what is wrong", at most 10 fields. zod reports some
 * faults twice for one field: an int beyond a field's own bound is also beyond every int's
 * safe-integer range (`.int()` checks that by itself), so `expires: 1e300` came out as "Too big:
 * expected int to be <=9007199254740991" and "Too big: expected number to be <=1099511627776". The
 * field's own bound is what to tell; the same text twice is told once.
 */
export function describeZodError(err: ZodError): string {
  const byField = new Map<string, ZodError["issues"]>();
  for (const i of err.issues) {
    const field = i.path.join(".");
    byField.set(field, [...(byField.get(field) ?? []), i]);
  }
  return [...byField]
    .slice(0, 10)
    .map(([field, issues]) => {
      const own = issues.filter((i) => !(isSafeIntBound(i) && issues.some((o) => o !== i && o.code === i.code)));
      const text = [...new Set(own.map((i) => i.message))].join(", and ");
      return field === "" ? text : `${field}: ${text}`;
    })
    .join("; ");
}

/** zod's own bound on every `.int()`, the safe-integer range (its `origin` is "int"). */
const isSafeIntBound = (i: ZodError["issues"][number]): boolean =>
  (i.code === "too_big" || i.code === "too_small") && i.origin === "int";

/** Maps any thrown value to the RpcError the caller will see. */
export function toRpcError(err: unknown): RpcError {
  if (err instanceof RpcError) return err;
  if (err instanceof ZodError) return new RpcError(ErrorCode.InvalidParams, `invalid params: ${describeZodError(err)}`);
  if (err instanceof JSONRPCErrorException) return new RpcError(err.code, err.message, err.data);
  if (isTransient(err)) {
    const msg = err instanceof Error ? err.message : String(err);
    return new RpcError(ErrorCode.TemporaryFailure, `temporary failure, retry later: ${msg}`);
  }
  return new RpcError(ErrorCode.InternalError, "internal error; see the agent's log");
}

/** Most requests one JSON-RPC batch may carry; they are served one after another. */
export const MAX_BATCH = 100;

export type RpcAnswer = JSONRPCResponse | JSONRPCResponse[] | null;

export interface RpcServer<Ctx> {
  readonly server: JSONRPCServer<Ctx>;
  method<S extends ZodType, R>(name: string, schema: S, handler: (params: import("zod").output<S>, ctx: Ctx) => R | Promise<R>): void;
  /**
   * Serves one parsed frame: a request, a notification or a batch (JSON-RPC 2.0 §4-6), and
   * resolves with the answer to send (null: none). Never rejects. Unlike json-rpc-2.0's own
   * receive, anything that is not a request gets an Invalid Request error rather than a throw
   * (`[null]` threw inside the library, which crashed the agent over WebSocket) or silence; an id
   * that is not a string, number or null is refused, not echoed back; params must be an object or
   * an array when present (§4.2); and a batch holds at most MAX_BATCH requests, served in turn,
   * so one frame cannot start thousands of calls at once.
   */
  receive(payload: unknown, ctx: Ctx): Promise<RpcAnswer>;
  /** The answer to a frame that is not JSON, counted with the other errors (onError). */
  parseError(): JSONRPCErrorResponse;
  /** An Invalid Request answer saying `message` (a frame the transport cannot serve), counted too. */
  invalidRequest(message: string): JSONRPCErrorResponse;
  /**
   * The answer to request `id` of `method`, served by its caller rather than through receive() (the
   * peer session applies batches as they arrive): the result, or the error as receive() would
   * answer it, counted and logged the same way. Never rejects.
   */
  answer(id: JSONRPCID, method: string, result: Promise<unknown>): Promise<JSONRPCResponse>;
}

const isId = (v: unknown): v is JSONRPCID => v === null || typeof v === "string" || typeof v === "number";

const invalidRequest = (id: unknown, message: string): JSONRPCErrorResponse =>
  createJSONRPCErrorResponse(isId(id) ? id : null, ErrorCode.InvalidRequest, `invalid request: ${message}`);

export function createRpcServer<Ctx>(deps: { log: Logger; onError?: (code: number, method: string) => void }): RpcServer<Ctx> {
  const server = new JSONRPCServer<Ctx>({ errorListener: () => undefined });
  const errorResponse = (id: JSONRPCID, error: unknown): JSONRPCErrorResponse => {
    const e = toRpcError(error);
    if (e.code === ErrorCode.InternalError) deps.log.error({ err: error }, "request failed");
    return createJSONRPCErrorResponse(id, e.code, e.message, e.data);
  };
  server.mapErrorToJSONRPCErrorResponse = errorResponse;
  // Handlers and later middleware (the API's sign-in check) fail by throwing; json-rpc-2.0 maps a
  // throw to a response only after the whole chain, so count both shapes here.
  server.applyMiddleware(async (next, request, ctx) => {
    let response;
    try {
      response = await next(request, ctx);
    } catch (err) {
      deps.onError?.(toRpcError(err).code, request.method);
      throw err;
    }
    if (response && "error" in response && response.error) deps.onError?.(response.error.code, request.method);
    return response;
  });
  /** An error answered before any method runs (the middleware above counts the rest). */
  const counted = (r: JSONRPCErrorResponse): JSONRPCErrorResponse => {
    deps.onError?.(r.error.code, "");
    return r;
  };
  const methods = new Set<string>();
  async function receiveOne(x: unknown, ctx: Ctx): Promise<JSONRPCResponse | null> {
    if (typeof x !== "object" || x === null || Array.isArray(x)) return counted(invalidRequest(null, "a request is a JSON object"));
    const r = x as Record<string, unknown>;
    if (r["id"] !== undefined && !isId(r["id"])) return counted(invalidRequest(null, "id must be a string, a number or null"));
    if (r["jsonrpc"] !== "2.0" || typeof r["method"] !== "string" || r["result"] !== undefined || r["error"] !== undefined) {
      return counted(invalidRequest(r["id"], 'a JSON-RPC 2.0 request has "jsonrpc":"2.0" and a string "method"'));
    }
    const params = r["params"];
    if (params !== undefined && (typeof params !== "object" || params === null)) {
      if (r["id"] === undefined) return null; // a notification is never answered (§4.1)
      return counted(createJSONRPCErrorResponse(r["id"] as JSONRPCID, ErrorCode.InvalidParams, "invalid params: params must be an object or an array"));
    }
    const answer = await server.receive(r as unknown as JSONRPCRequest, ctx);
    // Answered after the middleware (the API's sign-in check goes first): an unknown method's error
    // names the methods there are.
    if (answer && "error" in answer && answer.error?.code === ErrorCode.MethodNotFound) {
      return createJSONRPCErrorResponse(answer.id, ErrorCode.MethodNotFound,
        `no method ${JSON.stringify(String(r["method"]).slice(0, 64))}; the methods are ${[...methods].sort().join(", ")}`);
    }
    return answer;
  }

  async function receive(payload: unknown, ctx: Ctx): Promise<RpcAnswer> {
    try {
      if (!Array.isArray(payload)) return await receiveOne(payload, ctx);
      if (payload.length === 0) return counted(invalidRequest(null, "an empty batch"));
      if (payload.length > MAX_BATCH) return counted(invalidRequest(null, `a batch of ${payload.length} requests; send at most ${MAX_BATCH} per batch`));
      const answers: JSONRPCResponse[] = [];
      for (const x of payload) {
        const a = await receiveOne(x, ctx);
        if (a !== null) answers.push(a);
      }
      return answers.length > 0 ? answers : null;
    } catch (err) {
      deps.log.error({ err }, "request failed");
      return createJSONRPCErrorResponse(null, ErrorCode.InternalError, "internal error; see the agent's log");
    }
  }

  return {
    server,
    receive,
    parseError: () => counted(parseErrorResponse()),
    invalidRequest: (message) => counted(invalidRequest(null, message)),
    answer: (id, method, result) =>
      result.then(
        (r) => createJSONRPCSuccessResponse(id, r ?? null),
        (err: unknown) => {
          const response = errorResponse(id, err);
          deps.onError?.(response.error.code, method);
          return response;
        },
      ),
    method(name, schema, handler) {
      methods.add(name);
      server.addMethod(name, async (params, ctx) => {
        const parsed = schema.parse(params ?? {});
        return handler(parsed, ctx);
      });
    },
  };
}

/**
 * Parses one incoming text frame: `{ json }`, or null when it was not JSON (answer with a parse
 * error). A frame that is JSON but no request (`null`, `5`) is JSON all the same: receive() answers
 * it with Invalid Request.
 */
export function parseFrame(text: string): { json: unknown } | null {
  try {
    return { json: JSON.parse(text) as unknown };
  } catch {
    return null;
  }
}

export const parseErrorResponse = (): JSONRPCErrorResponse =>
  createJSONRPCErrorResponse(null, ErrorCode.ParseError, "parse error: the message is not valid JSON");
