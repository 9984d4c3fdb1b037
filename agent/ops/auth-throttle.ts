/**
 * Slows down guessing of the API token: an address that sends `maxFailures` wrong tokens within
 * `windowMs` is refused, without its token being looked at, for `lockMs`. A right token clears the
 * address's count. Keyed by the TCP peer's address. The host's own clients (127.0.0.1, ::1: the
 * CLI, scripts, a reverse proxy in front of the web UI) are not limited, as fail2ban leaves them:
 * one local script with an old token must not lock the operator's CLI out. A proxy on the same
 * host therefore has to limit sign-ins itself (the README shows nginx's limit_req), as does one on
 * another host that the config trusts (`api.trustedProxies`, apiExempt).
 *
 * An IPv6 client is keyed by its /64: one host usually holds a whole /64, and keying by address
 * would let it guess on from a fresh address each time.
 *
 * Memory is bounded: at most `maxTracked` addresses are remembered. Past that, those neither
 * locked nor guessing within the window go first, then the oldest not locked, then the oldest.
 */
import { isIP } from "node:net";

export interface AuthThrottleOptions {
  maxFailures?: number;
  windowMs?: number;
  lockMs?: number;
  maxTracked?: number;
  nowMs?: () => number;
  /** Addresses never limited; defaults to the host's own (127.0.0.1, ::1). */
  exempt?: (address: string) => boolean;
  /**
   * What counts as one client: "prefix" (the default, an IPv6 client by its /64: one host usually
   * holds a whole /64) for the API, "address" for the peer port, whose peers are fixed servers that
   * may share a /64 (one misconfigured node must not hold off its healthy neighbours).
   */
  keyBy?: "prefix" | "address";
}

export interface AuthThrottle {
  /** Milliseconds until `address` may try a token again; 0 when it may now. */
  blockedFor(address: string): number;
  /** A wrong token from `address`; true when that locked it out. */
  failed(address: string): boolean;
  /** A right token from `address`. */
  succeeded(address: string): void;
}

interface Entry {
  failures: number;
  windowStart: number;
  lockedUntil: number;
}

const AUTH_THROTTLE_DEFAULTS = { maxFailures: 10, windowMs: 60_000, lockMs: 60_000, maxTracked: 10_000 } as const;

const OWN_HOST = new Set(["127.0.0.1", "::1", "::ffff:127.0.0.1"]);
export const isOwnHost = (address: string) => OWN_HOST.has(address);

/** An IPv4 address as a dual-stack socket shows it (`::ffff:a.b.c.d`). */
const IPV4_MAPPED = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i;

/**
 * An address as one form: an IPv4-mapped IPv6 address (how a dual-stack socket shows an IPv4
 * client) as IPv4, IPv6 compact and lower-case; anything else as given.
 */
export function canonicalAddress(address: string): string {
  const mapped = IPV4_MAPPED.exec(address);
  if (mapped) return mapped[1]!;
  return isIP(address) === 6 ? new URL(`http://[${address}]`).hostname.slice(1, -1) : address;
}

/**
 * The API's clients that are not limited one by one: the host's own, and the reverse proxies the
 * config trusts (`api.trustedProxies`), in front of which every browser arrives from one address.
 * They count toward the totals only, and limit sign-ins themselves (the README shows nginx's).
 */
export function apiExempt(trustedProxies: readonly string[]): (address: string) => boolean {
  const trusted = new Set(trustedProxies.map(canonicalAddress));
  return (address) => isOwnHost(address) || (trusted.size > 0 && trusted.has(canonicalAddress(address)));
}

export function createAuthThrottle(opts: AuthThrottleOptions = {}): AuthThrottle {
  const maxFailures = opts.maxFailures ?? AUTH_THROTTLE_DEFAULTS.maxFailures;
  const windowMs = opts.windowMs ?? AUTH_THROTTLE_DEFAULTS.windowMs;
  const lockMs = opts.lockMs ?? AUTH_THROTTLE_DEFAULTS.lockMs;
  const maxTracked = opts.maxTracked ?? AUTH_THROTTLE_DEFAULTS.maxTracked;
  const nowMs = opts.nowMs ?? Date.now;
  const exempt = opts.exempt ?? isOwnHost;
  const keyOf = opts.keyBy === "address" ? (a: string) => throttleKey(a, "address") : (a: string) => throttleKey(a, "prefix");
  const entries = new Map<string, Entry>();

  const forgetStale = (now: number) => {
    for (const [key, e] of entries) {
      if (e.lockedUntil <= now && now - e.windowStart >= windowMs) entries.delete(key);
    }
    // Still full (many addresses guessing at once): those not locked go first, oldest first.
    for (const [key, e] of entries) {
      if (entries.size < maxTracked) return;
      if (e.lockedUntil <= now) entries.delete(key);
    }
    for (const key of entries.keys()) {
      if (entries.size < maxTracked) return;
      entries.delete(key);
    }
  };

  return {
    blockedFor(address) {
      if (exempt(address)) return 0;
      const e = entries.get(keyOf(address));
      return e ? Math.max(0, e.lockedUntil - nowMs()) : 0;
    },
    failed(address) {
      if (exempt(address)) return false;
      address = keyOf(address);
      const now = nowMs();
      let e = entries.get(address);
      if (!e || now - e.windowStart >= windowMs) {
        if (!e && entries.size >= maxTracked) forgetStale(now);
        e = { failures: 0, windowStart: now, lockedUntil: e?.lockedUntil ?? 0 };
        entries.delete(address);
        entries.set(address, e);
      }
      e.failures++;
      if (e.failures < maxFailures) return false;
      e.lockedUntil = now + lockMs;
      e.failures = 0;
      e.windowStart = now;
      return true;
    },
    succeeded(address) {
      // Only a count kept for this very address goes: a /64's is left (its other hosts may guess).
      if (keyOf(address) === throttleKey(address, "address")) entries.delete(keyOf(address));
    },
  };
}

/** What the throttle counts by: an IPv4 address (also as `::ffff:a.b.c.d`), or an IPv6 /64 (or address). */
export function throttleKey(address: string, by: "prefix" | "address" = "prefix"): string {
  const mapped = IPV4_MAPPED.exec(address);
  if (mapped) return mapped[1]!;
  if (isIP(address) !== 6 || by === "address") return address;
  const [head = "", tail = ""] = address.toLowerCase().split("%")[0]!.split("::");
  const left = head === "" ? [] : head.split(":");
  const right = address.includes("::") ? (tail === "" ? [] : tail.split(":")) : [];
  const groups = address.includes("::") ? [...left, ...Array<string>(8 - left.length - right.length).fill("0"), ...right] : left;
  return `${groups.slice(0, 4).map((g) => g.replace(/^0+(?=.)/, "")).join(":")}::/64`;
}
