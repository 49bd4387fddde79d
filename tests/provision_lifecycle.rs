//! Revoke, return to stock and help-desk unblock, end to end: the
//! `keyward` binary against simulated keys attached to pcscd through vpcd,
//! a real on-disk ledger, and tickets signed by `keyward ticket`. The
//! bindings are made from facts read from the simulated keys (real serial,
//! real FIDO2 credential over PC/SC, real PIV key with its attestation).

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::{Sim, keyward, rig, run, run_ok, start_sim, tempdir};
use keyward::ctap::commands::client_pin::permission;
use keyward::ctap::commands::make_credential::{MakeCredential, User};
use keyward::ctap::{Ctap2, PinProtocol, cbor};
use keyward::piv::{KeyAlgorithm, ManagementKey, PinPolicy, PivCard, Slot, TouchPolicy};
use keyward::store::{CredentialRecord, DeviceRecord, EnrollmentRecord, Ledger, TicketRecord};
use keyward::transport::pcsc::PcscTransport;
use serde_json::Value;
use zeroize::Zeroizing;

const ISS: &str = "https://idp.example.org";
const STATION: &str = "kiosk-1";
const RP: &str = "example.org";
const FIDO_PIN: &str = "fido-pin-4821";
const PIV_PIN: &str = "735194";
const NEW_PIN: &str = "951847";
const PUK: &str = "12345678";
const NEW_PUK: &str = "80461735";

/// A station: issuer key, config (trusting the simulator CAs), ledger.
struct Station {
    dir: tempfile::TempDir,
}

