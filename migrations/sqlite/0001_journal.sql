-- The agent's journal: the current version of every record, plus each origin's progress.
-- Kept forward-only: never edit this file after it has landed; add 0002_... instead.

CREATE TABLE meta (
  name  TEXT PRIMARY KEY,
  value TEXT NOT NULL
) STRICT;

-- One row per replica (node~epoch) whose changes we hold. `have` is this journal's version-vector
-- entry: every change of that origin up to `have` is here or superseded by a newer version.
CREATE TABLE origins (
  id      INTEGER PRIMARY KEY,
  replica TEXT NOT NULL UNIQUE,
  have    INTEGER NOT NULL DEFAULT 0
) STRICT;

-- kind: 0 = location binding (key = AoR, sub = contact), 1 = alias (key = alias, sub = '').
-- value: JSON of the record's fields; NULL is a tombstone.
-- expires: absolute expiry of a live binding (0 = permanent); NULL for aliases and tombstones.
CREATE TABLE records (
  id      INTEGER PRIMARY KEY,
  kind    INTEGER NOT NULL,
  key     TEXT NOT NULL,
  sub     TEXT NOT NULL,
  hlc     INTEGER NOT NULL,
  origin  INTEGER NOT NULL REFERENCES origins(id),
  seq     INTEGER NOT NULL,
  value   TEXT,
  expires INTEGER
) STRICT;

CREATE UNIQUE INDEX records_identity ON records (kind, key, sub);
CREATE INDEX records_by_origin ON records (origin, seq);
CREATE INDEX records_expiring ON records (expires) WHERE expires > 0;
CREATE INDEX records_tombstones ON records (hlc) WHERE value IS NULL;
