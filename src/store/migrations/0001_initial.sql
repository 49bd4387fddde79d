-- keyward ledger, schema version 1.
-- Times are Unix seconds (UTC). No column ever holds a PIN, PUK, management
-- key or token.

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) STRICT;

CREATE TABLE identities (
    id         INTEGER PRIMARY KEY,
    subject    TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL
) STRICT;

CREATE TABLE devices (
    id         INTEGER PRIMARY KEY,
    -- 'yubikey' for a key known by serial, 'fido2' for one known only by
    -- credential, 'piv' for a card without a serial.
    kind       TEXT NOT NULL,
    serial     TEXT,
    aaguid     TEXT,
    model      TEXT,
    firmware   TEXT,
    first_seen INTEGER NOT NULL,
    UNIQUE (kind, serial)
) STRICT;

CREATE TABLE tickets (
    jti         TEXT PRIMARY KEY,
    digest      TEXT NOT NULL,
    issuer      TEXT NOT NULL,
    subject     TEXT NOT NULL,
    ial         INTEGER,
    consumed_at INTEGER NOT NULL
) STRICT;

CREATE TABLE bindings (
    id           TEXT PRIMARY KEY,
    identity_id  INTEGER NOT NULL REFERENCES identities(id),
    device_id    INTEGER NOT NULL REFERENCES devices(id),
    ticket_jti   TEXT NOT NULL UNIQUE REFERENCES tickets(jti),
    ial          INTEGER,
    policy       TEXT,
    state        TEXT NOT NULL CHECK (state IN ('active', 'suspended', 'lost', 'revoked', 'replaced', 'returned')),
    state_reason TEXT,
    created_at   INTEGER NOT NULL,
    suspended_at INTEGER,
    lost_at      INTEGER,
    revoked_at   INTEGER,
    replaced_at  INTEGER,
    returned_at  INTEGER,
    replaced_by  TEXT REFERENCES bindings(id)
) STRICT;
CREATE INDEX bindings_identity ON bindings(identity_id);
CREATE INDEX bindings_device ON bindings(device_id);

CREATE TABLE credentials (
    id            INTEGER PRIMARY KEY,
    binding_id    TEXT NOT NULL REFERENCES bindings(id),
    kind          TEXT NOT NULL CHECK (kind IN ('fido2', 'piv')),
    -- FIDO2: credential id and RP; PIV: slot.
    credential_id BLOB,
    rp_id         TEXT,
    slot          TEXT,
    algorithm     TEXT NOT NULL,
    public_key    BLOB NOT NULL,
    -- Raw attestation (attestation object, or the PIV certificate chain), kept
    -- for later re-verification.
    attestation   BLOB,
    attestation_format TEXT,
    created_at    INTEGER NOT NULL
) STRICT;
CREATE INDEX credentials_binding ON credentials(binding_id);

CREATE TABLE exceptions (
    id         INTEGER PRIMARY KEY,
    rule       TEXT NOT NULL,
    scope      TEXT NOT NULL,
    reason     TEXT NOT NULL,
    approver   TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    CHECK (expires_at > created_at)
) STRICT;

-- Append-only, hash-chained: hash = SHA-256(prev_hash || canonical content).
CREATE TABLE audit (
    seq       INTEGER PRIMARY KEY,
    at        INTEGER NOT NULL,
    actor     TEXT NOT NULL,
    action    TEXT NOT NULL,
    entity    TEXT NOT NULL,
    entity_id TEXT NOT NULL,
    detail    TEXT NOT NULL,
    prev_hash BLOB NOT NULL,
    hash      BLOB NOT NULL
) STRICT;

-- The station's Ed25519 signature over (seq, hash) at intervals.
CREATE TABLE audit_checkpoints (
    seq       INTEGER PRIMARY KEY REFERENCES audit(seq),
    hash      BLOB NOT NULL,
    key_id    TEXT NOT NULL,
    signature BLOB NOT NULL,
    at        INTEGER NOT NULL
) STRICT;

CREATE TABLE outbox (
    seq          INTEGER PRIMARY KEY,
    event_id     TEXT NOT NULL UNIQUE,
    kind         TEXT NOT NULL,
    payload      TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    delivered_at INTEGER
) STRICT;
CREATE INDEX outbox_pending ON outbox(seq) WHERE delivered_at IS NULL;
