//! Replacing a lost key: the recovery path is never weaker than the first
//! enrollment (ial never lower, dual control for privileged profiles), and
//! the old binding is retired in the same transaction that binds the new
//! key, with a notify.replacement outbox event.

#![cfg(feature = "sim")]

mod common;
mod provision_support;

use keyward::provision::{self, Cancel, EventLog, KeyTarget, Reason, Step};
use keyward::ticket::{Claims, Replaces};
use provision_support::*;

fn enroll(rig: &Rig, c: &Claims, serial: u32) -> provision::EnrollOutcome {
    provision::enroll(
        &rig.station,
        request(rig.ticket(c), KeyTarget::device(sim_device(serial)), PIN),
        &EventLog::new(),
        &Cancel::new(),
    )
    .expect("first enrollment")
}

fn replace(
    rig: &Rig,
    ticket: Vec<u8>,
    serial: u32,
) -> Result<provision::EnrollOutcome, provision::ProvisionError> {
    provision::replace(
        &rig.station,
        request(ticket, KeyTarget::device(sim_device(serial)), PIN),
        &EventLog::new(),
        &Cancel::new(),
    )
}

fn replacing(policy: &str, binding: Option<&str>, serial: Option<u32>, ial: u8) -> Claims {
    let mut c = claims(policy);
    c.ial = ial;
    c.replaces = Some(Replaces {
        serial,
        binding: binding.map(str::to_string),
        reason: "lost".into(),
    });
    c
}

fn state(rig: &Rig, id: &str) -> (String, Option<String>) {
    let l = rig.station.ledger.lock().unwrap();
    let d = l.show_binding(id).unwrap();
    (d.summary.state, d.replaced_by)
}

fn outbox_kinds(rig: &Rig) -> Vec<String> {
    let l = rig.station.ledger.lock().unwrap();
    l.outbox_pending(100)
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect()
}

#[test]
fn replacement_retires_the_old_binding_and_notifies() {
    let rig = rig();
    let old = enroll(&rig, &claims("standard"), 32_000_001);
    let t = rig.ticket(&replacing("standard", Some(&old.binding), None, 2));
    let new = replace(&rig, t, 32_000_002).expect("replacement");
    assert_eq!(new.replaced.as_deref(), Some(old.binding.as_str()));
    assert_eq!(new.serial.as_deref(), Some("32000002"));
    assert_eq!(
        state(&rig, &old.binding),
        ("replaced".into(), Some(new.binding.clone()))
    );
    assert_eq!(state(&rig, &new.binding).0, "active");
    let kinds = outbox_kinds(&rig);
    assert!(
        kinds.contains(&"notify.replacement".to_string()),
        "{kinds:?}"
    );
    let l = rig.station.ledger.lock().unwrap();
    assert!(l.verify_audit().unwrap().ok());
    let runs = l.runs_since(0).unwrap();
    assert_eq!(runs[1].kind.as_str(), "replace");
    assert_eq!(runs[1].outcome.map(|o| o.as_str()), Some("completed"));
}

#[test]
fn replacement_found_by_serial() {
    let rig = rig();
    let old = enroll(&rig, &claims("standard"), 32_000_011);
    let t = rig.ticket(&replacing("standard", None, Some(32_000_011), 2));
    let new = replace(&rig, t, 32_000_012).expect("replacement by serial");
    assert_eq!(new.replaced.as_deref(), Some(old.binding.as_str()));
}

#[test]
fn lower_assurance_is_refused_and_nothing_changes() {
    let rig = rig();
    let mut first = claims("standard");
    first.ial = 3;
    let old = enroll(&rig, &first, 32_000_021);
    let before = rig.counts();
    let t = rig.ticket(&replacing("standard", Some(&old.binding), None, 2));
    let e = replace(&rig, t, 32_000_022).unwrap_err();
    assert_eq!(e.reason, Reason::ReplaceIal);
    assert_eq!(e.step, Some(Step::Replace));
    assert!(
        e.message.contains("ial 2") && e.message.contains("ial 3"),
        "{}",
        e.message
    );
    assert_eq!(rig.counts(), before);
    assert_eq!(state(&rig, &old.binding).0, "active");
}

