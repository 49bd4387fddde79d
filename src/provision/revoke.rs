//! Revoke a binding: it becomes `revoked` with a reason (lost, stolen,
//! damaged, left), audited, with a `binding.revoked` event in the outbox for
//! the registry, in one ledger transaction. No key is needed: a lost key is
//! revoked precisely because it is not at hand. docs/lifecycle.md.

use serde::{Deserialize, Serialize};

use super::errors;
use super::record::{Books, Run, Seen};
use super::{ProvisionError, Reason, Step};
use crate::store::stock::RevokeReason;
use crate::store::{BindingState, RunKind, RunStart};

/// What to revoke.
#[derive(Debug, Clone)]
pub struct RevokeRequest {
    /// The binding id (`keyward bindings list`).
    pub binding: String,
    pub reason: RevokeReason,
}

/// A revoked binding (`Deserialize`: the CLI reads it back from the daemon).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RevokeOutcome {
    pub run: String,
    pub binding: String,
    pub subject: String,
    pub device_serial: Option<String>,
    /// The state it was in.
    pub from: BindingState,
    pub reason: RevokeReason,
}

/// Revoke a binding. A binding that does not exist or that is already
/// revoked, replaced or returned is refused and nothing is written but the
/// failed run.
pub fn revoke(books: Books<'_>, req: &RevokeRequest) -> Result<RevokeOutcome, ProvisionError> {
    let run = Run::start(
        books,
        RunKind::Revoke,
        &RunStart {
            actor: books.actor,
            ..RunStart::default()
        },
        Step::Commit,
    )?;
    let result = revoke_in(books, req, &run.id);
    let serial = result.as_ref().ok().and_then(|o| o.device_serial.clone());
    run.finish(
        &result,
        Seen {
            serial: serial.as_deref(),
            binding: Some(&req.binding),
            ..Seen::default()
        },
    );
    result.map_err(|mut e| {
        e.run = Some(run.id.clone());
        e
    })
}

fn revoke_in(
    books: Books<'_>,
    req: &RevokeRequest,
    run: &str,
) -> Result<RevokeOutcome, ProvisionError> {
    if req.binding.is_empty() || req.binding.len() > 128 {
        return Err(ProvisionError::new(
            Reason::BindingNotFound,
            Some(Step::Commit),
            "a binding id is 1 to 128 characters (see `keyward bindings list`)",
        ));
    }
    let now = books.now_secs();
    let mut ledger = books.ledger()?;
    let from = ledger
        .revoke_binding(&req.binding, req.reason, books.actor, now)
        .map_err(|e| {
            let mut e = errors::store(Step::Commit, e);
            if e.reason == Reason::BindingNotFound {
                e.message = format!("{}; `keyward bindings list` shows the ids", e.message);
            }
            e
        })?;
    let b = ledger
        .show_binding(&req.binding)
        .map_err(|e| errors::store(Step::Commit, e))?;
    Ok(RevokeOutcome {
        run: run.to_string(),
        binding: req.binding.clone(),
        subject: b.summary.subject,
        device_serial: b.summary.device_serial,
        from,
        reason: req.reason,
    })
}
