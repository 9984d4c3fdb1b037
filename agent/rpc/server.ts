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
  type JSONRPCErrorResponse,
  type JSONRPCID,
} from "json-rpc-2.0";
import { ZodError, type ZodType } from "zod";
import { ErrorCode, RpcError } from "../contract/errors.js";
import { isTransient } from "../core/transient.js";
import type { Logger } from "../ops/logger.js";

export function describeZodError(err: ZodError): string {
  return err.issues
    .slice(0, 10)
    .map((i) => (i.path.length > 0 ? `${i.path.join(".")}: ${i.message}` : i.message))
    .join("; ");
}

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

export interface RpcServer<Ctx> {
  readonly server: JSONRPCServer<Ctx>;
  method<S extends ZodType, R>(name: string, schema: S, handler: (params: import("zod").output<S>, ctx: Ctx) => R | Promise<R>): void;
}

export function createRpcServer<Ctx>(deps: { log: Logger; onError?: (code: number, method: string) => void }): RpcServer<Ctx> {
  const server = new JSONRPCServer<Ctx>({ errorListener: () => undefined });
  server.mapErrorToJSONRPCErrorResponse = (id: JSONRPCID, error: unknown): JSONRPCErrorResponse => {
    const e = toRpcError(error);
    if (e.code === ErrorCode.InternalError) deps.log.error({ err: error }, "request failed");
    return createJSONRPCErrorResponse(id, e.code, e.message, e.data);
  };
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
  return {
    server,
    method(name, schema, handler) {
      server.addMethod(name, async (params, ctx) => {
        const parsed = schema.parse(params ?? {});
        return handler(parsed, ctx);
      });
    },
  };
}

/** Parses one incoming text frame; null means it was not JSON (answer with a parse error). */
export function parseFrame(text: string): unknown | null {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return null;
  }
}

export const parseErrorResponse = (): JSONRPCErrorResponse =>
  createJSONRPCErrorResponse(null, ErrorCode.ParseError, "parse error: the message is not valid JSON");
