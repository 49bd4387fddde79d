//! The one table from the errors of the layers below provision — CTAP,
//! PIV, the ledger (store) and ticket verification — to a workflow's
//! [`Reason`]. Every workflow (enroll, replace, revoke, return to stock,
//! unblock, bulk) maps through these functions; a second mapping is a
//! defect (two tables drift apart, and the same removed key then reads as
//! `device-error` in one report and `device-removed` in another).
//!
//! The rules:
//! - a key that went away mid-flow is `device-removed` (CTAP link closed,
//!   a PC/SC "removed/reset/unpowered card" anywhere in the source chain,
//!   a PIV card gone after it was identified); a key that is not there when
//!   the workflow opens it is `no-device`;
//! - a blocked PIN is `pin-blocked`, whether the key says PIN_BLOCKED or
//!   PIN_AUTH_BLOCKED (three wrong tries: a power cycle is needed first);
//! - a deadline at a step that waits for a touch is `touch-timeout`,
//!   elsewhere `timeout`;
//! - whatever the key answers that no rule names is `device-error`.
//!
//! The messages say what to do next and never carry a secret (the errors
//! below carry none: PINs never reach an error value).

use super::{ProvisionError, Reason, Step};
use crate::ctap::{self, StatusCode};
use crate::piv::PivError;
use crate::store::StoreError;
use crate::ticket::{FailureClass, TicketError};
use crate::transport::TransportError;

/// Whether a PC/SC error means the card left the reader (or was reset
/// under us): the PIV client's list, plus a reader that vanished.
pub(crate) fn pcsc_removed(e: &pcsc::Error) -> bool {
    crate::piv::error::removed(*e) || matches!(e, pcsc::Error::UnknownReader)
}

/// Whether a PIV error means the card went away (or is not there).
pub fn piv_is_removed(e: &PivError) -> bool {
    if matches!(
        e,
        PivError::CardRemoved { .. } | PivError::NoCard | PivError::NotPiv { .. }
    ) {
        return true;
    }
    let mut src: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(x) = src {
        if let Some(p) = x.downcast_ref::<pcsc::Error>() {
            return pcsc_removed(p);
        }
        src = x.source();
    }
    false
}

/// The steps that wait for a person's touch.
fn touch_step(step: Step) -> bool {
    matches!(
        step,
        Step::Reset | Step::MakeCredential | Step::GetAssertion
    )
}

fn removed_message(step: Step) -> String {
    format!(
        "the key was removed during {step}; nothing was committed and a ticket given was not used: re-insert the key and run the command again"
    )
}

/// A CTAP failure at `step`.
pub(crate) fn ctap(step: Step, e: ctap::Error) -> ProvisionError {
    use Reason as R;
    let (reason, msg) = match &e {
        ctap::Error::Transport(TransportError::Disconnected) => (R::DeviceRemoved, removed_message(step)),
        ctap::Error::Transport(TransportError::Pcsc(p)) if pcsc_removed(p) => {
            (R::DeviceRemoved, removed_message(step))
        }
        ctap::Error::Transport(TransportError::Cancelled)
        | ctap::Error::Status(StatusCode::KeepaliveCancel) => {
            (R::Cancelled, format!("cancelled during {step}; nothing was committed"))
        }
        ctap::Error::Transport(TransportError::Timeout) if touch_step(step) => (
            R::TouchTimeout,
            format!("the key did not complete {step} in time: touch the key when it blinks, then retry"),
        ),
        ctap::Error::Transport(TransportError::Timeout) => (
            R::Timeout,
            format!("the key did not complete {step} in time; re-insert the key and retry"),
        ),
        ctap::Error::Status(StatusCode::UserActionTimeout | StatusCode::ActionTimeout) => (
            R::TouchTimeout,
            format!("no touch during {step}; touch the key when it blinks and retry"),
        ),
        ctap::Error::Status(StatusCode::PinBlocked | StatusCode::PinAuthBlocked) => (
            R::PinBlocked,
            "the key's FIDO2 PIN is blocked (after three wrong tries in a row, unplug and re-insert the key first); only a reset clears a blocked PIN, which is a re-enrollment under a new ticket".to_string(),
        ),
        ctap::Error::Status(StatusCode::PinInvalid) => {
            (R::PinInvalid, "the key refused the PIN".to_string())
        }
        ctap::Error::PinChangeRequired => (
            R::PinAlreadySet,
            "the key's FIDO2 PIN must be changed before it can be used (forcePINChange, set e.g. by a bulk run): the person runs `keyward fido pin change`, then the enrollment is run again; keyward sent no PIN, so no retry was spent".to_string(),
        ),
        ctap::Error::U2fOnly => (
            R::DeviceUnsupported,
            "this key speaks only U2F/CTAP1; keyward needs FIDO2 (CTAP2): use a FIDO2 key".to_string(),
        ),
        ctap::Error::Status(StatusCode::PinPolicyViolation) => (
            R::PolicyPin,
            "the key's own PIN policy refused the PIN (too short for its minimum PIN length)".to_string(),
        ),
        ctap::Error::Status(StatusCode::NotAllowed) if step == Step::Reset => (
            R::ResetNotAllowed,
            "the key refused the reset: a FIDO2 reset is accepted only within about 10 seconds of plugging the key in, and only with a touch; unplug the key, plug it back in and touch it right away".to_string(),
        ),
        ctap::Error::Status(StatusCode::OperationDenied) => (
            R::DeviceError,
            format!("the key denied {step} (the person declined, or the key's settings forbid it)"),
        ),
        _ => (R::DeviceError, format!("{step} failed: {e}")),
    };
    ProvisionError::new(reason, Some(step), msg).with_source(e)
}

