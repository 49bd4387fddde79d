//! Workflows: enroll and replace (this module, steps in enroll.rs, fido.rs,
//! piv.rs), revoke, return to stock,
//! unblock and bulk (their own files). A workflow orchestrates the layers
//! below it — ticket, transport + protocol clients, attestation, policy,
//! ledger — and decides nothing itself that policy decides.
//!
//! Everything a workflow needs comes in through a [`Station`] (ledger,
//! ticket verifier, trust anchors, policy profiles, clock, actor), one
//! [`EnrollRequest`] per key, an [`Events`] sink for progress and prompts
//! ("touch your key"), and a [`Cancel`] flag that removal or shutdown
//! sets. A failure is a [`ProvisionError`] with a stable kebab-case
//! [`Reason`] (metrics, `keyward report`, exit codes) and the [`Step`] it
//! happened at.
//!
//! Every run is recorded with `Ledger::run_started` / `run_finished`. A
//! run that fails commits nothing: the binding, the credentials, the
//! ticket's consumption and the outbox events are written in one
//! transaction at the very end (docs/enroll.md says which state the key is
//! left in after each step).
//!
//! Where things live: [`Station`] in station.rs, [`Step`], [`Event`],
//! [`Events`] and [`Cancel`] in events.rs, requests and outcomes in
//! request.rs, ticket verification and preview in preview.rs, the device
//! boundary ([`KeyDevice`], [`KeyTarget`]) in device.rs, the one step
//! runner (flow.rs) and the one error table (errors.rs).

pub mod bulk;
mod device;
mod enroll;
mod errors;
mod events;
mod fido;
pub mod fleet;
mod flow;
mod guard;
pub mod idp;
mod piv;
mod preview;
mod reason;
pub mod record;
mod replace;
mod request;
mod station;
pub mod target;
// Lifecycle after enrollment (docs/lifecycle.md).
pub mod lifecycle;
pub mod revoke;
pub mod stock;
pub mod unblock;

pub use device::{KeyDevice, KeyTarget};
pub use errors::piv_is_removed;
pub use events::{Cancel, Event, EventLog, Events, NoEvents, Step};
pub use preview::{TicketPreview, preview, verify_ticket};
pub use reason::{ProvisionError, Reason, ReasonClass};
pub use request::{
    AppliedException, CredentialSummary, Deadlines, EnrollOutcome, EnrollRequest, PinChoice,
    StepReport,
};
pub use station::{Station, unix_secs};

/// Enroll one key against a ticket: verify the ticket, apply its policy
/// profile, run the FIDO2 and PIV steps, verify attestation, and commit the
/// binding in one ledger transaction. On any failure nothing is committed
/// and the ticket stays unconsumed.
pub fn enroll(
    station: &Station,
    req: EnrollRequest,
    events: &dyn Events,
    cancel: &Cancel,
) -> Result<EnrollOutcome, ProvisionError> {
    enroll::run(station, req, events, cancel, enroll::Mode::Enroll)
}

/// Replace a lost, stolen or damaged key: the ticket's `replaces` names the
/// original binding (or serial). Everything first enrollment requires is
/// required again, plus the replacement rules (ial never lower than the
/// original's; dual control for privileged profiles). The old binding
/// becomes `replaced` and the new one `active` in one transaction, with a
/// `notify.replacement` outbox event.
pub fn replace(
    station: &Station,
    req: EnrollRequest,
    events: &dyn Events,
    cancel: &Cancel,
) -> Result<EnrollOutcome, ProvisionError> {
    enroll::run(station, req, events, cancel, enroll::Mode::Replace)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ctap::Pin;

    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}

    #[test]
    fn workflow_types_cross_threads() {
        // Bulk slots and the daemon run workflows on worker threads.
        send_sync::<Station>();
        send_sync::<Cancel>();
        send_sync::<ProvisionError>();
        send::<EnrollRequest>();
        send::<EnrollOutcome>();
    }

    #[test]
    fn reason_codes_are_unique_kebab_case_and_serialize_as_themselves() {
        let mut seen = std::collections::HashSet::new();
        for r in Reason::ALL {
            let s = r.as_str();
            assert!(seen.insert(s), "{s} twice");
            assert!(
                s.bytes().all(|b| b.is_ascii_lowercase() || b == b'-'),
                "{s}"
            );
            assert_eq!(serde_json::to_value(r).unwrap(), s);
        }
        assert_eq!(seen.len(), Reason::ALL.len());
    }

    #[test]
    fn events_serialize_tagged_and_without_secrets() {
        let e = Event::TouchNeeded {
            step: Step::MakeCredential,
            timeout_ms: 30_000,
        };
        assert_eq!(
            serde_json::to_string(&e).unwrap(),
            r#"{"event":"touch-needed","step":"make-credential","timeout_ms":30000}"#
        );
        let e = Event::StepFailed {
            step: Step::PivKeygen,
            reason: Reason::DeviceRemoved,
            message: "gone".into(),
        };
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["event"], "step-failed");
        assert_eq!(v["reason"], "device-removed");
        for s in [Step::Ticket, Step::DriftCheck, Step::PivBind, Step::Commit] {
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
    }

    #[test]
    fn pin_choice_debug_redacts() {
        let p = PinChoice::Given(Pin::from("58213947"));
        assert!(!format!("{p:?}").contains("5821"));
    }
}
