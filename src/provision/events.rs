//! What a workflow tells its front end while it runs — the [`Step`]s,
//! progress and prompt [`Event`]s through an [`Events`] sink (never a
//! secret) — and the [`Cancel`] flag a front end, a hotplug monitor or
//! shutdown sets to stop it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use super::Reason;

/// One step of a workflow, as named in events, reports and errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Step {
    /// Ticket verification (signature, time, audience, replay).
    Ticket,
    /// Choosing the policy profile and the checks before touching the key
    /// (PIN rules, replacement rules).
    Policy,
    /// Opening the key and identifying it (getInfo, PIV serial/version).
    Identify,
    /// PIV drift check: the card holds nothing unexpected.
    DriftCheck,
    /// FIDO2 authenticatorReset.
    Reset,
    /// FIDO2 setPIN (or accepting a PIN an interrupted attempt set).
    SetPin,
    /// FIDO2 setMinPINLength with forceChangePin (generated PINs).
    ForceChangePin,
    /// FIDO2 authenticatorConfig enableEnterpriseAttestation.
    EnterpriseAttestation,
    /// FIDO2 makeCredential.
    MakeCredential,
    /// FIDO2 attestation verification and policy decision.
    FidoAttestation,
    /// FIDO2 getAssertion proving the new credential.
    GetAssertion,
    /// PIV PIN and PUK changed from the factory values.
    PivPin,
    /// PIV management key rotated and PIN-protected.
    PivManagementKey,
    /// PIV key generation in a slot.
    PivKeygen,
    /// PIV attestation verification and policy decision.
    PivAttestation,
    /// PIV ticket binding (certificate with the binding digest).
    PivBind,
    /// FIDO/PIV serial cross-check.
    CrossCheck,
    /// Replacement rules against the original binding.
    Replace,
    /// The ticket reserved at the registry (fleet-wide single use), before
    /// the key is touched.
    Reserve,
    /// The identity provider's creation options asked of the registry,
    /// before the key is touched (docs/idp.md).
    IdpOptions,
    /// The one ledger transaction.
    Commit,
    /// The IdP credential registered through the registry, after the
    /// commit (docs/idp.md).
    IdpRegister,
}

impl Step {
    /// The kebab-case name.
    pub fn as_str(self) -> &'static str {
        use Step::*;
        match self {
            Ticket => "ticket",
            Policy => "policy",
            Identify => "identify",
            DriftCheck => "drift-check",
            Reset => "reset",
            SetPin => "set-pin",
            ForceChangePin => "force-change-pin",
            EnterpriseAttestation => "enterprise-attestation",
            MakeCredential => "make-credential",
            FidoAttestation => "fido-attestation",
            GetAssertion => "get-assertion",
            PivPin => "piv-pin",
            PivManagementKey => "piv-management-key",
            PivKeygen => "piv-keygen",
            PivAttestation => "piv-attestation",
            PivBind => "piv-bind",
            CrossCheck => "cross-check",
            Replace => "replace",
            Reserve => "reserve",
            IdpOptions => "idp-options",
            Commit => "commit",
            IdpRegister => "idp-register",
        }
    }
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Progress and prompts, for a terminal, the daemon's event stream or a
/// bulk report. Never carries a secret.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Event {
    /// A step began; `timeout_ms` is its deadline.
    StepStarted { step: Step, timeout_ms: u64 },
    /// A step finished.
    StepDone {
        step: Step,
        elapsed_ms: u64,
        detail: serde_json::Value,
    },
    /// A step failed; the workflow ends with this reason.
    StepFailed {
        step: Step,
        reason: Reason,
        message: String,
    },
    /// The key waits for a touch (CTAP keepalive UPNEEDED); the step gives
    /// up after `timeout_ms`.
    TouchNeeded { step: Step, timeout_ms: u64 },
    /// The key must be unplugged and re-inserted (FIDO2 reset is accepted
    /// only within ~10 s of power-up), then touched.
    ReinsertNeeded { step: Step, within_ms: u64 },
    /// Ask the person for a new PIN with these rules (from the ticket's
    /// profile). The workflows take the PIN in the request; a front end
    /// builds this event with [`TicketPreview::pin_needed`] before it asks.
    PinNeeded {
        min_length: usize,
        max_length: usize,
        digits_only: bool,
    },
}

/// Where events go.
pub trait Events: Send + Sync {
    fn emit(&self, e: &Event);
}

/// Drop every event.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoEvents;

impl Events for NoEvents {
    fn emit(&self, _: &Event) {}
}

impl<F: Fn(&Event) + Send + Sync> Events for F {
    fn emit(&self, e: &Event) {
        self(e)
    }
}

/// Collects events in memory (tests, reports).
#[derive(Debug, Default)]
pub struct EventLog(Mutex<Vec<Event>>);

impl EventLog {
    pub fn new() -> Self {
        Self::default()
    }

    /// The events so far.
    pub fn events(&self) -> Vec<Event> {
        self.0.lock().map(|v| v.clone()).unwrap_or_default()
    }
}

impl Events for EventLog {
    fn emit(&self, e: &Event) {
        if let Ok(mut v) = self.0.lock() {
            v.push(e.clone());
        }
    }
}

/// A shared cancellation flag: device removal, an operator's abort or
/// shutdown sets it; the workflow stops at the next device call (CTAP
/// calls see it between keepalives) or step, committing nothing. The run
/// ends with reason `cancelled` (recorded as aborted), or `device-removed`
/// when the canceller said the key went away ([`Cancel::device_removed`]).
#[derive(Debug, Clone, Default)]
pub struct Cancel {
    flag: Arc<AtomicBool>,
    removed: Arc<AtomicBool>,
}

impl Cancel {
    pub fn new() -> Self {
        Self::default()
    }

    /// Ask the workflow to stop.
    pub fn cancel(&self) {
        self.flag.store(true, Ordering::SeqCst);
    }

    /// Stop the workflow because its key was removed (a hotplug monitor
    /// saw it go).
    pub fn device_removed(&self) {
        self.removed.store(true, Ordering::SeqCst);
        self.cancel();
    }

    pub fn is_cancelled(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }

    /// Whether the cancellation was a removal.
    pub fn was_removed(&self) -> bool {
        self.removed.load(Ordering::SeqCst)
    }

    /// The flag itself, for the CTAP client's cancel hook.
    pub fn flag(&self) -> Arc<AtomicBool> {
        self.flag.clone()
    }
}