/// A transport failure while opening a key's FIDO2 interface.
pub(crate) fn fido_open(what: &str, e: TransportError) -> ProvisionError {
    let (reason, text) = match &e {
        TransportError::Disconnected => (Reason::NoDevice, "no key answers at"),
        TransportError::Pcsc(p) if pcsc_removed(p) => (Reason::NoDevice, "no key answers at"),
        TransportError::StatusWord(_) => {
            (Reason::DeviceUnsupported, "the key has no FIDO2 applet at")
        }
        _ => (Reason::DeviceError, "cannot open the FIDO2 interface of"),
    };
    ProvisionError::new(reason, Some(Step::Identify), format!("{text} {what}: {e}")).with_source(e)
}

/// A PIV failure at `step`. A card missing at [`Step::Identify`] is
/// `no-device`; missing later, it was removed.
pub(crate) fn piv(step: Step, e: PivError) -> ProvisionError {
    use Reason as R;
    let absent = matches!(
        e,
        PivError::NoCard | PivError::NotPiv { .. } | PivError::NoSuchReader { .. }
    );
    let (reason, msg) = if absent && step == Step::Identify {
        (R::NoDevice, e.to_string())
    } else if absent || piv_is_removed(&e) {
        (R::DeviceRemoved, removed_message(step))
    } else {
        match &e {
            PivError::WrongPuk { .. } => (R::PukInvalid, e.to_string()),
            PivError::PukBlocked => (R::PukBlocked, e.to_string()),
            PivError::PinBlocked => (R::PinBlocked, e.to_string()),
            PivError::WrongPin { .. } | PivError::BadSecretFormat { .. } => {
                (R::PinInvalid, e.to_string())
            }
            PivError::NotSupported { .. } => (R::DeviceUnsupported, e.to_string()),
            _ => (R::DeviceError, format!("{step} failed: {e}")),
        }
    };
    ProvisionError::new(reason, Some(step), msg).with_source(e)
}

/// Opening the PIV application in `reader` failed: no card there (or it
/// left) is `no-device`, a card without PIV is `device-unsupported`.
pub(crate) fn piv_open(reader: &str, e: PivError) -> ProvisionError {
    let reason = if piv_is_removed(&e) || matches!(e, PivError::NoSuchReader { .. }) {
        Reason::NoDevice
    } else {
        Reason::DeviceUnsupported
    };
    ProvisionError::new(
        reason,
        Some(Step::Identify),
        format!("cannot open the PIV application in reader {reader:?}: {e}"),
    )
    .with_source(e)
}

