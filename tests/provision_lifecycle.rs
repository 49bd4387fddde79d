//! Revoke, return to stock and help-desk unblock, end to end: the
//! `keyward` binary against simulated keys attached to pcscd through vpcd,
//! a real on-disk ledger, and tickets signed by `keyward ticket`. The
//! bindings are made from facts read from the simulated keys (real serial,
//! real FIDO2 credential over PC/SC, real PIV key with its attestation).

mod common;
mod lifecycle_support;

use std::time::Duration;

use common::{Sim, keyward, require_rig, run, run_ok, start_sim, tempdir};
use keyward::store::CredentialRecord;
use lifecycle_support::*;
use serde_json::Value;

// ---------------------------------------------------------------- revoke

#[test]
fn revoke_marks_the_binding_and_queues_the_event_and_refuses_bad_requests() {
    let st = Station::new();
    let cred = CredentialRecord {
        kind: "piv".into(),
        credential_id: None,
        rp_id: None,
        slot: Some("9a".into()),
        algorithm: "p256".into(),
        public_key: vec![1, 2, 3],
        attestation: None,
        attestation_format: None,
    };
    let b = bind(&st, "alice", 4242, vec![cred]);

    let o = run(st.kw().args(["revoke", &b, "--reason", "stolen", "--json"]));
    assert!(o.status.success());
    let v = json_of(&o);
    assert_eq!(v["ok"], true);
    assert_eq!(v["binding"], b.as_str());
    assert_eq!(v["from"], "active");
    assert_eq!(v["reason"], "stolen");
    assert_eq!(v["device_serial"], "4242");
    assert_eq!(binding_state(&st, &b), "revoked");
    let ev = st.ledger().outbox_pending(100).unwrap();
    let revoked = ev.iter().find(|e| e.kind == "binding.revoked").unwrap();
    assert_eq!(revoked.payload["reason"], "stolen");
    assert_eq!(revoked.payload["subject"], "alice");
    let runs = st.ledger().runs_since(0).unwrap();
    assert_eq!(runs.last().unwrap().kind, keyward::store::RunKind::Revoke);
    assert_eq!(
        runs.last().unwrap().outcome,
        Some(keyward::store::RunOutcome::Completed)
    );

    // Already revoked: refused, binding and outbox untouched; the failed
    // run is recorded with its reason.
    let before = snapshot(&st);
    let o = run(st.kw().args(["revoke", &b, "--reason", "lost", "--json"]));
    assert_eq!(o.status.code(), Some(1));
    let v = json_of(&o);
    assert_eq!(v["error"]["reason"], "binding-state");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("is revoked; it cannot become revoked")
    );
    assert_eq!(snapshot(&st), before);
    assert_eq!(
        st.ledger()
            .show_binding(&b)
            .unwrap()
            .state_reason
            .as_deref(),
        Some("stolen")
    );
    let last = st.ledger().runs_since(0).unwrap().pop().unwrap();
    assert_eq!(last.reason.as_deref(), Some("binding-state"));

    // Unknown binding.
    let o = run(st.kw().args(["revoke", "0123abcd", "--reason", "lost"]));
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("no binding 0123abcd") && err.contains("keyward bindings list"),
        "{err}"
    );
    assert_eq!(snapshot(&st), before);

    // Bad reason: a usage error before anything is opened.
    let runs = st.ledger().runs_since(0).unwrap().len();
    let o = run(st.kw().args(["revoke", &b, "--reason", "misplaced"]));
    assert_eq!(o.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("possible values: lost, stolen, damaged, left")
    );
    assert_eq!(st.ledger().runs_since(0).unwrap().len(), runs);
    assert_eq!(snapshot(&st), before);
    audit_ok(&st);
}

// ---------------------------------------------------------------- return

