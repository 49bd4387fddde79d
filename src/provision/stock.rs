//! Return to stock (deprovisioning): a key handed back is identified as the
//! bound key by its serial **and** by proof of its credentials (FIDO2
//! assertion signature, PIV slot attestation), its binding is closed, the
//! key is reset (PIV and FIDO2) and drift-checked factory-clean, and it is
//! recorded in stock. docs/lifecycle.md.
//!
//! Order, so that a crash never leaves a reset key bound as active:
//!
//! 1. identify the key (serial) and find its open binding;
//! 2. prove identity (nothing written yet; a refused key changes nothing);
//! 3. commit: binding `returned`, key `quarantined` / `reset-pending`;
//! 4. reset PIV, then FIDO2 (asking for re-insertion when the FIDO2 reset
//!    window has closed);
//! 5. drift check: PIV factory state, FIDO2 without PIN, the bound
//!    credential gone;
//! 6. commit: key `in_stock` (or left `quarantined` with the reason).
//!
//! A run interrupted after 3 is resumed by `keyward return` on the same key:
//! the ledger shows it quarantined with `reset-pending`, so steps 4–6 run
//! without a binding to prove.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::StepReport;
use super::errors;
use super::flow::Flow;
use super::lifecycle::{
    IdentityProof, Presented, cancelled, confirm_fido, confirm_piv, identify, millis, open_fido,
    reader_of, with_piv,
};
use super::record::{Books, Run, Seen};
use super::{Cancel, Deadlines, Event, Events, KeyTarget, ProvisionError, Reason, Station, Step};
use crate::ctap::commands::get_assertion::GetAssertion;
use crate::ctap::{Error as CtapError, StatusCode};
use crate::piv::{DriftFact, DriftPolicy, DriftReport};
use crate::store::stock::{OpenBinding, RESET_PENDING, ReturnStart, StockState};
use crate::store::{DeviceRecord, RunKind, RunStart};

/// One key handed back.
#[derive(Debug)]
pub struct ReturnRequest {
    pub target: KeyTarget,
    /// Reset and stock a key that has no binding in this ledger. Without
    /// it such a key is refused: a key of unknown history is not issued.
    pub danger_allow_unbound: bool,
    /// Bulk slot or kiosk name, recorded with the run.
    pub slot: Option<String>,
    pub deadlines: Deadlines,
}

impl ReturnRequest {
    pub fn new(target: KeyTarget) -> Self {
        Self {
            target,
            danger_allow_unbound: false,
            slot: None,
            deadlines: Deadlines::default(),
        }
    }
}

/// A key back in stock (`Deserialize`: the CLI reads it back from the
/// daemon).
#[derive(Debug, Serialize, Deserialize)]
pub struct ReturnOutcome {
    pub run: String,
    pub serial: String,
    /// The binding closed (none for an unbound key or a resumed return).
    pub binding: Option<String>,
    pub subject: Option<String>,
    /// How the key proved it is the bound key.
    pub proofs: Vec<IdentityProof>,
    /// Whether this run resumed a return interrupted after its first commit.
    pub resumed: bool,
    pub reset: ResetReport,
    pub stock: StockState,
    pub steps: Vec<StepReport>,
}

/// What was reset and how the key looks afterwards.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ResetReport {
    pub piv: bool,
    pub fido2: bool,
    /// The drift check's findings after the reset (the factory defaults:
    /// default PIN, PUK and management key).
    pub piv_drift: Vec<DriftFact>,
}

/// What the ledger knows about the key.
enum Known {
    Bound(Box<OpenBinding>),
    /// A return interrupted after its first commit.
    Pending {
        device_id: i64,
    },
    Unbound,
}

/// Take a key back into stock. On failure before the first commit nothing
/// is written but the run; after it, the key stays quarantined.
pub fn return_to_stock(
    station: &Station,
    req: ReturnRequest,
    events: &dyn Events,
    cancel: &Cancel,
) -> Result<ReturnOutcome, ProvisionError> {
    let run = Run::start(
        Books::of(station),
        RunKind::Return,
        &RunStart {
            slot: req.slot.as_deref(),
            actor: &station.actor,
            ..RunStart::default()
        },
        Step::Commit,
    )?;
    let mut seen: (Option<String>, Option<String>) = (None, None);
    let result = run_return(station, &req, events, cancel, &run, &mut seen);
    run.finish(
        &result,
        Seen {
            serial: seen.0.as_deref(),
            binding: seen.1.as_deref(),
            ..Seen::default()
        },
    );
    result.map_err(|mut e| {
        e.run = Some(run.id.clone());
        e
    })
}

