/**
 * The local API's token check, with the guessing limit in front of it (ops/auth-throttle.ts): an
 * address held off is refused without its token being looked at. A token is compared with
 * api.token and each of api.acceptedTokens (ops/key-ring.ts), every one in constant time, so that
 * scripts and the web UI keep working with either while the token is rotated. http-server.ts checks
 * a Bearer header with it, and auth.login (local-api.ts) through ApiContext.signIn.
 */
import { createHash, timingSafeEqual } from "node:crypto";
import { ErrorCode, RpcError } from "../contract/errors.js";
import { keyId, type KeyRing } from "../ops/key-ring.js";
import type { Logger } from "../ops/logger.js";
import type { Metrics } from "../ops/metrics.js";
import { createAuthThrottle, type AuthThrottle } from "../ops/auth-throttle.js";
import { createLogPacing } from "../ops/log-pacing.js";

/** How a token came: in the Authorization header of a POST /rpc, or in auth.login's params. */
export type TokenVia = "bearer" | "login";

/** What to answer a missing or wrong token, by how it came. */
const WRONG_TOKEN: Record<TokenVia, string> = {
  bearer: "missing or wrong API token: send Authorization: Bearer <api.token>",
  login: "wrong token; use the api.token from the agent's config",
};

export interface ApiAuth {
  /**
   * Null when `token` from `remote` is right; else the error to answer, counted in
   * locmesh_auth_failures_total: TooManyAttempts (data.retryAfterSeconds) while the address is held
   * off, Unauthorized for a missing or wrong token.
   */
  verify(token: string | null, remote: string, via: TokenVia): RpcError | null;
  /** The token is right and `remote` not held off; counts no refusal (a WebSocket's Bearer header: the socket stays signed out). */
  accepts(token: string | null, remote: string): boolean;
}

const digest = (s: string) => createHash("sha256").update(s).digest();

export function createApiAuth(deps: {
  /** api.token and api.acceptedTokens, which SIGHUP may replace. */
  tokens: KeyRing;
  /** Limits token guessing per address; defaults to 10 wrong tokens a minute, then 60 s refused. */
  throttle?: AuthThrottle;
  metrics: Metrics;
  log: Logger;
  nowMs?: () => number;
}): ApiAuth {
  const throttle = deps.throttle ?? createAuthThrottle();
  /** The digests of the tokens SIGHUP last set, made again only when it sets others. */
  let digests: { of: readonly string[]; each: Buffer[] } = { of: [], each: [] };
  /** The accepted-token line: at most once a minute per token. */
  const acceptedUseLines = createLogPacing({ nowMs: deps.nowMs });

  /** Which token `t` is; every one is compared, so the time taken does not tell which. */
  function tokenOf(t: string): string | null {
    const all = deps.tokens.all();
    if (digests.of !== all) digests = { of: all, each: all.map(digest) };
    const given = digest(t);
    let found: string | null = null;
    for (let i = 0; i < all.length; i++) if (timingSafeEqual(given, digests.each[i]!) && found === null) found = all[i]!;
    return found;
  }

  function noteUse(token: string, remote: string): void {
    deps.tokens.noteUse(token, remote);
    const role = deps.tokens.roleOf(token)!;
    deps.metrics.apiAuthentications.inc({ token: role });
    if (role === "own" || acceptedUseLines.note(keyId(token)) === null) return;
    deps.log.info(
      { remote, token: keyId(token), own: keyId(deps.tokens.current().own) },
      `an API client at ${remote} used accepted token ${keyId(token)}, not api.token: a token rotation is under way; ` +
        "drop the token from api.acceptedTokens once nothing uses it (locmesh status: api tokens; logged at most once a minute per token)",
    );
  }

  /** Checks a token from `remote` and tells the throttle how it went. */
  function tokenOk(t: string, remote: string): boolean {
    const token = tokenOf(t);
    const ok = token !== null;
    if (ok) {
      throttle.succeeded(remote);
      noteUse(token, remote);
    } else if (throttle.failed(remote)) {
      deps.log.warn({ remote }, "too many wrong API tokens from this address; refusing its sign-ins for a while");
    }
    return ok;
  }

  return {
    verify(token, remote, via) {
      const lockedMs = throttle.blockedFor(remote);
      if (lockedMs > 0) {
        deps.metrics.authFailures.inc({ reason: "api locked out" });
        const retryAfterSeconds = Math.ceil(lockedMs / 1000);
        return new RpcError(
          ErrorCode.TooManyAttempts,
          `too many wrong API tokens from ${remote}; try again in ${retryAfterSeconds} s with the api.token from the agent's config`,
          { retryAfterSeconds },
        );
      }
      if (token !== null && tokenOk(token, remote)) return null;
      deps.metrics.authFailures.inc({ reason: token === null ? "api no token" : "api wrong token" });
      return new RpcError(ErrorCode.Unauthorized, WRONG_TOKEN[via]);
    },
    accepts: (token, remote) => token !== null && throttle.blockedFor(remote) === 0 && tokenOk(token, remote),
  };
}
