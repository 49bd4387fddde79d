//! Workflows: enroll and replace (this module), revoke, return to stock,
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

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::attest;
use crate::ctap::Pin;
use crate::policy::profile::Profiles;
use crate::sim::device::SimDevice;
use crate::store::Ledger;
use crate::ticket;

pub mod bulk;
mod enroll;
mod fido;
mod flow;
mod guard;
mod piv;
mod reason;
mod replace;
pub mod target;
// Lifecycle after enrollment (docs/lifecycle.md).
pub mod lifecycle;
pub mod revoke;
pub mod stock;
pub mod unblock;

pub use reason::{ProvisionError, Reason, ReasonClass};

/// Everything a workflow needs, passed in (DESIGN.md: time, trust anchors
/// and randomness are never read from globals).
#[derive(Clone)]
pub struct Station {
    /// The ledger, shared between concurrent workflows (bulk slots, daemon).
    pub ledger: Arc<Mutex<Ledger>>,
    /// Ticket verification: trust store, audience (station id), skew.
    pub verifier: ticket::Verifier,
    /// Attestation roots: FIDO and PIV.
    pub anchors: attest::TrustStore,
    /// A verified FIDO MDS3 BLOB, when configured.
    pub mds: Option<Arc<attest::MdsBlob>>,
    /// The policy profiles a ticket's `policy` claim names.
    pub profiles: Profiles,
    /// Operator or service identity, for audit rows.
    pub actor: String,
    /// The station clock.
    pub clock: Arc<dyn Fn() -> SystemTime + Send + Sync>,
}

impl std::fmt::Debug for Station {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Station")
            .field("actor", &self.actor)
            .field("profiles", &self.profiles.names())
            .field("mds", &self.mds.as_ref().map(|m| m.no))
            .finish_non_exhaustive()
    }
}

impl Station {
    /// The station clock now.
    pub fn now(&self) -> SystemTime {
        (self.clock)()
    }

    /// The station clock now, in Unix seconds (ledger and ticket time).
    pub fn now_secs(&self) -> i64 {
        unix_secs(self.now())
    }

    /// Lock the ledger. A poisoned lock (a panic in another workflow while it
    /// held the ledger) is reported, never unwrapped: SQLite's transaction
    /// either committed or rolled back, so the file is consistent.
    pub fn ledger(&self) -> Result<MutexGuard<'_, Ledger>, ProvisionError> {
        self.ledger.lock().map_err(|_| {
            ProvisionError::new(
                Reason::Ledger,
                None,
                "the ledger lock is poisoned (another workflow panicked); restart keyward",
            )
        })
    }
}

/// Seconds since the epoch (negative before it).
pub fn unix_secs(t: SystemTime) -> i64 {
    match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    }
}

/// Which key to provision.
pub enum KeyTarget {
    /// A PC/SC reader by name: FIDO2 over the NFC mapping (NFCCTAP) and PIV.
    Reader(String),
    /// A hidraw node: FIDO2 over CTAPHID only.
    Hid(PathBuf),
    /// An in-process simulated key (FIDO2 over its in-memory CTAPHID pipe;
    /// PIV needs pcscd, so a PIV op on this target fails with
    /// `device-unsupported`).
    Sim(SimDevice),
    /// One USB YubiKey seen through both its interfaces: FIDO2 over the
    /// hidraw node, PIV over the CCID reader (USB keys do not offer FIDO2
    /// over CCID).
    Usb { reader: String, hid: PathBuf },
}

impl std::fmt::Debug for KeyTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyTarget::Reader(r) => f.debug_tuple("Reader").field(r).finish(),
            KeyTarget::Hid(p) => f.debug_tuple("Hid").field(p).finish(),
            KeyTarget::Sim(_) => f.write_str("Sim(..)"),
            KeyTarget::Usb { reader, hid } => f
                .debug_struct("Usb")
                .field("reader", reader)
                .field("hid", hid)
                .finish(),
        }
    }
}

impl KeyTarget {
    /// A short description for messages and events.
    pub fn describe(&self) -> String {
        match self {
            KeyTarget::Reader(r) => format!("reader {r:?}"),
            KeyTarget::Hid(p) => format!("hidraw {}", p.display()),
            KeyTarget::Sim(_) => "in-process simulator".into(),
            KeyTarget::Usb { reader, hid } => {
                format!("USB key (reader {reader:?}, hidraw {})", hid.display())
            }
        }
    }
}

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
    /// The one ledger transaction.
    Commit,
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
            Commit => "commit",
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
/// the ledger's exceptions table).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AppliedException {
    pub rule: String,
    pub reason: String,
    pub approver: String,
    pub expires: String,
}

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
}

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

#[cfg(test)]
mod tests {
    use super::*;

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
