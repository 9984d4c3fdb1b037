-- The hub's store: the current version of every record, each origin's progress, and what each hub
-- last saw of its agents (for the cluster view). Several hub processes share these tables.
-- Forward-only: never edit this file after it has landed; add 0002_... instead.
-- Text that is compared or ordered uses COLLATE "C" so PostgreSQL orders it exactly as JavaScript
-- compares strings (last-writer-wins ties on replica ids, list cursors on keys).

-- A replica id per hub node, for the rare local write (the hub is a relay, not an origin).
CREATE TABLE replicas (
  node_id    text PRIMARY KEY,
  replica_id text NOT NULL UNIQUE,
  created_at timestamptz NOT NULL DEFAULT now()
);

-- One row per replica (node~epoch) whose changes are held. `have`: every change of that origin up
-- to `have` is here or superseded. The row is locked (FOR UPDATE) while a batch of its origin is
-- applied, so two hubs never apply the same origin at once.
CREATE TABLE origins (
  id      serial PRIMARY KEY,
  replica text COLLATE "C" NOT NULL UNIQUE,
  have    bigint NOT NULL DEFAULT 0,
  max_hlc bigint NOT NULL DEFAULT 0
);

-- kind: 0 = location binding (key = AoR, sub = contact), 1 = alias (key = alias, sub = '').
-- value: JSON text of the record's fields (kept as text: the hub never looks inside); NULL is a tombstone.
-- expires: absolute expiry of a live binding (0 = permanent); NULL for aliases and tombstones.
CREATE TABLE records (
  kind    smallint NOT NULL,
  key     text COLLATE "C" NOT NULL,
  sub     text COLLATE "C" NOT NULL,
  hlc     bigint NOT NULL,
  origin  integer NOT NULL REFERENCES origins (id),
  seq     bigint NOT NULL,
  value   text,
  expires bigint,
  PRIMARY KEY (kind, key, sub)
);

CREATE INDEX records_by_origin ON records (origin, seq);
CREATE INDEX records_expiring ON records (expires) WHERE expires > 0;
CREATE INDEX records_tombstones ON records (hlc) WHERE value IS NULL;

-- What each hub last knew about the agents connected to it, so any hub can show the whole cluster.
CREATE TABLE hub_agents (
  node_id        text PRIMARY KEY,
  replica_id     text NOT NULL,
  hub_node       text NOT NULL,
  behind_changes bigint NOT NULL,
  behind_seconds double precision NOT NULL,
  pending_writes integer,
  seen_at        timestamptz NOT NULL DEFAULT now()
);
