-- keyward registry (SQLite), schema version 1. Times are Unix seconds.
CREATE TABLE stations (
    id          TEXT PRIMARY KEY,
    public_key  BLOB NOT NULL,
    key_id      TEXT NOT NULL,
    added_at    INTEGER NOT NULL,
    -- The station's audit chain as acknowledged: last row and its hash.
    head_seq    INTEGER NOT NULL DEFAULT 0,
    head_hash   BLOB NOT NULL,
    -- The last signed head the station pushed (JSON), and when.
    signed_head TEXT,
    last_seen   INTEGER
) STRICT;

CREATE TABLE events (
    station_id  TEXT NOT NULL REFERENCES stations(id),
    event_id    TEXT NOT NULL,
    seq         INTEGER NOT NULL,
    kind        TEXT NOT NULL,
    payload     TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    received_at INTEGER NOT NULL,
    PRIMARY KEY (station_id, event_id)
) STRICT;
CREATE INDEX events_received ON events(received_at);

CREATE TABLE audit_rows (
    station_id TEXT NOT NULL REFERENCES stations(id),
    seq        INTEGER NOT NULL,
    at         INTEGER NOT NULL,
    actor      TEXT NOT NULL,
    action     TEXT NOT NULL,
    entity     TEXT NOT NULL,
    entity_id  TEXT NOT NULL,
    detail     TEXT NOT NULL,
    hash       BLOB NOT NULL,
    PRIMARY KEY (station_id, seq)
) STRICT;

-- Request nonces seen within the freshness window (replay refusal).
CREATE TABLE nonces (
    station_id TEXT NOT NULL,
    nonce      TEXT NOT NULL,
    created    INTEGER NOT NULL,
    PRIMARY KEY (station_id, nonce)
) STRICT;
CREATE INDEX nonces_created ON nonces(created);

-- The fleet's bindings, current state.
CREATE TABLE bindings (
    binding_id    TEXT PRIMARY KEY,
    station_id    TEXT NOT NULL,
    subject       TEXT NOT NULL,
    device_serial TEXT,
    state         TEXT NOT NULL,
    replaces      TEXT,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
) STRICT;
CREATE INDEX bindings_subject ON bindings(subject);
CREATE INDEX bindings_serial ON bindings(device_serial);

CREATE TABLE incidents (
    id         INTEGER PRIMARY KEY,
    station_id TEXT NOT NULL,
    kind       TEXT NOT NULL,
    detail     TEXT NOT NULL,
    at         INTEGER NOT NULL
) STRICT;