#[test]
#[ignore = "needs the test rig: pcscd + vpcd (scripts/test runs it)"]
fn return_to_stock_proves_the_key_resets_it_and_stocks_it() {
    require_rig();
    let st = Station::new();
    let sim = start_sim(&["--serial", "7001"]);
    let reader = sim.reader.name;
    let (b, _puk) = enroll(&st, reader, "alice", PIV_PIN);

    let o = run(st.kw().args(["return", "--device", reader, "--json"]));
    assert!(o.status.success());
    let v = json_of(&o);
    assert_eq!(v["serial"], "7001");
    assert_eq!(v["binding"], b.as_str());
    assert_eq!(v["stock"], "in_stock");
    assert_eq!(v["reset"]["piv"], true);
    assert_eq!(v["reset"]["fido2"], true);
    let methods: Vec<&str> = v["proofs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["method"].as_str().unwrap())
        .collect();
    assert_eq!(methods, ["piv-attestation", "fido2-assertion"]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stderr.contains("Touch your key"), "{stderr}");

    // Ledger: binding returned, key in stock, audited.
    assert_eq!(binding_state(&st, &b), "returned");
    let s = st.ledger().stock_for_serial("7001").unwrap().unwrap();
    assert_eq!(s.state, keyward::store::stock::StockState::InStock);
    assert_eq!(s.binding_id.as_deref(), Some(b.as_str()));
    let pending = st.ledger().outbox_pending(100).unwrap();
    for kind in ["binding.returned", "device.stocked"] {
        assert!(pending.iter().any(|e| e.kind == kind), "{kind}");
    }
    audit_ok(&st);

    // The key is factory-clean: keyward's own drift view and ykman's.
    let info: Value = serde_json::from_str(&run_ok(
        keyward().args(["piv", "info", "--json", "--device", reader]),
    ))
    .unwrap();
    for f in [
        "pin_is_default",
        "puk_is_default",
        "management_key_is_default",
    ] {
        assert_eq!(info[f], true, "{f}: {info}");
    }
    assert!(
        info["slots"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["key"].is_null() && s["certificate"].is_null())
    );
    let yk = common::ykman(&sim, &["piv", "info"]);
    assert!(yk.contains("Using default PIN"), "{yk}");
    assert!(!yk.contains("Slot 9A"), "{yk}");
    let yk = common::ykman(&sim, &["fido", "info"]);
    assert!(yk.contains("PIN:") && yk.contains("Not set"), "{yk}");

    // A second return (the key chosen by its serial) finds it in stock.
    let o = run(st.kw().args(["return", "--device", "7001", "--json"]));
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(json_of(&o)["error"]["reason"], "not-bound");
}

#[test]
#[ignore = "needs the test rig: pcscd + vpcd (scripts/test runs it)"]
fn return_refuses_a_key_with_the_bound_serial_but_not_the_bound_credentials() {
    require_rig();
    let st = Station::new();
    // The bound key.
    let mut sim = start_sim(&["--serial", "7002"]);
    let reader = sim.reader.name;
    let fido = make_fido_credential(reader);
    let (serial, piv) = make_piv_credential(reader);
    let both = bind(&st, "alice", serial, vec![fido.clone(), piv]);
    sim.stop();

    // Another key claiming the same serial, with its own PIV key.
    let reader_lease = common::lease_reader();
    let impostor = common::start_sim_on(reader_lease, &["--serial", "7002"]);
    let r2 = impostor.reader.name;
    make_piv_credential(r2);
    let before = snapshot(&st);
    let o = run(st.kw().args(["return", "--device", r2, "--json"]));
    assert_eq!(o.status.code(), Some(5), "verification failure exit code");
    let v = json_of(&o);
    assert_eq!(v["error"]["reason"], "identity-unconfirmed");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("does not prove the bound key"),
        "{v}"
    );
    assert_eq!(binding_state(&st, &both), "active");
    assert_eq!(snapshot(&st), before);
    // The impostor was not reset: its PIV key is still there.
    let info: Value = serde_json::from_str(&run_ok(
        keyward().args(["piv", "info", "--json", "--device", r2]),
    ))
    .unwrap();
    assert!(!info["slots"][0]["key"].is_null(), "{info}");

    // A FIDO2-only binding of that serial: the impostor holds no such
    // credential.
    st.ledger()
        .revoke_binding(&both, keyward::store::stock::RevokeReason::Lost, "t", now())
        .unwrap();
    let fido_only = bind(&st, "alice", 7002, vec![fido]);
    let before = snapshot(&st);
    let o = run(st.kw().args(["return", "--device", r2, "--json"]));
    assert_eq!(o.status.code(), Some(5));
    let v = json_of(&o);
    assert_eq!(v["error"]["reason"], "identity-unconfirmed");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("does not hold the bound FIDO2 credential"),
        "{v}"
    );
    assert_eq!(binding_state(&st, &fido_only), "active");
    assert_eq!(snapshot(&st), before);
    audit_ok(&st);
}

