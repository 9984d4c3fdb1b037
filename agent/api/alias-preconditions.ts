/**
 * The optional preconditions of alias.set and alias.remove (contract/api-protocol.ts aliasSetParams,
 * aliasRemoveParams): `ifAbsent` for an add that must not overwrite, `expectTarget` for an edit or a
 * removal that must not undo a change it never saw. A target is compared with `expectTarget` as
 * RFC 3261 compares URIs, simplified (sip-uri.ts sameSipUri): a host in another case is the same.
 */
import type { z } from "zod";
import { ErrorCode, RpcError } from "../contract/errors.js";
import type { aliasRemoveParams, aliasSetParams } from "../contract/api-protocol.js";
import type { AliasValue } from "../contract/records.js";
import { sameSipUri } from "../contract/sip-uri.js";
import type { Replica } from "../core/replica.js";
import type { ReplicaStore } from "../core/store.js";

export type AliasSetRequest = z.output<typeof aliasSetParams>;
export type AliasRemoveRequest = z.output<typeof aliasRemoveParams>;

/** The Conflict to answer when the alias, now forwarding to `current` (null: none), fails the precondition. */
function aliasPreconditionError(p: AliasSetRequest, current: string | null): RpcError | null {
  const data = { alias: p.alias, target: current };
  if (p.ifAbsent === true && current !== null) {
    return new RpcError(ErrorCode.Conflict, `alias ${p.alias} already forwards to ${current}; edit it instead`, data);
  }
  if (p.expectTarget !== undefined && current === null) {
    return new RpcError(ErrorCode.Conflict, `alias ${p.alias} was removed meanwhile; add it again if it is still wanted`, data);
  }
  if (p.expectTarget !== undefined && current !== null && !sameSipUri(current, p.expectTarget)) {
    return new RpcError(
      ErrorCode.Conflict,
      `alias ${p.alias} was changed meanwhile: it now forwards to ${current}, not ${p.expectTarget}; edit it again if yours should still win`,
      data,
    );
  }
  return null;
}

/**
 * Sets the alias, checking the precondition first if there is one. The check runs in the replica's
 * write turn (Replica.commitChecked): no other write of this node, local or replicated, lands
 * between reading the alias and committing the new target, so two admins adding the same alias
 * through this node at once get one success and one Conflict. Across nodes there is no lock: two
 * nodes may each pass their check at the same moment, and last-writer-wins keeps one of the two.
 * Says what the alias forwarded to before (null: it was new), for the answer.
 */
export async function setAlias(replica: Replica, p: AliasSetRequest): Promise<{ previous: string | null }> {
  const precondition = p.ifAbsent === true || p.expectTarget !== undefined;
  if (!precondition) {
    // Read just before, not in the write turn: a plain set takes the group commit (many at once
    // from a script), and what it replaced is for the operator to see, not a check.
    const previous = await aliasTargetIn(replica.store, p.alias);
    await commitAlias(replica, p.alias, { target: p.target }, null);
    return { previous };
  }
  let previous: string | null = null;
  await commitAlias(replica, p.alias, { target: p.target }, (current) => {
    const refused = aliasPreconditionError(p, current);
    if (refused) throw refused;
    previous = current;
    return true;
  });
  return { previous };
}

/**
 * Removes the alias; false when there was none. With `expectTarget` the check runs in the replica's
 * write turn, as setAlias's does: an alias changed meanwhile is refused with Conflict, and one
 * already removed answers false (NotFound), as without the precondition.
 */
export function removeAlias(replica: Replica, p: AliasRemoveRequest): Promise<boolean> {
  const { expectTarget } = p;
  return commitAlias(replica, p.alias, null, expectTarget === undefined ? null : (current) => {
    if (current === null) return false;
    if (!sameSipUri(current, expectTarget)) {
      throw new RpcError(
        ErrorCode.Conflict,
        // The expected target may be the caller's typo (`alias rm --expect-target`), not an older read.
        `alias ${p.alias} forwards to ${current}, not ${expectTarget}: it was changed meanwhile, or that was never its target; remove it again if it should still go`,
        { alias: p.alias, target: current },
      );
    }
    return true;
  });
}

/**
 * Commits the alias's new value (null: removed); true when it was written. With `check`, in the
 * replica's write turn: it is given the target the alias forwards to now (null: none), and throws
 * the Conflict to answer, or returns whether to write.
 */
async function commitAlias(
  replica: Replica,
  alias: string,
  value: AliasValue | null,
  check: ((current: string | null) => boolean) | null,
): Promise<boolean> {
  const draft = { kind: "alias", key: alias, sub: "", value } as const;
  if (check === null) {
    const [written] = await replica.commit([draft]);
    return Boolean(written);
  }
  const [written] = await replica.commitChecked(async (store) => (check(await aliasTargetIn(store, alias)) ? [draft] : []));
  return Boolean(written);
}

/** The target the alias forwards to in the journal now; null when there is none (never set, or removed). */
export async function aliasTargetIn(store: Pick<ReplicaStore, "get">, alias: string): Promise<string | null> {
  const held = await store.get("alias", alias, "");
  return held?.value ? (held.value as AliasValue).target : null;
}
