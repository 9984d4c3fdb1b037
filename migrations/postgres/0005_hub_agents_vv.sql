-- What each agent last said it holds (its version vector: replica id → seq), as the hub it is on
-- records it in hub_agents with its lag. A hub keeps a tombstone past the retention until every
-- agent recorded within journal.holdForAgentsDays holds it (PURGE in hub/pg-sql.ts): purged by its
-- stamp alone, a removal made while an agent was down for longer than the retention never reached
-- that agent, which kept the removed record for good. NULL: not recorded yet (a hub older than this
-- column wrote the row); such an agent holds every tombstone until its hub records it.
-- Forward-only: never edit this file after it has landed; add 0006_... instead.
ALTER TABLE hub_agents ADD COLUMN vv jsonb;