/// A ledger failure at `step`.
pub(crate) fn store(step: Step, e: StoreError) -> ProvisionError {
    let reason = match &e {
        StoreError::BindingNotFound(_) => Reason::BindingNotFound,
        StoreError::IllegalTransition { .. } => Reason::BindingState,
        StoreError::TicketReplayed { .. } => Reason::TicketReplayed,
        StoreError::DeviceAlreadyBound { .. } => Reason::DeviceAlreadyBound,
        _ => Reason::Ledger,
    };
    ProvisionError::new(reason, Some(step), format!("ledger: {e}")).with_source(e)
}

impl ProvisionError {
    /// Read a binding-state failure as a replacement's: the original
    /// binding is missing (`replace-not-found`) or in a state it cannot be
    /// replaced from (`replace-state`).
    pub(crate) fn in_replacement(mut self) -> Self {
        self.reason = match self.reason {
            Reason::BindingNotFound => Reason::ReplaceNotFound,
            Reason::BindingState => Reason::ReplaceState,
            r => r,
        };
        self
    }

    /// A ticket verification failure, mapped to its reason.
    pub fn ticket(e: TicketError) -> Self {
        e.into()
    }
}

impl Reason {
    /// The reason of a ticket verification failure (also what `keyward
    /// ticket verify` exits with, through the CLI's one exit table).
    pub fn of_ticket(e: &TicketError) -> Reason {
        match (e, e.class()) {
            (TicketError::ClockRollback { .. }, _) => Reason::ClockRollback,
            (TicketError::UnknownPolicy { .. }, _) => Reason::PolicyUnknownProfile,
            (_, FailureClass::Malformed) => Reason::TicketMalformed,
            (_, FailureClass::Untrusted) => Reason::TicketUntrusted,
            (_, FailureClass::Time) => Reason::TicketTime,
            (_, FailureClass::Audience) => Reason::TicketAudience,
            (_, FailureClass::Replayed) => Reason::TicketReplayed,
            (_, FailureClass::NotPermitted) => Reason::TicketNotPermitted,
        }
    }
}

