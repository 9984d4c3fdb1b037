/**
 * The CLI's client for the agent's local API: JSON-RPC 2.0 over HTTP POST to `<url>/rpc`
 * (https://www.jsonrpc.org/specification). Failures become errors whose message tells the operator
 * what to check, since they are printed as-is.
 */
import { ApiMethod } from "../contract/api-protocol.js";
import { ErrorCode, RpcError } from "../contract/errors.js";
import { cellText } from "./table.js";

export interface ApiClient {
  /** `timeoutMs` overrides the client's for this call (a method that waits for Kamailio's ul.dump). */
  call<T>(method: string, params?: unknown, opts?: { timeoutMs?: number }): Promise<T>;
  /** Aborts requests still in flight; the client must not be used afterwards. */
  close(): void;
}

export interface ApiClientOptions {
  url: string;
  token: string;
  timeoutMs?: number;
}

const TOKEN_HINT = "check --token, LOCMESH_API_TOKEN or api.token in the agent's (or hub's) config";
/** The client talks to agents and hubs alike (the same local API); nothing it gets before an answer says which. */
const NODE = "the locmesh agent or hub";

export function createApiClient(opts: ApiClientOptions): ApiClient {
  const base = opts.url.replace(/\/+$/, "");
  const inFlight = new Set<AbortController>();
  let nextId = 1;
  let closed = false;

  async function call<T>(method: string, params?: unknown, callOpts?: { timeoutMs?: number }): Promise<T> {
    if (closed) throw new Error("the API client is closed");
    const timeoutMs = callOpts?.timeoutMs ?? opts.timeoutMs ?? 10_000;
    const id = nextId++;
    const ctl = new AbortController();
    // One timer per request rather than AbortSignal.any, which Node 20.0-20.2 lack.
    const timer = setTimeout(() => ctl.abort(new TimeoutError()), timeoutMs);
    inFlight.add(ctl);
    try {
      let res: Response;
      try {
        res = await fetch(`${base}/rpc`, {
          method: "POST",
          headers: { "content-type": "application/json", authorization: `Bearer ${opts.token}` },
          body: JSON.stringify({ jsonrpc: "2.0", id, method, ...(params === undefined ? {} : { params }) }),
          signal: ctl.signal,
        });
      } catch (err) {
        throw transportError(err, ctl.signal, base, method, params, timeoutMs);
      }
      const text = await res.text().catch((err: unknown) => {
        throw transportError(err, ctl.signal, base, method, params, timeoutMs);
      });
      return parseResponse<T>(res.status, text, base, id);
    } finally {
      clearTimeout(timer);
      inFlight.delete(ctl);
    }
  }

  return {
    call,
    close() {
      closed = true;
      for (const ctl of inFlight) ctl.abort(new Error("the API client was closed"));
      inFlight.clear();
    },
  };
}

class TimeoutError extends Error {}

/** The agent could not be reached, or did not answer in time (exit code 3). */
export class AgentUnreachableError extends Error {
  override readonly name = "AgentUnreachableError";
}

/**
 * The methods that change what the agent holds or start a run on it (api-protocol.ts ApiMethod):
 * how to see whether one took effect, from its params. auth.login and changes.subscribe change
 * only the WebSocket they come on; the other methods only read.
 */
const WRITES: ReadonlyMap<string, (params: unknown) => string> = new Map([
  [ApiMethod.AliasSet, (p: unknown) => `locmesh alias show ${field(p, "alias") ?? "<alias>"}`],
  [ApiMethod.AliasRemove, (p: unknown) => `locmesh alias show ${field(p, "alias") ?? "<alias>"}`],
  [ApiMethod.LocationPublish, (p: unknown) => `locmesh location show ${publishedAor(p) ?? "<aor>"}`],
  [ApiMethod.ClusterResync, () => "locmesh status"],
  [ApiMethod.KamailioReload, () => "locmesh status"],
]);

const member = (o: unknown, key: string): unknown => (o && typeof o === "object" ? (o as Record<string, unknown>)[key] : undefined);
const field = (o: unknown, key: string): string | undefined => {
  const v = member(o, key);
  return typeof v === "string" ? v : undefined;
};
/** The AoR of a publish's first edit (the CLI's commands send one). */
const publishedAor = (p: unknown): string | undefined => {
  const edits = member(p, "edits");
  const edit: unknown = Array.isArray(edits) ? edits[0] : undefined;
  return field(edit, "aor") ?? field(member(edit, "binding"), "aor");
};

