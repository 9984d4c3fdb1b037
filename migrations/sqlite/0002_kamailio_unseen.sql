-- Bindings and aliases the agent wrote straight into Kamailio's database (its fallback when
-- jsonrpcs does not answer) while that Kamailio reads its database only at start (usrloc db_mode
-- 1 or 2): the running Kamailio does not hold them. One row per Kamailio object, keyed as
-- agent/kamailio/install-plan.ts recordKey. The agent repeats them over jsonrpcs once Kamailio
-- answers again, and forgets them when Kamailio restarts and loads its database. Kept in the
-- journal so that an agent restarted in between still knows them.
CREATE TABLE kamailio_unseen (
  key TEXT PRIMARY KEY
) STRICT, WITHOUT ROWID;
