//! The fleet inside a workflow (docs/fleet.md): reserve the ticket at the
//! registry before the key is touched, refuse a key the fleet reported lost
//! or revoked, and find a replacement's original binding when another
//! station enrolled it.

use std::sync::Arc;

use serde_json::json;

use super::flow::Flow;
use super::{ProvisionError, Reason, Station, Step, errors};
use crate::store::station_key::StationKey;
use crate::sync::client::SyncError;
use crate::sync::fleet::FleetBinding;
use crate::ticket::VerifiedTicket;

/// The registry as a workflow sees it. `keyward` builds one from `[sync]`
/// (`crate::sync::fleet::Link`); a station without a registry has none.
pub trait FleetLink: Send + Sync {
    /// Hold (iss, jti) for this station; a refusal with code `ticket-held`
    /// means another station holds it.
    fn reserve(
        &self,
        key: &StationKey,
        issuer: &str,
        jti: &str,
        subject: &str,
        now: i64,
    ) -> Result<(), SyncError>;
    /// Give back (iss, jti) this station reserved and did not use.
    fn release(&self, key: &StationKey, issuer: &str, jti: &str, now: i64)
    -> Result<(), SyncError>;
    /// Bindings by id or serial.
    fn lookup(
        &self,
        key: &StationKey,
        binding: Option<&str>,
        serial: Option<&str>,
        now: i64,
    ) -> Result<Vec<FleetBinding>, SyncError>;
    /// `[sync] offline_enrollment`: enroll when the registry cannot be
    /// reached (the reservation is reconciled at the next sync).
    fn offline_allowed(&self) -> bool;
    /// `[sync] provisional_replacement`: replace a key whose original
    /// binding cannot be looked up (registry unreachable); the registry
    /// checks the rules when the replacement syncs.
    fn provisional_allowed(&self) -> bool;
    /// The registry's address, for messages.
    fn registry(&self) -> &str;
    /// The identity provider's creation options for `user`, for the ticket
    /// (iss, jti, sub) this station holds (docs/idp.md).
    fn idp_options(
        &self,
        key: &StationKey,
        ticket: (&str, &str, &str),
        user: &str,
        now: i64,
    ) -> Result<crate::idp::CreationOptions, SyncError>;
    /// Register a binding's IdP credential (the registry looks it up
    /// first): the IdP's method id, and whether it was already there.
    fn idp_register(
        &self,
        key: &StationKey,
        binding: &str,
        user: &str,
        registration: &crate::idp::Registration,
        now: i64,
    ) -> Result<(String, bool), SyncError>;
    /// Delete a binding's IdP method.
    fn idp_delete(
        &self,
        key: &StationKey,
        binding: &str,
        user: &str,
        method: &crate::idp::MethodId,
        now: i64,
    ) -> Result<(), SyncError>;
}

/// A shared link.
pub type Link = Arc<dyn FleetLink>;

fn unreachable(e: &SyncError) -> bool {
    matches!(
        e,
        SyncError::Unreachable { .. } | SyncError::Unavailable { .. } | SyncError::BadAnswer(_)
    )
}

/// A registry failure in a workflow's words (the sync loop's own messages
/// speak of queued events).
pub(crate) fn brief(e: &SyncError) -> String {
    match e {
        SyncError::Unreachable { url, source } => {
            let mut why = source.to_string();
            let mut cur = std::error::Error::source(source);
            while let Some(s) = cur {
                why = format!("{why}: {s}");
                cur = s.source();
            }
            format!("{url} did not answer ({why})")
        }
        SyncError::Unavailable { status, .. } => format!("it answered HTTP {status}"),
        SyncError::Refused { code, message, .. } => format!("it refused ({code}): {message}"),
        SyncError::BadAnswer(m) => format!("its answer is unusable: {m}"),
        e => e.to_string(),
    }
}