/** Where to see whether `method` (a write) took effect; `locmesh status` for the rest. */
const howToCheck = (method: string, params: unknown) => `\`${WRITES.get(method)?.(params) ?? "locmesh status"}\``;

function transportError(err: unknown, signal: AbortSignal, url: string, method: string, params: unknown, timeoutMs: number): Error {
  if (signal.aborted && signal.reason instanceof TimeoutError) {
    // A write that timed out may still be applied: an agent paused or slow carries it out once it
    // goes on (an alias add timed out, the agent resumed, and the alias was set). "Stuck" alone
    // read as not done.
    if (WRITES.has(method)) {
      return new AgentUnreachableError(
        `${NODE} at ${url} did not answer ${method} within ${timeoutMs} ms (overloaded or stuck? see its log): whether it took effect is unknown; check once it answers (${howToCheck(method, params)})`,
        { cause: err },
      );
    }
    return new AgentUnreachableError(`${NODE} at ${url} did not answer ${method} within ${timeoutMs} ms; it may be overloaded or stuck (see its log)`, { cause: err });
  }
  if (signal.aborted) return signal.reason instanceof Error ? signal.reason : new Error(String(signal.reason));
  const code = errorCode(err);
  // The request went out and the connection then broke: unlike a refused connection, the call
  // may have run (an agent killed or stopping mid-call, a proxy that dropped it).
  if (code !== undefined && CUT_CODES.has(code)) {
    return new AgentUnreachableError(
      `the connection to ${NODE} at ${url} broke before ${method} was answered (${code}; the agent stopped or restarted?): whether it took effect is unknown; check once it answers (${howToCheck(method, params)})`,
      { cause: err },
    );
  }
  return new AgentUnreachableError(
    `${NODE} is not reachable at ${url}${code ? ` (${code})` : ""}: is \`locmesh agent\` (or \`locmesh hub\`) running (\`locmesh check\`, or \`locmesh hub check\`, says what keeps one from starting), and is --url (or LOCMESH_API_URL) its API address?`,
    { cause: err },
  );
}

/** Socket errors after the connection was made (undici's own for a server that closed it mid-answer). */
const CUT_CODES = new Set(["ECONNRESET", "EPIPE", "UND_ERR_SOCKET", "UND_ERR_CLOSED"]);

/** fetch wraps socket errors: TypeError("fetch failed") → cause (maybe an AggregateError) → code. */
export function errorCode(err: unknown): string | undefined {
  for (let e: unknown = err, depth = 0; e && typeof e === "object" && depth < 5; depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string") return code;
    const inner = (e as { errors?: unknown[] }).errors?.[0];
    e = inner ?? (e as { cause?: unknown }).cause;
  }
  return undefined;
}

interface WireError {
  code: number;
  message: string;
  data?: unknown;
}

function parseResponse<T>(status: number, text: string, url: string, id: number): T {
  if (status === 401 || status === 403) {
    throw new RpcError(ErrorCode.Unauthorized, `the agent at ${url} refused the API token (HTTP ${status}); ${TOKEN_HINT}`);
  }
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    body = undefined;
  }
  const msg = body && typeof body === "object" ? (body as { id?: unknown; result?: unknown; error?: WireError }) : undefined;
  // Some servers answer JSON-RPC errors with a non-2xx status; the error object is what matters.
  if (msg?.error && typeof msg.error.code === "number") {
    const e = msg.error;
    const message = e.code === ErrorCode.Unauthorized ? `${e.message}; ${TOKEN_HINT}` : e.message;
    throw new RpcError(e.code, message, e.data);
  }
  if (status < 200 || status > 299) {
    // An HTML error page says nothing useful in a terminal; plain text bodies are shown, made safe.
    const plain = text.replace(/\s+/g, " ").trim();
    const snippet = plain.startsWith("<") ? "" : cellText(plain.slice(0, 120)).replace(/^-$/, "");
    const hint = status === 404 ? "; is --url the agent's API address?" : "";
    throw new Error(`the agent at ${url} answered HTTP ${status}${snippet ? `: ${snippet}` : ""}${hint}`);
  }
  if (!msg || !("result" in msg) || msg.id !== id) {
    throw new Error(`the server at ${url} did not answer with a JSON-RPC 2.0 response; is --url the agent's API address?`);
  }
  return msg.result as T;
}
