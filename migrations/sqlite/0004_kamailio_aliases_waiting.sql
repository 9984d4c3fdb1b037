-- Aliases that could not go into alias_db's `dbaliases` table because Kamailio's database did not
-- answer (alias_db has no RPC, so that table is their only way in). The Kamailio sink notes them
-- here and goes on past them, so that the bindings of the same origin do not wait for alias_db's
-- database; it writes each again, as the journal holds it then, until it goes in
-- (agent/kamailio/sink-pass.ts). One row per alias, keyed as agent/kamailio/install-plan.ts
-- recordKey. Kept in the journal because the install cursor has moved past them.
CREATE TABLE kamailio_aliases_waiting (
  key TEXT PRIMARY KEY
) STRICT, WITHOUT ROWID;
