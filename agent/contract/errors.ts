/**
 * JSON-RPC error codes. The standard ones (-32700..-32600) keep their meaning; locmesh's own live
 * in -32000..-32099, the range JSON-RPC 2.0 reserves for implementation-defined server errors.
 */
export const ErrorCode = {
  ParseError: -32700,
  InvalidRequest: -32600,
  MethodNotFound: -32601,
  InvalidParams: -32602,
  InternalError: -32603,
  /** Retry later: the journal is busy or full, or a downstream writer is failing. */
  TemporaryFailure: -32001,
  /** Missing or wrong credentials; reconnecting with the same ones will not help. */
  Unauthorized: -32010,
  /** The peer speaks an incompatible protocol version. */
  ProtocolMismatch: -32011,
  /** The method needs a completed hello/sign-in first. */
  NotReady: -32012,
  /** Too many wrong credentials from this address: wait `data.retryAfterSeconds` before trying again. */
  TooManyAttempts: -32013,
  /** The thing asked for does not exist. */
  NotFound: -32020,
  /**
   * The record is not as the call's precondition says (alias.set `ifAbsent` or `expectTarget`): it
   * exists already, or changed meanwhile. `data` holds what it is now; read it again and decide.
   */
  Conflict: -32021,
  /** The message is larger than the configured limit. */
  TooLarge: -32030,
  /**
   * This node's journal is behind what its peers hold of its own changes (restored from an older
   * copy, or it lost its last commits): it takes no writes until started afresh with an empty
   * journal, since a change made now would be thrown away then. `data` is the JournalBehindInfo.
   * Make the change on another node.
   */
  JournalBehind: -32040,
} as const;

export type ErrorCodeValue = (typeof ErrorCode)[keyof typeof ErrorCode];

/** A protocol failure as it crosses the wire. `data` carries machine-readable details. */
export class RpcError extends Error {
  override readonly name = "RpcError";
  constructor(
    readonly code: number,
    message: string,
    readonly data?: unknown,
  ) {
    super(message);
  }

  get transient(): boolean {
    return this.code === ErrorCode.TemporaryFailure;
  }
}
