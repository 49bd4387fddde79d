-- keyward registry (SQLite), schema version 2: the verifiable log
-- (docs/sync.md). Events stored before it are appended as leaves when the
-- migration runs, in the order the registry received them.

-- One leaf per stored event, in log order from 0; `digest` is the leaf
-- data (src/registry/log.rs `event_digest`).
CREATE TABLE log_leaves (
    idx        INTEGER PRIMARY KEY,
    station_id TEXT NOT NULL,
    event_id   TEXT NOT NULL,
    digest     BLOB NOT NULL,
    UNIQUE (station_id, event_id)
) STRICT;

-- Signed tree heads, one per push that grew the log (a registry without a
-- key signs none and keeps none: an unsigned head proves nothing later).
CREATE TABLE tree_heads (
    size      INTEGER PRIMARY KEY,
    root      BLOB NOT NULL,
    at        INTEGER NOT NULL,
    signature BLOB NOT NULL
) STRICT;

-- The log's size, the counter every append checks and moves.
CREATE TABLE log_state (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    size INTEGER NOT NULL
) STRICT;
INSERT INTO log_state(id, size) VALUES (1, 0);
