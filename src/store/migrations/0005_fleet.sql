-- keyward ledger, schema version 5: what the fleet reported (docs/fleet.md).
--
-- A binding another station or the registry moved to another state (lost,
-- revoked, replaced, …), as pulled from the registry. A key whose binding
-- is marked lost or revoked here is refused for enroll, return and unblock
-- at this station although it was never enrolled here. Covered by the
-- audit log like the bindings (`store::replay`); the pull cursor is the
-- meta key `sync.pull_cursor`.
CREATE TABLE fleet_marks (
    binding_id    TEXT PRIMARY KEY,
    device_serial TEXT,
    subject       TEXT,
    state         TEXT NOT NULL,
    reason        TEXT,
    origin        TEXT NOT NULL,
    at            INTEGER NOT NULL,
    cursor        INTEGER NOT NULL
) STRICT;
CREATE INDEX fleet_marks_serial ON fleet_marks(device_serial);