fn run_return(
    station: &Station,
    req: &ReturnRequest,
    events: &dyn Events,
    cancel: &Cancel,
    run: &Run<'_>,
    seen: &mut (Option<String>, Option<String>),
) -> Result<ReturnOutcome, ProvisionError> {
    let dl = req.deadlines;
    let ctx = Ctx {
        station,
        run,
        dl,
        cancel,
    };
    let mut steps = Flow::direct(station, dl, events, cancel);
    let reader = reader_of(&req.target, "return to stock", false)?;
    let key = steps.step(Step::Identify, dl.command, |_| {
        let key = identify(reader)?;
        let detail = json!(key);
        Ok((key, detail))
    })?;
    let serial = key.serial.to_string();
    seen.0 = Some(serial.clone());
    let known = steps.step(Step::Policy, dl.command, |_| {
        super::fleet::check_key(station, &serial, Step::Policy)?;
        let k = lookup(station, &serial, req.danger_allow_unbound)?;
        let detail = match &k {
            Known::Bound(b) => json!({"binding": b.id, "subject": b.subject, "state": b.state}),
            Known::Pending { .. } => json!({"resume": RESET_PENDING}),
            Known::Unbound => json!({"unbound": true, "danger_allow_unbound": true}),
        };
        Ok((k, detail))
    })?;
    let (binding, subject) = match &known {
        Known::Bound(b) => (Some(b.id.clone()), Some(b.subject.clone())),
        _ => (None, None),
    };
    seen.1 = binding.clone();
    let proofs = match &known {
        Known::Bound(b) => prove(station, &key, b, dl, &mut steps, cancel)?,
        _ => Vec::new(),
    };
    let device_id = match &known {
        Known::Pending { device_id } => *device_id,
        _ => begin(&ctx, &key, &known, &proofs, &mut steps)?,
    };
    // From here on the key is quarantined until it is proven clean.
    let reset = settle(&ctx, &key, &known, device_id, &mut steps)?;
    Ok(ReturnOutcome {
        run: run.id.clone(),
        serial,
        binding,
        subject,
        proofs,
        resumed: matches!(known, Known::Pending { .. }),
        reset,
        stock: StockState::InStock,
        steps: steps.steps,
    })
}

/// What the steps after the identity proof share.
struct Ctx<'a> {
    station: &'a Station,
    run: &'a Run<'a>,
    dl: Deadlines,
    cancel: &'a Cancel,
}

/// Commit 1: the binding becomes `returned`, the key `quarantined`
/// (`reset-pending`). Returns the device's ledger id.
fn begin(
    ctx: &Ctx<'_>,
    key: &Presented,
    known: &Known,
    proofs: &[IdentityProof],
    steps: &mut Flow<'_>,
) -> Result<i64, ProvisionError> {
    let Ctx {
        station, run, dl, ..
    } = *ctx;
    let binding = match known {
        Known::Bound(b) => Some(b.id.as_str()),
        _ => None,
    };
    steps.step(Step::Commit, dl.command, |_| {
        let device = DeviceRecord {
            kind: match known {
                Known::Bound(b) => b.device_kind.clone(),
                _ => "yubikey".into(),
            },
            serial: Some(key.serial.to_string()),
            aaguid: key.aaguid.clone(),
            model: None,
            firmware: key.firmware.clone(),
        };
        let start = ReturnStart {
            binding,
            device: &device,
            proof: json!({"proofs": proofs, "run": run.id, "unbound": binding.is_none()}),
            actor: &station.actor,
        };
        let now = station.now_secs();
        let id = station
            .ledger()?
            .begin_return(&start, now)
            .map_err(|e| errors::store(Step::Commit, e))?;
        Ok((
            id,
            json!({"binding": binding, "state": "returned", "stock": "quarantined"}),
        ))
    })
}

