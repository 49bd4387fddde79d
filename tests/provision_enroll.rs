//! The enroll workflow end to end: in-process (FIDO2 on the simulator's
//! CTAPHID pipe) and through pcscd (FIDO2 over the NFC mapping and PIV,
//! `keyward sim --vpcd`), with a station built from a real keyward.toml and
//! an on-disk ledger.

mod common;
mod provision_support;

use keyward::provision::{self, Cancel, Event, EventLog, KeyTarget, PinChoice, Reason, Step};
use provision_support::*;

fn enroll_sim(
    rig: &Rig,
    ticket: Vec<u8>,
    serial: u32,
    pin: &str,
) -> (
    Result<provision::EnrollOutcome, provision::ProvisionError>,
    Vec<Event>,
) {
    let log = EventLog::new();
    let r = provision::enroll(
        &rig.station,
        request(ticket, KeyTarget::Sim(sim_device(serial)), pin),
        &log,
        &Cancel::new(),
    );
    (r, log.events())
}

#[test]
fn fido2_in_process_enrollment_commits_binding_audit_outbox_and_run() {
    let rig = rig();
    let (r, events) = enroll_sim(&rig, rig.ticket(&claims("standard")), 31_000_001, PIN);
    let o = r.expect("enrollment");
    assert_eq!(o.subject, SUB);
    assert_eq!(
        o.serial.as_deref(),
        Some("31000001"),
        "enterprise attestation serial"
    );
    assert_eq!(o.credentials.len(), 1);
    assert_eq!(o.credentials[0].rp_id.as_deref(), Some(RP));
    assert!(o.generated_pin.is_none());
    assert_eq!(
        started(&events),
        [
            "ticket",
            "policy",
            "identify",
            "set-pin",
            "enterprise-attestation",
            "make-credential",
            "fido-attestation",
            "get-assertion",
            "commit"
        ]
    );
    let l = rig.station.ledger.lock().unwrap();
    let d = l.show_binding(&o.binding).unwrap();
    assert_eq!(d.summary.state, "active");
    assert_eq!(d.summary.device_serial.as_deref(), Some("31000001"));
    assert_eq!(d.credentials.len(), 1);
    assert!(l.verify_audit().unwrap().ok());
    let kinds: Vec<String> = l
        .outbox_pending(100)
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(kinds, ["binding.created"]);
    let runs = l.runs_since(0).unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].outcome.map(|o| o.as_str()), Some("completed"));
    assert_eq!(runs[0].binding_id.as_deref(), Some(o.binding.as_str()));
    assert_eq!(runs[0].id, o.run);
}

#[test]
fn replayed_ticket_is_refused_and_writes_no_second_binding() {
    let rig = rig();
    let t = rig.ticket(&claims("standard"));
    enroll_sim(&rig, t.clone(), 31_000_002, PIN)
        .0
        .expect("first");
    let (r, _) = enroll_sim(&rig, t, 31_000_003, PIN);
    let e = r.unwrap_err();
    assert_eq!(e.reason, Reason::TicketReplayed);
    assert_eq!(e.step, Some(Step::Ticket));
    assert!(e.message.contains("already used"), "{}", e.message);
    assert_eq!(rig.counts(), (1, 1, 1));
}

