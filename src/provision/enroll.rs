//! The enroll and replace orchestration: ticket → profile → key → FIDO2
//! and PIV steps → cross-checks → one ledger transaction, with the run
//! recorded from start to end. See docs/enroll.md for the state a key is
//! left in after each step.

use std::sync::mpsc;

use serde_json::json;

use super::errors;
use super::fido::{self, FidoResult};
use super::flow::{Envelope, Flow};
use super::idp;
use super::piv::{self as piv_steps, PivIdentity, PivResult};
use super::record::{Books, Run, Seen};
use super::replace::{self, Original};
use super::{
    AppliedException, Cancel, CredentialSummary, EnrollOutcome, EnrollRequest, Events, KeyTarget,
    PinChoice, ProvisionError, Reason, Station, Step, target,
};
use crate::ctap::Pin;
use crate::policy::profile::Profile;
use crate::policy::{self, Rule, Verdict};
use crate::store::idp::{IdpBound, IdpStaged};
use crate::store::{
    CredentialRecord, DeviceRecord, EnrollmentRecord, ExceptionRecord, RunKind, RunStart,
    TicketRecord,
};
use crate::ticket::{Fido2Op, Op, OpKind, PivOp, VerifiedTicket};

/// Which workflow runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    Enroll,
    Replace,
}

/// Run the workflow with an event-forwarding thread, so that keepalive
/// prompts reach `events` while the device call blocks.
pub(crate) fn run(
    station: &Station,
    req: EnrollRequest,
    events: &dyn Events,
    cancel: &Cancel,
    mode: Mode,
) -> Result<EnrollOutcome, ProvisionError> {
    let (tx, rx) = mpsc::channel::<Envelope>();
    let (ack_tx, ack_rx) = mpsc::channel();
    std::thread::scope(|s| {
        s.spawn(move || {
            for e in rx {
                events.emit(&e.event);
                if e.ack {
                    let _ = ack_tx.send(());
                }
            }
        });
        let mut flow = Flow::new(station, req.deadlines, tx, ack_rx, cancel);
        recorded(&mut flow, req, mode)
        // `flow` (and every CTAP client holding a sender) is dropped here,
        // which ends the forwarding thread before the scope returns.
    })
}

/// Verify the ticket, then run the body inside a recorded run.
fn recorded(
    flow: &mut Flow<'_>,
    req: EnrollRequest,
    mode: Mode,
) -> Result<EnrollOutcome, ProvisionError> {
    let station = flow.station;
    let kind = match mode {
        Mode::Enroll => RunKind::Enroll,
        Mode::Replace => RunKind::Replace,
    };
    let slot = req.slot.clone();
    let verified = flow.step(Step::Ticket, flow.deadlines.command, |fl| {
        let vt = super::verify_ticket(fl.station, &req.ticket)?;
        let detail = json!({"jti": vt.claims.jti, "iss": vt.claims.iss, "sub": vt.claims.sub,
            "ial": vt.claims.ial, "policy": vt.claims.policy,
            "digest_sha256": vt.digest.to_hex(), "approvals": vt.signers.len()});
        Ok((vt, detail))
    });
    let start = RunStart {
        ticket_jti: verified.as_ref().ok().map(|v| v.claims.jti.as_str()),
        subject: verified.as_ref().ok().map(|v| v.claims.sub.as_str()),
        slot: slot.as_deref(),
        actor: &station.actor,
    };
    let run = Run::start(Books::of(station), kind, &start, Step::Ticket)?;
    let result = verified
        .and_then(|vt| body(flow, req, &vt, mode, &run.id))
        .map_err(|mut e| {
            if e.reason == Reason::Cancelled && flow.cancel.was_removed() {
                e.reason = Reason::DeviceRemoved;
                e.message = format!(
                    "the key was removed during {}; nothing was committed and the ticket was not used: re-insert the key and run the enrollment again",
                    e.step.map_or("the enrollment", |s| s.as_str())
                );
            }
            e
        });
    run.finish(
        &result,
        match &result {
            Ok(o) => Seen {
                serial: o.serial.as_deref(),
                aaguid: o.aaguid.as_deref(),
                binding: Some(&o.binding),
            },
            Err(_) => Seen::default(),
        },
    );
    match result {
        Ok(mut o) => {
            o.run = run.id;
            Ok(o)
        }
        Err(mut e) => {
            e.run = Some(run.id);
            Err(e)
        }
    }
}

