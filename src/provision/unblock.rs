//! Help-desk unblock: a ticket with an `unblock` operation lets the help
//! desk unblock the PIV PIN of the subject's bound key with the PUK (RESET
//! RETRY COUNTER, SP 800-73-4 Part 2 §3.2.3), setting a new PIN, and, where
//! the policy profile allows, a new PUK. It is audited and counted as a
//! reset (run kind `unblock`). docs/lifecycle.md.
//!
//! A FIDO2 PIN is never unblocked: a blocked FIDO2 PIN is cleared only by
//! authenticatorReset, which erases the credentials, so that is a
//! re-enrollment under a new ticket, refused here with reason
//! `fido-reset-only`.
//!
//! Order: verify the ticket and every precondition, change the card, then
//! commit the ticket's consumption with the audit rows in one transaction.
//! A wrong PUK therefore consumes nothing (the card's PUK counter is what
//! it costs). If the commit fails after the card changed (the ledger is
//! gone, or the same ticket was used at the same instant elsewhere), the
//! error says so: the PIN on the card is the new one.

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::errors;
use super::flow::Flow;
use super::lifecycle::{Presented, confirm_piv, identify, open_piv, reader_of};
use super::record::{Books, Run, Seen};
use super::{
    Cancel, Deadlines, Events, KeyTarget, ProvisionError, Reason, Station, Step, StepReport,
};
use crate::piv::{Pin, PivError, Puk};
use crate::store::stock::{OpenBinding, UnblockRecord};
use crate::store::{BindingState, RunKind, RunStart, TicketRecord};
use crate::ticket::{Op, VerifiedTicket};

/// One unblock.
pub struct UnblockRequest {
    /// The ticket as received.
    pub ticket: Vec<u8>,
    pub target: KeyTarget,
    /// The card's current PUK.
    pub puk: Puk,
    /// The new PIN.
    pub new_pin: Pin,
    /// The new PUK, when the ticket asks to rotate it.
    pub new_puk: Option<Puk>,
    pub slot: Option<String>,
    pub deadlines: Deadlines,
}

impl std::fmt::Debug for UnblockRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UnblockRequest")
            .field("target", &self.target)
            .field("rotate_puk", &self.new_puk.is_some())
            .finish_non_exhaustive()
    }
}

/// A PIN unblocked (`Deserialize`: the CLI reads it back from the daemon).
#[derive(Debug, Serialize, Deserialize)]
pub struct UnblockOutcome {
    pub run: String,
    pub binding: String,
    pub subject: String,
    pub serial: String,
    pub ticket: String,
    /// What was set: `pin`, and `puk` when rotated.
    pub changed: Vec<String>,
    pub steps: Vec<StepReport>,
}

/// Run a help-desk unblock.
pub fn unblock(
    station: &Station,
    req: UnblockRequest,
    events: &dyn Events,
    cancel: &Cancel,
) -> Result<UnblockOutcome, ProvisionError> {
    let run = Run::start(
        Books::of(station),
        RunKind::Unblock,
        &RunStart {
            slot: req.slot.as_deref(),
            actor: &station.actor,
            ..RunStart::default()
        },
        Step::Commit,
    )?;
    let mut seen = (None, None);
    let result = run_unblock(station, &req, events, cancel, &mut seen);
    run.finish(
        &result,
        Seen {
            serial: seen.0.as_deref(),
            binding: seen.1.as_deref(),
            ..Seen::default()
        },
    );
    result
        .map(|mut o| {
            o.run = run.id.clone();
            o
        })
        .map_err(|mut e| {
            e.run = Some(run.id.clone());
            e
        })
}