// --------------------------------------------------------------- unblock
#[test]
#[ignore = "needs the test rig: pcscd + vpcd (scripts/test runs it)"]
fn unblock_with_the_puk_after_the_pin_is_blocked_and_its_refusals() {
    require_rig();
    let st = Station::new();
    let sim = start_sim(&["--serial", "7003"]);
    let reader = sim.reader.name;
    let (b, puk) = enroll(&st, reader, "alice", PIV_PIN);
    let puk = puk.expose_secret().to_string();
    block_pin(reader);

    // Wrong subject: refused before the card is touched, ticket unused.
    let t = st.ticket("mallory.jwt", "mallory", &["unblock"], "default");
    let before = snapshot(&st);
    let o = unblock(&st, reader, &t, &format!("{puk}\n{NEW_PIN}\n"), &[]);
    assert_eq!(o.status.code(), Some(5));
    assert_eq!(json_of(&o)["error"]["reason"], "subject-mismatch");
    assert_eq!(snapshot(&st), before);

    // An enrollment ticket is not an unblock ticket.
    let t = st.ticket("fido.jwt", "alice", &["fido2:rp_id=example.org"], "default");
    let o = unblock(&st, reader, &t, &format!("{puk}\n{NEW_PIN}\n"), &[]);
    assert_eq!(
        o.status.code(),
        Some(25),
        "ticket not permitted (cli/exit.rs)"
    );
    assert_eq!(json_of(&o)["error"]["reason"], "ticket-not-permitted");
    assert_eq!(snapshot(&st), before);

    // Bad PUK: the card says how many tries are left; nothing consumed.
    let t = st.ticket("alice-1.jwt", "alice", &["unblock"], "default");
    let o = unblock(&st, reader, &t, &format!("87654321\n{NEW_PIN}\n"), &[]);
    assert_eq!(o.status.code(), Some(1));
    let v = json_of(&o);
    assert_eq!(v["error"]["reason"], "puk-invalid");
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("2 tries left") && msg.contains("ticket is not used"),
        "{msg}"
    );
    assert_eq!(snapshot(&st), before);
    assert!(!pin_works(reader, NEW_PIN));

    // PUK rotation where the profile forbids it.
    let t_strict = st.ticket(
        "strict.jwt",
        "alice",
        &["unblock:rotate_puk=true"],
        "strict",
    );
    let o = unblock(
        &st,
        reader,
        &t_strict,
        &format!("{puk}\n{NEW_PIN}\n{NEW_PUK}\n"),
        &["--new-puk-fd", "0"],
    );
    assert_eq!(json_of(&o)["error"]["reason"], "policy-pin");
    assert_eq!(snapshot(&st), before);

    // The real thing: PUK, new PIN, new PUK (the profile allows rotation).
    let t = st.ticket(
        "alice-2.jwt",
        "alice",
        &["unblock:rotate_puk=true"],
        "default",
    );
    let o = unblock(
        &st,
        reader,
        &t,
        &format!("{puk}\n{NEW_PIN}\n{NEW_PUK}\n"),
        &["--new-puk-fd", "0"],
    );
    assert!(o.status.success());
    no_secret_in(&o, &st, &puk);
    let v = json_of(&o);
    assert_eq!(v["binding"], b.as_str());
    assert_eq!(v["subject"], "alice");
    assert_eq!(v["changed"], serde_json::json!(["pin", "puk"]));
    assert!(pin_works(reader, NEW_PIN));
    let info: Value = serde_json::from_str(&run_ok(
        keyward().args(["piv", "info", "--json", "--device", reader]),
    ))
    .unwrap();
    assert_eq!(info["pin_retries"], 3);
    assert_eq!(info["puk_is_default"], false);
    let jti = v["ticket"].as_str().unwrap();
    assert!(st.ledger().ticket_consumed(ISS, jti).unwrap().is_some());
    let rows = st.ledger().audit_rows_for(&b).unwrap();
    assert!(rows.iter().any(|r| r.action == "piv.pin_unblocked"));
    let runs = st.ledger().runs_since(0).unwrap();
    let last = runs.last().unwrap();
    assert_eq!(last.kind, keyward::store::RunKind::Unblock);
    assert_eq!(last.outcome, Some(keyward::store::RunOutcome::Completed));
    assert_eq!(last.device_serial.as_deref(), Some("7003"));
    assert_eq!(binding_state(&st, &b), "active");

    // The same ticket again: replayed.
    let o = unblock(
        &st,
        reader,
        &t,
        &format!("{NEW_PUK}\n{PIV_PIN}\n{NEW_PUK}\n"),
        &["--new-puk-fd", "0"],
    );
    assert_eq!(o.status.code(), Some(24), "ticket replayed (cli/exit.rs)");
    assert_eq!(json_of(&o)["error"]["reason"], "ticket-replayed");
    no_secret_in(&o, &st, &puk);
    audit_ok(&st);
}

