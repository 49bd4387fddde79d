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
use crate::store::{BindingState, StoreError};
use crate::ticket::{Claims, Replaces, VerifiedTicket};

/// The binding being replaced.
#[derive(Debug, Clone)]
pub(crate) struct Original {
    pub binding: String,
    pub reason: String,
    pub detail: serde_json::Value,
    /// Set when another station enrolled it (found through the registry).
    pub remote: Option<Remote>,
}

/// Where a binding enrolled elsewhere lives, as the registry reported it.
#[derive(Debug, Clone)]
pub(crate) struct Remote {
    pub station: String,
    pub serial: Option<String>,
    pub subject: String,
}

/// What the replacement rules need of the original binding, from the
/// ledger or from the registry.
#[derive(Debug, Clone)]
struct Found {
    subject: String,
    state: String,
    ial: Option<i64>,
    policy: Option<String>,
    remote: Option<Remote>,
    /// Not checked against the original (registry unreachable,
    /// `[sync] provisional_replacement`).
    provisional: bool,
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
    let (id, s) = find_original(station, claims, rep)?;
    if s.provisional && vt.signers.len() < 2 {
        // The original's assurance and profile are unknown until the
        // registry answers: only dual control keeps the recovery at least
        // as strong as any first enrollment.
        return Err(refuse(
            Reason::ReplaceDualControl,
            format!(
                "binding {id} is not in this ledger and the registry cannot be asked: a provisional replacement needs dual control (two approvals), and the ticket carries {}; have a second approver co-sign it (`keyward ticket cosign`) or wait for the registry",
                vt.signers.len()
            ),
        ));
    }
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
                       "approvals": vt.signers.len(), "reason": rep.reason,
                       "enrolled_at": s.remote.as_ref().map(|r| r.station.clone()),
                       "provisional": s.provisional}),
        remote: s.remote,
    })
}

/// The binding a replacement ticket names (by id, or by serial among the
/// subject's open bindings): from the ledger, else from the registry (a
/// key enrolled at another station).
fn find_original(
    station: &Station,
    claims: &Claims,
    rep: &Replaces,
) -> Result<(String, Found), ProvisionError> {
    if let Some(found) = find_local(station, claims, rep)? {
        return Ok(found);
    }
    let serial = rep.serial.map(|s| s.to_string());
    let not_here = match (&rep.binding, &serial) {
        (Some(b), _) => format!("no binding {b} in the ledger"),
        (None, Some(s)) => format!(
            "no active, suspended or lost binding of device {s} for {} in the ledger",
            claims.sub
        ),
        (None, None) => {
            return Err(refuse(
                Reason::ReplaceTicket,
                "`replaces` names neither a binding nor a serial",
            ));
        }
    };
    let remote = match super::fleet::lookup(station, rep.binding.as_deref(), serial.as_deref())? {
        super::fleet::Lookup::Found(r) => r,
        super::fleet::Lookup::NoRegistry => {
            return Err(refuse(
                Reason::ReplaceNotFound,
                format!(
                    "{not_here}; check the ticket's `replaces` (a key enrolled at another station is found through the registry: set `registry` under [sync])"
                ),
            ));
        }
        super::fleet::Lookup::Provisional(why) => {
            // The rules the registry cannot be asked about now are checked
            // when the replacement syncs (docs/fleet.md).
            let Some(id) = rep.binding.clone() else {
                return Err(refuse(
                    Reason::RegistryUnavailable,
                    format!(
                        "{not_here} and the registry cannot be asked ({why}); a provisional replacement needs the original's binding id in `replaces`"
                    ),
                ));
            };
            return Ok((
                id,
                Found {
                    subject: claims.sub.clone(),
                    state: "lost".into(),
                    ial: None,
                    policy: None,
                    remote: Some(Remote {
                        station: "unknown (provisional)".into(),
                        serial,
                        subject: claims.sub.clone(),
                    }),
                    provisional: true,
                },
            ));
        }
    };
    let pick = remote.into_iter().rev().find(|b| match &rep.binding {
        Some(id) => &b.binding == id,
        None => {
            b.subject == claims.sub && matches!(b.state.as_str(), "active" | "suspended" | "lost")
        }
    });
    let Some(b) = pick else {
        return Err(refuse(
            Reason::ReplaceNotFound,
            format!("{not_here} nor in the registry; check the ticket's `replaces`"),
        ));
    };
    Ok((
        b.binding.clone(),
        Found {
            subject: b.subject.clone(),
            state: b.state.clone(),
            ial: b.ial,
            policy: b.policy.clone(),
            remote: Some(Remote {
                station: b.station,
                serial: b.serial,
                subject: b.subject,
            }),
            provisional: false,
        },
    ))
}

/// [`find_original`] in this station's ledger.
fn find_local(
    station: &Station,
    claims: &Claims,
    rep: &Replaces,
) -> Result<Option<(String, Found)>, ProvisionError> {
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
                None => return Ok(None),
            }
        }
        (None, None) => return Ok(None),
    };
    let detail = match ledger.show_binding(&id) {
        Ok(d) => d,
        Err(StoreError::BindingNotFound(_)) => return Ok(None),
        Err(e) => return Err(errors::store(Step::Replace, e)),
    };
    let s = detail.summary;
    Ok(Some((
        id,
        Found {
            subject: s.subject,
            state: s.state,
            ial: s.ial,
            policy: detail.policy,
            remote: None,
            provisional: false,
        },
    )))
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
        .and_then(|(_, f)| f.policy)
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
