/**
 * Typed wrappers over Kamailio's usrloc RPCs (kamailio-5.6.md §2), on any jsonrpcs transport.
 *
 * `table` is a usrloc domain ("location", or "aliases" for SER-style aliases, §5); it must be
 * registered in the cfg (save/lookup or `modparam("usrloc","preload",...)`), else 500 "Domain table
 * not found". AoRs are `user@domain` (use_domain=1) without "sip:", and Kamailio lower-cases them
 * unless the registrar's case_sensitive is set.
 */
import { KamailioRpcError, type KamailioRpc, type RpcParam } from "./jsonrpcs-wire.js";
import { parseDump, parseLookup, type UsrlocContact } from "./usrloc-contact.js";

/** The binding fields `ul.add` can set; a full BindingValue fits. */
export interface UlAddBinding {
  contact: string;
  /** Absolute expiry, Unix seconds; 0 = permanent. */
  expires: number;
  /** -1 = unspecified (kept as -1 by Kamailio), else 0..1. */
  q: number;
  path: string;
  received: string;
  /** `proto:ip:port` of a local listen socket; Kamailio silently drops one it does not listen on. */
  socket: string;
  flags: number;
  cflags: number;
  methods: number;
}

export type UlAddOutcome = "added" | "already-expired";

const UINT32_MAX = 4294967295;

/** The AoR keysWithDomain (and the include's start check) looks up: no '@', and no phone's (a hit would answer the same). */
export const USE_DOMAIN_PROBE = "locmesh-use-domain-probe";

/** ul.add's optional string params: a single "." means "not set" (ul_rpc_is_param_set). */
const orUnset = (s: string): string => (s === "" ? "." : s);

function uint(name: string, v: number): number {
  if (!Number.isInteger(v) || v < 0 || v > UINT32_MAX) throw new RangeError(`ul.add ${name} must be an integer 0..${UINT32_MAX}, got ${v}`);
  return v;
}

/**
 * The 11 positional params of `ul.add` (§2.1, scan format "SSSdfSuuu*SS"): table, aor, contact,
 * expires (seconds *relative* to now, 0 = permanent), q (float), path, flags, cflags, methods,
 * received, socket. Numbers go as JSON numbers: a string is silently read as 0 (surprise 3), which
 * for expires would make the contact permanent. Returns null when the binding has already expired,
 * because relative 0 would turn it into a permanent one.
 */
export function ulAddParams(table: string, aor: string, b: UlAddBinding, nowSec: number): RpcParam[] | null {
  let expires = 0;
  if (b.expires !== 0) {
    // Round up so Kamailio (now + relative, whole seconds) never expires it early.
    expires = Math.ceil(b.expires - nowSec);
    if (expires <= 0) return null;
  }
  if (!Number.isFinite(b.q) || (b.q !== -1 && (b.q < 0 || b.q > 1))) throw new RangeError(`ul.add q must be -1 or 0..1, got ${b.q}`);
  return [
    table, aor, b.contact, expires, b.q, orUnset(b.path),
    uint("flags", b.flags), uint("cflags", b.cflags), uint("methods", b.methods),
    orUnset(b.received), orUnset(b.socket),
  ];
}

export interface UsrlocRpc {
  /** Inserts or updates (matched by contact URI) one binding; the ruid stays when updating. */
  ulAdd(table: string, aor: string, binding: UlAddBinding, nowSec: number): Promise<UlAddOutcome>;
  /** Removes one contact; false when the AoR or contact was not there (404). */
  ulRmContact(table: string, aor: string, contact: string): Promise<boolean>;
  /** Removes an AoR with all its contacts; succeeds when it did not exist. */
  ulRm(table: string, aor: string): Promise<void>;
  /** The AoR's unexpired contacts; [] when the AoR is unknown or empty. */
  ulLookup(table: string, aor: string): Promise<UsrlocContact[]>;
  /** Every contact of every usrloc domain; `maxReplyBytes` as in CallOptions. */
  ulDump(opts?: { maxReplyBytes?: number }): Promise<UsrlocContact[]>;
  /**
   * Whether usrloc keys the domain's AoRs as user@domain (use_domain 1, usrloc-keys.ts): only then
   * does it refuse an AoR without '@' ("Domain missing in AOR"); with 0 it looks the AoR up. Null
   * when Kamailio's answer says neither (e.g. the domain is not registered). Changes nothing.
   */
  keysWithDomain(table: string): Promise<boolean | null>;
  /**
   * How many contacts the domain holds, from usrloc's `<table>_contacts` statistic (kex's
   * stats.fetch, which the include loads): cheap, unlike ul.dump. Null when Kamailio cannot say
   * (kex not loaded). In db_mode 3 usrloc keeps no cache and this says nothing useful.
   */
  ulContactCount(table: string): Promise<number | null>;
}