#[test]
#[ignore = "needs the test rig: pcscd + vpcd (scripts/test runs it)"]
fn unblock_refuses_a_fido2_only_key_as_a_reenrollment() {
    require_rig();
    let st = Station::new();
    let sim = start_sim(&["--fido2", "--serial", "7004"]);
    let reader = sim.reader.name;
    let fido = make_fido_credential(reader);
    bind(&st, "bob", 7004, vec![fido]);
    let t = st.ticket("bob.jwt", "bob", &["unblock"], "default");
    let before = snapshot(&st);
    let o = unblock(&st, reader, &t, &format!("{PUK}\n{NEW_PIN}\n"), &[]);
    assert_eq!(o.status.code(), Some(1));
    let v = json_of(&o);
    assert_eq!(v["error"]["reason"], "fido-reset-only");
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(msg.contains("re-enrollment under a new ticket"), "{msg}");
    assert_eq!(snapshot(&st), before);
    drop::<Sim>(sim);
}

#[test]
#[ignore = "needs the test rig: pcscd + vpcd (scripts/test runs it)"]
fn return_asks_to_reinsert_for_the_fido2_reset_and_survives_a_crash_a_timeout_and_ctrl_c() {
    require_rig();
    let st = Station::new();
    let state = tempdir();
    let state_dir = state.path().to_str().unwrap();
    let reader = common::lease_reader();
    let args = ["--fido2", "--serial", "7005", "--state", state_dir];
    let mut sim = spawn_sim(&reader, &args);
    let fido = make_fido_credential(reader.name);
    let b = bind(&st, "carol", 7005, vec![fido]);

    // Keep the card powered (an open connection) until the reset window
    // of its power-up has passed.
    let ctx = pcsc::Context::establish(pcsc::Scope::User).unwrap();
    let name = std::ffi::CString::new(reader.name).unwrap();
    let hold = ctx
        .connect(&name, pcsc::ShareMode::Shared, pcsc::Protocols::ANY)
        .unwrap();
    std::thread::sleep(Duration::from_secs(11));

    // keyward dies (kill -9) while it waits for the key: the binding was
    // closed before anything was reset, so what the crash leaves is a
    // returned binding and a quarantined key, reset pending; never a reset
    // key bound as active.
    let (mut child, rx, lines) = spawn_return(&st, reader.name);
    rx.recv_timeout(Duration::from_secs(60))
        .expect("keyward never asked to re-insert the key");
    child.kill().unwrap();
    child.wait().unwrap();
    lines.join().unwrap();
    assert_eq!(binding_state(&st, &b), "returned");
    let s = st.ledger().stock_for_serial("7005").unwrap().unwrap();
    assert_eq!(s.state, keyward::store::stock::StockState::Quarantined);
    assert_eq!(s.note.as_deref(), Some("reset-pending"));
    assert_eq!(
        st.ledger().runs_since(0).unwrap().pop().unwrap().outcome,
        None
    );

    // Nobody re-inserts the key: the resumed run fails, and the key stays
    // quarantined (never stocked, never bound again).
    let o = run(st.kw().args([
        "return",
        "--json",
        "--reinsert-timeout",
        "2",
        "--device",
        reader.name,
    ]));
    assert_eq!(o.status.code(), Some(1));
    let v = json_of(&o);
    assert_eq!(v["error"]["reason"], "timeout");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("stays quarantined"),
        "{v}"
    );
    assert_eq!(binding_state(&st, &b), "returned");
    let s = st.ledger().stock_for_serial("7005").unwrap().unwrap();
    assert_eq!(s.state, keyward::store::stock::StockState::Quarantined);
    assert_eq!(s.note.as_deref(), Some("timeout"));

    // Run again, and interrupt it (Ctrl-C) while it waits for the key:
    // the run ends as aborted, the key stays quarantined.
    let (child, rx, lines) = spawn_return(&st, reader.name);
    rx.recv_timeout(Duration::from_secs(60))
        .expect("keyward never asked to re-insert the key");
    // SAFETY: signalling a child process this test started.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    let err = lines.join().unwrap();
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(json_of(&out)["error"]["reason"], "cancelled");
    let last = st.ledger().runs_since(0).unwrap().pop().unwrap();
    assert_eq!(last.outcome, Some(keyward::store::RunOutcome::Aborted));
    let s = st.ledger().stock_for_serial("7005").unwrap().unwrap();
    assert_eq!(s.state, keyward::store::stock::StockState::Quarantined);

    // Run again: the return resumes at the reset, and this time the key is
    // re-inserted when asked.
    let (child, rx, lines) = spawn_return(&st, reader.name);
    rx.recv_timeout(Duration::from_secs(60))
        .expect("keyward never asked to re-insert the key");
    // Unplug and plug in again: the same key (its state kept).
    drop(hold);
    sim.kill();
    assert!(common::wait_card(
        reader.name,
        false,
        Duration::from_secs(10)
    ));
    sim = spawn_sim(&reader, &args);
    let out = child.wait_with_output().unwrap();
    let err = lines.join().unwrap();
    eprintln!("{err}\n{}", String::from_utf8_lossy(&out.stdout));
    assert!(out.status.success(), "{err}");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["stock"], "in_stock");
    assert_eq!(v["resumed"], true);
    assert_eq!(v["reset"]["fido2"], true);
    assert_eq!(v["reset"]["piv"], false);
    assert_eq!(binding_state(&st, &b), "returned");
    let s = st.ledger().stock_for_serial("7005").unwrap().unwrap();
    assert_eq!(s.state, keyward::store::stock::StockState::InStock);
    audit_ok(&st);
    sim.kill();
}