#[test]
fn privileged_profile_needs_dual_control() {
    let rig = rig();
    let old = enroll(&rig, &claims("privileged"), 32_000_031);
    let c = replacing("privileged", Some(&old.binding), None, 2);
    let e = replace(&rig, rig.ticket(&c), 32_000_032).unwrap_err();
    assert_eq!(e.reason, Reason::ReplaceDualControl, "{}", e.message);
    assert!(
        e.message.contains("two independent approvals"),
        "{}",
        e.message
    );
    assert_eq!(state(&rig, &old.binding).0, "active");
    // The same claims co-signed by a second approver pass.
    let new = replace(&rig, rig.dual_ticket(&c), 32_000_033).expect("dual control");
    assert_eq!(new.replaced.as_deref(), Some(old.binding.as_str()));
}

#[test]
fn original_privileged_binding_needs_dual_control_even_under_a_lesser_profile() {
    let rig = rig();
    let old = enroll(&rig, &claims("privileged"), 32_000_041);
    let c = replacing("standard", Some(&old.binding), None, 2);
    let e = replace(&rig, rig.ticket(&c), 32_000_042).unwrap_err();
    assert_eq!(e.reason, Reason::ReplaceDualControl, "{}", e.message);
}

#[test]
fn wrong_tickets_for_the_workflow_are_refused() {
    let rig = rig();
    let old = enroll(&rig, &claims("standard"), 32_000_051);
    // An enrollment ticket given to replace, and a replacement to enroll.
    let e = replace(&rig, rig.ticket(&claims("standard")), 32_000_052).unwrap_err();
    assert_eq!(e.reason, Reason::ReplaceTicket);
    let t = rig.ticket(&replacing("standard", Some(&old.binding), None, 2));
    let e = provision::enroll(
        &rig.station,
        request(t, KeyTarget::device(sim_device(32_000_053)), PIN),
        &EventLog::new(),
        &Cancel::new(),
    )
    .unwrap_err();
    assert_eq!(e.reason, Reason::ReplaceTicket);
    // Unknown binding, another subject's binding.
    let t = rig.ticket(&replacing(
        "standard",
        Some("00112233445566778899aabbccddeeff"),
        None,
        2,
    ));
    assert_eq!(
        replace(&rig, t, 32_000_054).unwrap_err().reason,
        Reason::ReplaceNotFound
    );
    let mut other = replacing("standard", Some(&old.binding), None, 2);
    other.sub = "mallory@example.test".into();
    let e = replace(&rig, rig.ticket(&other), 32_000_055).unwrap_err();
    assert_eq!(e.reason, Reason::ReplaceNotFound);
    assert!(e.message.contains("another subject"), "{}", e.message);
    // A binding already replaced cannot be replaced again.
    let t = rig.ticket(&replacing("standard", Some(&old.binding), None, 2));
    replace(&rig, t, 32_000_056).expect("first replacement");
    let t = rig.ticket(&replacing("standard", Some(&old.binding), None, 2));
    assert_eq!(
        replace(&rig, t, 32_000_057).unwrap_err().reason,
        Reason::ReplaceState
    );
    assert_eq!(state(&rig, &old.binding).0, "replaced");
}

#[test]
#[ignore = "needs the test rig: pcscd + vpcd (scripts/test runs it)"]
fn replacement_of_a_fido2_and_piv_key_through_pcscd() {
    common::require_rig();
    let rig = rig();
    let mut first = claims("standard");
    first.ops = vec![fido_op(), provision_support::piv_op("9a", "p256")];
    let a = own_sim(4_600_001, &[]);
    let old = provision::enroll(
        &rig.station,
        request(
            rig.ticket(&first),
            KeyTarget::Reader(a.reader.name.into()),
            PIN,
        ),
        &EventLog::new(),
        &Cancel::new(),
    )
    .expect("first enrollment");
    assert_eq!(old.serial.as_deref(), Some("4600001"));
    drop(a);
    // Key A is lost; key B replaces it, found by A's serial.
    let mut c = replacing("standard", None, Some(4_600_001), 2);
    c.ops = first.ops.clone();
    let b = own_sim(4_600_002, &[]);
    let new = provision::replace(
        &rig.station,
        request(rig.ticket(&c), KeyTarget::Reader(b.reader.name.into()), PIN),
        &EventLog::new(),
        &Cancel::new(),
    )
    .expect("replacement");
    assert_eq!(new.serial.as_deref(), Some("4600002"));
    assert_eq!(new.credentials.len(), 2);
    assert_eq!(
        state(&rig, &old.binding),
        ("replaced".into(), Some(new.binding.clone()))
    );
    let kinds = outbox_kinds(&rig);
    assert_eq!(
        kinds.iter().filter(|k| *k == "notify.replacement").count(),
        1,
        "{kinds:?}"
    );
}
