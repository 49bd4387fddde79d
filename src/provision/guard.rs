//! The ledger as the ticket replay store (DESIGN.md, "Signed provisioning
//! ticket"): a ticket is consumed in the same transaction that commits its
//! binding (`Ledger::commit_enrollment`), and the clock-rollback check
//! reads the ledger's latest trusted time.
//!
//! Single use is per (issuer, jti), RFC 7519 §4.1.7: the ledger's `tickets`
//! table is keyed on both (schema 3), so the guard and the commit agree.

use crate::store::{Ledger, StoreError};
use crate::ticket::{ReplayError, ReplayGuard};

fn backend(e: StoreError) -> ReplayError {
    ReplayError::Backend(Box::new(e))
}

impl ReplayGuard for Ledger {
    fn is_consumed(&self, iss: &str, jti: &str) -> Result<bool, ReplayError> {
        Ok(self.ticket_consumed(iss, jti).map_err(backend)?.is_some())
    }

    /// Consumption is written by `commit_enrollment` together with the
    /// binding; consuming a ticket without a binding would burn it for
    /// nothing. So this only reports whether it was consumed already.
    fn consume(&self, iss: &str, jti: &str, _exp: i64, _now: i64) -> Result<(), ReplayError> {
        if self.is_consumed(iss, jti)? {
            return Err(ReplayError::AlreadyConsumed {
                iss: iss.to_owned(),
                jti: jti.to_owned(),
            });
        }
        Err(ReplayError::Backend(
            "the ledger consumes a ticket only with its binding (Ledger::commit_enrollment)".into(),
        ))
    }

    fn latest_trusted_time(&self) -> Result<Option<i64>, ReplayError> {
        Ledger::latest_trusted_time(self).map_err(backend)
    }
}
