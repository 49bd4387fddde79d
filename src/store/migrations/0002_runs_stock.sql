-- keyward ledger, schema version 2: workflow runs (for metrics and
-- `keyward report`) and the stock state of returned keys.

-- One row per workflow run (enroll, replace, revoke, return, unblock),
-- written when it starts and completed when it ends. A run with no end is
-- one that was interrupted (crash, power loss); reports count it as aborted.
-- `reason` is a stable machine code (docs/policy.md, "Failure reasons");
-- `detail` a human message. Neither ever holds a PIN, PUK or key.
CREATE TABLE runs (
    id            TEXT PRIMARY KEY,
    kind          TEXT NOT NULL CHECK (kind IN ('enroll', 'replace', 'revoke', 'return', 'unblock')),
    started_at    INTEGER NOT NULL,
    finished_at   INTEGER,
    outcome       TEXT CHECK (outcome IN ('completed', 'failed', 'aborted')),
    reason        TEXT,
    detail        TEXT,
    ticket_jti    TEXT,
    subject       TEXT,
    device_serial TEXT,
    aaguid        TEXT,
    binding_id    TEXT,
    -- Bulk slot or kiosk name, free text.
    slot          TEXT,
    CHECK ((finished_at IS NULL) = (outcome IS NULL))
) STRICT;
CREATE INDEX runs_started ON runs(started_at);

-- Keys handed back and reset: back in stock, ready to be issued again.
-- A key leaves stock when a new binding is committed for it.
CREATE TABLE stock (
    device_id  INTEGER PRIMARY KEY REFERENCES devices(id),
    state      TEXT NOT NULL CHECK (state IN ('in_stock', 'quarantined')),
    since      INTEGER NOT NULL,
    binding_id TEXT REFERENCES bindings(id),
    note       TEXT
) STRICT;
