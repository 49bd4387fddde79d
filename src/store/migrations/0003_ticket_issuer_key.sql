-- keyward ledger, schema version 3: a ticket is single-use per (issuer, jti).
-- RFC 7519 §4.1.7 makes `jti` unique per issuer only, so two issuers may
-- both use one jti; keyed on jti alone, one issuer's ticket could burn
-- another's (docs/ticket.md §4). `tickets` gets the key (issuer, jti), and
-- `bindings` names its ticket by both. SQLite cannot change a primary key
-- in place: both tables are rebuilt (the migration runs with foreign keys
-- off and checks them before it commits, see store::migrate).

CREATE TABLE tickets_v3 (
    issuer      TEXT NOT NULL,
    jti         TEXT NOT NULL,
    digest      TEXT NOT NULL,
    subject     TEXT NOT NULL,
    ial         INTEGER,
    consumed_at INTEGER NOT NULL,
    PRIMARY KEY (issuer, jti)
) STRICT;
INSERT INTO tickets_v3(issuer, jti, digest, subject, ial, consumed_at)
    SELECT issuer, jti, digest, subject, ial, consumed_at FROM tickets;

CREATE TABLE bindings_v3 (
    id            TEXT PRIMARY KEY,
    identity_id   INTEGER NOT NULL REFERENCES identities(id),
    device_id     INTEGER NOT NULL REFERENCES devices(id),
    ticket_issuer TEXT NOT NULL,
    ticket_jti    TEXT NOT NULL,
    ial           INTEGER,
    policy        TEXT,
    state         TEXT NOT NULL CHECK (state IN ('active', 'suspended', 'lost', 'revoked', 'replaced', 'returned')),
    state_reason  TEXT,
    created_at    INTEGER NOT NULL,
    suspended_at  INTEGER,
    lost_at       INTEGER,
    revoked_at    INTEGER,
    replaced_at   INTEGER,
    returned_at   INTEGER,
    replaced_by   TEXT REFERENCES bindings(id),
    UNIQUE (ticket_issuer, ticket_jti),
    FOREIGN KEY (ticket_issuer, ticket_jti) REFERENCES tickets(issuer, jti)
) STRICT;
INSERT INTO bindings_v3(id, identity_id, device_id, ticket_issuer, ticket_jti, ial, policy,
        state, state_reason, created_at, suspended_at, lost_at, revoked_at, replaced_at,
        returned_at, replaced_by)
    SELECT b.id, b.identity_id, b.device_id, t.issuer, b.ticket_jti, b.ial, b.policy,
        b.state, b.state_reason, b.created_at, b.suspended_at, b.lost_at, b.revoked_at,
        b.replaced_at, b.returned_at, b.replaced_by
    FROM bindings b JOIN tickets t ON t.jti = b.ticket_jti;

DROP TABLE bindings;
DROP TABLE tickets;
ALTER TABLE tickets_v3 RENAME TO tickets;
ALTER TABLE bindings_v3 RENAME TO bindings;
CREATE INDEX bindings_identity ON bindings(identity_id);
CREATE INDEX bindings_device ON bindings(device_id);
