/**
 * `kamailio.alias` (`locmesh alias show --kamailio`): what the local Kamailio itself holds for one
 * alias, beside the journal's target. With `aliases: usrloc` that is the contacts of usrloc's
 * SER-style aliases domain (`ul.lookup`, so what routes now); with `dbaliases`, alias_db's table in
 * Kamailio's database (alias_db has no RPC, and reads the table at every lookup).
 */
import type { KamailioAliasResult } from "../contract/kamailio-status.js";
import { splitSipUri } from "./kamailio-db-encoding.js";
import type { KamailioLinks } from "./kamailio-links.js";

export type KamailioAliasView = Pick<KamailioAliasResult, "store" | "table" | "kamailio">;

/** Reads the alias where this node's aliases live. Throws as the usrloc RPC or the database does (Kamailio or its database down). */
export async function readKamailioAlias(links: Pick<KamailioLinks, "aliasTable" | "usrloc" | "db">, alias: string): Promise<KamailioAliasView> {
  if (links.aliasTable !== null) {
    const contacts = await links.usrloc.ulLookup(links.aliasTable, alias);
    return { store: "usrloc", table: links.aliasTable, kamailio: contacts.map((c) => c.contact) };
  }
  // The config refuses dbaliases without kamailio.db (config/cross-field.ts).
  if (links.db === null) throw new Error("aliases live in alias_db's table and kamailio.db is not set: the agent cannot read them");
  return { store: "dbaliases", table: links.db.aliasTable, kamailio: await links.db.lookupAlias(alias) };
}

/** The target as the agent writes it: usrloc keeps the URI whole, alias_db keeps sip:user@host[:port]. */
function written(store: KamailioAliasView["store"], target: string): string {
  if (store === "usrloc") return target;
  const t = splitSipUri(target);
  return t === null ? target : `sip:${t.username}@${t.domain}`;
}

export function aliasAgreement(store: KamailioAliasView["store"], journal: string | null, kamailio: readonly string[]): KamailioAliasResult["agreement"] {
  if (journal === null) return kamailio.length === 0 ? "absent" : "extra";
  if (kamailio.length === 0) return "missing";
  return kamailio.length === 1 && kamailio[0] === written(store, journal) ? "present" : "differs";
}
