-- When each version was stored here. Tombstones are purged journal.retentionHours after they were
-- stored, not only after they were made: an agent keeps a removal it made during a long outage
-- until a hub acknowledges it, and a hub that purged it by its (old) stamp within minutes would
-- relay it only to the agents connected then; one that was down would keep the record for good.
-- Rows stored before this migration count as stored now. now() is stable, so PostgreSQL 11+ adds
-- the column without rewriting the table.
-- Forward-only: never edit this file after it has landed; add 0004_... instead.
ALTER TABLE records ADD COLUMN stored_at timestamptz NOT NULL DEFAULT now();
