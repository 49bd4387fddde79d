//! Attacks on the workflows from the adversarial review (issue 13, items 6
//! and 7), each reproduced first against the code as it was:
//!
//! - `keyward ticket verify --config` said VALID for a used ticket and for
//!   a single-signed replacement that `replace` refuses;
//! - a ticket whose jti another issuer had used was refused as replayed;
//! - an `unblock` ticket given to `enroll` failed only at commit;
//! - a second enrollment of a bound key (and of a key the ticket does not
//!   pre-assign) set the PIN and made a credential before it failed;
//! - a `lost` binding did not count as holding its key.

#![cfg(feature = "sim")]

mod common;
mod provision_support;

use keyward::provision::{self, Cancel, EventLog, KeyTarget, Reason, Step};
use keyward::store::BindingState;
use keyward::ticket::{self, Claims, Op, Replaces, SigningKey, TicketAlg, UnblockOp};
use provision_support::*;
use zeroize::Zeroizing;

fn verify_cli(rig: &Rig, ticket: &[u8]) -> std::process::Output {
    let t = rig.dir.path().join("verify.ticket");
    std::fs::write(&t, ticket).unwrap();
    common::run(common::keyward().args([
        "--config",
        rig.config.to_str().unwrap(),
        "ticket",
        "verify",
        t.to_str().unwrap(),
    ]))
}

fn enroll_sim(
    rig: &Rig,
    ticket: Vec<u8>,
    serial: u32,
) -> (
    Result<provision::EnrollOutcome, provision::ProvisionError>,
    Vec<String>,
) {
    let log = EventLog::new();
    let r = provision::enroll(
        &rig.station,
        request(ticket, KeyTarget::device(sim_device(serial)), PIN),
        &log,
        &Cancel::new(),
    );
    (r, started(&log.events()))
}

#[test]
fn ticket_verify_with_config_gives_the_stations_verdict() {
    let rig = rig();
    let t = rig.ticket(&claims("standard"));
    let out = verify_cli(&rig, &t);
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("VALID"));
    enroll_sim(&rig, t.clone(), 33_000_001).0.expect("enroll");
    // Used: the station's ledger says so, exit 24 as documented.
    let out = verify_cli(&rig, &t);
    assert_eq!(out.status.code(), Some(24), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("already"),
        "{out:?}"
    );

    // A replacement under a privileged profile with one approval: replace
    // refuses it, and so does verify --config (21, too few approvals).
    let old = enroll_sim(&rig, rig.ticket(&claims("privileged")), 33_000_002)
        .0
        .expect("enroll privileged");
    let mut c = claims("privileged");
    c.replaces = Some(Replaces {
        serial: None,
        binding: Some(old.binding.clone()),
        reason: "lost".into(),
    });
    let single = rig.ticket(&c);
    let e = provision::replace(
        &rig.station,
        request(
            single.clone(),
            KeyTarget::device(sim_device(33_000_003)),
            PIN,
        ),
        &EventLog::new(),
        &Cancel::new(),
    )
    .unwrap_err();
    assert_eq!(e.reason, Reason::ReplaceDualControl);
    let out = verify_cli(&rig, &single);
    assert_eq!(out.status.code(), Some(21), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("dual control"),
        "{out:?}"
    );
    let out = verify_cli(&rig, &rig.dual_ticket(&c));
    assert!(out.status.success(), "{out:?}");

    // Without the station's ledger there is no verdict on replay.
    let t = rig.dir.path().join("verify.ticket");
    let out = common::run(common::keyward().args([
        "--config",
        rig.config.to_str().unwrap(),
        "--db",
        rig.dir.path().join("absent.db").to_str().unwrap(),
        "ticket",
        "verify",
        t.to_str().unwrap(),
    ]));
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(!rig.dir.path().join("absent.db").exists());
    // --config takes nothing that would override the station.
    let out = common::run(common::keyward().args([
        "--config",
        rig.config.to_str().unwrap(),
        "ticket",
        "verify",
        t.to_str().unwrap(),
        "--audience",
        "elsewhere",
    ]));
    assert_eq!(out.status.code(), Some(2), "{out:?}");
}