/// Reset, drift check and commit 2: the key in stock, or left quarantined
/// with the failure's reason as its note.
fn settle(
    ctx: &Ctx<'_>,
    key: &Presented,
    known: &Known,
    device_id: i64,
    steps: &mut Flow<'_>,
) -> Result<ResetReport, ProvisionError> {
    let Ctx {
        station,
        run,
        dl,
        cancel,
    } = *ctx;
    let cleaned = reset_and_check(key, known, dl, steps, cancel);
    let now = station.now_secs();
    match cleaned {
        Ok(reset) => {
            steps.step(Step::Commit, dl.command, |_| {
                let evidence = json!({"reset": reset, "run": run.id});
                station
                    .ledger()?
                    .finish_return(device_id, &evidence, &station.actor, now)
                    .map_err(|e| errors::store(Step::Commit, e))?;
                Ok(((), json!({"stock": "in_stock"})))
            })?;
            Ok(reset)
        }
        Err(mut e) => {
            let evidence = json!({"error": e.message, "step": e.step, "run": run.id});
            if let Err(le) = station.ledger().and_then(|mut l| {
                l.quarantine(device_id, e.reason.as_str(), &evidence, &station.actor, now)
                    .map_err(|x| errors::store(Step::Commit, x))
            }) {
                tracing::warn!(error = %le, "could not record the quarantine");
            }
            e.message = format!(
                "{}; the binding is closed and key {} stays quarantined: run `keyward return` on it again",
                e.message, key.serial
            );
            Err(e)
        }
    }
}

fn lookup(station: &Station, serial: &str, allow_unbound: bool) -> Result<Known, ProvisionError> {
    let ledger = station.ledger()?;
    let mut open = ledger
        .open_bindings_for_serial(serial)
        .map_err(|e| errors::store(Step::Policy, e))?;
    if open.len() > 1 {
        let ids: Vec<_> = open.iter().map(|b| b.id.as_str()).collect();
        return Err(ProvisionError::new(
            Reason::Ledger,
            Some(Step::Policy),
            format!(
                "key {serial} has {} open bindings ({}); revoke all but one first",
                open.len(),
                ids.join(", ")
            ),
        ));
    }
    if let Some(b) = open.pop() {
        return Ok(Known::Bound(Box::new(b)));
    }
    let stock = ledger
        .stock_for_serial(serial)
        .map_err(|e| errors::store(Step::Policy, e))?;
    match stock {
        Some(s) if s.state == StockState::Quarantined => Ok(Known::Pending {
            device_id: s.device_id,
        }),
        Some(_) if !allow_unbound => Err(ProvisionError::new(
            Reason::NotBound,
            Some(Step::Policy),
            format!("key {serial} is already in stock; nothing to return"),
        )),
        _ if allow_unbound => Ok(Known::Unbound),
        _ => Err(ProvisionError::new(
            Reason::NotBound,
            Some(Step::Policy),
            format!(
                "key {serial} has no open binding in this ledger, so it cannot be identified as a returned key; \
                 to reset and stock it anyway, run again with --danger-allow-unbound"
            ),
        )),
    }
}

/// Step 2: every credential of the binding must be proven on the key.
fn prove(
    station: &Station,
    key: &Presented,
    b: &OpenBinding,
    dl: Deadlines,
    steps: &mut Flow<'_>,
    cancel: &Cancel,
) -> Result<Vec<IdentityProof>, ProvisionError> {
    if b.credentials.is_empty() {
        return Err(ProvisionError::new(
            Reason::IdentityUnconfirmed,
            Some(Step::Policy),
            format!("binding {} records no credential to prove the key by", b.id),
        ));
    }
    let mut proofs = Vec::new();
    for c in b.credentials.iter().filter(|c| c.kind == "piv") {
        let p = steps.step(Step::PivAttestation, dl.command, |_| {
            let p = with_piv(&key.reader, key.serial, Step::PivAttestation, |card| {
                confirm_piv(station, card, key.serial, c)
            })?;
            let d = json!(p);
            Ok((p, d))
        })?;
        proofs.push(p);
    }
    for c in b.credentials.iter().filter(|c| c.kind == "fido2") {
        if !key.fido2 {
            return Err(ProvisionError::new(
                Reason::IdentityUnconfirmed,
                Some(Step::GetAssertion),
                "the binding holds a FIDO2 credential but the key shows no FIDO2 application",
            ));
        }
        let p = steps.step(Step::GetAssertion, dl.touch, |s| {
            let p = confirm_fido(&key.reader, c, dl.touch, s, cancel)?;
            let d = json!(p);
            Ok((p, d))
        })?;
        proofs.push(p);
    }
    Ok(proofs)
}

