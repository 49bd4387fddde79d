-- keyward registry (SQLite), schema version 3: the fleet (docs/fleet.md).
-- What a replacement at another station needs to check its rules.
ALTER TABLE bindings ADD COLUMN ial INTEGER;
ALTER TABLE bindings ADD COLUMN policy TEXT;
ALTER TABLE bindings ADD COLUMN ticket_issuer TEXT;
ALTER TABLE bindings ADD COLUMN ticket_jti TEXT;
ALTER TABLE bindings ADD COLUMN state_reason TEXT;
-- The station (or `registry`) that reported the current state.
ALTER TABLE bindings ADD COLUMN state_origin TEXT;
ALTER TABLE bindings ADD COLUMN replaced_by TEXT;

-- Fleet-wide single use of a ticket: (issuer, jti) held by one station,
-- either reserved before the key was touched (online = 1) or learned from a
-- pushed binding (online = 0, an offline enrollment).
CREATE TABLE reservations (
    issuer      TEXT NOT NULL,
    jti         TEXT NOT NULL,
    station_id  TEXT NOT NULL,
    subject     TEXT NOT NULL,
    reserved_at INTEGER NOT NULL,
    binding_id  TEXT,
    online      INTEGER NOT NULL,
    PRIMARY KEY (issuer, jti)
) STRICT;

-- What every station pulls, in commit order (`id` is the cursor):
-- a binding's state changed (revoked, lost, replaced, …) or an incident
-- that concerns stations (a ticket used twice).
CREATE TABLE fleet_changes (
    id            INTEGER PRIMARY KEY,
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
    at            INTEGER NOT NULL
) STRICT;