impl Station {
    fn new() -> Station {
        let dir = tempdir();
        let d = dir.path();
        run_ok(
            keyward()
                .args(["ticket", "keygen", "--kid", "idp-1", "--out"])
                .arg(d.join("idp.pem")),
        );
        let config = format!(
            r#"station = "{STATION}"
actor = "helpdesk:test"
ledger = "ledger.db"

[[ticket.issuers]]
iss = "{ISS}"
allowed_ops = ["fido2", "piv", "unblock"]
  [[ticket.issuers.keys]]
  path = "idp.pem.pub.jwk"

[attestation]
bundled = false
danger_trust_simulator = true

[policy.profiles.default.unblock]
allow_puk_rotation = true

[policy.profiles.strict]
description = "no PUK rotation at the help desk"
"#
        );
        std::fs::write(d.join("keyward.toml"), config).unwrap();
        Station { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn db(&self) -> PathBuf {
        self.path("ledger.db")
    }

    fn ledger(&self) -> Ledger {
        Ledger::open_default_key(&self.db()).unwrap()
    }

    /// `keyward --config ... ARGS`
    fn kw(&self) -> Command {
        let mut c = keyward();
        c.arg("--config").arg(self.path("keyward.toml"));
        c
    }

    /// A signed ticket for `sub` with `ops`, written to a file.
    fn ticket(&self, name: &str, sub: &str, ops: &[&str], policy: &str) -> PathBuf {
        let out = self.path(name);
        let mut c = keyward();
        c.args([
            "ticket", "issue", "--kid", "idp-1", "--iss", ISS, "--sub", sub,
        ])
        .args(["--aud", STATION, "--policy", policy, "--ial", "2", "--key"])
        .arg(self.path("idp.pem"))
        .arg("--out")
        .arg(&out);
        for op in ops {
            c.args(["--op", op]);
        }
        run_ok(&mut c);
        out
    }

    fn count(&self, sql: &str) -> i64 {
        let c = rusqlite::Connection::open_with_flags(
            self.db(),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .unwrap();
        c.query_row(sql, [], |r| r.get(0)).unwrap()
    }
}

/// Run with `stdin` and capture everything.
fn run_in(cmd: &mut Command, stdin: &str) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn keyward");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    eprintln!(
        "$ {cmd:?}\n-> {}\n--- stdout\n{}--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn json_of(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("stdout is not JSON: {e}"))
}

/// A FIDO2 credential made on the simulated key over PC/SC: PIN set,
/// makeCredential (credProtect 2, rk), as an enrollment leaves it.
fn make_fido_credential(reader: &str) -> CredentialRecord {
    // Other programs probe a card as it arrives; a PC/SC error on the very
    // first SELECT is retried.
    let mut tries = 0;
    let t = loop {
        std::thread::sleep(Duration::from_millis(200));
        match PcscTransport::open(reader, None, Duration::from_secs(5)) {
            Err(e) if tries < 5 => {
                eprintln!("opening the FIDO2 applet: {e}; again");
                tries += 1;
            }
            r => break r.unwrap(),
        }
    };
    let mut c = Ctap2::new(t);
    c.set_timeout(Duration::from_secs(20));
    let pin = keyward::ctap::Pin::new(Zeroizing::new(FIDO_PIN.to_string()));
    c.set_pin(PinProtocol::V2, &pin).unwrap();
    let tok = c
        .pin_token(
            PinProtocol::V2,
            &pin,
            Some(permission::MAKE_CREDENTIAL),
            Some(RP),
        )
        .unwrap();
    let mc = MakeCredential {
        client_data_hash: [7; 32],
        rp_id: RP.into(),
        user: User {
            id: b"user-1".to_vec(),
            name: Some("alice".into()),
            display_name: None,
        },
        algorithms: vec![-7],
        cred_protect: Some(2),
        rk: Some(true),
        ..MakeCredential::default()
    };
    let att = c.make_credential(&mc, Some(&tok)).unwrap();
    let cred = att.auth_data.attested.unwrap();
    CredentialRecord {
        kind: "fido2".into(),
        credential_id: Some(cred.credential_id),
        rp_id: Some(RP.into()),
        slot: None,
        algorithm: "ES256".into(),
        public_key: cbor::encode(&cred.public_key),
        attestation: None,
        attestation_format: Some(att.fmt),
    }
}

/// A P-256 key generated in slot 9a of the simulated key (factory
/// management key), PIN changed from the factory one.
fn make_piv_credential(reader: &str) -> (u32, CredentialRecord) {
    std::thread::sleep(Duration::from_millis(200));
    let mut card = PivCard::open(Some(reader)).unwrap();
    let mgm = ManagementKey::factory_default("aes192".parse().unwrap());
    card.authenticate(&mgm).unwrap();
    let spki = card
        .generate(
            Slot::Authentication,
            "p256".parse::<KeyAlgorithm>().unwrap(),
            "once".parse::<PinPolicy>().unwrap(),
            "never".parse::<TouchPolicy>().unwrap(),
        )
        .unwrap();
    card.change_pin(
        &keyward::piv::Pin::factory_default(),
        &keyward::piv::Pin::new(PIV_PIN.as_bytes()).unwrap(),
    )
    .unwrap();
    let serial = card.serial();
    (
        serial,
        CredentialRecord {
            kind: "piv".into(),
            credential_id: None,
            rp_id: None,
            slot: Some("9a".into()),
            algorithm: "p256".into(),
            public_key: spki,
            attestation: None,
            attestation_format: Some("yubico-piv".into()),
        },
    )
}

/// Commit a binding of `serial` to `subject` with `credentials`.
fn bind(st: &Station, subject: &str, serial: u32, credentials: Vec<CredentialRecord>) -> String {
    let mut jti = [0u8; 16];
    getrandom::fill(&mut jti).unwrap();
    let rec = EnrollmentRecord {
        subject: subject.into(),
        ticket: TicketRecord {
            jti: hex::encode(jti),
            digest: "cd".repeat(32),
            issuer: ISS.into(),
            ial: Some(2),
        },
        device: DeviceRecord {
            kind: "yubikey".into(),
            serial: Some(serial.to_string()),
            aaguid: None,
            model: None,
            firmware: Some("5.7.1".into()),
        },
        policy: Some("default".into()),
        credentials,
        actor: "enroll:test".into(),
    };
    st.ledger().commit_enrollment(&rec, now()).unwrap()
}

/// A real enrollment (`provision::enroll`) of FIDO2 + PIV 9a on the key in
/// `reader`, with PIN `pin`; returns the binding and the PUK the enrollment
/// set on the card.
fn enroll(st: &Station, reader: &str, sub: &str, pin: &str) -> (String, keyward::piv::Puk) {
    let t = st.ticket(
        &format!("enroll-{sub}.jwt"),
        sub,
        &[
            &format!("fido2:rp_id={RP},name={sub}"),
            "piv:slot=9a,alg=p256,pin_policy=once,touch_policy=never",
        ],
        "default",
    );
    let config = keyward::config::Config::load(&st.path("keyward.toml")).unwrap();
    let station = config.station(&st.db()).unwrap();
    let ticket = std::fs::read(t).unwrap();
    // Other programs on this rig (device monitors, daemons) probe a card
    // the moment it arrives, and a SELECT of theirs between two commands of
    // the PIV client sends the second to the wrong applet. A failure while
    // identifying the key changes nothing, so that step is simply retried.
    let mut tries = 0;
    let o = loop {
        std::thread::sleep(Duration::from_millis(300));
        let req = keyward::provision::EnrollRequest::new(
            ticket.clone(),
            keyward::provision::KeyTarget::Reader(reader.to_string()),
            keyward::provision::PinChoice::Given(keyward::ctap::Pin::new(Zeroizing::new(
                pin.to_string(),
            ))),
        );
        match keyward::provision::enroll(
            &station,
            req,
            &keyward::provision::NoEvents,
            &keyward::provision::Cancel::new(),
        ) {
            Err(e) if e.step == Some(keyward::provision::Step::Identify) && tries < 3 => {
                eprintln!("enrollment hit a busy reader ({e}); again");
                tries += 1;
            }
            r => break r.expect("enrollment through pcscd"),
        }
    };
    (o.binding, o.generated_puk.expect("enrollment sets a PUK"))
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn binding_state(st: &Station, id: &str) -> String {
    st.ledger().show_binding(id).unwrap().summary.state
}

/// Everything a run may write, to compare before and after a refusal.
fn snapshot(st: &Station) -> [i64; 4] {
    [
        st.count("SELECT count(*) FROM tickets"),
        st.count("SELECT count(*) FROM outbox"),
        st.count("SELECT count(*) FROM stock"),
        st.count("SELECT count(*) FROM bindings WHERE state = 'active'"),
    ]
}

fn audit_ok(st: &Station) {
    let out = run_ok(
        keyward()
            .args(["audit", "verify", "--json", "--db"])
            .arg(st.db()),
    );
    let v: Value = serde_json::from_str(&out).unwrap();
    assert!(
        v["audit"]["problem"].is_null() && v["audit"]["rows"].as_i64() > Some(0),
        "{v}"
    );
}

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
fn return_to_stock_proves_the_key_resets_it_and_stocks_it() {
    if !rig() {
        return;
    }
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
    assert!(stderr.contains("Touch the key"), "{stderr}");

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
fn return_refuses_a_key_with_the_bound_serial_but_not_the_bound_credentials() {
    if !rig() {
        return;
    }
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

/// Block the PIV PIN with wrong tries.
fn block_pin(reader: &str) {
    let mut card = PivCard::open(Some(reader)).unwrap();
    let wrong = keyward::piv::Pin::new(b"000000".to_vec()).unwrap();
    for _ in 0..3 {
        let _ = card.verify_pin(&wrong);
    }
    let e = card.verify_pin(&wrong).unwrap_err();
    assert!(matches!(e, keyward::piv::PivError::PinBlocked), "{e}");
}

fn pin_works(reader: &str, pin: &str) -> bool {
    let mut card = PivCard::open(Some(reader)).unwrap();
    card.verify_pin(&keyward::piv::Pin::new(pin.as_bytes()).unwrap())
        .is_ok()
}

fn unblock(st: &Station, reader: &str, ticket: &Path, secrets: &str, extra: &[&str]) -> Output {
    // Most verbose logging: no secret may reach the log either.
    run_in(
        st.kw()
            .env("RUST_LOG", "trace")
            .args([
                "unblock", "--json", "--device", reader, "--puk-fd", "0", "--pin-fd", "0",
            ])
            .arg("--ticket")
            .arg(ticket)
            .args(extra),
        secrets,
    )
}

fn no_secret_in(o: &Output, st: &Station, puk: &str) {
    let mut all = o.stdout.clone();
    all.extend_from_slice(&o.stderr);
    for f in ["ledger.db", "ledger.db-wal"] {
        if let Ok(b) = std::fs::read(st.path(f)) {
            all.extend_from_slice(&b);
        }
    }
    for s in [NEW_PIN, puk, NEW_PUK, PIV_PIN] {
        assert!(
            !all.windows(s.len()).any(|w| w == s.as_bytes()),
            "secret {s} leaked into output or ledger"
        );
    }
}

#[test]
fn unblock_with_the_puk_after_the_pin_is_blocked_and_its_refusals() {
    if !rig() {
        return;
    }
    let st = Station::new();
    let sim = start_sim(&["--serial", "7003"]);
    let reader = sim.reader.name;
    let (b, puk) = enroll(&st, reader, "alice", PIV_PIN);
    let puk = std::str::from_utf8(puk.expose_secret())
        .unwrap()
        .to_string();
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
    assert_eq!(o.status.code(), Some(5));
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
    assert!(st.ledger().ticket_consumed(jti).unwrap().is_some());
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
    assert_eq!(o.status.code(), Some(5));
    assert_eq!(json_of(&o)["error"]["reason"], "ticket-replayed");
    no_secret_in(&o, &st, &puk);
    audit_ok(&st);
}

#[test]
fn unblock_refuses_a_fido2_only_key_as_a_reenrollment() {
    if !rig() {
        return;
    }
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
    assert_eq!(v["error"]["reason"], "fido2-reset-only");
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(msg.contains("re-enrollment under a new ticket"), "{msg}");
    assert_eq!(snapshot(&st), before);
    drop::<Sim>(sim);
}

/// A simulator process, killed when dropped (also when a test fails).
struct SimProc(std::process::Child);

impl SimProc {
    fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for SimProc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A `keyward sim` on a leased reader, spawned here so it can be stopped
/// and started again on the same reader with the same `--state`.
fn spawn_sim(reader: &common::Reader, args: &[&str]) -> SimProc {
    let child = keyward()
        .args(["sim", "--vpcd", &reader.addr()])
        .args(args)
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let child = SimProc(child);
    assert!(
        common::wait_card(reader.name, true, Duration::from_secs(15)),
        "card never appeared in {}",
        reader.name
    );
    child
}

#[test]
fn return_asks_to_reinsert_for_the_fido2_reset_and_a_run_cut_short_is_resumed() {
    if !rig() {
        return;
    }
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

    // Nobody re-inserts the key: the run fails after closing the binding,
    // and the key stays quarantined (never stocked, never bound again).
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

    // Run again: the return resumes at the reset, and this time the key is
    // re-inserted when asked.
    let mut child = st
        .kw()
        .args([
            "return",
            "--json",
            "--reinsert-timeout",
            "30",
            "--device",
            reader.name,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let lines = std::thread::spawn(move || {
        use std::io::BufRead;
        let mut all = String::new();
        for l in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            if l.contains("insert it again") {
                let _ = tx.send(());
            }
            all.push_str(&l);
            all.push('\n');
        }
        all
    });
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
fn a_key_pulled_during_the_identity_proof_leaves_everything_as_it_was() {
    if !rig() {
        return;
    }
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
fn a_key_with_no_binding_is_stocked_only_with_the_danger_flag() {
    if !rig() {
        return;
    }
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
