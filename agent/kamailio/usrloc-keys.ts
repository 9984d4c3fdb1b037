/**
 * Does this Kamailio key AoRs as locmesh does? The journal keys a binding by `user@domain`, the
 * way usrloc keys it with `modparam("usrloc", "use_domain", 1)`. Kamailio's default is 0, and then
 * usrloc keys by the user part alone: `ul.add` and `ul.lookup` cut `@domain` off (rpc_fix_aor,
 * kamailio-5.6.md §2), save() keys the To URI's user and lookup() the Request-URI's. Verified on
 * 5.6.3 (test/integration/kamailio-use-domain.test.ts): `ul.dump` then lists `alice` for a phone
 * registered as alice@example.com and for a binding the agent wrote as alice@example.com, and
 * alice@a.example and alice@b.example share one record. Against such a table nothing matches the
 * journal: a reconcile would take every binding of this node for de-registered (found by an
 * operator's dry run, whose journal's bindings became tombstones), and a call for alice@b.example
 * could reach alice@a.example's phone.
 *
 * So the agent asks each Kamailio instance once (UsrlocRpc.keysWithDomain: a lookup of an AoR
 * without '@', which only use_domain 1 refuses; it changes nothing and works on an empty table)
 * and, while it keys AoRs without their domain, refuses to attach: it writes nothing into it,
 * reloads or reconciles nothing, and journals none of its registrar events (their contact lists
 * are read under the user part alone, so alice@b.example's phones would go to alice@a.example).
 * It keeps journaling and replicating everything else. The include's start check
 * (cfg-include.ts) stops such a Kamailio from starting at all; this covers an include generated
 * before it.
 */
import type { Logger } from "../ops/logger.js";
import { sameInstance, type KamailioInstance } from "./core-rpc.js";
import type { UsrlocContact } from "./usrloc-contact.js";
import type { UsrlocRpc } from "./usrloc-rpc.js";

/** What the operator sets, said the same way wherever the agent refuses such a Kamailio. */
export const USE_DOMAIN_FIX = 'set modparam("usrloc", "use_domain", 1) in kamailio.cfg and restart Kamailio';

/** Kamailio's usrloc keys AoRs without their domain (use_domain 0): the agent neither learns from it nor writes into it. */
export class UsrlocKeysError extends Error {
  override readonly name = "UsrlocKeysError";
}

/** The message for a Kamailio found keying AoRs without their domain; `example` is one such AoR, when seen. */
export function useDomainProblem(example: string | null): string {
  const seen = example === null ? "" : ` (its table holds ${JSON.stringify(example.slice(0, 80))})`;
  return `Kamailio's usrloc keys AoRs without their domain${seen}: modparam("usrloc", "use_domain") is 0, Kamailio's default, and ` +
    "locmesh keys every binding user@domain, so nothing of this Kamailio matches the journal. The agent neither learns from it, " +
    `reconciles with it nor writes into it until it does; ${USE_DOMAIN_FIX}`;
}

/**
 * An AoR of the location or alias table without '@', or null. With use_domain 1 usrloc holds
 * none (ul.add refuses one, "Domain missing in AOR"; save() keys user@host), so one is proof of 0.
 */
export function domainlessAor(dump: readonly UsrlocContact[], tables: readonly (string | null)[]): string | null {
  for (const k of dump) if (tables.includes(k.table) && !k.aor.includes("@")) return k.aor;
  return null;
}

export interface UsrlocKeys {
  /** Asks the running Kamailio, unless this instance was asked already; a Kamailio that does not answer leaves it unknown. */
  check(instance: KamailioInstance | null): Promise<void>;
  /** Kamailio may be another one now (its evapi connection was made again): the next check or admit() asks again. */
  forget(): void;
  /** False while Kamailio is known to key AoRs without their domain: its registrar events are not journaled. Asks it when not known. */
  admit(): Promise<boolean>;
  /** Why the agent does not attach to this Kamailio, and since when; null while it may. */
  refusal(): { reason: string; at: string } | null;
  /**
   * Kamailio's table showed an AoR without its domain (a reconcile's ul.dump) although its lookup
   * answered neither way: refuse it as if it had said no, until an instance says yes.
   */
  refuse(reason: string): void;
}

export function createUsrlocKeys(deps: { usrloc: Pick<UsrlocRpc, "keysWithDomain">; table: string; log: Pick<Logger, "error" | "info" | "warn"> }): UsrlocKeys {
  /** The last answer: true with use_domain 1, false with 0, null when it said neither; undefined: not asked since forget(). */
  let answer: boolean | null | undefined;
  let askedOf: KamailioInstance | null = null;
  let refusal: { reason: string; at: string } | null = null;
  let asking: Promise<void> | null = null;
  /** The "could not tell" warning was logged since the last real answer. */
  let saidUnknown = false;

  function refuseWith(reason: string): void {
    if (refusal !== null) return;
    refusal = { reason, at: new Date().toISOString() };
    deps.log.error(refusal.reason);
  }

  async function ask(): Promise<void> {
    let now: boolean | null;
    try {
      now = await deps.usrloc.keysWithDomain(deps.table);
    } catch {
      // Not answering (the liveness probe says so): events are not held up by a question per
      // event meanwhile, and the next check asks again.
      if (answer === undefined) answer = null;
      askedOf = null;
      return;
    }
    answer = now;
    if (now === false) refuseWith(useDomainProblem(null));
    else if (now === true && refusal !== null) {
      refusal = null;
      deps.log.info("Kamailio's usrloc keys AoRs user@domain now (use_domain 1): attaching to it");
    }
    if (now !== null) saidUnknown = false;
    else if (!saidUnknown) {
      saidUnknown = true;
      deps.log.warn({ table: deps.table }, "could not tell whether Kamailio's usrloc keys AoRs user@domain (its ul.lookup answered neither way); attaching as if it does");
    }
  }

  function once(): Promise<void> {
    asking ??= ask().finally(() => (asking = null));
    return asking;
  }

  return {
    async check(instance) {
      if (answer !== undefined && instance !== null && askedOf !== null && sameInstance(askedOf, instance)) return;
      askedOf = instance;
      await once();
    },
    forget() {
      answer = undefined;
    },
    async admit() {
      if (answer === undefined) await once();
      // Unknown after a "no" (a restarting Kamailio not answering yet) is still a no.
      return answer === true || (answer === null && refusal === null);
    },
    refusal: () => refusal,
    refuse(reason) {
      answer = false;
      refuseWith(reason);
    },
  };
}