/// The rules checked before the key is touched.
fn preflight(
    flow: &mut Flow<'_>,
    req: &EnrollRequest,
    vt: &VerifiedTicket,
    mode: Mode,
) -> Result<(Profile, Option<Original>), ProvisionError> {
    let station = flow.station;
    let claims = &vt.claims;
    flow.step(Step::Policy, flow.deadlines.command, |_| {
        let profile = station.profiles.get(&claims.policy).cloned().ok_or_else(|| {
            ProvisionError::new(
                Reason::PolicyUnknownProfile,
                Some(Step::Policy),
                format!(
                    "the ticket names policy profile {:?}, which this station does not have (profiles: {})",
                    claims.policy,
                    station.profiles.names().join(", ")
                ),
            )
        })?;
        if claims.ops.iter().any(|o| o.kind() == OpKind::Unblock) {
            return Err(ProvisionError::new(
                Reason::WrongWorkflow,
                Some(Step::Policy),
                "this is a help-desk unblock ticket; run `keyward unblock` with it (enroll and replace do not unblock PINs)",
            ));
        }
        if mode == Mode::Enroll && claims.replaces.is_some() {
            return Err(ProvisionError::new(
                Reason::ReplaceTicket,
                Some(Step::Policy),
                "this ticket replaces a device; run `keyward replace` with it",
            ));
        }
        let has_piv = claims.ops.iter().any(|o| matches!(o, Op::Piv(_)));
        if let PinChoice::Given(pin) = &req.pin {
            profile.pin.check(pin.expose_secret()).map_err(|e| {
                ProvisionError::new(Reason::PolicyPin, Some(Step::Policy), e.to_string())
            })?;
            if has_piv && !(6..=8).contains(&pin.expose_secret().len()) {
                return Err(ProvisionError::new(
                    Reason::PolicyPin,
                    Some(Step::Policy),
                    "the ticket provisions PIV, whose PIN is 6 to 8 characters; choose a PIN of that length",
                ));
            }
        }
        piv_steps::check_ops(&claims.ops, &profile)?;
        let original = match mode {
            Mode::Replace => Some(replace::check(station, vt, &profile)?),
            Mode::Enroll => None,
        };
        let detail = json!({"profile": claims.policy, "reset_before_enroll": profile.reset_before_enroll,
            "enterprise_attestation": profile.enterprise_attestation, "privileged": profile.privileged,
            "replacement": original.as_ref().map(|o| o.detail.clone())});
        Ok(((profile, original), detail))
    })
}

/// The pre-assigned device (`device` claim) must be this key.
fn check_assigned(
    vt: &VerifiedTicket,
    serial: Option<u64>,
    step: Step,
) -> Result<(), ProvisionError> {
    let Some(want) = vt.claims.device.as_ref().map(|d| u64::from(d.serial)) else {
        return Ok(());
    };
    match serial {
        Some(s) if s == want => Ok(()),
        Some(s) => Err(ProvisionError::new(
            Reason::DeviceMismatch,
            Some(step),
            format!(
                "the ticket is for the key with serial {want}, but this key is {s}; insert key {want}"
            ),
        )),
        None => Err(ProvisionError::new(
            Reason::DeviceMismatch,
            Some(step),
            format!(
                "the ticket is for the key with serial {want}, and this key does not prove its serial (no enterprise attestation or PIV)"
            ),
        )),
    }
}

/// The PC/SC reader of a target, where the key's serial can be read
/// without changing it.
fn reader_of(target: &KeyTarget) -> Option<&str> {
    match target {
        KeyTarget::Reader(r) | KeyTarget::Usb { reader: r, .. } => Some(r),
        _ => None,
    }
}