fn run_unblock(
    station: &Station,
    req: &UnblockRequest,
    events: &dyn Events,
    cancel: &Cancel,
    seen: &mut (Option<String>, Option<String>),
) -> Result<UnblockOutcome, ProvisionError> {
    let dl = req.deadlines;
    let mut steps = Flow::direct(station, dl, events, cancel);
    let vt = steps.step(Step::Ticket, dl.command, |_| {
        let vt = super::verify_ticket(station, &req.ticket)?;
        let d = json!({"jti": vt.claims.jti, "sub": vt.claims.sub, "policy": vt.claims.policy});
        Ok((vt, d))
    })?;
    let rotate = steps.step(Step::Policy, dl.command, |_| {
        let rotate = check_policy(station, &vt, req)?;
        Ok((rotate, json!({"rotate_puk": rotate})))
    })?;
    let reader = reader_of(&req.target, "unblock", true)?;
    let key = steps.step(Step::Identify, dl.command, |_| {
        let k = identify(reader)?;
        let d = json!(k);
        Ok((k, d))
    })?;
    let serial = key.serial.to_string();
    seen.0 = Some(serial.clone());
    let binding = steps.step(Step::Policy, dl.command, |_| {
        super::fleet::check_key(station, &serial, Step::Policy)?;
        let b = bound(station, &vt, &key)?;
        let d = json!({"binding": b.id, "subject": b.subject});
        Ok((b, d))
    })?;
    seen.1 = Some(binding.id.clone());
    let changed = steps.step(Step::PivPin, dl.command, |_| {
        let changed = change_card(station, req, &key, &binding, rotate)?;
        Ok((changed.clone(), json!({"changed": changed})))
    })?;
    steps.step(Step::Commit, dl.command, |_| {
        let ticket = TicketRecord {
            jti: vt.claims.jti.clone(),
            digest: vt.digest.to_hex(),
            issuer: vt.claims.iss.clone(),
            ial: Some(vt.claims.ial),
        };
        let rec = UnblockRecord {
            binding: &binding.id,
            subject: &binding.subject,
            ticket: &ticket,
            changed: &changed,
            actor: &station.actor,
        };
        let now = station.now_secs();
        station.ledger()?.commit_unblock(&rec, now).map_err(|e| {
            let mut e = errors::store(Step::Commit, e);
            e.message = format!(
                "the card's PIN was changed but the unblock could not be recorded: {}",
                e.message
            );
            e
        })?;
        Ok(((), json!({"ticket": ticket.jti, "consumed": true})))
    })?;
    Ok(UnblockOutcome {
        run: String::new(),
        binding: binding.id,
        subject: binding.subject,
        serial,
        ticket: vt.claims.jti,
        changed: changed.iter().map(|c| (*c).to_string()).collect(),
        steps: steps.steps,
    })
}

/// The ticket must be an unblock ticket; the profile decides PUK rotation
/// and the PIN rules. Returns whether the PUK is rotated.
fn check_policy(
    station: &Station,
    vt: &VerifiedTicket,
    req: &UnblockRequest,
) -> Result<bool, ProvisionError> {
    let op = match vt.claims.ops.as_slice() {
        [Op::Unblock(u)] => u,
        _ => {
            return Err(ProvisionError::new(
                Reason::TicketNotPermitted,
                Some(Step::Policy),
                "this ticket carries no unblock operation; ask the help desk for an unblock ticket",
            ));
        }
    };
    let profile = station.profiles.get(&vt.claims.policy).ok_or_else(|| {
        ProvisionError::new(
            Reason::PolicyUnknownProfile,
            Some(Step::Policy),
            format!(
                "the ticket names policy profile {:?}, which this station does not have",
                vt.claims.policy
            ),
        )
    })?;
    let pin = req.new_pin.expose_secret();
    profile.pin.check(pin).map_err(|e| {
        ProvisionError::new(
            Reason::PolicyPin,
            Some(Step::Policy),
            format!("new PIN: {e}"),
        )
    })?;
    if req.new_pin.is_factory_default() {
        return Err(ProvisionError::new(
            Reason::PolicyPin,
            Some(Step::Policy),
            "the new PIN is the factory default; choose another",
        ));
    }
    match (op.rotate_puk, &req.new_puk) {
        (true, _) if !profile.unblock.allow_puk_rotation => Err(ProvisionError::new(
            Reason::PolicyPin,
            Some(Step::Policy),
            format!(
                "the ticket asks to rotate the PUK, which profile {:?} does not allow (unblock.allow_puk_rotation)",
                vt.claims.policy
            ),
        )),
        (true, None) => Err(ProvisionError::new(
            Reason::PolicyPin,
            Some(Step::Policy),
            "the ticket rotates the PUK: give the new PUK (--new-puk-fd N)",
        )),
        (true, Some(p)) if p.is_factory_default() => Err(ProvisionError::new(
            Reason::PolicyPin,
            Some(Step::Policy),
            "the new PUK is the factory default; choose another",
        )),
        (false, Some(_)) => Err(ProvisionError::new(
            Reason::PolicyPin,
            Some(Step::Policy),
            "a new PUK was given but the ticket does not rotate the PUK",
        )),
        (rotate, _) => Ok(rotate),
    }
}

