//! Replacement rules (DESIGN.md: "the recovery path is never weaker than
//! the primary path"): the ticket's `replaces` names the original binding
//! (or the device serial); the original must belong to the same subject
//! and be in a replaceable state; the ticket's ial may not be lower than
//! the original's; a privileged profile (the ticket's or the original
//! binding's) needs dual control — two independent approvals on the
//! ticket. Everything first enrollment requires is required as well: the
//! replacement runs the same enrollment.

use serde_json::json;

use super::{ProvisionError, Reason, Station, Step, errors};
use crate::policy::profile::Profile;
use crate::store::query::BindingDetail;
use crate::store::{BindingState, StoreError};
use crate::ticket::{Claims, Replaces, VerifiedTicket};

/// The binding being replaced.
#[derive(Debug, Clone)]
pub(crate) struct Original {
    pub binding: String,
    pub reason: String,
    pub detail: serde_json::Value,
}

fn refuse(reason: Reason, msg: impl Into<String>) -> ProvisionError {
    ProvisionError::new(reason, Some(Step::Replace), msg)
}

/// Find the original binding and check every replacement rule but dual
/// control, which [`check_dual_control`] decides with the ticket itself
/// (`super::verify_ticket`).
pub(crate) fn check(
    station: &Station,
    vt: &VerifiedTicket,
    profile: &Profile,
) -> Result<Original, ProvisionError> {
    let claims = &vt.claims;
    let Some(rep) = &claims.replaces else {
        return Err(refuse(
            Reason::ReplaceTicket,
            "this ticket does not name a device to replace (no `replaces` claim); use `keyward enroll` for a first enrollment",
        ));
    };
    if !profile.replacement.allowed {
        return Err(refuse(
            Reason::ReplaceTicket,
            format!(
                "policy profile {:?} does not allow replacements; ask the issuer for a ticket under another profile",
                claims.policy
            ),
        ));
    }
    let (id, detail) = find_original(station, claims, rep)?;
    let s = &detail.summary;
    if s.subject != claims.sub {
        return Err(refuse(
            Reason::ReplaceNotFound,
            format!(
                "binding {id} belongs to another subject than the ticket's ({}); a replacement must be for the same person",
                claims.sub
            ),
        ));
    }
    let state: BindingState = s
        .state
        .parse()
        .map_err(|e: String| refuse(Reason::Ledger, e))?;
    if !state.can_become(BindingState::Replaced)
        || !profile
            .replacement
            .from_states
            .iter()
            .any(|f| f == state.as_str())
    {
        return Err(refuse(
            Reason::ReplaceState,
            format!(
                "binding {id} is {state}; profile {:?} replaces only bindings that are {}",
                claims.policy,
                profile.replacement.from_states.join(", ")
            ),
        ));
    }
    let original_ial = s.ial.unwrap_or(0);
    if i64::from(claims.ial) < original_ial {
        return Err(refuse(
            Reason::ReplaceIal,
            format!(
                "the ticket's identity assurance (ial {}) is lower than the original enrollment's (ial {original_ial}); a recovery must prove identity at least as strongly — ask for a ticket at ial {original_ial} or higher",
                claims.ial
            ),
        ));
    }
    Ok(Original {
        binding: id.clone(),
        reason: rep.reason.clone(),
        detail: json!({"replaces": id, "state": state.as_str(), "original_ial": s.ial,
                       "approvals": vt.signers.len(), "reason": rep.reason}),
    })
}

/// The binding a replacement ticket names (by id, or by serial among the
/// subject's open bindings), with its details.
fn find_original(
    station: &Station,
    claims: &Claims,
    rep: &Replaces,
) -> Result<(String, BindingDetail), ProvisionError> {
    let ledger = station.ledger()?;
    let id = match (&rep.binding, rep.serial) {
        (Some(b), _) => b.clone(),
        (None, Some(serial)) => {
            let serial = serial.to_string();
            let all = ledger
                .list_bindings(Some(&claims.sub), None)
                .map_err(|e| errors::store(Step::Replace, e))?;
            let found = all.iter().rev().find(|b| {
                b.device_serial.as_deref() == Some(serial.as_str())
                    && matches!(b.state.as_str(), "active" | "suspended" | "lost")
            });
            match found {
                Some(b) => b.id.clone(),
                None => {
                    return Err(refuse(
                        Reason::ReplaceNotFound,
                        format!(
                            "no active, suspended or lost binding of device {serial} for {} in the ledger; check the serial in the ticket",
                            claims.sub
                        ),
                    ));
                }
            }
        }
        (None, None) => {
            return Err(refuse(
                Reason::ReplaceTicket,
                "`replaces` names neither a binding nor a serial",
            ));
        }
    };
    let detail = match ledger.show_binding(&id) {
        Ok(d) => d,
        Err(StoreError::BindingNotFound(_)) => {
            return Err(refuse(
                Reason::ReplaceNotFound,
                format!("no binding {id} in the ledger; check the ticket's `replaces`"),
            ));
        }
        Err(e) => return Err(errors::store(Step::Replace, e)),
    };
    Ok((id, detail))
}

/// Dual control for replacements: a privileged profile, the ticket's or the
/// original binding's, needs two independent approvals on the ticket.
pub(crate) fn check_dual_control(
    station: &Station,
    vt: &VerifiedTicket,
) -> Result<(), ProvisionError> {
    let claims = &vt.claims;
    let Some(rep) = &claims.replaces else {
        return Ok(());
    };
    let privileged = |policy: &str| station.profiles.get(policy).is_some_and(|p| p.privileged);
    // An original that cannot be found is refused later, by `check`.
    let original_privileged = find_original(station, claims, rep)
        .ok()
        .and_then(|(_, d)| d.policy)
        .is_some_and(|p| privileged(&p));
    if (privileged(&claims.policy) || original_privileged) && vt.signers.len() < 2 {
        return Err(ProvisionError::new(
            Reason::ReplaceDualControl,
            Some(Step::Ticket),
            format!(
                "the profile is privileged: replacing this key needs dual control (two independent approvals), and the ticket carries {}; have a second approver co-sign it (`keyward ticket cosign`)",
                vt.signers.len()
            ),
        ));
    }
    Ok(())
}
