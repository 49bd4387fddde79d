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
    /// The kiosk operator who asked (docs/kiosk.md "Operator view"): named
    /// in the audit actor after the station's. At most 64 characters of
    /// letters, digits and `.`, `_`, `-`, `@`.
    pub operator: Option<String>,
}

/// Whether `name` may stand in an audit actor as an operator's name.
pub fn valid_operator(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'@'))
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
    let actor;
    let books = match &req.operator {
        None => books,
        Some(op) if valid_operator(op) => {
            actor = format!("{} operator:{op}", books.actor);
            Books {
                actor: &actor,
                ..books
            }
        }
        Some(_) => {
            return Err(ProvisionError::new(
                Reason::BindingNotFound,
                Some(Step::Commit),
                "an operator name is 1 to 64 letters, digits, '.', '_', '-' or '@'",
            ));
        }
    };
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
    let here = ledger.show_binding(&req.binding);
    if matches!(here, Err(crate::store::StoreError::BindingNotFound(_)))
        && let Some(link) = books.fleet
    {
        drop(ledger);
        return revoke_remote(books, link, req, run, now);
    }
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
    drop(ledger);
    // After the commit: the binding's IdP method is deleted through the
    // registry; a failure stays `delete-pending`, retried (docs/idp.md).
    if let Err(e) = super::idp::delete(books, &req.binding) {
        tracing::warn!(binding = %req.binding, "the IdP deletion's outcome was not recorded: {e}");
    }
    Ok(RevokeOutcome {
        run: run.to_string(),
        binding: req.binding.clone(),
        subject: b.summary.subject,
        device_serial: b.summary.device_serial,
        from,
        reason: req.reason,
    })
}

/// Revoke a binding another station enrolled: the registry confirms it
/// (and its state); the ledger records a mark, an audit row and the
/// `binding.state_changed` event the registry applies and every station
/// pulls.
fn revoke_remote(
    books: Books<'_>,
    link: &super::fleet::Link,
    req: &RevokeRequest,
    run: &str,
    now: i64,
) -> Result<RevokeOutcome, ProvisionError> {
    let found = {
        let ledger = books.ledger()?;
        let key = ledger.station_key().ok_or_else(|| {
            ProvisionError::new(Reason::Ledger, Some(Step::Commit), "the ledger is open read-only")
        })?;
        link.lookup(key, Some(&req.binding), None, now)
    }
    .map_err(|e| {
        ProvisionError::new(
            Reason::RegistryUnavailable,
            Some(Step::Commit),
            format!(
                "binding {} is not in this station's ledger and the registry {} cannot be asked: {}; try again when it is reachable, or revoke it at the registry (`keyward registry revoke`)",
                req.binding,
                link.registry(),
                super::fleet::brief(&e)
            ),
        )
    })?;
    let Some(b) = found.into_iter().find(|b| b.binding == req.binding) else {
        return Err(ProvisionError::new(
            Reason::BindingNotFound,
            Some(Step::Commit),
            format!(
                "no binding {} here or in the registry; `keyward bindings list` shows this station's ids, `keyward registry bindings` the fleet's",
                req.binding
            ),
        ));
    };
    let from: BindingState = b
        .state
        .parse()
        .map_err(|e: String| ProvisionError::new(Reason::Ledger, Some(Step::Commit), e))?;
    if !from.can_become(BindingState::Revoked) {
        return Err(ProvisionError::new(
            Reason::BindingState,
            Some(Step::Commit),
            format!(
                "binding {} (enrolled at {}) is {from}; only an active, suspended or lost binding can be revoked",
                b.binding, b.station
            ),
        ));
    }
    books
        .ledger()?
        .revoke_remote(
            &crate::store::fleet::RemoteOriginal {
                binding: &b.binding,
                station: &b.station,
                serial: b.serial.as_deref(),
                subject: &b.subject,
            },
            from,
            req.reason.as_str(),
            books.actor,
            now,
        )
        .map_err(|e| errors::store(Step::Commit, e))?;
    Ok(RevokeOutcome {
        run: run.to_string(),
        binding: b.binding,
        subject: b.subject,
        device_serial: b.serial,
        from,
        reason: req.reason,
    })
}