/// The ticket's subject must hold the active binding of this key, and that
/// binding must have a PIV credential.
fn bound(
    station: &Station,
    vt: &VerifiedTicket,
    key: &Presented,
) -> Result<OpenBinding, ProvisionError> {
    let serial = key.serial.to_string();
    let open = station
        .ledger()?
        .open_bindings_for_serial(&serial)
        .map_err(|e| errors::store(Step::Policy, e))?;
    let fail = |reason, msg: String| ProvisionError::new(reason, Some(Step::Policy), msg);
    let Some(b) = open.into_iter().next() else {
        return Err(fail(
            Reason::NotBound,
            format!(
                "key {serial} has no active binding here; an unblock needs the subject's bound key"
            ),
        ));
    };
    if b.subject != vt.claims.sub {
        return Err(fail(
            Reason::SubjectMismatch,
            format!(
                "key {serial} is bound to another subject than the ticket's {:?}; check that this is the person's own key",
                vt.claims.sub
            ),
        ));
    }
    if b.state != BindingState::Active {
        return Err(fail(
            Reason::BindingState,
            format!(
                "binding {} of key {serial} is {}; only an active binding's key is unblocked",
                b.id, b.state
            ),
        ));
    }
    if !key.piv || !b.credentials.iter().any(|c| c.kind == "piv") {
        return Err(fail(
            Reason::FidoResetOnly,
            format!(
                "binding {} holds no PIV credential: a blocked FIDO2 PIN cannot be unblocked, only reset, \
                 which erases the key's credentials; that is a re-enrollment under a new ticket (keyward enroll), \
                 not an unblock",
                b.id
            ),
        ));
    }
    Ok(b)
}

/// Prove the card holds the binding's PIV key, then RESET RETRY COUNTER
/// with the PUK and (if rotating) CHANGE REFERENCE DATA for the PUK.
fn change_card(
    station: &Station,
    req: &UnblockRequest,
    key: &Presented,
    b: &OpenBinding,
    rotate: bool,
) -> Result<Vec<&'static str>, ProvisionError> {
    let step = Step::PivPin;
    let mut card = open_piv(&key.reader, key.serial, step)?;
    if let Some(c) = b.credentials.iter().find(|c| c.kind == "piv") {
        confirm_piv(station, &mut card, key.serial, c)?;
    }
    card.unblock_pin(&req.puk, &req.new_pin).map_err(|e| {
        let mut err = errors::piv(step, e);
        if let Some(PivError::WrongPuk { retries_left }) =
            err.source.as_deref().and_then(|s| s.downcast_ref::<PivError>())
        {
            err.message = format!(
                "the PUK was refused: {retries_left} {} left before the PUK blocks; nothing was changed and the ticket is not used",
                if *retries_left == 1 { "try" } else { "tries" }
            );
        }
        err
    })?;
    let mut changed = vec!["pin"];
    if rotate && let Some(new) = &req.new_puk {
        card.change_puk(&req.puk, new)
            .map_err(|e| errors::piv(step, e))?;
        changed.push("puk");
    }
    Ok(changed)
}
