//! The one renderer of workflow results, for text and `--json`, whichever
//! route ran the workflow (in this process or through the daemon), and the
//! one `--json` envelope (docs/cli.md): every document is an object with
//! `"version": 1` and `"ok"`; an error is
//! `{"version": 1, "ok": false, "error": {"reason", "step", "message", "run"}}`.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use anyhow::Result;
use serde::Serialize;
use serde_json::{Value, json};

use super::Failure;
use super::workflow::{Done, Enrolled, Which, WorkflowError};
use crate::provision::revoke::RevokeOutcome;
use crate::provision::stock::ReturnOutcome;
use crate::provision::unblock::UnblockOutcome;
use crate::provision::{Event, Events, ProvisionError};

/// The version of every `--json` document's envelope.
pub const JSON_VERSION: u64 = 1;

/// Set once a command has printed its `--json` document, so that `main`
/// does not print a second one when the command then fails.
static DOC_PRINTED: AtomicBool = AtomicBool::new(false);

/// Print a command's `--json` document (pretty) on stdout; a failure after
/// it adds no second document.
pub fn print_doc(doc: &impl Serialize) -> Result<()> {
    let text = serde_json::to_string_pretty(doc)?;
    DOC_PRINTED.store(true, Ordering::SeqCst);
    println!("{text}");
    Ok(())
}

/// [`print_doc`] for an error document.
pub fn print_error_doc(doc: &Value) {
    let _ = print_doc(doc);
}

/// `main`'s last word with `--json`: the error envelope for a command that
/// failed without printing its own, on one line (valid after JSON lines
/// too): `{"version": 1, "ok": false, "error": {"reason", "message", "exit"}}`.
pub fn final_error(e: &anyhow::Error) {
    if DOC_PRINTED.load(Ordering::SeqCst) {
        return;
    }
    let failure = e.chain().find_map(|c| c.downcast_ref::<Failure>());
    let reason = match failure {
        Some(Failure::Reason { reason, .. }) => reason.as_str(),
        Some(Failure::Usage(_)) => "usage",
        Some(Failure::NoDevice(_)) => "no-device",
        Some(Failure::PinBlocked(_)) => "pin-blocked",
        Some(Failure::Verification(_)) => "verification",
        Some(Failure::DaemonUnreachable(_)) => "daemon-unreachable",
        None => "failure",
    };
    let doc = json!({"version": JSON_VERSION, "ok": false, "error": {
        "reason": reason, "message": format!("{e:#}"), "exit": super::exit::of_error(e)}});
    println!("{doc}");
}

/// `data` (an object) inside the envelope: `version` and `ok` first.
pub fn envelope(ok: bool, data: &impl Serialize) -> Result<Value> {
    let mut doc = serde_json::Map::new();
    doc.insert("version".into(), JSON_VERSION.into());
    doc.insert("ok".into(), ok.into());
    match serde_json::to_value(data)? {
        Value::Object(m) => {
            for (k, v) in m {
                if k != "version" && k != "ok" {
                    doc.insert(k, v);
                }
            }
        }
        Value::Null => {}
        other => {
            doc.insert("data".into(), other);
        }
    }
    Ok(Value::Object(doc))
}

/// Print `data` in the envelope on stdout.
pub fn print_json(ok: bool, data: &impl Serialize) -> Result<()> {
    print_doc(&envelope(ok, data)?)
}

/// The error document of a workflow failure.
pub fn error_doc(e: &ProvisionError) -> Value {
    json!({"version": JSON_VERSION, "ok": false,
           "error": {"reason": e.reason, "step": e.step, "message": e.full_message(), "run": e.run}})
}

/// A workflow failure: with `--json` its document goes to stdout first;
/// the error returned carries its exit code ([`super::exit`]).
pub fn fail(e: ProvisionError, json: bool) -> anyhow::Error {
    if json {
        print_error_doc(&error_doc(&e));
    }
    Failure::provision(&e).into()
}

/// [`fail`] for either kind of [`WorkflowError`].
pub fn workflow_error(e: WorkflowError, json: bool) -> anyhow::Error {
    match e {
        WorkflowError::Workflow(e) => fail(e, json),
        WorkflowError::Other(e) => e,
    }
}

/// A workflow's outcome in the envelope, with the route (`via`) and, through
/// the daemon, its `job` id.
fn outcome_doc(outcome: &impl Serialize, via: &str, job: Option<&str>) -> Result<Value> {
    let mut doc = envelope(true, outcome)?;
    if let Value::Object(m) = &mut doc {
        m.insert("via".into(), via.into());
        if let Some(j) = job {
            m.insert("job".into(), j.into());
        }
    }
    Ok(doc)
}

