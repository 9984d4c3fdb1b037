/**
 * What an admin should know about an alias just set, beside the journal taking it (alias.set's
 * `notes`): targets and names that Kamailio, routed as the README's "Attach to your Kamailio" shows
 * (`lookup("aliases"); lookup("location");`), will not follow as one might expect. Verified on
 * Kamailio 5.6 in the hub dry run (F13, F15): aliases resolve one step, a tel: target finds no
 * location, and the registrar looks up no user or host part longer than 64 characters (its
 * extract_aor() checks the core's compile-time USERNAME_MAX_SIZE and DOMAIN_MAX_SIZE: "Address Of
 * Record too long", 404). Only what the new alias itself makes is noted: aliases pointing at it
 * are not looked for (that would take a scan of every alias).
 */
import { uriAor } from "../contract/sip-uri.js";

/** Kamailio 5.6's USERNAME_MAX_SIZE and DOMAIN_MAX_SIZE (core config.h), which the registrar checks. */
const REGISTRAR_PART_MAX = 64;

export async function aliasNotes(alias: string, target: string, aliasTarget: (aor: string) => Promise<string | null>): Promise<string[]> {
  const notes: string[] = [];
  const targetAor = uriAor(target);
  if (targetAor === null) {
    notes.push(`the target ${target} is not a sip: URI with a user: lookup("aliases") rewrites the request to it and lookup("location") then finds nothing, so calls get 404 unless kamailio.cfg routes such targets itself (a gateway route for tel:)`);
  } else {
    const next = await aliasTarget(targetAor);
    if (next !== null && uriAor(next) === alias) {
      notes.push(`${targetAor} is an alias back to ${alias}: the two forward to each other, and Kamailio resolves one step, so calls to ${alias} ring ${targetAor}'s own phones (and calls to ${targetAor} ring ${alias}'s)`);
    } else if (next !== null) {
      notes.push(`the target ${targetAor} is itself an alias (to ${next}): Kamailio resolves aliases one step, so calls to ${alias} ring ${targetAor}'s own phones, not ${next}'s; point ${alias} at ${next} to forward there`);
    }
  }
  for (const [what, aor] of [["alias", alias], ["target", targetAor]] as const) {
    if (aor === null) continue;
    const at = aor.lastIndexOf("@");
    // The registrar measures the host without its port.
    const host = aor.slice(at + 1).replace(/:\d+$/, "");
    if (at > REGISTRAR_PART_MAX || host.length > REGISTRAR_PART_MAX) {
      notes.push(`the ${what}'s user or host part is longer than ${REGISTRAR_PART_MAX} characters: Kamailio's registrar does not look such AoRs up ("Address Of Record too long": USERNAME_MAX_SIZE and DOMAIN_MAX_SIZE, fixed when Kamailio is built), so calls to it get 404`);
    }
  }
  return notes;
}