/// Steps 4 and 5.
fn reset_and_check(
    key: &Presented,
    known: &Known,
    dl: Deadlines,
    steps: &mut Flow<'_>,
    cancel: &Cancel,
) -> Result<ResetReport, ProvisionError> {
    let mut report = ResetReport::default();
    if key.piv {
        steps.step(Step::Reset, dl.command, |_| {
            with_piv(&key.reader, key.serial, Step::Reset, |card| {
                card.danger_reset().map_err(|e| errors::piv(Step::Reset, e))
            })?;
            Ok(((), json!({"application": "piv"})))
        })?;
        report.piv = true;
    }
    if key.fido2 {
        steps.step(Step::Reset, dl.touch + dl.reinsert, |s| {
            fido_reset(key, dl, s, cancel)?;
            Ok(((), json!({"application": "fido2"})))
        })?;
        report.fido2 = true;
    }
    report.piv_drift = steps.step(Step::DriftCheck, dl.command, |_| {
        let facts = drift_clean(key, known, dl, cancel)?;
        let d = json!({"piv_facts": facts, "fido2": key.fido2.then_some("no PIN, bound credential gone")});
        Ok((facts, d))
    })?;
    Ok(report)
}

/// FIDO2 reset: the key accepts it only within seconds of power-up and with
/// a touch. Outside the window it answers NOT_ALLOWED: the person is asked
/// to re-insert the key, and the reset is tried once more on the same key
/// (serial checked again).
fn fido_reset(
    key: &Presented,
    dl: Deadlines,
    steps: &Flow<'_>,
    cancel: &Cancel,
) -> Result<(), ProvisionError> {
    let mut reinserted = false;
    loop {
        let mut c = open_fido(&key.reader, dl.touch, cancel, Step::Reset)?;
        steps.emit(Event::TouchNeeded {
            step: Step::Reset,
            timeout_ms: millis(dl.touch),
        });
        match c.reset() {
            Ok(()) => return Ok(()),
            Err(CtapError::Status(StatusCode::NotAllowed)) if !reinserted => {
                drop(c);
                steps.emit(Event::ReinsertNeeded {
                    step: Step::Reset,
                    within_ms: millis(dl.reinsert),
                });
                wait_reinserted(&key.reader, dl.reinsert, cancel)?;
                let again = identify(&key.reader)?;
                if again.serial != key.serial {
                    return Err(ProvisionError::new(
                        Reason::DeviceMismatch,
                        Some(Step::Reset),
                        format!(
                            "a different key (serial {}) was inserted; re-insert key {}",
                            again.serial, key.serial
                        ),
                    ));
                }
                reinserted = true;
            }
            Err(e) => {
                let mut e = errors::ctap(Step::Reset, e);
                if e.reason == Reason::ResetNotAllowed {
                    e.message = format!(
                        "the key refused the FIDO2 reset: remove it, insert it again and touch it within 10 seconds ({})",
                        e.message
                    );
                }
                return Err(e);
            }
        }
    }
}

/// Wait for the card to leave `reader` and come back, within `timeout`.
fn wait_reinserted(reader: &str, timeout: Duration, cancel: &Cancel) -> Result<(), ProvisionError> {
    let fail = |reason, msg: String| ProvisionError::new(reason, Some(Step::Reset), msg);
    let ctx = pcsc::Context::establish(pcsc::Scope::User)
        .map_err(|e| fail(Reason::NoDevice, format!("cannot reach pcscd: {e}")))?;
    let name = std::ffi::CString::new(reader)
        .map_err(|_| fail(Reason::NoDevice, format!("bad reader name {reader:?}")))?;
    let deadline = Instant::now() + timeout;
    for want_present in [false, true] {
        loop {
            if cancel.is_cancelled() {
                return Err(cancelled(Step::Reset));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(fail(
                    Reason::Timeout,
                    format!("the key was not re-inserted within {} s", timeout.as_secs()),
                ));
            }
            let mut rs = [pcsc::ReaderState::new(
                name.as_c_str(),
                pcsc::State::UNAWARE,
            )];
            match ctx.get_status_change(Duration::ZERO, &mut rs) {
                Ok(()) | Err(pcsc::Error::Timeout) => {}
                Err(e) => return Err(fail(Reason::NoDevice, format!("reader {reader:?}: {e}"))),
            }
            let present = rs[0].event_state().contains(pcsc::State::PRESENT);
            if present == want_present {
                break;
            }
            rs[0].sync_current_state();
            match ctx.get_status_change(left.min(Duration::from_millis(250)), &mut rs) {
                Ok(()) | Err(pcsc::Error::Timeout) => {}
                Err(e) => return Err(fail(Reason::NoDevice, format!("reader {reader:?}: {e}"))),
            }
        }
    }
    Ok(())
}