/// Right after identification, before anything is written to the key: it
/// must be the key the ticket pre-assigns, and no open binding (active,
/// suspended or lost) may hold it. A key known only by its enterprise
/// attestation serial (HID, simulator) is checked when that serial is
/// proven, and the commit checks again in its transaction.
fn check_identified(
    flow: &Flow<'_>,
    vt: &VerifiedTicket,
    serial: u64,
) -> Result<(), ProvisionError> {
    check_assigned(vt, Some(serial), Step::Identify)?;
    super::fleet::check_key(flow.station, &serial.to_string(), Step::Identify)?;
    let open = flow
        .station
        .ledger()?
        .open_bindings_for_serial(&serial.to_string())
        .map_err(|e| errors::store(Step::Identify, e))?;
    // A replacement may not rebind the key it replaces either.
    if let Some(b) = open.first() {
        return Err(ProvisionError::new(
            Reason::DeviceAlreadyBound,
            Some(Step::Identify),
            format!(
                "key {serial} is still held by {} binding {}; revoke or return that binding first (nothing was written to the key)",
                b.state.as_str(),
                b.id
            ),
        ));
    }
    Ok(())
}

/// The ticket's FIDO2 and PIV operations, in order.
fn split_ops(vt: &VerifiedTicket) -> (Vec<Fido2Op>, Vec<PivOp>) {
    let mut fido = Vec::new();
    let mut piv = Vec::new();
    for op in &vt.claims.ops {
        match op {
            Op::Fido2(f) => fido.push(f.clone()),
            Op::Piv(p) => piv.push(p.clone()),
            #[allow(unreachable_patterns)]
            _ => {}
        }
    }
    (fido, piv)
}

/// The FIDO2 steps; returns the PIN now on the key and whether it was
/// generated.
fn fido_part(
    flow: &mut Flow<'_>,
    req: &EnrollRequest,
    vt: &VerifiedTicket,
    profile: &Profile,
    ops: &[Fido2Op],
    plan: &idp::Plan,
    out: &mut FidoResult,
) -> Result<(Pin, bool, Option<IdpBound>), ProvisionError> {
    let transport = target::open_fido(&req.target, flow.deadlines.command)?;
    let mut f = fido::identify(flow, transport)?;
    out.aaguid = crate::attest::mds::format_aaguid(&f.info.aaguid);
    out.firmware = f
        .info
        .firmware_version
        .map(|v| format!("{}.{}.{}", (v >> 16) & 0xFF, (v >> 8) & 0xFF, v & 0xFF));
    // Before the key is changed: a key that lacks an extension the profile
    // requires is refused untouched.
    fido::extensions_offered(&f, profile)?;
    if profile.reset_before_enroll {
        fido::reset(flow, &mut f)?;
    }
    let (pin, generated) = fido::set_pin(flow, &mut f, &req.pin, profile, &ops[0].rp_id)?;
    fido::enterprise_attestation(flow, &mut f, &pin, profile)?;
    for op in ops {
        fido::credential(flow, &mut f, &pin, vt, op, profile, out)?;
    }
    // The IdP's credential, judged like the ticket's (docs/idp.md).
    let bound = match plan {
        idp::Plan::Make(o) => Some(idp::credential(flow, &mut f, &pin, vt, o, profile, out)?),
        _ => None,
    };
    // Last: once forceChangePin is set the key issues no token until the
    // PIN is changed.
    if generated {
        fido::force_change_pin(flow, &mut f, &pin)?;
    }
    Ok((pin, generated, bound))
}

/// FIDO and PIV must agree on the serial of the one physical key.
fn cross_check(
    flow: &mut Flow<'_>,
    out: &FidoResult,
    piv: &PivResult,
    piv_serial: Option<u64>,
) -> Result<(), ProvisionError> {
    flow.step(Step::CrossCheck, flow.deadlines.command, |_| {
        let mismatch =
            |m: String| ProvisionError::new(Reason::SerialMismatch, Some(Step::CrossCheck), m);
        for ff in &out.facts {
            for pf in &piv.facts {
                policy::cross_check(ff, pf).map_err(|e| mismatch(e.to_string()))?;
            }
        }
        if let (Some(f), Some(p)) = (out.serial, piv_serial)
            && f != p
        {
            return Err(mismatch(format!(
                "FIDO enterprise attestation serial {f} differs from the PIV card's serial {p}: two different keys"
            )));
        }
        Ok(((), json!({"fido_serial": out.serial, "piv_serial": piv_serial})))
    })
}

