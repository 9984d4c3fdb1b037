/**
 * Checks the alias form with the same rules the agent applies (contract/sip-uri.ts), so the
 * message appears beside the field before anything is sent.
 */
import { checkSipTarget, normalizeAor, sameSipUri, uriAor } from "../../../agent/contract/sip-uri.js";

export interface AliasFormErrors {
  alias?: string;
  target?: string;
}

export interface AliasFormResult {
  errors: AliasFormErrors;
  /** The alias as the agent keys it (user@domain, lower-case) when valid. */
  alias: string;
  target: string;
}

export function checkAliasForm(input: { alias: string; target: string }): AliasFormResult {
  const errors: AliasFormErrors = {};
  const a = normalizeAor(input.alias);
  if ("error" in a) errors.alias = `The alias ${a.error}.`;
  const target = input.target.trim();
  // The agent's own checks of a target (api-protocol.ts aliasSetParams): a host it can send to, a
  // port in range, and not the alias itself.
  const problem = checkSipTarget(target);
  if (problem) errors.target = `The target ${problem}${target === "" ? "" : " (e.g. sip:alice@example.com)"}.`;
  else if ("aor" in a && uriAor(target) === a.aor) errors.target = "An alias cannot forward to itself: give another target.";
  return { errors, alias: "aor" in a ? a.aor : input.alias.trim(), target };
}

export const hasErrors = (e: AliasFormErrors) => e.alias !== undefined || e.target !== undefined;

/**
 * Whether an alias's target changed from `base` (what an open edit started from) to `now`, as the
 * agent decides it for expectTarget (sameSipUri): a host written in another case is no change, so
 * the row does not say "changed meanwhile" for an edit the agent will take.
 */
export const changedMeanwhile = (base: string, now: string): boolean => !sameSipUri(base, now);