/// Step 5: the key is factory-clean (see [`piv_clean`], [`fido_clean`]).
/// Returns the PIV drift facts left (the factory defaults).
fn drift_clean(
    key: &Presented,
    known: &Known,
    dl: Deadlines,
    cancel: &Cancel,
) -> Result<Vec<DriftFact>, ProvisionError> {
    let facts = if key.piv { piv_clean(key)? } else { Vec::new() };
    if key.fido2 {
        fido_clean(key, known, dl, cancel)?;
    }
    Ok(facts)
}

fn dirty(what: String) -> ProvisionError {
    ProvisionError::new(
        Reason::Drift,
        Some(Step::DriftCheck),
        format!("after the reset the key is not factory-clean: {what}"),
    )
}

/// PIV: no slot holds a key or certificate; PIN, PUK and management key are
/// the factory ones; no CHUID or CCC.
fn piv_clean(key: &Presented) -> Result<Vec<DriftFact>, ProvisionError> {
    let step = Step::DriftCheck;
    let state = with_piv(&key.reader, key.serial, step, |card| {
        card.state().map_err(|e| errors::piv(step, e))
    })?;
    let report = DriftReport::check(&state, &DriftPolicy::default());
    if let Some(f) = report
        .facts
        .iter()
        .find(|f| matches!(f, DriftFact::SlotInUse { .. }))
    {
        return Err(dirty(format!("PIV {f}")));
    }
    for (what, default) in [
        ("PIN", state.pin_is_default),
        ("PUK", state.puk_is_default),
        ("management key", state.management_key_is_default),
    ] {
        if default != Some(true) {
            return Err(dirty(format!("the PIV {what} is not the factory default")));
        }
    }
    if state.chuid.is_some() || state.ccc.is_some() {
        return Err(dirty("the PIV CHUID or CCC is still written".into()));
    }
    Ok(report.facts)
}

/// FIDO2: no PIN set, enterprise attestation off, and the bound credentials
/// no longer answer (a silent getAssertion, up=false, gets NO_CREDENTIALS).
fn fido_clean(
    key: &Presented,
    known: &Known,
    dl: Deadlines,
    cancel: &Cancel,
) -> Result<(), ProvisionError> {
    let step = Step::DriftCheck;
    let mut c = open_fido(&key.reader, dl.command, cancel, step)?;
    let info = c.get_info().map_err(|e| errors::ctap(step, e))?;
    if info.option("clientPin") == Some(true) {
        return Err(dirty("the FIDO2 PIN is still set".into()));
    }
    if info.option("ep") == Some(true) {
        return Err(dirty(
            "FIDO2 enterprise attestation is still enabled".into(),
        ));
    }
    let Known::Bound(b) = known else {
        return Ok(());
    };
    for cred in b.credentials.iter().filter(|c| c.kind == "fido2") {
        let (Some(id), Some(rp_id)) = (&cred.credential_id, &cred.rp_id) else {
            continue;
        };
        let ga = GetAssertion {
            rp_id: rp_id.clone(),
            allow_list: vec![id.clone()],
            up: Some(false),
            ..GetAssertion::default()
        };
        match c.get_assertion(&ga, None) {
            Err(CtapError::Status(StatusCode::NoCredentials)) => {}
            Ok(_) => {
                return Err(dirty(format!(
                    "the bound FIDO2 credential for {rp_id} still answers"
                )));
            }
            Err(e) => return Err(errors::ctap(step, e)),
        }
    }
    Ok(())
}
