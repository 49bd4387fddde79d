-- keyward ledger, schema version 6: the identity-provider step of a
-- binding (docs/idp.md).
--
-- One row per binding whose profile has an IdP step. `registration` is
-- the JSON the station sends to `/v1/idp/register` again on a retry: the
-- credential id, clientDataJSON and attestation object (public data, no
-- secret). Every change of state is an audit row (`idp.*`) and an outbox
-- event (`binding.idp`); the row written with the binding is covered by
-- the binding's own `idp.bound` audit row in the same transaction.
CREATE TABLE idp_methods (
    binding_id    TEXT PRIMARY KEY REFERENCES bindings(id),
    provider      TEXT NOT NULL,
    idp_user      TEXT NOT NULL,
    credential_id BLOB,
    registration  TEXT,
    state         TEXT NOT NULL CHECK (state IN ('registered', 'pending', 'failed', 'skipped',
                                                 'delete-pending', 'deleted', 'delete-failed')),
    method_id     TEXT,
    error_code    TEXT,
    message       TEXT,
    attempts      INTEGER NOT NULL DEFAULT 0,
    updated_at    INTEGER NOT NULL
) STRICT;
CREATE INDEX idp_methods_state ON idp_methods(state);