impl From<TicketError> for ProvisionError {
    fn from(e: TicketError) -> Self {
        let reason = Reason::of_ticket(&e);
        Self::new(reason, Some(Step::Ticket), format!("ticket rejected: {e}")).with_source(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason_of(step: Step, e: ctap::Error) -> Reason {
        ctap(step, e).reason
    }

    #[test]
    fn ctap_table() {
        use Reason as R;
        use ctap::Error as E;
        let t = |e| E::Transport(e);
        let s = E::Status;
        let cases: Vec<(ctap::Error, Step, Reason)> = vec![
            (
                t(TransportError::Disconnected),
                Step::MakeCredential,
                R::DeviceRemoved,
            ),
            (
                t(TransportError::Disconnected),
                Step::Reset,
                R::DeviceRemoved,
            ),
            // A card pulled out of an NFC/CCID reader: removed, never device-error.
            (
                t(TransportError::Pcsc(pcsc::Error::RemovedCard)),
                Step::SetPin,
                R::DeviceRemoved,
            ),
            (
                t(TransportError::Pcsc(pcsc::Error::ResetCard)),
                Step::Reset,
                R::DeviceRemoved,
            ),
            (
                t(TransportError::Pcsc(pcsc::Error::NoSmartcard)),
                Step::GetAssertion,
                R::DeviceRemoved,
            ),
            (
                t(TransportError::Pcsc(pcsc::Error::InsufficientBuffer)),
                Step::Identify,
                R::DeviceError,
            ),
            (t(TransportError::Cancelled), Step::Reset, R::Cancelled),
            (
                s(StatusCode::KeepaliveCancel),
                Step::MakeCredential,
                R::Cancelled,
            ),
            (t(TransportError::Timeout), Step::Identify, R::Timeout),
            (t(TransportError::Timeout), Step::SetPin, R::Timeout),
            (
                t(TransportError::Timeout),
                Step::MakeCredential,
                R::TouchTimeout,
            ),
            (t(TransportError::Timeout), Step::Reset, R::TouchTimeout),
            (
                s(StatusCode::UserActionTimeout),
                Step::Reset,
                R::TouchTimeout,
            ),
            (
                s(StatusCode::ActionTimeout),
                Step::GetAssertion,
                R::TouchTimeout,
            ),
            (s(StatusCode::PinBlocked), Step::SetPin, R::PinBlocked),
            // Three wrong tries in a row: still a blocked PIN, not a device error.
            (
                s(StatusCode::PinAuthBlocked),
                Step::GetAssertion,
                R::PinBlocked,
            ),
            (s(StatusCode::PinAuthBlocked), Step::SetPin, R::PinBlocked),
            (s(StatusCode::PinInvalid), Step::SetPin, R::PinInvalid),
            (
                s(StatusCode::PinPolicyViolation),
                Step::SetPin,
                R::PolicyPin,
            ),
            (s(StatusCode::NotAllowed), Step::Reset, R::ResetNotAllowed),
            (
                s(StatusCode::NotAllowed),
                Step::GetAssertion,
                R::DeviceError,
            ),
            (
                s(StatusCode::OperationDenied),
                Step::MakeCredential,
                R::DeviceError,
            ),
            (
                E::Unsupported("credProtect"),
                Step::MakeCredential,
                R::DeviceError,
            ),
            (t(TransportError::Busy), Step::Identify, R::DeviceError),
        ];
        for (e, step, want) in cases {
            let label = format!("{e:?} at {step}");
            assert_eq!(reason_of(step, e), want, "{label}");
        }
        let e = ctap(Step::Reset, t(TransportError::Disconnected));
        assert_eq!(e.step, Some(Step::Reset));
        assert!(e.message.contains("re-insert"), "{e}");
    }

    #[test]
    fn piv_table() {
        use Reason as R;
        let cases: Vec<(PivError, Step, Reason)> = vec![
            (
                PivError::CardRemoved { operation: "x" },
                Step::Reset,
                R::DeviceRemoved,
            ),
            (
                PivError::CardRemoved { operation: "x" },
                Step::Identify,
                R::DeviceRemoved,
            ),
            (PivError::NoCard, Step::Identify, R::NoDevice),
            (
                PivError::NotPiv { reader: "r".into() },
                Step::Identify,
                R::NoDevice,
            ),
            (
                PivError::NoSuchReader {
                    reader: "r".into(),
                    available: vec![],
                },
                Step::Identify,
                R::NoDevice,
            ),
            // Gone after it was identified: removed.
            (PivError::NoCard, Step::PivKeygen, R::DeviceRemoved),
            (
                PivError::NotPiv { reader: "r".into() },
                Step::PivPin,
                R::DeviceRemoved,
            ),
            (
                PivError::WrongPuk { retries_left: 2 },
                Step::PivPin,
                R::PukInvalid,
            ),
            (PivError::PukBlocked, Step::PivPin, R::PukBlocked),
            (PivError::PinBlocked, Step::PivPin, R::PinBlocked),
            (
                PivError::WrongPin { retries_left: 2 },
                Step::PivPin,
                R::PinInvalid,
            ),
            (PivError::PukBlocked, Step::PivPin, R::PukBlocked),
        ];
        for (e, step, want) in cases {
            let label = format!("{e:?} at {step}");
            assert_eq!(piv(step, e).reason, want, "{label}");
        }
        assert_eq!(piv_open("r", PivError::NoCard).reason, R::NoDevice);
        assert_eq!(
            piv_open(
                "r",
                PivError::NoSuchReader {
                    reader: "r".into(),
                    available: vec![]
                }
            )
            .reason,
            R::NoDevice
        );
        assert_eq!(
            piv_open("r", PivError::PinBlocked).reason,
            R::DeviceUnsupported
        );
    }

    #[test]
    fn store_table() {
        let e = store(Step::Commit, StoreError::BindingNotFound("b1".into()));
        assert_eq!(e.reason, Reason::BindingNotFound);
        assert!(e.message.contains("no binding b1"), "{e}");
        assert_eq!(e.in_replacement().reason, Reason::ReplaceNotFound);
        let e = store(
            Step::Commit,
            StoreError::TicketReplayed {
                issuer: "i".into(),
                jti: "j".into(),
                consumed_at: "t".into(),
            },
        );
        assert_eq!(e.reason, Reason::TicketReplayed);
        assert_eq!(e.in_replacement().reason, Reason::TicketReplayed);
    }
}