/// Print a finished enrollment (or replacement).
pub fn enrolled(done: &Enrolled, which: Which, puk: &str, via: &str, json: bool) -> Result<()> {
    let o = &done.outcome;
    if json {
        let mut doc = outcome_doc(o, via, done.job.as_deref())?;
        if let Value::Object(m) = &mut doc {
            m.insert("puk".into(), puk.into());
        }
        return print_doc(&doc);
    }
    let verb = match which {
        Which::Enroll => "Enrolled",
        Which::Replace => "Replaced",
    };
    println!(
        "{verb} {}: key {} bound as {}{}",
        o.subject,
        o.serial.as_deref().unwrap_or("(no serial)"),
        o.binding,
        o.replaced
            .as_deref()
            .map(|r| format!(", replacing {r} (now replaced)"))
            .unwrap_or_default()
    );
    for c in &o.credentials {
        let place = c.rp_id.as_deref().or(c.slot.as_deref()).unwrap_or("-");
        println!("  {} {} {}", c.kind, place, c.algorithm);
    }
    for x in &o.exceptions {
        println!(
            "  exception applied: {} waived ({}; approved by {}, until {})",
            x.rule, x.reason, x.approver, x.expires
        );
    }
    if puk != "unchanged" {
        println!("  PIV PUK {puk}");
    }
    Ok(())
}

/// Print a revoked binding.
pub fn revoked(o: &RevokeOutcome, via: &str, json: bool) -> Result<()> {
    if json {
        return print_doc(&outcome_doc(o, via, None)?);
    }
    println!(
        "Revoked binding {} ({}, key {}), was {}, reason {}.",
        o.binding,
        o.subject,
        o.device_serial.as_deref().unwrap_or("-"),
        o.from,
        o.reason
    );
    Ok(())
}

/// Print a key returned to stock.
pub fn returned(done: &Done<ReturnOutcome>, via: &str, json: bool) -> Result<()> {
    let o = &done.outcome;
    if json {
        return print_doc(&outcome_doc(o, via, done.job.as_deref())?);
    }
    match (&o.binding, &o.subject) {
        (Some(b), Some(s)) => println!("Key {} returned by {s}: binding {b} closed.", o.serial),
        _ if o.resumed => println!("Key {}: interrupted return resumed.", o.serial),
        _ => println!("Key {} had no binding (--danger-allow-unbound).", o.serial),
    }
    for p in &o.proofs {
        println!(
            "  identity proven by {} ({})",
            p.method,
            p.rp_id.as_deref().or(p.slot.as_deref()).unwrap_or("-")
        );
    }
    let yes_no = |b: bool| if b { "yes" } else { "no" };
    println!(
        "  reset: PIV {}, FIDO2 {}; drift check: factory-clean",
        yes_no(o.reset.piv),
        yes_no(o.reset.fido2)
    );
    println!("Key {} is in stock.", o.serial);
    Ok(())
}

/// Print an unblocked PIV PIN.
pub fn unblocked(done: &Done<UnblockOutcome>, via: &str, json: bool) -> Result<()> {
    let o = &done.outcome;
    if json {
        return print_doc(&outcome_doc(o, via, done.job.as_deref())?);
    }
    println!(
        "PIV PIN of key {} unblocked for {} (binding {}); set: {}. Ticket {} used.",
        o.serial,
        o.subject,
        o.binding,
        o.changed.join(", "),
        o.ticket
    );
    Ok(())
}

/// Progress on stderr (text mode only); touch and re-insert prompts always
/// reach a person at a terminal.
pub struct Progress {
    json: bool,
    started: Instant,
}

impl Progress {
    pub fn new(json: bool) -> Progress {
        Progress {
            json,
            started: Instant::now(),
        }
    }
}

impl Events for Progress {
    fn emit(&self, e: &Event) {
        let mut err = std::io::stderr().lock();
        let _ = match e {
            Event::TouchNeeded { timeout_ms, .. } => writeln!(
                err,
                ">>> Touch your key now (it is blinking; {} s left)",
                timeout_ms / 1000
            ),
            Event::ReinsertNeeded { within_ms, .. } => writeln!(
                err,
                ">>> Remove the key, insert it again and touch it within {} s",
                within_ms / 1000
            ),
            _ if self.json => Ok(()),
            Event::StepDone {
                step, elapsed_ms, ..
            } => writeln!(
                err,
                "[{:>6.1}s] {step}: ok ({elapsed_ms} ms)",
                self.started.elapsed().as_secs_f32()
            ),
            Event::StepFailed { step, reason, .. } => writeln!(
                err,
                "[{:>6.1}s] {step}: FAILED ({reason})",
                self.started.elapsed().as_secs_f32()
            ),
            _ => Ok(()),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_envelope_leads_with_version_and_ok() {
        let d = envelope(true, &json!({"binding": "b", "version": 9})).unwrap();
        assert_eq!(d["version"], 1);
        assert_eq!(d["ok"], true);
        assert_eq!(d["binding"], "b");
        let d = envelope(true, &vec![1, 2]).unwrap();
        assert_eq!(d["data"], json!([1, 2]));
    }
}
