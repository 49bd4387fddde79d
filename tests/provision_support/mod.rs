//! A station for the workflow tests, built the way production builds one:
//! a keyward.toml in a temporary directory (two issuer keys with distinct
//! approvers, the simulator's attestation roots, policy profiles) loaded by
//! `Config::load` and turned into a `Station`; tickets signed by the
//! issuer keys.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::Arc;

use keyward::config::Config;
use keyward::ctap::Pin;
use keyward::provision::{EnrollRequest, Event, KeyTarget, PinChoice, Station};
use keyward::sim::DeviceProfile;
use keyward::sim::ca::SimCa;
use keyward::sim::device::{SimDevice, SimOptions};
use keyward::ticket::{
    self, Audience, Claims, Evidence, Fido2Op, Op, PivOp, SigningKey, TicketAlg,
};
use zeroize::Zeroizing;

pub const STATION: &str = "kiosk-test-01";
pub const ISS: &str = "https://idp.example.test";
pub const SUB: &str = "alice@example.test";
pub const RP: &str = "example.test";
/// A PIN that passes the test profiles (6-8 digits, not trivial): usable
/// for FIDO2 and PIV alike.
pub const PIN: &str = "58213947";

pub const PROFILES: &str = r#"
[policy.profiles.standard]
description = "kiosk enrollment"
pin = { min_length = 6, max_length = 8, digits_only = true }

[policy.profiles.privileged]
description = "administrators: replacement under dual control"
privileged = true
pin = { min_length = 6, max_length = 8 }

[policy.profiles.yubico-only]
attestation = { allowed_aaguids = ["cb69481e-8ff7-4039-93ec-0a2729a154a8"] }

[policy.profiles.fresh]
reset_before_enroll = true

[policy.profiles.ea-required]
enterprise_attestation = "required"

[policy.profiles.waived]
[policy.profiles.waived.attestation]
allowed_aaguids = ["cb69481e-8ff7-4039-93ec-0a2729a154a8"]
[[policy.profiles.waived.attestation.exceptions]]
aaguid = "6b657977-6172-642d-7369-6d2d6669646f"
waive = ["aaguid"]
reason = "pilot of simulated keys"
approver = "ciso@example.test"
expires = "2030-01-01T00:00:00Z"

[policy.profiles.waiver-expired]
[policy.profiles.waiver-expired.attestation]
allowed_aaguids = ["cb69481e-8ff7-4039-93ec-0a2729a154a8"]
[[policy.profiles.waiver-expired.attestation.exceptions]]
aaguid = "6b657977-6172-642d-7369-6d2d6669646f"
waive = ["aaguid"]
reason = "old pilot"
approver = "ciso@example.test"
expires = "2020-01-01T00:00:00Z"
"#;

pub struct Rig {
    pub dir: tempfile::TempDir,
    pub db: PathBuf,
    pub config: PathBuf,
    pub alice: SigningKey,
    pub bob: SigningKey,
    pub station: Station,
}

fn key(n: u8) -> SigningKey {
    let mut seed = [n; 32];
    loop {
        match SigningKey::generate(TicketAlg::EdDsa, &Zeroizing::new(seed)) {
            Ok((k, _)) => return k,
            Err(_) => seed[0] = seed[0].wrapping_add(1),
        }
    }
}

/// The configuration text for a station in `dir`.
pub fn config_text(dir: &std::path::Path) -> String {
    format!(
        r#"station = "{STATION}"
actor = "test-operator"
ledger = "ledger.db"

[[ticket.issuers]]
iss = "{ISS}"
allowed_ops = ["fido2", "piv", "replace"]
keys = [{{ path = "alice.jwk", kid = "alice-1", approver = "alice" }},
        {{ path = "bob.jwk", kid = "bob-1", approver = "bob" }}]

[attestation]
bundled = true
danger_trust_simulator = true
{PROFILES}"#
    )
    .replace("ledger.db", &dir.join("ledger.db").display().to_string())
}

pub fn rig() -> Rig {
    rig_with(|t| t)
}

/// A rig whose configuration text `edit` changes first.
pub fn rig_with(edit: impl FnOnce(String) -> String) -> Rig {
    let dir = tempfile::tempdir().expect("tempdir");
    let alice = key(7);
    let bob = key(9);
    for (name, k, kid) in [("alice.jwk", &alice, "alice-1"), ("bob.jwk", &bob, "bob-1")] {
        std::fs::write(
            dir.path().join(name),
            serde_json::to_string(&k.public().to_jwk(kid)).unwrap(),
        )
        .unwrap();
    }
    let config = dir.path().join("keyward.toml");
    std::fs::write(&config, edit(config_text(dir.path()))).unwrap();
    let cfg = Config::load(&config).expect("config");
    let db = dir.path().join("ledger.db");
    let station = cfg.station(&db).expect("station");
    Rig {
        dir,
        db,
        config,
        alice,
        bob,
        station,
    }
}

pub fn now() -> i64 {
    jiff::Timestamp::now().as_second()
}

/// Good claims for one FIDO2 credential under `policy`.
pub fn claims(policy: &str) -> Claims {
    let now = now();
    let mut jti = [0u8; 16];
    keyward::random::fill(&mut jti);
    Claims {
        ver: ticket::VERSION,
        iss: ISS.into(),
        sub: SUB.into(),
        aud: Audience::One(STATION.into()),
        iat: now - 5,
        nbf: now - 5,
        exp: now + 600,
        jti: hex::encode(jti),
        ial: 2,
        evidence: Evidence {
            method: "in_person_document".into(),
            verifier: "helpdesk-7".into(),
            time: None,
            reference: None,
        },
        ops: vec![fido_op()],
        replaces: None,
        device: None,
        policy: policy.into(),
        approvals: 1,
    }
}

