-- keyward registry (PostgreSQL), schema version 2: the verifiable log
-- (docs/sync.md). Events stored before it are appended as leaves when the
-- migration runs, in the order the registry received them.

-- One leaf per stored event, in log order from 0; `digest` is the leaf
-- data (src/registry/log.rs `event_digest`).
CREATE TABLE log_leaves (
    idx        BIGINT PRIMARY KEY,
    station_id TEXT NOT NULL,
    event_id   TEXT NOT NULL,
    digest     BYTEA NOT NULL,
    UNIQUE (station_id, event_id)
);

-- Signed tree heads, one per push that grew the log (a registry without a
-- key signs none and keeps none: an unsigned head proves nothing later).
CREATE TABLE tree_heads (
    size      BIGINT PRIMARY KEY,
    root      BYTEA NOT NULL,
    at        BIGINT NOT NULL,
    signature BYTEA NOT NULL
);

-- The log's size: every append locks this row FOR UPDATE, checks it
-- against the process's tree and moves it, so two registry processes
-- cannot interleave leaves.
CREATE TABLE log_state (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    size BIGINT NOT NULL
);
INSERT INTO log_state(id, size) VALUES (1, 0);
