//! What a caller hands a workflow (an [`EnrollRequest`]: ticket, key,
//! PIN choice, deadlines) and what it gets back (an [`EnrollOutcome`]:
//! binding, credentials, exceptions applied, step reports).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{KeyTarget, Step};
use crate::ctap::Pin;

/// The new PIN.
#[derive(Debug, Clone)]
pub enum PinChoice {
    /// Chosen by the person (prompt, fd, API); checked against the
    /// profile's PIN rules before the key is touched.
    Given(Pin),
    /// Generated (bulk): a random PIN, with forceChangePin set so the
    /// person must change it at first use. Returned in
    /// [`EnrollOutcome::generated_pin`].
    Generate,
}

/// Per-step deadlines. Key generation (RSA above all) and steps that wait
/// for a touch get longer ones; there is no single global timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadlines {
    /// Plain commands (getInfo, clientPIN, config).
    pub command: Duration,
    /// Steps waiting for a person's touch (reset, makeCredential,
    /// getAssertion, PIV touch policy).
    pub touch: Duration,
    /// PIV key generation, EC.
    pub keygen_ec: Duration,
    /// PIV key generation, RSA.
    pub keygen_rsa: Duration,
    /// How long a person has to re-insert the key for a reset.
    pub reinsert: Duration,
}

impl Default for Deadlines {
    fn default() -> Self {
        Self {
            command: Duration::from_secs(10),
            touch: Duration::from_secs(30),
            keygen_ec: Duration::from_secs(30),
            keygen_rsa: Duration::from_secs(120),
            reinsert: Duration::from_secs(60),
        }
    }
}

/// One key to enroll (or, with [`replace`], a replacement).
#[derive(Debug)]
pub struct EnrollRequest {
    /// The ticket as received (compact or JSON serialization).
    pub ticket: Vec<u8>,
    pub target: KeyTarget,
    pub pin: PinChoice,
    /// Bulk slot or kiosk name, recorded with the run.
    pub slot: Option<String>,
    pub deadlines: Deadlines,
}

impl EnrollRequest {
    /// A request with default deadlines and no slot name.
    pub fn new(ticket: Vec<u8>, target: KeyTarget, pin: PinChoice) -> Self {
        Self {
            ticket,
            target,
            pin,
            slot: None,
            deadlines: Deadlines::default(),
        }
    }
}

/// What one step did, for `--json` and reports.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StepReport {
    pub step: Step,
    pub elapsed_ms: u64,
    pub detail: serde_json::Value,
}

/// One credential created (public facts only).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CredentialSummary {
    /// `fido2` or `piv`.
    pub kind: String,
    pub rp_id: Option<String>,
    pub slot: Option<String>,
    pub algorithm: String,
    /// FIDO2 credential id, hex.
    pub credential_id: Option<String>,
}

/// A policy exception that waived a rule for this enrollment (recorded in
/// the ledger's exceptions table): the policy's typed [`Waiver`].
///
/// [`Waiver`]: crate::policy::Waiver
pub type AppliedException = crate::policy::Waiver;

/// A completed enrollment.
#[derive(Debug, Serialize, Deserialize)]
pub struct EnrollOutcome {
    /// The new binding id.
    pub binding: String,
    /// The run id (ledger `runs`).
    pub run: String,
    pub subject: String,
    pub policy: String,
    /// Device serial (enterprise attestation, PIV or Management applet).
    pub serial: Option<String>,
    pub aaguid: Option<String>,
    pub firmware: Option<String>,
    /// For a replacement: the binding it replaced.
    pub replaced: Option<String>,
    pub credentials: Vec<CredentialSummary>,
    pub exceptions: Vec<AppliedException>,
    /// The generated PIN ([`PinChoice::Generate`]); never serialized.
    #[serde(skip)]
    pub generated_pin: Option<Pin>,
    /// The PIV PUK set on the card (random) when the ticket had PIV ops;
    /// never serialized. The caller delivers it (bulk: age file) or drops it.
    #[serde(skip)]
    pub generated_puk: Option<crate::piv::Puk>,
    pub steps: Vec<StepReport>,
    /// The identity-provider step, when the profile has one (docs/idp.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idp: Option<super::idp::IdpSummary>,
}