/// What the ledger records for this enrollment.
fn record(
    flow: &Flow<'_>,
    vt: &VerifiedTicket,
    out: &FidoResult,
    piv: Option<&PivResult>,
    piv_id: Option<&PivIdentity>,
    serial: Option<u64>,
) -> EnrollmentRecord {
    let mut credentials = out.credentials.clone();
    if let Some(p) = piv {
        credentials.extend(p.credentials.iter().cloned());
    }
    let kind = match (serial.is_some(), out.credentials.is_empty()) {
        (true, _) => "yubikey",
        (false, false) => "fido2",
        (false, true) => "piv",
    };
    EnrollmentRecord {
        subject: vt.claims.sub.clone(),
        ticket: TicketRecord {
            jti: vt.claims.jti.clone(),
            digest: vt.digest.to_hex(),
            issuer: vt.claims.iss.clone(),
            ial: Some(vt.claims.ial),
        },
        device: DeviceRecord {
            kind: kind.into(),
            serial: serial.map(|s| s.to_string()),
            aaguid: (!out.aaguid.is_empty()).then(|| out.aaguid.clone()),
            model: None,
            firmware: out
                .firmware
                .clone()
                .or_else(|| piv_id.map(|i| i.firmware.clone())),
        },
        policy: Some(vt.claims.policy.clone()),
        credentials,
        actor: flow.station.actor.clone(),
    }
}

fn body(
    flow: &mut Flow<'_>,
    req: EnrollRequest,
    vt: &VerifiedTicket,
    mode: Mode,
    run: &str,
) -> Result<EnrollOutcome, ProvisionError> {
    let (profile, original) = preflight(flow, &req, vt, mode)?;
    let reserved = super::fleet::reserve(flow, vt)?;
    let result = match idp::options(flow, vt, &profile) {
        Ok(plan) => on_key(flow, req, vt, run, (profile, plan), original),
        Err(e) => Err(e),
    };
    if result.is_err() && reserved {
        // Nothing was committed: give the ticket back, so the person may
        // use it at another station (best effort; a reservation left
        // behind only keeps the ticket at this station).
        super::fleet::release(flow.station, vt);
    }
    result
}