#[test]
fn bad_tickets_fail_with_their_reason_and_write_nothing_but_the_run() {
    let rig = rig();
    let mut expired = claims("standard");
    expired.iat = now() - 7200;
    expired.nbf = expired.iat;
    expired.exp = now() - 3600;
    let mut wrong_aud = claims("standard");
    wrong_aud.aud = keyward::ticket::Audience::One("another-station".into());
    let mut unknown_profile = claims("no-such-profile");
    unknown_profile.policy = "no-such-profile".into();
    let mut tampered = rig.ticket(&claims("standard"));
    let n = tampered.len();
    tampered[n - 3] ^= 0x01;
    let cases = [
        (rig.ticket(&expired), Reason::TicketTime, "expired"),
        (
            rig.ticket(&wrong_aud),
            Reason::TicketAudience,
            "another-station",
        ),
        (
            rig.ticket(&unknown_profile),
            Reason::PolicyUnknownProfile,
            "no-such-profile",
        ),
        (tampered, Reason::TicketUntrusted, "signature"),
        (b"not a ticket".to_vec(), Reason::TicketMalformed, ""),
    ];
    for (i, (t, reason, needle)) in cases.into_iter().enumerate() {
        let (r, events) = enroll_sim(&rig, t, 31_000_010 + i as u32, PIN);
        let e = r.unwrap_err();
        assert_eq!(e.reason, reason, "case {i}: {}", e.message);
        assert!(e.message.contains(needle), "case {i}: {}", e.message);
        assert!(e.run.is_some());
        assert!(
            events.iter().any(|ev| matches!(
                ev,
                Event::StepFailed {
                    step: Step::Ticket,
                    ..
                }
            )),
            "case {i}"
        );
        assert!(
            !started(&events).contains(&"identify".to_string()),
            "key touched in case {i}"
        );
    }
    assert_eq!(rig.counts(), (0, 0, 0));
    let l = rig.station.ledger.lock().unwrap();
    let runs = l.runs_since(0).unwrap();
    let reasons: Vec<_> = runs.iter().map(|r| r.reason.clone().unwrap()).collect();
    assert_eq!(
        reasons,
        [
            "ticket-time",
            "ticket-audience",
            "policy-unknown-profile",
            "ticket-untrusted",
            "ticket-malformed"
        ]
    );
    assert!(
        runs.iter()
            .all(|r| r.outcome.map(|o| o.as_str()) == Some("failed"))
    );
    assert!(l.verify_audit().unwrap().ok());
}

#[test]
fn pin_breaking_the_profile_is_refused_before_the_key_is_touched() {
    let rig = rig();
    for (pin, needle) in [
        ("1234", "at least 6"),
        ("999999", "trivial"),
        ("12ab5678", "digits"),
    ] {
        let (r, events) = enroll_sim(&rig, rig.ticket(&claims("standard")), 31_000_020, pin);
        let e = r.unwrap_err();
        assert_eq!(e.reason, Reason::PolicyPin, "{pin}");
        assert_eq!(e.step, Some(Step::Policy));
        assert!(e.message.contains(needle), "{}", e.message);
        assert!(
            !e.full_message().contains(pin),
            "the PIN leaked into the error"
        );
        assert_eq!(started(&events), ["ticket", "policy"]);
    }
    assert_eq!(rig.counts(), (0, 0, 0));
}

#[test]
fn aaguid_outside_the_profile_fails_the_run_with_policy_aaguid() {
    let rig = rig();
    let (r, _) = enroll_sim(&rig, rig.ticket(&claims("yubico-only")), 31_000_030, PIN);
    let e = r.unwrap_err();
    assert_eq!(e.reason, Reason::PolicyAaguid, "{}", e.message);
    assert_eq!(e.step, Some(Step::FidoAttestation));
    assert!(e.message.contains("not allowed"), "{}", e.message);
    assert_eq!(rig.counts(), (0, 0, 0));
    let l = rig.station.ledger.lock().unwrap();
    let runs = l.runs_since(0).unwrap();
    assert_eq!(runs[0].reason.as_deref(), Some("policy-aaguid"));
    assert_eq!(runs[0].aaguid, None);
}

#[test]
fn generated_pin_is_returned_and_forces_a_change() {
    let rig = rig();
    let log = EventLog::new();
    let dev = sim_device(31_000_040);
    let probe = dev.hid().unwrap();
    let req = keyward::provision::EnrollRequest::new(
        rig.ticket(&claims("standard")),
        KeyTarget::Sim(dev),
        PinChoice::Generate,
    );
    let o = provision::enroll(&rig.station, req, &log, &Cancel::new()).expect("enroll");
    let pin = o.generated_pin.expect("generated PIN");
    assert_eq!(pin.expose_secret().len(), 8);
    assert!(pin.expose_secret().bytes().all(|b| b.is_ascii_digit()));
    assert!(started(&log.events()).contains(&"force-change-pin".to_string()));
    let t = keyward::provision::target::pipe_transport(probe, std::time::Duration::from_secs(5))
        .unwrap();
    let mut c = keyward::ctap::Ctap2::new(t);
    let info = c.get_info().unwrap();
    assert_eq!(info.force_pin_change, Some(true));
    assert_eq!(info.option("clientPin"), Some(true));
}

