/** The hub store's SQL, kept apart from the code that runs it. Parameters are numbered ($n). */

export const ROW = "kind, key, sub, hlc, origin, seq, value";

/**
 * A peer's batch in one statement, so in one round trip and its own transaction: store each
 * version that wins by last-writer-wins on (hlc, origin replica id) (the rule of contract/records.ts
 * compareVersions), move the origin's `have` when the batch starts at or below it, and NOTIFY the
 * other hubs. `have` is computed from the row being updated, not from a snapshot, so when two hubs
 * apply the same origin at once the second waits for the first's row lock and sees its result.
 * The tie-break reads the stored version's replica id through a VOLATILE function (migration 0004),
 * which sees an origin committed after this statement began: a subquery would not, and the
 * comparison came out NULL.
 * $1 origin id, $2-$8 the rows, $9 origin replica id, $10 after, $11 upTo, $12 newest hlc, $13 channel.
 */
export const APPLY_BATCH = `
  WITH ins AS (
    INSERT INTO records (kind, key, sub, hlc, origin, seq, value, expires)
    SELECT k, ky, s, h, $1, sq, v, e
    FROM unnest($2::smallint[], $3::text[], $4::text[], $5::bigint[], $6::bigint[], $7::text[], $8::bigint[]) AS t (k, ky, s, h, sq, v, e)
    ON CONFLICT (kind, key, sub) DO UPDATE SET hlc = excluded.hlc, origin = excluded.origin, seq = excluded.seq,
      value = excluded.value, expires = excluded.expires, stored_at = now()
    WHERE records.hlc < excluded.hlc
       OR (records.hlc = excluded.hlc AND locmesh_origin_replica(records.origin) COLLATE "C" < $9::text COLLATE "C")
    RETURNING kind, key, sub
  ), upd AS (
    UPDATE origins SET have = CASE WHEN $10 <= have AND $11 > have THEN $11 ELSE have END, max_hlc = greatest(max_hlc, $12)
    WHERE id = $1 RETURNING have
  )
  SELECT h.have, coalesce((SELECT json_agg(json_build_array(kind, key, sub)) FROM ins), '[]') AS won,
    pg_notify($13, $9 || ' ' || h.have) AS notified
  FROM (SELECT have FROM upd) AS h`;

export const UPSERT_LOCAL = `
  INSERT INTO records (kind, key, sub, hlc, origin, seq, value, expires) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
  ON CONFLICT (kind, key, sub) DO UPDATE SET hlc = excluded.hlc, origin = excluded.origin, seq = excluded.seq,
    value = excluded.value, expires = excluded.expires, stored_at = now()`;

export const ENSURE_ORIGIN = "INSERT INTO origins (replica) VALUES ($1) ON CONFLICT (replica) DO NOTHING";
export const ORIGIN_ID = "SELECT id FROM origins WHERE replica = $1";
export const LOCK_ORIGIN = "SELECT id, have FROM origins WHERE replica = $1 FOR UPDATE";
export const SET_HAVE = "UPDATE origins SET have = $2, max_hlc = greatest(max_hlc, $3) WHERE id = $1";
export const NOTIFY = "SELECT pg_notify($1, $2)";

export const SELECT_ORIGINS = "SELECT id, replica, have FROM origins";
export const MAX_HLC = "SELECT coalesce(max(max_hlc), 0) AS m FROM origins";
export const SELECT_ONE = `SELECT ${ROW} FROM records WHERE kind = $1 AND key = $2 AND sub = $3`;
export const SELECT_KEY = `SELECT ${ROW} FROM records WHERE kind = $1 AND key = $2 ORDER BY sub`;
/**
 * An origin's changes in (after, upTo], with how much the database holds of the origin (`have`, on
 * every row, and on the one row with null columns that an empty range gives): a range the hub
 * serves up to a `have` the database no longer holds (lost commits, not yet found by the vector's
 * reload) would reach agents as empty, and they would take it for holding it all.
 */
export const SELECT_RANGE = `SELECT o.have AS origin_have, r.* FROM origins o LEFT JOIN LATERAL
  (SELECT ${ROW} FROM records WHERE origin = o.id AND seq > $2 AND seq <= $3 ORDER BY seq LIMIT $4) r ON true WHERE o.id = $1`;
export const SELECT_KIND_RANGE = `SELECT ${ROW} FROM records WHERE origin = $1 AND seq > $2 AND seq <= $3 AND kind = $5 ORDER BY seq LIMIT $4`;
export const COUNT_AFTER = "SELECT count(*)::int AS n FROM records WHERE origin = $1 AND seq > $2";
export const FIRST_AFTER = "SELECT hlc FROM records WHERE origin = $1 AND seq > $2 ORDER BY seq LIMIT 1";