pub fn fido_op() -> Op {
    Op::Fido2(Fido2Op {
        rp_id: RP.into(),
        user: None,
        user_name: Some(SUB.into()),
    })
}

pub fn piv_op(slot: &str, alg: &str) -> Op {
    Op::Piv(PivOp {
        slot: slot.into(),
        alg: alg.into(),
        pin_policy: Some("once".into()),
        touch_policy: Some("never".into()),
    })
}

impl Rig {
    /// Signed by alice alone (compact).
    pub fn ticket(&self, c: &Claims) -> Vec<u8> {
        ticket::sign_compact(c, &self.alice, "alice-1")
            .unwrap()
            .into_bytes()
    }

    /// Signed by alice and co-signed by bob (JSON general serialization).
    pub fn dual_ticket(&self, c: &Claims) -> Vec<u8> {
        let one = self.ticket(c);
        ticket::cosign(&one, &self.bob, "bob-1")
            .unwrap()
            .into_bytes()
    }

    /// (bindings, consumed tickets, outbox events) in the ledger; the
    /// events leave out `run.finished`, which every run queues, failed or
    /// not ([`Rig::run_events`]).
    pub fn counts(&self) -> (usize, usize, usize) {
        let l = self.station.ledger.lock().unwrap();
        let b = l.list_bindings(None, None).unwrap().len();
        let o = l
            .outbox_pending(10_000)
            .unwrap()
            .iter()
            .filter(|e| e.kind != "run.finished")
            .count();
        drop(l);
        (b, count(&self.db, "SELECT count(*) FROM tickets"), o)
    }
}

impl Rig {
    /// The payloads of the `run.finished` events queued so far, oldest first.
    pub fn run_events(&self) -> Vec<serde_json::Value> {
        let l = self.station.ledger.lock().unwrap();
        l.outbox_pending(10_000)
            .unwrap()
            .into_iter()
            .filter(|e| e.kind == "run.finished")
            .map(|e| e.payload)
            .collect()
    }
}

/// One integer from the ledger file, read through a separate connection.
pub fn count(db: &std::path::Path, sql: &str) -> usize {
    let c = rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .unwrap();
    c.query_row(sql, [], |r| r.get::<_, i64>(0)).unwrap() as usize
}

/// A fresh in-process key whose simulated person touches as `person` says,
/// and which gives up waiting for a touch after `touch_timeout`.
pub fn sim_device_with(
    serial: u32,
    person: keyward::sim::Person,
    touch_timeout: std::time::Duration,
) -> SimDevice {
    let ca = Arc::new(SimCa::from_seed(SimCa::DEFAULT_SEED).unwrap());
    let mut opts = SimOptions::new(
        DeviceProfile {
            serial,
            ..DeviceProfile::default()
        },
        ca,
    );
    opts.person = person;
    opts.touch_timeout = touch_timeout;
    SimDevice::new(&opts)
}

/// A fresh in-process simulated key (FIDO2 + PIV) with `serial`.
pub fn sim_device(serial: u32) -> SimDevice {
    let ca = Arc::new(SimCa::from_seed(SimCa::DEFAULT_SEED).unwrap());
    let profile = DeviceProfile {
        serial,
        ..DeviceProfile::default()
    };
    SimDevice::new(&SimOptions::new(profile, ca))
}

pub fn request(ticket: Vec<u8>, target: KeyTarget, pin: &str) -> EnrollRequest {
    EnrollRequest::new(
        ticket,
        target,
        PinChoice::Given(Pin::new(Zeroizing::new(pin.to_string()))),
    )
}

/// The step names of the `step-started` events, in order.
pub fn started(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::StepStarted { step, .. } => Some(step.to_string()),
            _ => None,
        })
        .collect()
}

/// `common::start_sim` with `--serial SERIAL`, checked: the card that
/// appears must report that serial. A reader whose port is held by a
/// simulator someone started without a lease shows a foreign card; that
/// reader is kept leased (so it is not handed out again) and another one is
/// tried.
pub fn own_sim(serial: u32, extra: &[&str]) -> crate::common::Sim {
    let s = serial.to_string();
    let mut args = vec!["--serial", s.as_str()];
    args.extend_from_slice(extra);
    let mut foreign = Vec::new();
    let mut held = Vec::new();
    for _ in 0..8 {
        let reader = crate::common::lease_reader();
        // A card that stays more than a second after the lease is not a
        // previous test's (their simulators are gone when they release the
        // reader): skip that reader quickly.
        if !crate::common::wait_card(reader.name, false, std::time::Duration::from_secs(1)) {
            eprintln!(
                "reader {:?} holds a card nobody leased; trying another",
                reader.name
            );
            held.push(reader);
            continue;
        }
        let sim = crate::common::start_sim_on(reader, &args);
        let ctx = pcsc::Context::establish(pcsc::Scope::System).expect("pcscd");
        let found = keyward::detect::identify::probe_reader_settled(&ctx, sim.reader.name)
            .ok()
            .and_then(|i| i.serial);
        if found == Some(serial) {
            // Detection monitors of other processes probe a card shortly
            // after it arrives (a SELECT, which ends a pending CTAP request
            // on a real key too); let that pass before the test starts.
            std::thread::sleep(std::time::Duration::from_millis(1500));
            return sim;
        }
        eprintln!(
            "reader {:?} shows a foreign card (serial {found:?}); trying another",
            sim.reader.name
        );
        foreign.push(sim);
    }
    panic!("no vpcd reader gave this test its own card");
}