/// Reserve the ticket at the registry (a step of its own, before any
/// device traffic). Without a registry configured this is a no-op; an
/// unreachable registry refuses unless offline enrollment is allowed.
/// Returns whether the registry holds the reservation.
pub(crate) fn reserve(flow: &mut Flow<'_>, vt: &VerifiedTicket) -> Result<bool, ProvisionError> {
    let Some(link) = flow.station.fleet.clone() else {
        return Ok(false);
    };
    let station = flow.station;
    flow.step(Step::Reserve, flow.deadlines.command, |_| {
        let c = &vt.claims;
        let now = station.now_secs();
        let r = {
            let ledger = station.ledger()?;
            let key = ledger.station_key().ok_or_else(|| {
                ProvisionError::new(Reason::Ledger, Some(Step::Reserve), "the ledger is open read-only")
            })?;
            link.reserve(key, &c.iss, &c.jti, &c.sub, now)
        };
        match r {
            Ok(()) => Ok((true, json!({"registry": link.registry(), "reserved": true}))),
            Err(SyncError::Refused { code, message, .. }) if code == "ticket-held" => {
                Err(ProvisionError::new(
                    Reason::TicketReplayed,
                    Some(Step::Reserve),
                    format!("{message} (nothing was written to the key)"),
                ))
            }
            Err(e) if unreachable(&e) && link.offline_allowed() => {
                tracing::warn!("enrolling offline: the registry cannot reserve the ticket: {}", brief(&e));
                Ok((
                    false,
                    json!({"registry": link.registry(), "reserved": false, "offline": true,
                           "why": brief(&e)}),
                ))
            }
            Err(e) => Err(ProvisionError::new(
                Reason::RegistryUnavailable,
                Some(Step::Reserve),
                format!(
                    "cannot reserve the ticket at the registry {}: {}; nothing was written to the key — try again when the registry is reachable (or allow `offline_enrollment` under [sync])",
                    link.registry(),
                    brief(&e)
                ),
            )),
        }
    })
}

/// Give back a reservation after a run that committed nothing (best
/// effort: a failure is logged and the ticket stays with this station).
pub(crate) fn release(station: &Station, vt: &VerifiedTicket) {
    let Some(link) = station.fleet.clone() else {
        return;
    };
    let now = station.now_secs();
    let r = match station.ledger() {
        Ok(ledger) => match ledger.station_key() {
            Some(key) => link.release(key, &vt.claims.iss, &vt.claims.jti, now),
            None => return,
        },
        Err(_) => return,
    };
    if let Err(e) = r {
        tracing::warn!(
            jti = %vt.claims.jti,
            "the ticket stays reserved for this station: {}",
            brief(&e)
        );
    }
}

/// Refuse a key whose binding the fleet reported lost or revoked.
pub(crate) fn check_key(station: &Station, serial: &str, step: Step) -> Result<(), ProvisionError> {
    let mark = station
        .ledger()?
        .fleet_refusal(serial)
        .map_err(|e| errors::store(step, e))?;
    match mark {
        None => Ok(()),
        Some(m) => Err(ProvisionError::new(
            Reason::DeviceReported,
            Some(step),
            format!(
                "key {serial} was reported {}{} by {} (binding {}, {}); it may not be enrolled, returned or unblocked — keep it aside and tell security",
                m.state,
                m.reason
                    .as_deref()
                    .map(|r| format!(" ({r})"))
                    .unwrap_or_default(),
                if m.origin == "here" {
                    "this station".to_string()
                } else {
                    format!("station {}", m.origin)
                },
                m.binding,
                crate::store::rfc3339(m.at),
            ),
        )),
    }
}

/// What the registry said about a binding this ledger does not hold.
pub(crate) enum Lookup {
    /// No registry configured.
    NoRegistry,
    /// The registry's bindings with that id or serial.
    Found(Vec<FleetBinding>),
    /// Unreachable, and the configuration allows a provisional
    /// replacement.
    Provisional(String),
}

/// Ask the registry for a binding this ledger does not hold; an
/// unreachable registry is an error that says so, unless provisional
/// replacements are allowed.
pub(crate) fn lookup(
    station: &Station,
    binding: Option<&str>,
    serial: Option<&str>,
) -> Result<Lookup, ProvisionError> {
    let Some(link) = station.fleet.clone() else {
        return Ok(Lookup::NoRegistry);
    };
    let now = station.now_secs();
    let r = {
        let ledger = station.ledger()?;
        let key = ledger.station_key().ok_or_else(|| {
            ProvisionError::new(
                Reason::Ledger,
                Some(Step::Replace),
                "the ledger is open read-only",
            )
        })?;
        link.lookup(key, binding, serial, now)
    };
    match r {
        Ok(found) => return Ok(Lookup::Found(found)),
        Err(e) if unreachable(&e) && link.provisional_allowed() => {
            tracing::warn!(
                "provisional replacement: the registry cannot be asked: {}",
                brief(&e)
            );
            return Ok(Lookup::Provisional(brief(&e)));
        }
        Err(_) => {}
    }
    r.map(Lookup::Found).map_err(|e| {
        ProvisionError::new(
            Reason::RegistryUnavailable,
            Some(Step::Replace),
            format!(
                "the original binding is not in this station's ledger and the registry {} cannot be asked: {}; try again when it is reachable",
                link.registry(),
                brief(&e)
            ),
        )
    })
}