/// Everything from the first command to the key to the commit.
fn on_key(
    flow: &mut Flow<'_>,
    req: EnrollRequest,
    vt: &VerifiedTicket,
    run: &str,
    (profile, plan): (Profile, idp::Plan),
    original: Option<Original>,
) -> Result<EnrollOutcome, ProvisionError> {
    let (fido_ops, piv_ops) = split_ops(vt);
    if matches!(plan, idp::Plan::Make(_)) && fido_ops.is_empty() {
        return Err(ProvisionError::new(
            Reason::IdpUnavailable,
            Some(Step::IdpOptions),
            "the profile registers a FIDO2 credential with the identity provider, but the ticket provisions no FIDO2 credential; ask for a ticket with a fido2 op (nothing was written to the key)",
        ));
    }

    // PIV first, read-only: serial (pre-assigned device) and drift.
    let piv_id = if piv_ops.is_empty() {
        None
    } else {
        let id = piv_steps::identify(flow, &req.target, &piv_ops, &req.pin)?;
        check_identified(flow, vt, u64::from(id.serial))?;
        Some(id)
    };
    // FIDO2 alone on a PC/SC reader: the Management applet tells the
    // serial, read-only, before anything is written. A key without one
    // (not a YubiKey) is checked later, by its attestation and the commit.
    if piv_id.is_none()
        && let Some(reader) = reader_of(&req.target)
    {
        let serial = flow.step(Step::Identify, flow.deadlines.command, |_| {
            let serial = match super::lifecycle::identify(reader) {
                Ok(p) => Some(p.serial),
                Err(e) if e.reason == Reason::DeviceUnsupported => None,
                Err(e) => return Err(e),
            };
            Ok((serial, json!({"serial": serial})))
        })?;
        if let Some(serial) = serial {
            check_identified(flow, vt, u64::from(serial))?;
        }
    }

    let mut out = FidoResult::default();
    let mut pin = None;
    let mut generated = false;
    let mut bound = None;
    if !fido_ops.is_empty() {
        let (p, g, b) = fido_part(flow, &req, vt, &profile, &fido_ops, &plan, &mut out)?;
        pin = Some(p);
        generated = g;
        bound = b;
    }

    let mut piv_out = None;
    if let Some(id) = &piv_id {
        let p = match (pin.take(), &req.pin) {
            (Some(p), _) => p,
            (None, PinChoice::Given(p)) => p.clone(),
            (None, PinChoice::Generate) => {
                generated = true;
                fido::generate_pin(profile.pin.generated_length.clamp(6, 8))
            }
        };
        let r = piv_steps::provision(flow, &req.target, id, vt, &piv_ops, &p, &profile)?;
        out.exceptions.extend(r.exceptions.iter().cloned());
        piv_out = Some(r);
        pin = Some(p);
    }

    let piv_serial = piv_id.as_ref().map(|i| u64::from(i.serial));
    if let Some(pr) = &piv_out {
        cross_check(flow, &out, pr, piv_serial)?;
    }
    let serial = out.serial.or(piv_serial);
    check_assigned(vt, serial, Step::CrossCheck)?;

    let rec = record(flow, vt, &out, piv_out.as_ref(), piv_id.as_ref(), serial);
    let registration = bound
        .as_ref()
        .map(|b| (b.user.clone(), b.registration.clone()));
    let staged = idp::staged(&plan, bound, vt);
    let binding = commit(flow, &rec, original.as_ref(), &out.exceptions, run, staged)?;
    let idp = idp_after_commit(flow, &binding, &plan, registration);
    // A replacement retires the original: its IdP method is deleted after
    // the commit (a failure stays `delete-pending`, retried).
    if let Some(o) = original.as_ref().filter(|o| o.remote.is_none())
        && let Err(e) = idp::delete(Books::of(flow.station), &o.binding)
    {
        tracing::warn!(binding = %o.binding, "the IdP deletion's outcome was not recorded: {e}");
    }
    Ok(EnrollOutcome {
        binding,
        run: run.to_string(),
        subject: rec.subject.clone(),
        policy: vt.claims.policy.clone(),
        serial: rec.device.serial.clone(),
        aaguid: rec.device.aaguid.clone(),
        firmware: rec.device.firmware.clone(),
        replaced: original.map(|o| o.binding),
        credentials: rec.credentials.iter().map(summary).collect(),
        exceptions: out.exceptions,
        generated_pin: if generated { pin } else { None },
        generated_puk: piv_out.and_then(|p| p.puk),
        steps: std::mem::take(&mut flow.steps),
        idp,
    })
}

/// After the commit: register the IdP credential through the registry (a
/// failure leaves the binding `pending` or `failed`, never undoes it).
fn idp_after_commit(
    flow: &mut Flow<'_>,
    binding: &str,
    plan: &idp::Plan,
    registration: Option<(String, crate::idp::Registration)>,
) -> Option<idp::IdpSummary> {
    let station = flow.station;
    match (plan, registration) {
        (idp::Plan::Make(o), Some((user, reg))) => {
            let provider = o.provider.as_str();
            let r = flow.step(Step::IdpRegister, flow.deadlines.command, |_| {
                let summary = match idp::register(Books::of(station), binding, &user, &reg) {
                    Ok(outcome) => idp::summary(provider, &outcome),
                    Err(e) => {
                        tracing::warn!(
                            binding,
                            "the IdP registration's outcome was not recorded: {e}"
                        );
                        idp::IdpSummary {
                            provider: provider.to_string(),
                            state: "pending".into(),
                            method: None,
                            code: Some(e.reason.as_str().to_string()),
                            message: Some(e.message.clone()),
                        }
                    }
                };
                let detail = serde_json::to_value(&summary).unwrap_or_default();
                Ok((summary, detail))
            });
            r.ok()
        }
        (
            idp::Plan::Skipped {
                provider,
                code,
                message,
            },
            _,
        ) => Some(idp::IdpSummary {
            provider: provider.clone(),
            state: "skipped".into(),
            method: None,
            code: Some(code.clone()),
            message: Some(message.clone()),
        }),
        _ => None,
    }
}