export interface UsrlocRpcDeps {
  rpc: KamailioRpc;
  /**
   * ul.dump builds its whole reply (about 0.53 KB per contact) before writing a byte, and its cost
   * grows with the square of the table (measured on 5.6.3: 2,000 contacts 0.03 s, 16,000 1.0-1.7 s,
   * 32,000 7.9 s; "brief" is cheaper but also quadratic). The FIFO process is serial, so every other
   * FIFO call waits meanwhile. Default 30 s, enough for about 60,000 contacts.
   */
  dumpTimeoutMs?: number;
  /**
   * Unix seconds, read when a reply arrives: Kamailio prints seconds *remaining*, so absolute
   * expiries are this plus the remainder (±1 s, as both sides round to whole seconds).
   */
  nowSec?: () => number;
}

export function createUsrlocRpc(deps: UsrlocRpcDeps): UsrlocRpc {
  const { rpc } = deps;
  const nowSec = deps.nowSec ?? (() => Math.floor(Date.now() / 1000));
  return {
    async ulAdd(table, aor, binding, nowSec) {
      const params = ulAddParams(table, aor, binding, nowSec);
      if (params === null) return "already-expired";
      await rpc.call("ul.add", params);
      return "added";
    },
    async ulRmContact(table, aor, contact) {
      try {
        await rpc.call("ul.rm_contact", [table, aor, contact]);
        return true;
      } catch (err) {
        if (err instanceof KamailioRpcError && err.code === 404) return false;
        throw err;
      }
    },
    async ulRm(table, aor) {
      await rpc.call("ul.rm", [table, aor]);
    },
    async ulLookup(table, aor) {
      try {
        const result = await rpc.call("ul.lookup", [table, aor]);
        return parseLookup(table, result, nowSec());
      } catch (err) {
        // Both come back as 500 (surprise 14); only the text tells them from real faults.
        if (err instanceof KamailioRpcError && /^AOR (not found|has no contacts)/.test(err.kamailioMessage)) return [];
        throw err;
      }
    },
    async ulDump(opts) {
      const result = await rpc.call("ul.dump", undefined, { timeoutMs: deps.dumpTimeoutMs ?? 30_000, ...opts });
      return parseDump(result, nowSec());
    },
    async keysWithDomain(table) {
      try {
        await rpc.call("ul.lookup", [table, USE_DOMAIN_PROBE]);
        return false;
      } catch (err) {
        if (!(err instanceof KamailioRpcError)) throw err;
        // rpc_fix_aor runs before the lookup (kamailio-5.6.md §2); all of these come back as 500.
        if (/^Domain missing in AOR/.test(err.kamailioMessage)) return true;
        if (/^AOR (not found|has no contacts)/.test(err.kamailioMessage)) return false;
        return null;
      }
    },
    async ulContactCount(table) {
      const name = `usrloc.${table}_contacts`;
      try {
        const r = await rpc.call<Record<string, unknown>>("stats.fetch", [name]);
        const n = Number(r?.[name]);
        return Number.isInteger(n) && n >= 0 ? n : null;
      } catch (err) {
        // "Method Not Found" comes back as a 500 (surprise 14): any fault means "cannot say".
        if (err instanceof KamailioRpcError) return null;
        throw err;
      }
    },
  };
}
