//! The station's verdict on a ticket before any key is touched
//! ([`verify_ticket`], one function for every workflow and `keyward ticket
//! verify --config`) and the [`TicketPreview`] a front end shows before it
//! asks for a PIN.

use serde::{Deserialize, Serialize};

use super::{Event, ProvisionError, Reason, Station, Step, replace};
use crate::ticket;

/// What a ticket asks for, checked but not consumed: for a kiosk or the CLI
/// to show the person whom the key is for and the PIN rules before asking
/// for the PIN.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TicketPreview {
    pub subject: String,
    pub issuer: String,
    pub jti: String,
    pub policy: String,
    pub ial: u8,
    /// `fido2:<rp_id>` and `piv:<slot>:<alg>` per op.
    pub ops: Vec<String>,
    /// The binding or serial a replacement ticket retires.
    pub replaces: Option<String>,
    /// The profile's PIN rules (PIV ops narrow them to 6–8 characters).
    pub pin: crate::policy::profile::PinRules,
}

impl TicketPreview {
    /// The `pin-needed` event for these rules.
    pub fn pin_needed(&self) -> Event {
        Event::PinNeeded {
            min_length: self.pin.min_length,
            max_length: self.pin.max_length,
            digits_only: self.pin.digits_only,
        }
    }
}

/// The station's verdict on a ticket, before any key is touched: the
/// ticket verifier (format, trust store, signatures, approvals under the
/// station's dual-control rules, time, audience) with the ledger as replay
/// store, then the dual-control rule of privileged policy profiles for
/// replacements. Every workflow, [`preview`] and `keyward ticket verify
/// --config` call this one function, so they give one verdict.
pub fn verify_ticket(
    station: &Station,
    ticket: &[u8],
) -> Result<ticket::VerifiedTicket, ProvisionError> {
    let now = station.now_secs();
    let vt = {
        let ledger = station.ledger()?;
        station
            .verifier
            .verify(ticket, now, &*ledger)
            .map_err(ProvisionError::ticket)?
    };
    replace::check_dual_control(station, &vt)?;
    Ok(vt)
}

/// Verify `ticket` ([`verify_ticket`]) and look up its profile, without
/// touching a key or writing anything.
pub fn preview(station: &Station, ticket: &[u8]) -> Result<TicketPreview, ProvisionError> {
    let vt = verify_ticket(station, ticket)?;
    let c = &vt.claims;
    let profile = station.profiles.get(&c.policy).ok_or_else(|| {
        ProvisionError::new(
            Reason::PolicyUnknownProfile,
            Some(Step::Policy),
            format!(
                "the ticket names policy profile {:?}, which this station does not have",
                c.policy
            ),
        )
    })?;
    let mut pin = profile.pin.clone();
    let ops = c
        .ops
        .iter()
        .map(|o| match o {
            ticket::Op::Fido2(f) => format!("fido2:{}", f.rp_id),
            ticket::Op::Piv(p) => {
                pin.min_length = pin.min_length.max(6);
                pin.max_length = pin.max_length.min(8);
                format!("piv:{}:{}", p.slot, p.alg)
            }
            // Operations other workflows own (e.g. unblock).
            #[allow(unreachable_patterns)]
            other => other.kind().to_string(),
        })
        .collect();
    let replaces = c.replaces.as_ref().map(|r| {
        r.binding
            .clone()
            .or_else(|| r.serial.map(|s| format!("serial {s}")))
            .unwrap_or_default()
    });
    Ok(TicketPreview {
        subject: c.sub.clone(),
        issuer: c.iss.clone(),
        jti: c.jti.clone(),
        policy: c.policy.clone(),
        ial: c.ial,
        ops,
        replaces,
        pin,
    })
}