#[test]
fn another_issuers_ticket_with_the_same_jti_is_not_a_replay() {
    let carol = SigningKey::generate(TicketAlg::EdDsa, &Zeroizing::new([23; 32]))
        .unwrap()
        .0;
    let keys = tempfile::tempdir().unwrap();
    let carol_jwk = keys.path().join("carol.jwk");
    std::fs::write(&carol_jwk, carol.public().to_jwk("carol-1").to_string()).unwrap();
    let rig = rig_with(|t| {
        t.replace(
            "\n[attestation]",
            &format!(
                "\n[[ticket.issuers]]\niss = \"https://other-idp.example.test\"\nallowed_ops = [\"fido2\"]\nkeys = [{{ path = \"{}\", kid = \"carol-1\", approver = \"carol\" }}]\n\n[attestation]",
                carol_jwk.display()
            ),
        )
    });
    let first = claims("standard");
    enroll_sim(&rig, rig.ticket(&first), 33_000_011)
        .0
        .expect("first issuer");
    let mut second = claims("standard");
    second.iss = "https://other-idp.example.test".into();
    second.jti = first.jti.clone();
    let t = ticket::sign_compact(&second, &carol, "carol-1")
        .unwrap()
        .into_bytes();
    let o = enroll_sim(&rig, t, 33_000_012)
        .0
        .expect("same jti from another issuer is another ticket");
    assert_eq!(o.serial.as_deref(), Some("33000012"));
    // The first issuer's ticket stays used.
    let (r, _) = enroll_sim(&rig, rig.ticket(&first), 33_000_013);
    assert_eq!(r.unwrap_err().reason, Reason::TicketReplayed);
}

fn unblock_claims() -> Claims {
    let mut c = claims("standard");
    c.ops = vec![Op::Unblock(UnblockOp { rotate_puk: false })];
    c
}

#[test]
fn an_unblock_ticket_is_refused_by_enroll_before_the_key_is_touched() {
    let rig = rig_with(|t| {
        t.replace(
            "allowed_ops = [\"fido2\", \"piv\", \"replace\"]",
            "allowed_ops = [\"fido2\", \"piv\", \"replace\", \"unblock\"]",
        )
    });
    let (r, steps) = enroll_sim(&rig, rig.ticket(&unblock_claims()), 33_000_021);
    let e = r.unwrap_err();
    assert_eq!(e.reason, Reason::WrongWorkflow, "{}", e.message);
    assert_eq!(e.step, Some(Step::Policy));
    assert!(e.message.contains("keyward unblock"), "{}", e.message);
    assert_eq!(steps, ["ticket", "policy"]);
    assert_eq!(rig.counts(), (0, 0, 0));
}

#[test]
fn a_lost_binding_still_holds_its_key() {
    let rig = rig();
    let o = enroll_sim(&rig, rig.ticket(&claims("standard")), 33_000_031)
        .0
        .expect("enroll");
    rig.station
        .ledger
        .lock()
        .unwrap()
        .transition(&o.binding, BindingState::Lost, "lost", "test", now())
        .unwrap();
    let (r, _) = enroll_sim(&rig, rig.ticket(&claims("standard")), 33_000_031);
    let e = r.unwrap_err();
    assert_eq!(e.reason, Reason::DeviceAlreadyBound, "{}", e.message);
    assert!(e.message.contains("lost"), "{}", e.message);
    assert_eq!(rig.counts().0, 1);
}

/// Enroll FIDO2 alone on the card in `reader`.
fn enroll_reader(
    rig: &Rig,
    c: &Claims,
    reader: &str,
) -> (
    Result<provision::EnrollOutcome, provision::ProvisionError>,
    Vec<String>,
) {
    let log = EventLog::new();
    let r = provision::enroll(
        &rig.station,
        request(rig.ticket(c), KeyTarget::Reader(reader.to_string()), PIN),
        &log,
        &Cancel::new(),
    );
    (r, started(&log.events()))
}

#[test]
#[ignore = "needs the test rig: pcscd + vpcd (scripts/test runs it)"]
fn bound_or_unassigned_keys_are_refused_right_after_identification() {
    common::require_rig();
    let rig = rig();
    let sim = own_sim(4_300_001, &[]);
    let (r, _) = enroll_reader(&rig, &claims("standard"), sim.reader.name);
    r.expect("first enrollment through pcscd");
    // Bound already: refused at identify, before set-pin or a credential.
    let (r, steps) = enroll_reader(&rig, &claims("standard"), sim.reader.name);
    let e = r.unwrap_err();
    assert_eq!(e.reason, Reason::DeviceAlreadyBound, "{}", e.message);
    assert_eq!(e.step, Some(Step::Identify), "{}", e.message);
    assert!(!steps.iter().any(|s| s == "set-pin"), "{steps:?}");
    assert!(!steps.iter().any(|s| s == "make-credential"), "{steps:?}");

    // Pre-assigned to another serial: the same, on an unbound key.
    let fresh = own_sim(4_300_002, &[]);
    let mut c = claims("standard");
    c.device = Some(ticket::Device {
        serial: 4_300_003,
        model: None,
    });
    let (r, steps) = enroll_reader(&rig, &c, fresh.reader.name);
    let e = r.unwrap_err();
    assert_eq!(e.reason, Reason::DeviceMismatch, "{}", e.message);
    assert_eq!(e.step, Some(Step::Identify), "{}", e.message);
    assert!(!steps.iter().any(|s| s == "set-pin"), "{steps:?}");
    // The key was not changed: it enrolls with a PIN as a fresh key does.
    let (r, _) = enroll_reader(&rig, &claims("standard"), fresh.reader.name);
    assert_eq!(r.expect("unchanged key").serial.as_deref(), Some("4300002"));
}
