//! Why a workflow failed: a stable kebab-case [`Reason`] (metrics labels,
//! the ledger's `runs.reason`, `--json`, exit codes) plus a message for
//! people that says what to do next. docs/policy.md lists every code.

use serde::{Deserialize, Serialize};

use super::Step;

/// A stable failure code. Add variants, never rename one: reports and
/// dashboards key on these strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Reason {
    /// The ticket is not well-formed.
    TicketMalformed,
    /// Signature, key, issuer or approvals do not check out.
    TicketUntrusted,
    /// Expired, not yet valid, lifetime too long.
    TicketTime,
    /// The station clock is behind the latest trusted time.
    ClockRollback,
    /// `aud` does not name this station.
    TicketAudience,
    /// The ticket was consumed before.
    TicketReplayed,
    /// The issuer may not grant an operation, or the profile is unknown.
    TicketNotPermitted,
    /// The ticket names a policy profile this station does not have.
    PolicyUnknownProfile,
    /// The PIN breaks the profile's PIN rules.
    PolicyPin,
    /// The key's AAGUID is not allowed by the profile.
    PolicyAaguid,
    /// The key's model is not allowed.
    PolicyModel,
    /// Enterprise attestation required but unavailable.
    PolicyEnterpriseAttestation,
    /// A PIV algorithm, PIN policy or touch policy the profile forbids.
    PolicyPiv,
    /// The profile requires a FIDO2 extension (credProtect level,
    /// hmac-secret, largeBlobKey) the key does not offer or did not apply.
    PolicyFidoExtension,
    /// Some other attestation policy rule failed (firmware, certification,
    /// MDS entry or status).
    PolicyAttestation,
    /// The attestation does not chain to a trusted root.
    AttestationUntrusted,
    /// The attestation is malformed or inconsistent (signature, AAGUID
    /// extension, attested key differs from the generated key).
    AttestationInvalid,
    /// FIDO and PIV attestations name different serials.
    SerialMismatch,
    /// The key is not the one the ticket pre-assigns (`device.serial`).
    DeviceMismatch,
    /// The key already has an active binding.
    DeviceAlreadyBound,
    /// No key found at the target.
    NoDevice,
    /// The key went away mid-flow.
    DeviceRemoved,
    /// The key lacks a needed capability (no FIDO2, no PIV, PIV on the
    /// in-process simulator).
    DeviceUnsupported,
    /// The key answered with an error or garbage.
    DeviceError,
    /// The PIV drift check found unexpected state.
    Drift,
    /// The key already has a PIN this workflow does not know.
    PinAlreadySet,
    /// A PIN was rejected by the key.
    PinInvalid,
    /// A PIN is blocked.
    PinBlocked,
    /// FIDO2 reset refused (not within the power-up window, or no touch).
    ResetNotAllowed,
    /// No touch in time.
    TouchTimeout,
    /// A step's deadline passed.
    Timeout,
    /// Cancelled (operator abort, shutdown).
    Cancelled,
    /// Replacement: no original binding found.
    ReplaceNotFound,
    /// Replacement: ticket ial lower than the original's.
    ReplaceIal,
    /// Replacement: a privileged profile without dual control.
    ReplaceDualControl,
    /// Replacement: the original binding cannot be replaced in its state.
    ReplaceState,
    /// Replacement: the ticket does not name a device to replace (or an
    /// enroll ticket has `replaces`).
    ReplaceTicket,
    /// The ticket is for another workflow (an `unblock` ticket given to
    /// enroll or replace).
    WrongWorkflow,
    /// The ledger failed.
    Ledger,
    /// The station configuration is wrong.
    Config,
    // Lifecycle (revoke, return to stock, unblock).
    /// No binding with that id.
    BindingNotFound,
    /// The binding's state does not allow the change (already revoked,
    /// replaced or returned; not active).
    BindingState,
    /// The key has no open binding here (return, unblock).
    NotBound,
    /// The key's serial matches a binding but the key could not prove it
    /// holds the bound credential (FIDO2 assertion, PIV attestation).
    IdentityUnconfirmed,
    /// The ticket's subject does not hold the key's binding.
    SubjectMismatch,
    /// A FIDO2 PIN cannot be unblocked, only reset: a re-enrollment.
    FidoResetOnly,
    /// The PUK was wrong.
    PukInvalid,
    /// The PUK is blocked.
    PukBlocked,
    /// The key's binding was reported lost or revoked at another station
    /// or by the registry (docs/fleet.md).
    DeviceReported,
    /// The registry is needed (ticket reservation, a replacement's
    /// original) and cannot be reached.
    RegistryUnavailable,
    /// The profile requires the identity-provider step and its creation
    /// options could not be had (registry or IdP unreachable, IdP refused,
    /// no IdP configured): nothing was written to the key (docs/idp.md).
    IdpUnavailable,
}

