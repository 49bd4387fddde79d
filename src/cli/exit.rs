//! The one exit-code table of every `keyward` command (docs/cli.md).
//!
//! A workflow failure carries a [`Reason`]; its exit code comes from
//! [`for_reason`], which refines provision's [`ReasonClass`] only where a
//! ticket was refused (20–25), so the same expired ticket exits 22 from
//! `ticket verify`, `enroll`, `replace`, `unblock` and `bulk` alike.
//! Nothing else picks an exit code: commands return a [`super::Failure`]
//! and `main` asks [`of_error`].

use crate::provision::{Reason, ReasonClass};
use crate::ticket::TicketError;

/// Success.
pub const OK: u8 = 0;
/// Any other failure (device error, ledger, configuration, timeout…).
pub const FAILURE: u8 = 1;
/// Bad arguments or a configuration that cannot be used.
pub const USAGE: u8 = 2;
/// No security key was found, or not the one named, or it went away.
pub const NO_DEVICE: u8 = 3;
/// A PIN or PUK is blocked.
pub const PIN_BLOCKED: u8 = 4;
/// A signature, chain, attestation, policy or audit check failed.
pub const VERIFICATION: u8 = 5;
/// The keyward daemon did not answer, or refused the request.
pub const DAEMON: u8 = 6;
/// The registry's verifiable log failed a check: at `sync`, a tree head,
/// inclusion or consistency proof refused (the registry rewrote its log);
/// at `registry verify`, an event altered, missing or out of place.
pub const LOG: u8 = 7;
/// The ticket is not a well-formed keyward ticket.
pub const TICKET_MALFORMED: u8 = 20;
/// The ticket is not signed by a trusted key with an allowed algorithm,
/// or has too few approvals (dual control).
pub const TICKET_UNTRUSTED: u8 = 21;
/// The ticket is expired or not yet valid, or the station clock is
/// untrustworthy (rolled back).
pub const TICKET_TIME: u8 = 22;
/// The ticket is for another station.
pub const TICKET_AUDIENCE: u8 = 23;
/// The ticket was used before.
pub const TICKET_REPLAYED: u8 = 24;
/// The issuer may not grant what the ticket asks, or its policy profile is
/// unknown here.
pub const TICKET_NOT_PERMITTED: u8 = 25;

/// The table, in order, for `--help` and docs/cli.md.
pub const TABLE: &[(u8, &str)] = &[
    (OK, "success"),
    (FAILURE, "any other failure"),
    (USAGE, "usage or configuration error"),
    (NO_DEVICE, "no key, not the key named, or the key went away"),
    (PIN_BLOCKED, "PIN or PUK blocked"),
    (
        VERIFICATION,
        "verification failed (attestation, policy, identity, audit)",
    ),
    (DAEMON, "the keyward daemon is unreachable or refused"),
    (
        LOG,
        "the registry's verifiable log failed a check (sync, registry verify)",
    ),
    (TICKET_MALFORMED, "ticket malformed"),
    (TICKET_UNTRUSTED, "ticket untrusted or too few approvals"),
    (
        TICKET_TIME,
        "ticket expired, not yet valid, or clock rolled back",
    ),
    (TICKET_AUDIENCE, "ticket for another station"),
    (TICKET_REPLAYED, "ticket already used"),
    (
        TICKET_NOT_PERMITTED,
        "ticket asks for what its issuer may not grant, or an unknown profile",
    ),
];

/// The exit code of a workflow reason: the ticket reasons their own codes,
/// everything else by provision's [`Reason::class`].
pub fn for_reason(r: Reason) -> u8 {
    match r {
        Reason::TicketMalformed => TICKET_MALFORMED,
        Reason::TicketUntrusted | Reason::ReplaceDualControl => TICKET_UNTRUSTED,
        Reason::TicketTime | Reason::ClockRollback => TICKET_TIME,
        Reason::TicketAudience => TICKET_AUDIENCE,
        Reason::TicketReplayed => TICKET_REPLAYED,
        Reason::TicketNotPermitted | Reason::PolicyUnknownProfile => TICKET_NOT_PERMITTED,
        r => match r.class() {
            ReasonClass::NoDevice => NO_DEVICE,
            ReasonClass::PinBlocked => PIN_BLOCKED,
            ReasonClass::Verification => VERIFICATION,
            ReasonClass::Failure => FAILURE,
        },
    }
}

/// The reason of a ticket verification failure (provision's mapping).
pub fn ticket_reason(e: &TicketError) -> Reason {
    Reason::of_ticket(e)
}

/// The exit code of any error a command returns: a [`super::Failure`]
/// anywhere in the chain gives its code, a failed check of the registry's
/// log [`LOG`], anything else is 1.
pub fn of_error(e: &anyhow::Error) -> u8 {
    e.chain()
        .find_map(|c| {
            if let Some(f) = c.downcast_ref::<super::Failure>() {
                return Some(f.exit_code());
            }
            let log = matches!(
                c.downcast_ref::<crate::sync::client::SyncError>(),
                Some(crate::sync::client::SyncError::Log(_))
            ) || matches!(
                c.downcast_ref::<crate::registry::verify::VerifyError>(),
                Some(e) if !matches!(e, crate::registry::verify::VerifyError::Db(_))
            );
            log.then_some(LOG)
        })
        .unwrap_or(FAILURE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_has_a_documented_code() {
        let documented: Vec<u8> = TABLE.iter().map(|(c, _)| *c).collect();
        for r in Reason::ALL {
            assert!(documented.contains(&for_reason(*r)), "{r}");
        }
        // The ticket reasons keep `ticket verify`'s codes everywhere.
        assert_eq!(for_reason(Reason::TicketTime), TICKET_TIME);
        assert_eq!(for_reason(Reason::ClockRollback), TICKET_TIME);
        assert_eq!(for_reason(Reason::DeviceRemoved), NO_DEVICE);
        assert_eq!(for_reason(Reason::PukBlocked), PIN_BLOCKED);
        assert_eq!(for_reason(Reason::AttestationUntrusted), VERIFICATION);
        assert_eq!(for_reason(Reason::DeviceError), FAILURE);
    }

    #[test]
    fn failures_deep_in_a_chain_keep_their_code() {
        let e = anyhow::Error::from(super::super::Failure::reason(
            Reason::TicketReplayed,
            "used",
        ))
        .context("ticket REJECTED");
        assert_eq!(of_error(&e), TICKET_REPLAYED);
        assert_eq!(of_error(&anyhow::anyhow!("plain")), FAILURE);
        let log = crate::sync::client::SyncError::Log(
            crate::sync::tree_head::LogCheckError::Inconsistent { size: 3 },
        );
        assert_eq!(of_error(&anyhow::Error::from(log).context("sync")), LOG);
    }
}