#[test]
#[ignore = "needs the test rig: pcscd + vpcd (scripts/test runs it)"]
fn a_key_pulled_during_the_identity_proof_leaves_everything_as_it_was() {
    require_rig();
    let st = Station::new();
    let state = tempdir();
    let state_dir = state.path().to_str().unwrap();
    let reader = common::lease_reader();
    let mut sim = spawn_sim(&reader, &["--serial", "7006", "--state", state_dir]);
    let (b, _) = enroll(&st, reader.name, "dave", PIV_PIN);
    sim.kill();
    assert!(common::wait_card(
        reader.name,
        false,
        Duration::from_secs(10)
    ));

    // The same key, which drops off the reader on its first FIDO2 command
    // (the getAssertion that proves the credential).
    let faulty = [
        "--serial",
        "7006",
        "--state",
        state_dir,
        "--fault",
        "disconnect-mid-command",
    ];
    sim = spawn_sim(&reader, &faulty);
    let before = snapshot(&st);
    let o = run(st.kw().args(["return", "--json", "--device", reader.name]));
    assert_eq!(o.status.code(), Some(3), "no-device class exit code");
    let v = json_of(&o);
    assert_eq!(v["error"]["reason"], "device-removed");
    assert_eq!(v["error"]["step"], "get-assertion");
    assert_eq!(binding_state(&st, &b), "active");
    assert_eq!(snapshot(&st), before);
    sim.kill();
    assert!(common::wait_card(
        reader.name,
        false,
        Duration::from_secs(10)
    ));

    // Re-inserted and behaving: the return goes through.
    sim = spawn_sim(&reader, &["--serial", "7006", "--state", state_dir]);
    let o = run(st.kw().args(["return", "--json", "--device", reader.name]));
    assert!(o.status.success());
    assert_eq!(json_of(&o)["stock"], "in_stock");
    assert_eq!(binding_state(&st, &b), "returned");
    audit_ok(&st);
    sim.kill();
}

#[test]
#[ignore = "needs the test rig: pcscd + vpcd (scripts/test runs it)"]
fn a_key_with_no_binding_is_stocked_only_with_the_danger_flag() {
    require_rig();
    let st = Station::new();
    let sim = start_sim(&["--serial", "7007"]);
    let reader = sim.reader.name;
    make_piv_credential(reader);
    // The ledger must exist for the comparison below.
    drop(st.ledger());
    let before = snapshot(&st);
    let o = run(st.kw().args(["return", "--json", "--device", reader]));
    assert_eq!(o.status.code(), Some(1));
    let v = json_of(&o);
    assert_eq!(v["error"]["reason"], "not-bound");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("--danger-allow-unbound")
    );
    assert_eq!(snapshot(&st), before);
    // The key was not reset.
    let info: Value = serde_json::from_str(&run_ok(
        keyward().args(["piv", "info", "--json", "--device", reader]),
    ))
    .unwrap();
    assert_eq!(info["pin_is_default"], false);

    let o = run(st.kw().args([
        "return",
        "--json",
        "--danger-allow-unbound",
        "--device",
        reader,
    ]));
    assert!(o.status.success());
    let v = json_of(&o);
    assert!(v["binding"].is_null());
    assert_eq!(v["stock"], "in_stock");
    let s = st.ledger().stock_for_serial("7007").unwrap().unwrap();
    assert_eq!(s.state, keyward::store::stock::StockState::InStock);
    let rows = st.ledger().audit_rows(0, 0).unwrap();
    let started = rows
        .iter()
        .find(|r| r.action == "device.return_started")
        .unwrap();
    assert_eq!(started.entity_id, "7007");
    assert_eq!(started.detail["proof"]["unbound"], true);
    audit_ok(&st);
}