impl Reason {
    /// The kebab-case code.
    pub fn as_str(self) -> &'static str {
        use Reason::*;
        match self {
            TicketMalformed => "ticket-malformed",
            TicketUntrusted => "ticket-untrusted",
            TicketTime => "ticket-time",
            ClockRollback => "clock-rollback",
            TicketAudience => "ticket-audience",
            TicketReplayed => "ticket-replayed",
            TicketNotPermitted => "ticket-not-permitted",
            PolicyUnknownProfile => "policy-unknown-profile",
            PolicyPin => "policy-pin",
            PolicyAaguid => "policy-aaguid",
            PolicyModel => "policy-model",
            PolicyEnterpriseAttestation => "policy-enterprise-attestation",
            PolicyPiv => "policy-piv",
            PolicyFidoExtension => "policy-fido-extension",
            PolicyAttestation => "policy-attestation",
            AttestationUntrusted => "attestation-untrusted",
            AttestationInvalid => "attestation-invalid",
            SerialMismatch => "serial-mismatch",
            DeviceMismatch => "device-mismatch",
            DeviceAlreadyBound => "device-already-bound",
            NoDevice => "no-device",
            DeviceRemoved => "device-removed",
            DeviceUnsupported => "device-unsupported",
            DeviceError => "device-error",
            Drift => "drift",
            PinAlreadySet => "pin-already-set",
            PinInvalid => "pin-invalid",
            PinBlocked => "pin-blocked",
            ResetNotAllowed => "reset-not-allowed",
            TouchTimeout => "touch-timeout",
            Timeout => "timeout",
            Cancelled => "cancelled",
            ReplaceNotFound => "replace-not-found",
            ReplaceIal => "replace-ial",
            ReplaceDualControl => "replace-dual-control",
            ReplaceState => "replace-state",
            ReplaceTicket => "replace-ticket",
            WrongWorkflow => "wrong-workflow",
            Ledger => "ledger",
            Config => "config",
            BindingNotFound => "binding-not-found",
            BindingState => "binding-state",
            NotBound => "not-bound",
            IdentityUnconfirmed => "identity-unconfirmed",
            SubjectMismatch => "subject-mismatch",
            FidoResetOnly => "fido-reset-only",
            PukInvalid => "puk-invalid",
            PukBlocked => "puk-blocked",
            DeviceReported => "device-reported",
            RegistryUnavailable => "registry-unavailable",
            IdpUnavailable => "idp-unavailable",
        }
    }

    /// Every reason, for documentation and metrics pre-registration.
    pub const ALL: &'static [Reason] = &[
        Reason::TicketMalformed,
        Reason::TicketUntrusted,
        Reason::TicketTime,
        Reason::ClockRollback,
        Reason::TicketAudience,
        Reason::TicketReplayed,
        Reason::TicketNotPermitted,
        Reason::PolicyUnknownProfile,
        Reason::PolicyPin,
        Reason::PolicyAaguid,
        Reason::PolicyModel,
        Reason::PolicyEnterpriseAttestation,
        Reason::PolicyPiv,
        Reason::PolicyFidoExtension,
        Reason::PolicyAttestation,
        Reason::AttestationUntrusted,
        Reason::AttestationInvalid,
        Reason::SerialMismatch,
        Reason::DeviceMismatch,
        Reason::DeviceAlreadyBound,
        Reason::NoDevice,
        Reason::DeviceRemoved,
        Reason::DeviceUnsupported,
        Reason::DeviceError,
        Reason::Drift,
        Reason::PinAlreadySet,
        Reason::PinInvalid,
        Reason::PinBlocked,
        Reason::ResetNotAllowed,
        Reason::TouchTimeout,
        Reason::Timeout,
        Reason::Cancelled,
        Reason::ReplaceNotFound,
        Reason::ReplaceIal,
        Reason::ReplaceDualControl,
        Reason::ReplaceState,
        Reason::ReplaceTicket,
        Reason::WrongWorkflow,
        Reason::Ledger,
        Reason::Config,
        Reason::BindingNotFound,
        Reason::BindingState,
        Reason::NotBound,
        Reason::IdentityUnconfirmed,
        Reason::SubjectMismatch,
        Reason::FidoResetOnly,
        Reason::PukInvalid,
        Reason::PukBlocked,
        Reason::DeviceReported,
        Reason::RegistryUnavailable,
        Reason::IdpUnavailable,
    ];

    /// The coarse class a CLI maps to an exit code.
    pub fn class(self) -> ReasonClass {
        use Reason::*;
        match self {
            NoDevice | DeviceRemoved => ReasonClass::NoDevice,
            PinBlocked | PukBlocked => ReasonClass::PinBlocked,
            IdentityUnconfirmed | SubjectMismatch => ReasonClass::Verification,
            TicketMalformed
            | TicketUntrusted
            | TicketTime
            | ClockRollback
            | TicketAudience
            | TicketReplayed
            | TicketNotPermitted
            | PolicyAaguid
            | PolicyModel
            | PolicyEnterpriseAttestation
            | PolicyPiv
            | PolicyFidoExtension
            | PolicyAttestation
            | AttestationUntrusted
            | AttestationInvalid
            | SerialMismatch
            | DeviceMismatch
            | Drift
            | ReplaceIal
            | ReplaceDualControl
            | DeviceReported => ReasonClass::Verification,
            _ => ReasonClass::Failure,
        }
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Exit-code classes (`cli::Failure`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReasonClass {
    Failure,
    NoDevice,
    PinBlocked,
    Verification,
}

/// A workflow failed. Nothing was committed; the ticket stays unconsumed.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ProvisionError {
    pub reason: Reason,
    /// The step that failed, when the workflow had reached one.
    pub step: Option<Step>,
    /// What happened and what to do next; never holds a secret.
    pub message: String,
    /// The run id, once the run was recorded.
    pub run: Option<String>,
    #[source]
    pub source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl ProvisionError {
    pub fn new(reason: Reason, step: Option<Step>, message: impl Into<String>) -> Self {
        Self {
            reason,
            step,
            message: message.into(),
            run: None,
            source: None,
        }
    }

    /// Keep the underlying error as the source.
    pub fn with_source(mut self, e: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(e));
        self
    }

    /// The message with the chain of sources, for logs and `--json`.
    pub fn full_message(&self) -> String {
        let mut s = self.message.clone();
        let mut src: Option<&(dyn std::error::Error + 'static)> =
            self.source.as_deref().map(|e| e as _);
        while let Some(e) = src {
            let t = e.to_string();
            if !s.contains(&t) {
                s.push_str(": ");
                s.push_str(&t);
            }
            src = e.source();
        }
        s
    }
}
