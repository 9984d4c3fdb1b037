-- The replica id of an origin, read afresh. APPLY_BATCH (hub/pg-sql.ts) breaks a tie of equal
-- stamps by the stored version's replica id. Read by a subquery of that statement, under its
-- snapshot, the origin of a version another hub stored meanwhile under a brand-new origin (both
-- committed after the statement began, the row then updated through ON CONFLICT) was not visible:
-- the comparison was NULL, and the version that wins in every agent's journal lost at the hub,
-- which then never relayed it. A VOLATILE function takes a new snapshot for each query it runs
-- (READ COMMITTED), so it sees every origin committed by then, the one of that row included.
-- Forward-only: never edit this file after it has landed; add 0005_... instead.
CREATE FUNCTION locmesh_origin_replica(origin_id integer) RETURNS text
  LANGUAGE sql VOLATILE STRICT
  AS $$ SELECT replica FROM origins WHERE id = origin_id $$;
