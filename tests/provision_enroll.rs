//! The enroll workflow end to end: in-process (FIDO2 on the simulator's
//! CTAPHID pipe) and through pcscd (FIDO2 over the NFC mapping and PIV,
//! `keyward sim --vpcd`), with a station built from a real keyward.toml and
//! an on-disk ledger.

#![cfg(feature = "sim")]

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
        request(ticket, KeyTarget::device(sim_device(serial)), pin),
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
    assert_eq!(
        kinds,
        ["binding.created", "notify.binding_created", "run.finished"]
    );
    let runs = l.runs_since(0).unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].outcome.map(|o| o.as_str()), Some("completed"));
    assert_eq!(runs[0].binding_id.as_deref(), Some(o.binding.as_str()));
    assert_eq!(runs[0].id, o.run);
    drop(l);
    // The registry's fleet report counts the run from its event.
    let ev = rig.run_events();
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0]["run"], o.run.as_str());
    assert_eq!(ev[0]["kind"], "enroll");
    assert_eq!(ev[0]["outcome"], "completed");
    assert_eq!(ev[0]["reason"], serde_json::Value::Null);
    assert_eq!(ev[0]["device_serial"], "31000001");
    assert_eq!(ev[0]["binding"], o.binding.as_str());
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
    assert_eq!(rig.counts(), (1, 1, 2));
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
    // Change one signature character to another base64url character (the
    // last ones carry padding bits, so stay clear of them).
    let n = tampered.len() - 10;
    tampered[n] = if tampered[n] == b'A' { b'B' } else { b'A' };
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
    drop(l);
    // The events say which failures were refusals (the verification class
    // of the reason); an unknown profile is the station's configuration.
    let outcomes: Vec<_> = rig
        .run_events()
        .iter()
        .map(|e| (e["reason"].clone(), e["outcome"].clone()))
        .collect();
    let o = |r: &str, x: &str| (serde_json::json!(r), serde_json::json!(x));
    assert_eq!(
        outcomes,
        [
            o("ticket-time", "refused"),
            o("ticket-audience", "refused"),
            o("policy-unknown-profile", "failed"),
            o("ticket-untrusted", "refused"),
            o("ticket-malformed", "refused"),
        ]
    );
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
        KeyTarget::device(dev),
        PinChoice::Generate,
    );
    let o = provision::enroll(&rig.station, req, &log, &Cancel::new()).expect("enroll");
    let pin = o.generated_pin.expect("generated PIN");
    assert_eq!(pin.expose_secret().len(), 8);
    assert!(pin.expose_secret().bytes().all(|b| b.is_ascii_digit()));
    assert!(started(&log.events()).contains(&"force-change-pin".to_string()));
    let t = keyward::sim::key::pipe_transport(probe, std::time::Duration::from_secs(5)).unwrap();
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
            KeyTarget::device(sim_device(31_000_050)),
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
#[ignore = "needs the test rig: pcscd + vpcd (scripts/test runs it)"]
fn fido2_and_piv_through_pcscd_bind_one_key() {
    common::require_rig();
    let rig = rig();
    let sim = own_sim(4_100_001, &[]);
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
    // What the attestation steps record: which facts are attested (issue 13).
    for (step, fact) in [
        ("fido-attestation", "aaguid"),
        ("piv-attestation", "serial"),
    ] {
        let detail = log
            .events()
            .into_iter()
            .find_map(|e| match e {
                Event::StepDone {
                    step: s, detail, ..
                } if s.to_string() == step => Some(detail),
                _ => None,
            })
            .unwrap_or_else(|| panic!("no {step} step"));
        assert!(
            detail["attested"]
                .as_array()
                .unwrap()
                .contains(&fact.into()),
            "{step}: {detail}"
        );
        assert_eq!(detail["claimed"], serde_json::json!([]), "{step}: {detail}");
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

/// Pulls the key (kills its simulator and waits until pcscd sees the card
/// gone) when the `nth` `step-started` event for `step` arrives. Step
/// events are delivered before the step touches the key.
struct PullAt {
    step: Step,
    nth: usize,
    seen: std::sync::atomic::AtomicUsize,
    sim: std::sync::Mutex<Option<common::Sim>>,
}

impl provision::Events for PullAt {
    fn emit(&self, e: &Event) {
        if let Event::StepStarted { step, .. } = e
            && *step == self.step
            && self.seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1 == self.nth
            && let Some(mut sim) = self.sim.lock().unwrap().take()
        {
            sim.stop();
        }
    }
}

#[test]
#[ignore = "needs the test rig: pcscd + vpcd (scripts/test runs it)"]
fn key_removed_at_each_step_commits_nothing_and_stays_enrollable() {
    common::require_rig();
    let rig = rig();
    // (step, which occurrence): identify runs for PIV, then for FIDO2.
    let cases = [
        (Step::Identify, 1),
        (Step::DriftCheck, 1),
        (Step::Identify, 2),
        (Step::SetPin, 1),
        (Step::EnterpriseAttestation, 1),
        (Step::MakeCredential, 1),
        (Step::FidoAttestation, 1),
        (Step::GetAssertion, 1),
        (Step::PivPin, 1),
        (Step::PivManagementKey, 1),
        (Step::PivKeygen, 1),
        (Step::PivAttestation, 1),
        (Step::PivBind, 1),
    ];
    for (i, (step, nth)) in cases.into_iter().enumerate() {
        let state = common::tempdir();
        let serial = (4_200_000 + i).to_string();
        let sim = own_sim(
            4_200_000 + i as u32,
            &["--state", state.path().to_str().unwrap()],
        );
        let reader = sim.reader.name;
        let mut c = claims("standard");
        c.ops = vec![fido_op(), piv_op("9a", "p256")];
        let ticket = rig.ticket(&c);
        let pull = PullAt {
            step,
            nth,
            seen: 0.into(),
            sim: std::sync::Mutex::new(Some(sim)),
        };
        let e = enroll_reader(&rig, ticket.clone(), reader, PIN, &pull).expect_err(&format!(
            "case {i}: {step} #{nth}: removal must fail the run"
        ));
        assert!(
            pull.sim.lock().unwrap().is_none(),
            "case {i}: the key was never pulled"
        );
        assert!(
            matches!(e.reason, Reason::DeviceRemoved | Reason::NoDevice),
            "case {i}: {step} #{nth}: {:?} {}",
            e.reason,
            e.full_message()
        );
        assert!(
            e.message.contains("re-insert") || e.reason == Reason::NoDevice,
            "{}",
            e.message
        );
        assert_eq!(rig.counts().1, i, "case {i}: a ticket was consumed");
        assert_eq!(rig.counts().0, i, "case {i}: a binding was written");
        // The same key re-inserted (same state directory), the same ticket:
        // the enrollment completes.
        let again = own_sim(
            4_200_000 + i as u32,
            &["--state", state.path().to_str().unwrap()],
        );
        let o = enroll_reader(&rig, ticket, again.reader.name, PIN, &provision::NoEvents)
            .unwrap_or_else(|e| {
                panic!(
                    "case {i}: retry after removal at {step}: {}",
                    e.full_message()
                )
            });
        assert_eq!(o.serial.as_deref(), Some(serial.as_str()));
    }
    let l = rig.station.ledger.lock().unwrap();
    let runs = l.runs_since(0).unwrap();
    let failed: Vec<_> = runs.iter().filter_map(|r| r.reason.clone()).collect();
    assert_eq!(failed.len(), cases.len());
    assert!(
        failed
            .iter()
            .all(|r| r == "device-removed" || r == "no-device"),
        "{failed:?}"
    );
    assert!(l.verify_audit().unwrap().ok());
}

fn cli(rig: &Rig, args: &[&str], stdin: &str) -> std::process::Output {
    use std::io::Write;
    let mut c = common::keyward();
    c.args(["--config", rig.config.to_str().unwrap()])
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = c.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[test]
fn cli_enroll_on_the_simulator_text_and_json_and_no_secret_anywhere() {
    let rig = rig();
    let t = rig.dir.path().join("t.jwt");
    std::fs::write(&t, rig.ticket(&claims("standard"))).unwrap();
    let out = cli(
        &rig,
        &[
            "-vvv",
            "enroll",
            "--ticket",
            t.to_str().unwrap(),
            "--device",
            "sim",
            "--pin-fd",
            "0",
        ],
        &format!("{PIN}\n"),
    );
    let (so, se) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{so}\n{se}");
    assert!(
        so.starts_with(&format!("Enrolled {SUB}: key 12345678 bound as ")),
        "{so}"
    );
    assert!(se.contains("make-credential: ok"), "{se}");
    assert!(se.contains("profile standard"), "{se}");
    // The PIN is nowhere: not on stdout, stderr (even at -vvv), nor in any
    // file of the ledger (database, WAL, shared memory, station key).
    assert!(!contains(&out.stdout, PIN) && !contains(&out.stderr, PIN));
    for f in std::fs::read_dir(rig.dir.path()).unwrap() {
        let p = f.unwrap().path();
        if p.file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("ledger.db") || n == "station.key")
        {
            let bytes = std::fs::read(&p).unwrap();
            assert!(!contains(&bytes, PIN), "the PIN is in {}", p.display());
        }
    }
    // JSON: one document; a second enrollment of the same (simulated) key
    // with a new ticket fails: the key is bound already.
    std::fs::write(&t, rig.ticket(&claims("standard"))).unwrap();
    let out = cli(
        &rig,
        &[
            "--json",
            "enroll",
            "--ticket",
            t.to_str().unwrap(),
            "--device",
            "sim",
            "--pin-fd",
            "0",
        ],
        &format!("{PIN}\n"),
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    assert_eq!(doc["ok"], false, "{doc}");
    assert_eq!(doc["error"]["reason"], "device-already-bound");
    assert_eq!(doc["error"]["step"], "commit");
    assert_eq!(out.status.code(), Some(1));
}

#[test]
#[ignore = "needs the test rig: pcscd + vpcd (scripts/test runs it)"]
fn cli_refusals_have_their_exit_codes() {
    common::require_rig();
    let rig = rig();
    let t = rig.dir.path().join("t.jwt");
    let mut c = claims("standard");
    c.aud = keyward::ticket::Audience::One("elsewhere".into());
    std::fs::write(&t, rig.ticket(&c)).unwrap();
    let args = [
        "enroll",
        "--ticket",
        t.to_str().unwrap(),
        "--device",
        "sim",
        "--pin-fd",
        "0",
    ];
    let out = cli(&rig, &args, &format!("{PIN}\n"));
    assert_eq!(out.status.code(), Some(23), "ticket for another station");
    let se = String::from_utf8_lossy(&out.stderr);
    assert!(se.contains("[ticket-audience]"), "{se}");
    // A PIN the profile refuses: exit 1, the rule named, the key untouched.
    std::fs::write(&t, rig.ticket(&claims("standard"))).unwrap();
    let out = cli(&rig, &args, "12\n");
    assert_eq!(out.status.code(), Some(1));
    let se = String::from_utf8_lossy(&out.stderr);
    assert!(
        se.contains("at least 6") && se.contains("[policy-pin]"),
        "{se}"
    );
    // A reader that does not exist: no device, exit 3, for FIDO2 and PIV.
    let readers = 2;
    for ops in [vec![fido_op()], vec![piv_op("9a", "p256")]]
        .into_iter()
        .take(readers)
    {
        let mut c = claims("standard");
        c.ops = ops;
        std::fs::write(&t, rig.ticket(&c)).unwrap();
        let out = cli(
            &rig,
            &[
                "enroll",
                "--ticket",
                t.to_str().unwrap(),
                "--device",
                "No Such Reader 00 00",
                "--pin-fd",
                "0",
            ],
            &format!("{PIN}\n"),
        );
        let se = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{se}");
        assert!(
            se.contains("[no-device]") && se.contains("No Such Reader"),
            "{se}"
        );
    }
    // A configuration with an unknown key: usage error naming file and line.
    let bad = rig.dir.path().join("bad.toml");
    std::fs::write(&bad, "station = \"x\"\nstaton = \"y\"\n").unwrap();
    let out = common::run(
        common::keyward()
            .args(["--config", bad.to_str().unwrap()])
            .args(args),
    );
    assert_eq!(out.status.code(), Some(2));
    let se = String::from_utf8_lossy(&out.stderr);
    assert!(se.contains("bad.toml:2:") && se.contains("staton"), "{se}");
}

#[test]
fn time_boxed_exception_waives_a_rule_and_is_recorded_and_counted() {
    let rig = rig();
    let (r, _) = enroll_sim(&rig, rig.ticket(&claims("waived")), 31_000_060, PIN);
    let o = r.expect("the exception waives the AAGUID rule");
    assert_eq!(o.exceptions.len(), 1);
    assert_eq!(o.exceptions[0].rule, "aaguid");
    assert_eq!(o.exceptions[0].approver, "ciso@example.test");
    assert_eq!(count(&rig.db, "SELECT count(*) FROM exceptions"), 1);
    assert_eq!(
        count(
            &rig.db,
            "SELECT count(*) FROM audit WHERE action = 'exception.granted'"
        ),
        1
    );
    assert_eq!(
        count(
            &rig.db,
            "SELECT count(*) FROM outbox WHERE kind = 'exception.granted'"
        ),
        1
    );
    // An expired exception waives nothing.
    let (r, _) = enroll_sim(&rig, rig.ticket(&claims("waiver-expired")), 31_000_061, PIN);
    assert_eq!(r.unwrap_err().reason, Reason::PolicyAaguid);
    assert_eq!(count(&rig.db, "SELECT count(*) FROM exceptions"), 1);
}

#[test]
fn reset_before_enroll_on_a_freshly_plugged_key() {
    let rig = rig();
    let (r, events) = enroll_sim(&rig, rig.ticket(&claims("fresh")), 31_000_070, PIN);
    r.expect("reset within the power-up window");
    let s = started(&events);
    assert_eq!(&s[2..5], ["identify", "reset", "set-pin"], "{s:?}");
}

#[test]
fn piv_on_the_in_process_simulator_is_refused_before_any_change() {
    let rig = rig();
    let mut c = claims("standard");
    c.ops = vec![fido_op(), piv_op("9a", "p256")];
    let (r, events) = enroll_sim(&rig, rig.ticket(&c), 31_000_080, PIN);
    let e = r.unwrap_err();
    assert_eq!(e.reason, Reason::DeviceUnsupported);
    assert!(e.message.contains("PC/SC"), "{}", e.message);
    assert!(!started(&events).contains(&"set-pin".to_string()));
    assert_eq!(rig.counts(), (0, 0, 0));
}

#[test]
fn pre_assigned_device_must_be_the_key() {
    let rig = rig();
    let mut c = claims("standard");
    c.device = Some(keyward::ticket::Device {
        serial: 31_000_091,
        model: None,
    });
    let (r, _) = enroll_sim(&rig, rig.ticket(&c), 31_000_090, PIN);
    let e = r.unwrap_err();
    assert_eq!(e.reason, Reason::DeviceMismatch);
    assert!(
        e.message.contains("31000091") && e.message.contains("31000090"),
        "{}",
        e.message
    );
    assert_eq!(rig.counts(), (0, 0, 0));
    let (r, _) = enroll_sim(&rig, rig.ticket(&c), 31_000_091, PIN);
    assert_eq!(
        r.expect("the assigned key").serial.as_deref(),
        Some("31000091")
    );
}

#[test]
fn station_clock_set_back_refuses_tickets() {
    let rig = rig();
    enroll_sim(&rig, rig.ticket(&claims("standard")), 31_000_100, PIN)
        .0
        .expect("first");
    let mut back = rig.station.clone();
    back.clock =
        std::sync::Arc::new(|| std::time::SystemTime::now() - std::time::Duration::from_secs(3600));
    let mut c = claims("standard");
    c.iat -= 3600;
    c.nbf -= 3600;
    c.exp -= 3000;
    let e = provision::enroll(
        &back,
        request(
            rig.ticket(&c),
            KeyTarget::device(sim_device(31_000_101)),
            PIN,
        ),
        &provision::NoEvents,
        &Cancel::new(),
    )
    .unwrap_err();
    assert_eq!(e.reason, Reason::ClockRollback, "{}", e.message);
    assert_eq!(rig.counts().0, 1);
}

#[test]
fn touch_prompt_comes_from_the_keys_keepalive_and_a_missing_touch_times_out() {
    use keyward::sim::Person;
    use std::time::Duration;
    let rig = rig();
    let slow = sim_device_with(
        31_000_110,
        Person::After(Duration::from_millis(600)),
        Duration::from_secs(15),
    );
    let log = EventLog::new();
    provision::enroll(
        &rig.station,
        request(
            rig.ticket(&claims("standard")),
            KeyTarget::device(slow),
            PIN,
        ),
        &log,
        &Cancel::new(),
    )
    .expect("enrollment with a slow touch");
    let touches: Vec<Step> = log
        .events()
        .iter()
        .filter_map(|e| match e {
            Event::TouchNeeded { step, timeout_ms } => {
                assert_eq!(*timeout_ms, 30_000);
                Some(*step)
            }
            _ => None,
        })
        .collect();
    assert_eq!(touches, [Step::MakeCredential, Step::GetAssertion]);

    let never = sim_device_with(31_000_111, Person::Never, Duration::from_millis(800));
    let log = EventLog::new();
    let e = provision::enroll(
        &rig.station,
        request(
            rig.ticket(&claims("standard")),
            KeyTarget::device(never),
            PIN,
        ),
        &log,
        &Cancel::new(),
    )
    .unwrap_err();
    assert_eq!(e.reason, Reason::TouchTimeout, "{}", e.full_message());
    assert_eq!(e.step, Some(Step::MakeCredential));
    assert!(
        log.events()
            .iter()
            .any(|e| matches!(e, Event::TouchNeeded { .. }))
    );
    assert_eq!(rig.counts().0, 1);
}

#[test]
#[ignore = "needs the test rig: pcscd + vpcd (scripts/test runs it)"]
fn fault_knobs_give_clear_failures_and_commit_nothing() {
    common::require_rig();
    let rig = rig();
    let cases = [
        ("untrusted-attestation", Reason::AttestationUntrusted),
        ("aaguid-mismatch", Reason::AttestationInvalid),
        ("malformed-cbor", Reason::DeviceError),
        ("wrong-status-word", Reason::DeviceError),
        ("disconnect-mid-command", Reason::DeviceRemoved),
    ];
    for (i, (fault, reason)) in cases.into_iter().enumerate() {
        let sim = own_sim(4_500_000 + i as u32, &["--fido2", "--fault", fault]);
        let e = enroll_reader(
            &rig,
            rig.ticket(&claims("standard")),
            sim.reader.name,
            PIN,
            &provision::NoEvents,
        )
        .unwrap_err();
        assert_eq!(e.reason, reason, "{fault}: {}", e.full_message());
        assert!(!e.message.is_empty());
    }
    assert_eq!(rig.counts(), (0, 0, 0));
}

#[test]
#[ignore = "needs the test rig: pcscd + vpcd (scripts/test runs it)"]
fn cli_enrolls_fido2_and_piv_by_serial_and_hands_the_puk_to_a_descriptor() {
    use std::io::{Read, Write};
    use std::os::fd::{FromRawFd, OwnedFd};
    use std::os::unix::process::CommandExt;
    common::require_rig();
    let rig = rig();
    let sim = own_sim(4_700_001, &[]);
    let t = rig.dir.path().join("t.jwt");
    std::fs::write(&t, rig.ticket(&fido_and_piv("standard"))).unwrap();
    let mut fds = [0; 2];
    // SAFETY: pipe fills two descriptors we then own.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    // SAFETY: both descriptors are open and owned only here.
    let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    let wfd = fds[1];
    let mut c = common::keyward();
    c.args([
        "--config",
        rig.config.to_str().unwrap(),
        "-vvv",
        "--json",
        "enroll",
    ])
    .env("RUST_LOG", "trace")
    .args(["--ticket", t.to_str().unwrap(), "--device", "4700001"])
    .args(["--pin-fd", "0", "--puk-out-fd", "3"])
    .stdin(std::process::Stdio::piped())
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped());
    // SAFETY: dup2 is async-signal-safe; it runs in the child before exec.
    unsafe {
        c.pre_exec(move || {
            if libc::dup2(wfd, 3) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = c.spawn().unwrap();
    drop(w);
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{PIN}\n").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let mut puk = String::new();
    std::fs::File::from(r).read_to_string(&mut puk).unwrap();
    let se = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{se}");
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["serial"], "4700001");
    assert_eq!(doc["credentials"].as_array().unwrap().len(), 3);
    let puk = puk.trim();
    assert_eq!(puk.len(), 8, "the PUK arrived on descriptor 3");
    assert!(!contains(&out.stdout, puk) && !contains(&out.stderr, puk));
    // Neither the PIN (FIDO2 and PIV, at trace level) is in the output.
    assert!(!contains(&out.stdout, PIN) && !contains(&out.stderr, PIN));
    for f in std::fs::read_dir(rig.dir.path()).unwrap() {
        let bytes = std::fs::read(f.unwrap().path()).unwrap_or_default();
        assert!(!contains(&bytes, PIN) && !contains(&bytes, puk));
    }
    // The card holds that PUK: changing it with the PUK as the old value
    // succeeds.
    let mut c = common::keyward();
    c.args(["piv", "change-puk", "--device", sim.reader.name])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = c.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{puk}\n87651234\n").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn removal_reported_by_a_monitor_ends_the_run_as_device_removed() {
    let rig = rig();
    let cancel = Cancel::new();
    let c2 = cancel.clone();
    // The monitor sees the key go as make-credential starts.
    let on_event = move |e: &Event| {
        if let Event::StepStarted {
            step: Step::MakeCredential,
            ..
        } = e
        {
            c2.device_removed();
        }
    };
    let e = provision::enroll(
        &rig.station,
        request(
            rig.ticket(&claims("standard")),
            KeyTarget::device(sim_device(31_000_120)),
            PIN,
        ),
        &on_event,
        &cancel,
    )
    .unwrap_err();
    assert_eq!(e.reason, Reason::DeviceRemoved, "{}", e.full_message());
    assert_eq!(rig.counts(), (0, 0, 0));
    let l = rig.station.ledger.lock().unwrap();
    assert_eq!(
        l.runs_since(0).unwrap()[0].reason.as_deref(),
        Some("device-removed")
    );
}

#[test]
fn a_key_with_someone_elses_pin_costs_one_try_and_is_refused() {
    let rig = rig();
    let dev = sim_device(31_000_130);
    let probe = dev.hid().unwrap();
    let t = keyward::sim::key::pipe_transport(probe, std::time::Duration::from_secs(5)).unwrap();
    let mut c = keyward::ctap::Ctap2::new(t);
    c.set_pin(
        keyward::ctap::PinProtocol::V2,
        &keyward::ctap::Pin::from("11223344"),
    )
    .unwrap();
    let e = provision::enroll(
        &rig.station,
        request(rig.ticket(&claims("standard")), KeyTarget::device(dev), PIN),
        &provision::NoEvents,
        &Cancel::new(),
    )
    .unwrap_err();
    assert_eq!(e.reason, Reason::PinAlreadySet, "{}", e.full_message());
    assert!(e.message.contains("7 tries left"), "{}", e.message);
    assert_eq!(
        c.pin_retries().unwrap().retries,
        7,
        "exactly one try was spent"
    );
    assert_eq!(rig.counts(), (0, 0, 0));
}

#[test]
#[ignore = "needs the test rig: pcscd + vpcd (scripts/test runs it)"]
fn piv_only_with_a_generated_pin_through_pcscd() {
    common::require_rig();
    let rig = rig();
    let sim = own_sim(4_800_001, &["--piv"]);
    let mut c = claims("standard");
    c.ops = vec![piv_op("9c", "p256")];
    let log = EventLog::new();
    let o = provision::enroll(
        &rig.station,
        keyward::provision::EnrollRequest::new(
            rig.ticket(&c),
            KeyTarget::Reader(sim.reader.name.into()),
            PinChoice::Generate,
        ),
        &log,
        &Cancel::new(),
    )
    .expect("PIV-only enrollment");
    assert_eq!(o.serial.as_deref(), Some("4800001"));
    assert!(
        !started(&log.events()).contains(&"set-pin".to_string()),
        "no FIDO2 step"
    );
    let pin = o.generated_pin.expect("generated PIN");
    assert_eq!(pin.expose_secret().len(), 8);
    // The card takes the generated PIN.
    let mut card = keyward::piv::PivCard::open(Some(sim.reader.name)).unwrap();
    card.verify_pin(&keyward::piv::Pin::from(pin.expose_secret()))
        .expect("the generated PIN is the card's PIN");
}

#[test]
#[ignore = "needs the test rig: pcscd + vpcd (scripts/test runs it)"]
fn a_card_holding_a_foreign_key_is_refused_by_the_drift_check() {
    common::require_rig();
    let rig = rig();
    let sim = own_sim(4_800_002, &["--piv"]);
    let mut cmd = common::keyward();
    cmd.args(["piv", "provision", "--slot", "9d", "--algorithm", "p256"])
        .args(["--subject", "CN=someone else", "--device", sim.reader.name])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(b"123456\n").unwrap();
    let done = child.wait_with_output().unwrap();
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    let mut c = claims("standard");
    c.ops = vec![piv_op("9a", "p256")];
    let e = enroll_reader(
        &rig,
        rig.ticket(&c),
        sim.reader.name,
        PIN,
        &provision::NoEvents,
    )
    .unwrap_err();
    assert_eq!(e.reason, Reason::Drift, "{}", e.full_message());
    assert_eq!(e.step, Some(Step::DriftCheck));
    assert!(e.message.contains("slot 9d"), "{}", e.message);
    // Read-only so far: the card still has its factory PIN.
    let info = common::run_ok(common::keyward().args([
        "piv",
        "info",
        "--json",
        "--device",
        sim.reader.name,
    ]));
    let info: serde_json::Value = serde_json::from_str(&info).unwrap();
    assert_eq!(info["pin_is_default"], true);
    assert_eq!(rig.counts(), (0, 0, 0));
}

#[test]
fn a_station_that_does_not_trust_the_simulator_refuses_its_attestation() {
    let rig = rig_with(|t| {
        t.replace(
            "danger_trust_simulator = true",
            "danger_trust_simulator = false",
        )
    });
    let (r, _) = enroll_sim(&rig, rig.ticket(&claims("standard")), 31_000_140, PIN);
    let e = r.unwrap_err();
    assert_eq!(
        e.reason,
        Reason::AttestationUntrusted,
        "{}",
        e.full_message()
    );
    assert_eq!(e.step, Some(Step::FidoAttestation));
    assert_eq!(rig.counts(), (0, 0, 0));
}
