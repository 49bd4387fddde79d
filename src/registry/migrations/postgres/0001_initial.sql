-- keyward registry (PostgreSQL), schema version 1. Times are Unix seconds.
CREATE TABLE stations (
    id          TEXT PRIMARY KEY,
    public_key  BYTEA NOT NULL,
    key_id      TEXT NOT NULL,
    added_at    BIGINT NOT NULL,
    -- The station's audit chain as acknowledged: last row and its hash.
    head_seq    BIGINT NOT NULL DEFAULT 0,
    head_hash   BYTEA NOT NULL,
    -- The last signed head the station pushed (JSON), and when.
    signed_head TEXT,
    last_seen   BIGINT
);

CREATE TABLE events (
    station_id  TEXT NOT NULL REFERENCES stations(id),
    event_id    TEXT NOT NULL,
    seq         BIGINT NOT NULL,
    kind        TEXT NOT NULL,
    payload     TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    received_at BIGINT NOT NULL,
    PRIMARY KEY (station_id, event_id)
);
CREATE INDEX events_received ON events(received_at);

CREATE TABLE audit_rows (
    station_id TEXT NOT NULL REFERENCES stations(id),
    seq        BIGINT NOT NULL,
    at         BIGINT NOT NULL,
    actor      TEXT NOT NULL,
    action     TEXT NOT NULL,
    entity     TEXT NOT NULL,
    entity_id  TEXT NOT NULL,
    detail     TEXT NOT NULL,
    hash       BYTEA NOT NULL,
    PRIMARY KEY (station_id, seq)
);

-- Request nonces seen within the freshness window (replay refusal).
CREATE TABLE nonces (
    station_id TEXT NOT NULL,
    nonce      TEXT NOT NULL,
    created    BIGINT NOT NULL,
    PRIMARY KEY (station_id, nonce)
);
CREATE INDEX nonces_created ON nonces(created);

-- The fleet's bindings, current state.
CREATE TABLE bindings (
    binding_id    TEXT PRIMARY KEY,
    station_id    TEXT NOT NULL,
    subject       TEXT NOT NULL,
    device_serial TEXT,
    state         TEXT NOT NULL,
    replaces      TEXT,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
);
CREATE INDEX bindings_subject ON bindings(subject);
CREATE INDEX bindings_serial ON bindings(device_serial);

CREATE TABLE incidents (
    id         BIGSERIAL PRIMARY KEY,
    station_id TEXT NOT NULL,
    kind       TEXT NOT NULL,
    detail     TEXT NOT NULL,
    at         BIGINT NOT NULL
);
