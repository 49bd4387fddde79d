-- keyward registry (PostgreSQL), schema version 4: the notify.* delivery queue
-- (docs/notify.md). One row per stored notify.* event, written in the push's
-- transaction; the webhook worker claims due rows, sends them and records
-- the outcome. Times are Unix seconds, except next_at (Unix milliseconds,
-- so short test backoffs work).
CREATE TABLE notify_queue (
    station_id   TEXT NOT NULL,
    event_id     TEXT NOT NULL,
    kind         TEXT NOT NULL,
    -- The exact JSON document POSTed (the signed bytes, the same at every attempt).
    body         TEXT NOT NULL,
    state        TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'dead')),
    attempts     INTEGER NOT NULL DEFAULT 0,
    -- When the row is due (pending), or until when a worker holds it.
    next_at      BIGINT NOT NULL,
    last_error   TEXT,
    delivered_at BIGINT,
    created_at   BIGINT NOT NULL,
    PRIMARY KEY (station_id, event_id)
);
CREATE INDEX notify_queue_due ON notify_queue(state, next_at);
