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
 */
import type { UsrlocContact } from "./usrloc-contact.js";

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