const LIVE = "value IS NOT NULL AND (expires IS NULL OR expires = 0 OR expires > $2)";
/**
 * What a list search matches (agent/core/list-search.ts): $3 true for an empty search, $4 the name
 * (stored lower-cased: compared as it is), $5 the ASCII-folded text. key and sub are COLLATE "C",
 * where lower() folds ASCII only, as SQLite's does; the target read out of the JSON value has the
 * database's collation, so it is put under "C" too (in an en_US.UTF-8 database lower() would fold
 * "Ö" there, and the hub would answer otherwise than the agents' journals).
 */
const NAME = "($4 <> '' AND strpos(key, $4) > 0)";
const MATCH = {
  loc: `($3 OR ${NAME} OR strpos(lower(sub), $5) > 0)`,
  alias: `($3 OR ${NAME} OR strpos(lower((value::json ->> 'target') COLLATE "C"), $5) > 0)`,
} as const;
const pageWhere = (kind: keyof typeof MATCH) => `kind = $1 AND ${LIVE} AND ${MATCH[kind]}`;
/** $1 kind code, $2 now, $3-$5 the search, $6/$7 the cursor, $8 the limit. Seeks the primary key to the cursor. */
export const SELECT_PAGE = {
  loc: `SELECT ${ROW} FROM records WHERE ${pageWhere("loc")} AND (key, sub) > ($6, $7) ORDER BY key, sub LIMIT $8`,
  alias: `SELECT ${ROW} FROM records WHERE ${pageWhere("alias")} AND (key, sub) > ($6, $7) ORDER BY key, sub LIMIT $8`,
} as const;
export const COUNT_PAGE = {
  loc: `SELECT count(*)::int AS n FROM records WHERE ${pageWhere("loc")}`,
  alias: `SELECT count(*)::int AS n FROM records WHERE ${pageWhere("alias")}`,
} as const;
export const COUNT_LIVE = `SELECT
  count(*) FILTER (WHERE kind = 0 AND ${LIVE.replace("$2", "$1")})::int AS locations,
  count(*) FILTER (WHERE kind = 1 AND ${LIVE.replace("$2", "$1")})::int AS aliases,
  count(*) FILTER (WHERE value IS NULL)::int AS tombstones
  FROM records`;
/**
 * $1 tombstones stamped before this hlc, $2 bindings expired before this second, $3 and stored here
 * before this many ms since the epoch (migrations/postgres/0003_stored_at.sql), $4 and, both kinds,
 * held by every agent a hub recorded within this many seconds (0: by none;
 * migrations/postgres/0005_hub_agents_vv.sql). An expired version that replaced a permanent one
 * must reach an agent that was away as much as a removal: expiry is not replicated, and without it
 * the agent keeps the permanent one.
 * `held`: per origin, the highest seq all those agents hold (an agent whose vector is not recorded
 * holds none, nor one whose vector lacks the origin; no such agent: no limit). Worked out once,
 * MATERIALIZED, and joined: as a subquery per row it read every agent's vector for each tombstone
 * past the retention, held ones included, which pile up while an agent is away.
 */
export const PURGE = `WITH held AS MATERIALIZED (
    SELECT o.id, coalesce(min(CASE WHEN a.node_id IS NULL THEN NULL WHEN a.vv IS NULL THEN 0 ELSE coalesce((a.vv ->> o.replica)::bigint, 0) END),
      9223372036854775807) AS upto
    FROM origins o LEFT JOIN hub_agents a ON $4::double precision > 0 AND a.seen_at > now() - make_interval(secs => $4::double precision)
    GROUP BY o.id),
  t AS (DELETE FROM records r USING held h WHERE r.origin = h.id AND r.seq <= h.upto
    AND r.value IS NULL AND r.hlc < $1 AND r.stored_at < to_timestamp($3::double precision / 1000) RETURNING 1),
  e AS (DELETE FROM records r USING held h WHERE r.origin = h.id AND r.seq <= h.upto AND r.expires > 0 AND r.expires < $2 RETURNING 1)
  SELECT (SELECT count(*) FROM t)::int + (SELECT count(*) FROM e)::int AS n`;

export const SELECT_REPLICA = "SELECT replica_id FROM replicas WHERE node_id = $1";
export const INSERT_REPLICA = "INSERT INTO replicas (node_id, replica_id) VALUES ($1, $2) ON CONFLICT (node_id) DO NOTHING";
