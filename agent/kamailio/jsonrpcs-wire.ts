/**
 * Kamailio jsonrpcs wire format, shared by the FIFO and datagram clients: request encoding with the
 * guards Kamailio's FIFO reader needs, reply decoding, and the typed errors. No I/O here.
 * Reference: /work/shared/docs/kamailio-5.6.md §1.3 (FIFO protocol), §0 surprises 2, 3 and 14.
 */

/** JSON values Kamailio's RPC scanner can read. Numbers must be finite (surprise 3). */
export type RpcParam = string | number | boolean | null | RpcParam[] | { [key: string]: RpcParam };
export type RpcParams = readonly RpcParam[] | { readonly [key: string]: RpcParam };

export interface CallOptions {
  /** Overrides the client's default timeout, e.g. for a large `ul.dump`. */
  timeoutMs?: number;
  /**
   * The FIFO client stops reading (and drops the rest) once a reply is larger than this, failing
   * the call with KamailioReplyTooLargeError: a `ul.dump` of a table that grew past what the caller
   * planned for must not take the agent's memory with it. Unset: no limit.
   */
  maxReplyBytes?: number;
}

/** What the usrloc wrappers need from a transport; both clients implement it. */
export interface KamailioRpc {
  call<T>(method: string, params?: RpcParams, opts?: CallOptions): Promise<T>;
  close(): Promise<void>;
}

/**
 * The FIFO reader's buffer is 8192 bytes and it gives up once it has read 8191 bytes of one request
 * (jsonrpcs_fifo.c jsonrpc_read_stream: `*lread >= max-1` is checked before the closing brace), so
 * 8190 is the largest request that works; the doc's "8191" is one too many. A larger one leaves its
 * tail in the pipe and spoils later requests (surprise 2).
 */
export const FIFO_MAX_REQUEST_BYTES = 8190;
/** The datagram server reads into a 65456-byte buffer (doc §1.4). */
export const DGRAM_MAX_REQUEST_BYTES = 65456;

/** Kamailio answered with `{error:{code,message}}`. usrloc uses 500/404, never JSON-RPC codes (surprise 14). */
export class KamailioRpcError extends Error {
  override readonly name = "KamailioRpcError";
  /** A fault is Kamailio's considered answer: retrying the same call gives the same fault. */
  readonly transient = false;
  constructor(
    readonly code: number,
    readonly kamailioMessage: string,
    readonly method: string,
  ) {
    super(`Kamailio ${method} failed: ${code} ${kamailioMessage}`);
  }
}

/** The request cannot be sent as given (too large, a non-finite number): fix the caller. */
export class KamailioRequestError extends Error {
  override readonly name = "KamailioRequestError";
  readonly transient = false;
}

/**
 * Kamailio could not be reached or did not answer in time: ENOENT/ENXIO/EAGAIN on the request FIFO,
 * ETIMEDOUT for a missing reply. `code` carries the errno name so isTransient() says yes.
 */
export class KamailioUnavailableError extends Error {
  override readonly name = "KamailioUnavailableError";
  readonly transient = true;
  constructor(
    readonly code: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** A reply was larger than the call's maxReplyBytes; it was read to its end and dropped. */
export class KamailioReplyTooLargeError extends Error {
  override readonly name = "KamailioReplyTooLargeError";
  readonly transient = false;
  constructor(
    readonly method: string,
    readonly maxBytes: number,
  ) {
    super(`Kamailio ${method} answered with more than ${maxBytes} bytes, more than this call takes; the reply was dropped`);
  }
}

/** The reply did not parse or answered another request: the FIFO framing may be broken (surprise 2). */
export class KamailioProtocolError extends Error {
  override readonly name = "KamailioProtocolError";
  readonly transient = true;
}

/**
 * Encodes one request. `replyName` is the FIFO's extra top-level field; the datagram transport has none.
 *
 * Kamailio's FIFO reader finds the end of a request by counting braces outside strings, and it
 * treats any quote preceded by a backslash as escaped. A string ending in a backslash is encoded
 * `"...\\"`, so the reader misses the closing quote and the stream loses its framing (surprise 2).
 * JSON also allows `\u005c` for a backslash, which Kamailio's parser decodes to the same byte, so
 * every escaped backslash is rewritten that way: the value arrives unchanged and the reader never
 * sees `\\` before a quote. A left-to-right scan of `\\` pairs is safe because outside strings JSON
 * has no backslashes and every escape is a backslash plus one character.
 */
export function encodeRequest(req: { method: string; params?: RpcParams; id: number; replyName?: string }, maxBytes: number): Buffer {
  if (req.params !== undefined) assertFiniteNumbers(req.params, req.method);
  const body: Record<string, unknown> = { jsonrpc: "2.0", method: req.method };
  if (req.params !== undefined) body["params"] = req.params;
  if (req.replyName !== undefined) body["reply_name"] = req.replyName;
  body["id"] = req.id;
  const text = JSON.stringify(body).replace(/\\\\/g, "\\u005c");
  const buf = Buffer.from(text, "utf8");
  if (buf.length > maxBytes) {
    throw new KamailioRequestError(
      `Kamailio ${req.method} request is ${buf.length} bytes; this transport takes at most ${maxBytes} ` +
        `(kamailio-5.6.md surprise 2: a larger request breaks the FIFO stream). Split it into smaller calls.`,
    );
  }
  return buf;
}

function assertFiniteNumbers(value: unknown, method: string): void {
  if (typeof value === "number") {
    // JSON.stringify turns NaN/Infinity into null, which Kamailio silently reads as 0 (surprise 3).
    if (!Number.isFinite(value)) throw new KamailioRequestError(`Kamailio ${method}: parameter ${value} is not a finite number`);
  } else if (Array.isArray(value)) {
    for (const v of value) assertFiniteNumbers(v, method);
  } else if (value !== null && typeof value === "object") {
    for (const v of Object.values(value)) assertFiniteNumbers(v, method);
  }
}

export interface JsonRpcReply {
  id?: unknown;
  result?: unknown;
  error?: { code?: unknown; message?: unknown };
}

/** Parses one reply body; throws KamailioProtocolError when it is not a JSON object. */
export function parseReply(body: string, method: string): JsonRpcReply {
  let msg: unknown;
  try {
    msg = JSON.parse(body);
  } catch (err) {
    throw new KamailioProtocolError(`Kamailio ${method}: reply is not JSON (${body.length} bytes): ${body.slice(0, 120)}`, { cause: err });
  }
  if (msg === null || typeof msg !== "object" || Array.isArray(msg)) throw new KamailioProtocolError(`Kamailio ${method}: reply is not an object`);
  return msg as JsonRpcReply;
}

/** The result of a reply to request `expectId`, or the typed error it carries. */
export function resultOf<T>(reply: JsonRpcReply, expectId: number, method: string): T {
  if (reply.id !== expectId) {
    throw new KamailioProtocolError(`Kamailio ${method}: reply id ${String(reply.id)} does not match request id ${expectId}`);
  }
  if (reply.error !== undefined) {
    const code = typeof reply.error.code === "number" ? reply.error.code : 500;
    throw new KamailioRpcError(code, String(reply.error.message ?? "no message"), method);
  }
  return reply.result as T;
}

export function decodeReply<T>(body: string, expectId: number, method: string): T {
  return resultOf<T>(parseReply(body, method), expectId, method);
}