#[test]
fn cancelled_flow_aborts_without_committing() {
    let rig = rig();
    let cancel = Cancel::new();
    cancel.cancel();
    let log = EventLog::new();
    let r = provision::enroll(
        &rig.station,
        request(
            rig.ticket(&claims("standard")),
            KeyTarget::Sim(sim_device(31_000_050)),
            PIN,
        ),
        &log,
        &cancel,
    );
    let e = r.unwrap_err();
    assert_eq!(e.reason, Reason::Cancelled);
    assert_eq!(rig.counts(), (0, 0, 0));
    let l = rig.station.ledger.lock().unwrap();
    assert_eq!(
        l.runs_since(0).unwrap()[0].outcome.map(|o| o.as_str()),
        Some("aborted")
    );
}

/// Enroll FIDO2 + PIV on the card in `reader`.
fn enroll_reader(
    rig: &Rig,
    ticket: Vec<u8>,
    reader: &str,
    pin: &str,
    events: &dyn provision::Events,
) -> Result<provision::EnrollOutcome, provision::ProvisionError> {
    provision::enroll(
        &rig.station,
        request(ticket, KeyTarget::Reader(reader.to_string()), pin),
        events,
        &Cancel::new(),
    )
}

fn fido_and_piv(policy: &str) -> keyward::ticket::Claims {
    let mut c = claims(policy);
    c.ops = vec![fido_op(), piv_op("9a", "p256"), piv_op("9c", "p384")];
    c
}

#[test]
fn fido2_and_piv_through_pcscd_bind_one_key() {
    if !common::rig() {
        return;
    }
    let rig = rig();
    let sim = common::start_sim(&["--serial", "4100001"]);
    let log = EventLog::new();
    let o = enroll_reader(
        &rig,
        rig.ticket(&fido_and_piv("standard")),
        sim.reader.name,
        PIN,
        &log,
    )
    .expect("enrollment through pcscd");
    assert_eq!(o.serial.as_deref(), Some("4100001"));
    let kinds: Vec<(&str, Option<&str>)> = o
        .credentials
        .iter()
        .map(|c| (c.kind.as_str(), c.slot.as_deref()))
        .collect();
    assert_eq!(
        kinds,
        [("fido2", None), ("piv", Some("9a")), ("piv", Some("9c"))]
    );
    assert!(o.generated_puk.is_some(), "the factory PUK was replaced");
    let steps = started(&log.events());
    for s in [
        "drift-check",
        "piv-pin",
        "piv-management-key",
        "piv-keygen",
        "piv-attestation",
        "piv-bind",
        "cross-check",
        "commit",
    ] {
        assert!(steps.contains(&s.to_string()), "{s} missing from {steps:?}");
    }
    let l = rig.station.ledger.lock().unwrap();
    let d = l.show_binding(&o.binding).unwrap();
    assert_eq!(d.credentials.len(), 3);
    assert!(
        d.credentials[1..]
            .iter()
            .all(|c| c.attestation_format.as_deref() == Some("keyward-piv-binding-v1"))
    );
    assert!(l.verify_audit().unwrap().ok());
    drop(l);
    // The card is provisioned: PIN, PUK and management key are no longer
    // the factory ones, and the slots hold the attested keys.
    let out = common::run_ok(common::keyward().args([
        "piv",
        "info",
        "--json",
        "--device",
        sim.reader.name,
    ]));
    let info: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(info["pin_is_default"], false, "{info}");
    assert_eq!(info["puk_is_default"], false);
    assert_eq!(info["management_key_is_default"], false);
    assert_eq!(info["management_key_storage"], "pin-protected");
}