fn summary(c: &CredentialRecord) -> CredentialSummary {
    CredentialSummary {
        kind: c.kind.clone(),
        rp_id: c.rp_id.clone(),
        slot: c.slot.clone(),
        algorithm: c.algorithm.clone(),
        credential_id: c.credential_id.as_ref().map(hex::encode),
    }
}

/// Commit the binding with the waivers applied to it (and, for a
/// replacement, retire the original) in one transaction.
fn commit(
    flow: &mut Flow<'_>,
    rec: &EnrollmentRecord,
    original: Option<&Original>,
    exceptions: &[AppliedException],
    run: &str,
    idp: Option<IdpStaged>,
) -> Result<String, ProvisionError> {
    let station = flow.station;
    flow.step(Step::Commit, flow.deadlines.command, |_| {
        let now = station.now_secs();
        let scope = format!(
            "run {run}, subject {}, device {}",
            rec.subject,
            rec.device.serial.as_deref().unwrap_or("-")
        );
        let waivers: Vec<ExceptionRecord> = exceptions
            .iter()
            .map(|x| ExceptionRecord {
                rule: x.rule.as_str().to_string(),
                scope: format!("{scope}, policy {}", x.id),
                reason: x.reason.clone(),
                approver: x.approver.clone(),
                expires_at: x.expires.unix_secs().unwrap_or(now + 1),
            })
            .collect();
        // A key proven only by its attestation (HID, simulator) meets the
        // fleet's marks here, before the commit.
        if let Some(serial) = &rec.device.serial {
            super::fleet::check_key(station, serial, Step::Commit)?;
        }
        let mut ledger = station.ledger()?;
        // Written in the binding's transaction (the `idp.bound` audit row).
        if let Some(s) = idp {
            ledger.stage_idp(s);
        }
        let binding = match original {
            None => ledger.commit_enrollment_with(rec, &waivers, now),
            Some(Original {
                remote: Some(r),
                binding,
                reason,
                ..
            }) => ledger.commit_remote_replacement(
                &crate::store::fleet::RemoteOriginal {
                    binding,
                    station: &r.station,
                    serial: r.serial.as_deref(),
                    subject: &r.subject,
                },
                rec,
                reason,
                &waivers,
                now,
            ),
            Some(o) => ledger.commit_replacement_with(&o.binding, rec, &o.reason, &waivers, now),
        }
        .map_err(|e| {
            let e = errors::store(Step::Commit, e);
            if original.is_some() {
                e.in_replacement()
            } else {
                e
            }
        })?;
        Ok((
            binding.clone(),
            json!({"binding": binding, "replaced": original.map(|o| o.binding.clone())}),
        ))
    })
}

/// Turn a policy verdict into a failure (the first unwaived rule decides
/// the reason) or into the list of exceptions that waived rules.
pub(crate) fn apply_verdict(
    v: &Verdict,
    step: Step,
    applied: &mut Vec<AppliedException>,
) -> Result<(), ProvisionError> {
    if let Some(bad) = v.violations.iter().find(|x| x.waived_by.is_none()) {
        let reason = match bad.rule {
            Rule::Untrusted | Rule::NoAttestation => Reason::AttestationUntrusted,
            Rule::Aaguid => Reason::PolicyAaguid,
            Rule::Model => Reason::PolicyModel,
            Rule::EnterpriseAttestation => Reason::PolicyEnterpriseAttestation,
            Rule::PinPolicy | Rule::TouchPolicy => Reason::PolicyPiv,
            _ => Reason::PolicyAttestation,
        };
        return Err(ProvisionError::new(
            reason,
            Some(step),
            format!(
                "attestation policy refused the key: {}; if this key is expected, add it to the profile or record a time-boxed exception (docs/policy.md)",
                bad.detail
            ),
        ));
    }
    applied.extend(v.violations.iter().filter_map(|w| w.waived_by.clone()));
    Ok(())
}
