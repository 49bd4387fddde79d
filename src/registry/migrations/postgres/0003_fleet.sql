-- keyward registry (PostgreSQL), schema version 3: the fleet (docs/fleet.md).
ALTER TABLE bindings ADD COLUMN ial BIGINT;
ALTER TABLE bindings ADD COLUMN policy TEXT;
ALTER TABLE bindings ADD COLUMN ticket_issuer TEXT;
ALTER TABLE bindings ADD COLUMN ticket_jti TEXT;
ALTER TABLE bindings ADD COLUMN state_reason TEXT;
ALTER TABLE bindings ADD COLUMN state_origin TEXT;
ALTER TABLE bindings ADD COLUMN replaced_by TEXT;

CREATE TABLE reservations (
    issuer      TEXT NOT NULL,
    jti         TEXT NOT NULL,
    station_id  TEXT NOT NULL,
    subject     TEXT NOT NULL,
    reserved_at BIGINT NOT NULL,
    binding_id  TEXT,
    online      BOOLEAN NOT NULL,
    PRIMARY KEY (issuer, jti)
);

-- The cursor is assigned from one counter row, locked until commit, so ids
-- follow commit order and a pull never skips a change committed late.
CREATE TABLE fleet_counter (one BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (one), n BIGINT NOT NULL);
INSERT INTO fleet_counter(n) VALUES (0);

CREATE TABLE fleet_changes (
    id            BIGINT PRIMARY KEY,
    kind          TEXT NOT NULL,
    binding_id    TEXT,
    device_serial TEXT,
    subject       TEXT,
    state         TEXT,
    reason        TEXT,
    replaced_by   TEXT,
    origin        TEXT NOT NULL,
    stations      TEXT NOT NULL DEFAULT '[]',
    detail        TEXT NOT NULL DEFAULT '{}',
    at            BIGINT NOT NULL
);
