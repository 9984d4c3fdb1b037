/**
 * The optional preconditions of alias.set and alias.remove (contract/protocol.ts aliasSetParams,
 * aliasRemoveParams): `ifAbsent` for an add that must not overwrite, `expectTarget` for an edit or a
 * removal that must not undo a change it never saw.
 */
import { ErrorCode, RpcError } from "../contract/errors.js";
import type { AliasValue } from "../contract/records.js";
import type { Replica } from "../core/replica.js";

export interface AliasSetRequest {
  alias: string;
  target: string;
  ifAbsent?: boolean | undefined;
  expectTarget?: string | undefined;
}

/** The Conflict to answer when the alias, now forwarding to `current` (null: none), fails the precondition. */
function aliasPreconditionError(p: AliasSetRequest, current: string | null): RpcError | null {
  const data = { alias: p.alias, target: current };
  if (p.ifAbsent === true && current !== null) {
    return new RpcError(ErrorCode.Conflict, `alias ${p.alias} already forwards to ${current}; edit it instead`, data);
  }
  if (p.expectTarget !== undefined && current === null) {
    return new RpcError(ErrorCode.Conflict, `alias ${p.alias} was removed meanwhile; add it again if it is still wanted`, data);
  }
  if (p.expectTarget !== undefined && current !== p.expectTarget) {
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
 */
export async function setAlias(replica: Replica, p: AliasSetRequest): Promise<void> {
  const draft = { kind: "alias", key: p.alias, sub: "", value: { target: p.target } } as const;
  if (p.ifAbsent !== true && p.expectTarget === undefined) {
    await replica.commit([draft]);
    return;
  }
  await replica.commitChecked(async (store) => {
    const held = await store.get("alias", p.alias, "");
    const refused = aliasPreconditionError(p, held?.value ? (held.value as AliasValue).target : null);
    if (refused) throw refused;
    return [draft];
  });
}

export interface AliasRemoveRequest {
  alias: string;
  expectTarget?: string | undefined;
}

/**
 * Removes the alias; false when there was none. With `expectTarget` the check runs in the replica's
 * write turn, as setAlias's does: an alias changed meanwhile is refused with Conflict, and one
 * already removed answers false (NotFound), as without the precondition.
 */
export async function removeAlias(replica: Replica, p: AliasRemoveRequest): Promise<boolean> {
  const draft = { kind: "alias", key: p.alias, sub: "", value: null } as const;
  if (p.expectTarget === undefined) {
    const [written] = await replica.commit([draft]);
    return Boolean(written);
  }
  const [written] = await replica.commitChecked(async (store) => {
    const held = await store.get("alias", p.alias, "");
    const current = held?.value ? (held.value as AliasValue).target : null;
    if (current === null) return [];
    if (current !== p.expectTarget) {
      throw new RpcError(
        ErrorCode.Conflict,
        `alias ${p.alias} was changed meanwhile: it now forwards to ${current}, not ${p.expectTarget}; remove it again if it should still go`,
        { alias: p.alias, target: current },
      );
    }
    return [draft];
  });
  return Boolean(written);
}
