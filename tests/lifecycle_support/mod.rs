//! Helpers of tests/provision_lifecycle.rs: a station (issuer key, config
//! trusting the simulator CAs, ledger), bindings made from facts read off
//! simulated keys or by a real enrollment, and simulators that can be
//! unplugged and plugged in again with their state.
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use crate::common::{self, keyward, run_ok, tempdir};
use keyward::ctap::commands::client_pin::permission;
use keyward::ctap::commands::make_credential::{MakeCredential, User};
use keyward::ctap::{Ctap2, PinProtocol, cbor};
use keyward::piv::{KeyAlgorithm, ManagementKey, PinPolicy, PivCard, Slot, TouchPolicy};
use keyward::store::{CredentialRecord, DeviceRecord, EnrollmentRecord, Ledger, TicketRecord};
use keyward::transport::pcsc::PcscTransport;
use serde_json::Value;
use zeroize::Zeroizing;

pub const ISS: &str = "https://idp.example.org";
pub const STATION: &str = "kiosk-1";
pub const RP: &str = "example.org";
pub const FIDO_PIN: &str = "fido-pin-4821";
pub const PIV_PIN: &str = "735194";
pub const NEW_PIN: &str = "951847";
pub const PUK: &str = "12345678";
pub const NEW_PUK: &str = "80461735";

/// A station: issuer key, config (trusting the simulator CAs), ledger.
pub struct Station {
    pub dir: tempfile::TempDir,
}

impl Station {
    pub fn new() -> Station {
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

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn db(&self) -> PathBuf {
        self.path("ledger.db")
    }

    pub fn ledger(&self) -> Ledger {
        Ledger::open_default_key(&self.db()).unwrap()
    }

    /// `keyward --config ... ARGS`
    pub fn kw(&self) -> Command {
        let mut c = keyward();
        c.arg("--config").arg(self.path("keyward.toml"));
        c
    }

    /// A signed ticket for `sub` with `ops`, written to a file.
    pub fn ticket(&self, name: &str, sub: &str, ops: &[&str], policy: &str) -> PathBuf {
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

    pub fn count(&self, sql: &str) -> i64 {
        let c = rusqlite::Connection::open_with_flags(
            self.db(),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .unwrap();
        c.query_row(sql, [], |r| r.get(0)).unwrap()
    }
}

/// Run with `stdin` and capture everything.
pub fn run_in(cmd: &mut Command, stdin: &str) -> Output {
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

pub fn json_of(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("stdout is not JSON: {e}"))
}

/// A FIDO2 credential made on the simulated key over PC/SC: PIN set,
/// makeCredential (credProtect 2, rk), as an enrollment leaves it.
pub fn make_fido_credential(reader: &str) -> CredentialRecord {
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
pub fn make_piv_credential(reader: &str) -> (u32, CredentialRecord) {
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
        &keyward::piv::Pin::from(PIV_PIN),
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
pub fn bind(
    st: &Station,
    subject: &str,
    serial: u32,
    credentials: Vec<CredentialRecord>,
) -> String {
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
pub fn enroll(st: &Station, reader: &str, sub: &str, pin: &str) -> (String, keyward::piv::Puk) {
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

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

pub fn binding_state(st: &Station, id: &str) -> String {
    st.ledger().show_binding(id).unwrap().summary.state
}

/// Everything a run may write, to compare before and after a refusal.
pub fn snapshot(st: &Station) -> [i64; 4] {
    [
        st.count("SELECT count(*) FROM tickets"),
        // Every run queues run.finished, refused or not: not a change.
        st.count("SELECT count(*) FROM outbox WHERE kind <> 'run.finished'"),
        st.count("SELECT count(*) FROM stock"),
        st.count("SELECT count(*) FROM bindings WHERE state = 'active'"),
    ]
}

pub fn audit_ok(st: &Station) {
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

/// Block the PIV PIN with wrong tries.
pub fn block_pin(reader: &str) {
    let mut card = PivCard::open(Some(reader)).unwrap();
    let wrong = keyward::piv::Pin::from("000000");
    for _ in 0..3 {
        let _ = card.verify_pin(&wrong);
    }
    let e = card.verify_pin(&wrong).unwrap_err();
    assert!(matches!(e, keyward::piv::PivError::PinBlocked), "{e}");
}

pub fn pin_works(reader: &str, pin: &str) -> bool {
    let mut card = PivCard::open(Some(reader)).unwrap();
    card.verify_pin(&keyward::piv::Pin::from(pin)).is_ok()
}

pub fn unblock(st: &Station, reader: &str, ticket: &Path, secrets: &str, extra: &[&str]) -> Output {
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

pub fn no_secret_in(o: &Output, st: &Station, puk: &str) {
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

/// A simulator process, killed when dropped (also when a test fails).
pub struct SimProc(pub std::process::Child);

impl SimProc {
    pub fn kill(&mut self) {
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
pub fn spawn_sim(reader: &common::Reader, args: &[&str]) -> SimProc {
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

/// `keyward return` on `reader` in the background; the receiver gets a
/// message when it asks for the key to be re-inserted, the handle returns
/// its whole stderr.
pub fn spawn_return(
    st: &Station,
    reader: &str,
) -> (
    std::process::Child,
    std::sync::mpsc::Receiver<()>,
    std::thread::JoinHandle<String>,
) {
    let mut child = st
        .kw()
        .args([
            "return",
            "--json",
            "--reinsert-timeout",
            "30",
            "--device",
            reader,
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
    (child, rx, lines)
}
