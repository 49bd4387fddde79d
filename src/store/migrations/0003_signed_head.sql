-- keyward ledger, schema version 3: a signed audit head on every write.
--
-- Every write transaction that appends audit rows signs the new head
-- (sequence number and hash) with the station key in the same transaction,
-- so no row is ever outside a signature. The head replaces the every-256
-- checkpoints (which left up to 255 rows unsigned), and the public key
-- that checks it is pinned outside the database (station.pub): the copy in
-- `meta` only stops a writer from signing with another station's key, and
-- `audit verify` never reads it.
CREATE TABLE audit_head (
    id        INTEGER PRIMARY KEY CHECK (id = 1),
    seq       INTEGER NOT NULL,
    hash      BLOB NOT NULL CHECK (length(hash) = 32),
    key_id    TEXT NOT NULL,
    signature BLOB NOT NULL CHECK (length(signature) = 64),
    at        INTEGER NOT NULL
) STRICT;

DROP TABLE audit_checkpoints;
