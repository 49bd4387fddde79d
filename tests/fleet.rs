//! The fleet (docs/fleet.md): three stations and one registry on loopback,
//! on SQLite and on a real PostgreSQL, each station a real configuration,
//! ledger and workflow with in-process simulated keys. Every property has
//! its attack: a lost key replaced elsewhere and presented again, one
//! ticket at two stations online and offline, a revocation at one station
//! reaching the others, a ledger restored from an older copy.
#![cfg(feature = "sim")]

mod common;
mod provision_support;
mod sync_support;

use keyward::provision::revoke::{RevokeRequest, revoke};
use keyward::provision::{self, Cancel, EventLog, KeyTarget, Reason, Step, record::Books};
use keyward::store::stock::RevokeReason;
use keyward::sync::client::{Client, Drained, Options};
use keyward::ticket::{Audience, Claims, Replaces};
use provision_support::*;
use sync_support::{Db, Kind, RegistryServer};

macro_rules! both {
    ($($name:ident),* $(,)?) => {
        mod on_sqlite { $( #[test] fn $name() { if let Some(db) = super::Db::new(super::Kind::Sqlite) { super::$name(&db) } } )* }
        mod on_postgres { $( #[test] #[ignore = "needs PostgreSQL (scripts/test installs it)"] fn $name() { if let Some(db) = super::Db::new(super::Kind::Postgres) { super::$name(&db) } } )* }
    };
}

both!(
    lost_key_replaced_at_another_station,
    one_ticket_at_two_online_stations,
    a_failed_run_gives_the_ticket_back,
    one_ticket_at_two_offline_stations_is_an_incident,
    revocation_at_one_station_reaches_the_others,
    registry_revocation_reaches_the_station,
    provisional_replacement_is_checked_at_sync,
);

/// A station with a registry in `[sync]`.
struct Kiosk {
    id: String,
    rig: Rig,
}

fn kiosk(id: &str, url: &str, extra: &str) -> Kiosk {
    let rig = rig_with(|t| {
        let t = t.replace(
            &format!("station = \"{STATION}\""),
            &format!("station = \"{id}\""),
        );
        format!("{t}\n[sync]\nregistry = \"{url}\"\n{extra}\n")
    });
    Kiosk { id: id.into(), rig }
}

fn fleet(reg: &RegistryServer, ids: &[&str], extra: &str) -> Vec<Kiosk> {
    ids.iter()
        .map(|id| {
            let k = kiosk(id, &reg.url(), extra);
            let key = k
                .rig
                .station
                .ledger
                .lock()
                .unwrap()
                .station_key()
                .unwrap()
                .public_key();
            reg.enroll(id, &key);
            k
        })
        .collect()
}

fn sync(reg: &RegistryServer, k: &Kiosk) -> Drained {
    let client = Client::new(Options::new(&reg.url(), &k.id)).unwrap();
    let mut l = k.rig.station.ledger.lock().unwrap();
    reg.rt
        .block_on(client.sync(&mut l, sync_support::now))
        .expect("sync")
}

fn ticket(k: &Kiosk, c: &Claims) -> Vec<u8> {
    k.rig.ticket(c)
}

fn claims_for(aud: &[&str]) -> Claims {
    let mut c = claims("standard");
    c.aud = if aud.len() == 1 {
        Audience::One(aud[0].into())
    } else {
        Audience::Many(aud.iter().map(|s| s.to_string()).collect())
    };
    c
}

fn enroll(
    k: &Kiosk,
    t: Vec<u8>,
    serial: u32,
    log: &EventLog,
) -> Result<provision::EnrollOutcome, provision::ProvisionError> {
    provision::enroll(
        &k.rig.station,
        request(t, KeyTarget::device(sim_device(serial)), PIN),
        log,
        &Cancel::new(),
    )
}

fn state(k: &Kiosk, binding: &str) -> String {
    k.rig
        .station
        .ledger
        .lock()
        .unwrap()
        .show_binding(binding)
        .unwrap()
        .summary
        .state
}

fn audit_actions(k: &Kiosk) -> Vec<String> {
    let l = k.rig.station.ledger.lock().unwrap();
    let r = l.verify_audit().unwrap();
    assert!(r.ok(), "{}: audit log fails: {:?}", k.id, r.problem);
    l.audit_rows(0, i64::MIN)
        .unwrap()
        .into_iter()
        .map(|r| r.action)
        .collect()
}

fn registry_state(reg: &RegistryServer, binding: &str) -> String {
    reg.bindings()
        .into_iter()
        .find(|b| b.binding_id == binding)
        .unwrap_or_else(|| panic!("binding {binding} not at the registry"))
        .state
}

/// Enrolled at A, lost, replaced at B (whose ledger never saw it): the
/// replacement follows the same rules through the registry, A retires its
/// binding at its next pull, and the lost key is refused at A, B and C.
fn lost_key_replaced_at_another_station(db: &Db) {
    let reg = RegistryServer::start(&db.url);
    let ks = fleet(&reg, &["kiosk-a", "kiosk-b", "kiosk-c"], "");
    let (a, b, c) = (&ks[0], &ks[1], &ks[2]);
    let old = enroll(
        a,
        ticket(a, &claims_for(&["kiosk-a"])),
        41_000_001,
        &EventLog::new(),
    )
    .expect("enrollment at A");
    sync(&reg, a);

    // A replacement ticket with a lower ial than the original is refused at
    // B too: the registry carries the original's ial.
    let mut weak = claims_for(&["kiosk-b"]);
    weak.ial = 1;
    weak.replaces = Some(Replaces {
        serial: Some(41_000_001),
        binding: None,
        reason: "lost".into(),
    });
    let e = provision::replace(
        &b.rig.station,
        request(
            ticket(b, &weak),
            KeyTarget::device(sim_device(41_000_002)),
            PIN,
        ),
        &EventLog::new(),
        &Cancel::new(),
    )
    .expect_err("a weaker recovery");
    assert_eq!(e.reason, Reason::ReplaceIal, "{e}");

    let mut rc = claims_for(&["kiosk-b"]);
    rc.replaces = Some(Replaces {
        serial: Some(41_000_001),
        binding: None,
        reason: "lost".into(),
    });
    let new = provision::replace(
        &b.rig.station,
        request(
            ticket(b, &rc),
            KeyTarget::device(sim_device(41_000_002)),
            PIN,
        ),
        &EventLog::new(),
        &Cancel::new(),
    )
    .expect("replacement at B");
    assert_eq!(new.replaced.as_deref(), Some(old.binding.as_str()));
    let d = sync(&reg, b);
    assert!(d.delivered >= 2, "{d:?}");
    assert_eq!(registry_state(&reg, &old.binding), "replaced");

    // A learns at its next pull, with an audit row.
    let d = sync(&reg, a);
    assert_eq!(d.pulled.transitioned, 1, "{d:?}");
    assert_eq!(state(a, &old.binding), "replaced");
    assert!(audit_actions(a).contains(&"fleet.binding_state".to_string()));
    // A pull again changes nothing.
    assert_eq!(sync(&reg, a).pulled, Default::default());

    // The lost key, found and presented again, is refused everywhere.
    sync(&reg, c);
    for k in [a, b, c] {
        let e = enroll(
            k,
            ticket(k, &claims_for(&[&k.id])),
            41_000_001,
            &EventLog::new(),
        )
        .expect_err("the lost key");
        assert_eq!(e.reason, Reason::DeviceReported, "{}: {e}", k.id);
        assert!(e.message.contains("41000001"), "{e}");
    }
    // B's replacement is a normal binding everywhere.
    assert_eq!(registry_state(&reg, &new.binding), "active");
    assert!(audit_actions(b).contains(&"binding.created".to_string()));
}

/// One ticket, audience A and B, both online: the second station is
/// refused at the reservation, before the key is touched.
fn one_ticket_at_two_online_stations(db: &Db) {
    let reg = RegistryServer::start(&db.url);
    let ks = fleet(&reg, &["kiosk-a", "kiosk-b"], "");
    let (a, b) = (&ks[0], &ks[1]);
    let t = ticket(a, &claims_for(&["kiosk-a", "kiosk-b"]));
    enroll(a, t.clone(), 42_000_001, &EventLog::new()).expect("first use");
    let log = EventLog::new();
    let e = enroll(b, t, 42_000_002, &log).expect_err("second use");
    assert_eq!(e.reason, Reason::TicketReplayed, "{e}");
    assert_eq!(e.step, Some(Step::Reserve));
    assert!(e.message.contains("kiosk-a"), "{e}");
    // Nothing reached the key: no step after the reservation started.
    let started = started(&log.events());
    assert_eq!(started, ["ticket", "policy", "reserve"], "{started:?}");
    assert_eq!(b.rig.counts().0, 0, "B bound nothing");
    // A retry by the holder is answered the same (idempotent), and a
    // forged reservation for another station is refused by its signature
    // (the registry checks the signer is the station named).
    sync(&reg, a);
    assert!(reg.incidents().is_empty());
}

/// A run at B that commits nothing (here: not the pre-assigned key) gives
/// the reservation back, so the person can use the ticket at A.
fn a_failed_run_gives_the_ticket_back(db: &Db) {
    let reg = RegistryServer::start(&db.url);
    let ks = fleet(&reg, &["kiosk-a", "kiosk-b"], "");
    let (a, b) = (&ks[0], &ks[1]);
    let mut c = claims_for(&["kiosk-a", "kiosk-b"]);
    c.device = Some(keyward::ticket::Device {
        serial: 49_000_001,
        model: None,
    });
    let t = ticket(a, &c);
    let e = enroll(b, t.clone(), 49_000_002, &EventLog::new()).expect_err("not the key");
    assert_eq!(e.reason, Reason::DeviceMismatch, "{e}");
    enroll(a, t.clone(), 49_000_001, &EventLog::new()).expect("the ticket was given back");
    // Now held and used by A: B is refused at the reservation.
    let e = enroll(b, t, 49_000_001, &EventLog::new()).expect_err("used at A");
    assert_eq!(e.step, Some(Step::Reserve), "{e}");
}

/// Both stations offline (allowed by their config): both enroll with the
/// same ticket; after both sync, the registry has a ticket-reuse incident
/// for each, and each station's audit log records it.
fn one_ticket_at_two_offline_stations_is_an_incident(db: &Db) {
    let mut reg = RegistryServer::start(&db.url);
    let ks = fleet(&reg, &["kiosk-a", "kiosk-b"], "offline_enrollment = true");
    let (a, b) = (&ks[0], &ks[1]);
    let t = ticket(a, &claims_for(&["kiosk-a", "kiosk-b"]));
    reg.down();
    let one = enroll(a, t.clone(), 43_000_001, &EventLog::new()).expect("offline at A");
    let two = enroll(b, t, 43_000_002, &EventLog::new()).expect("offline at B");
    reg.up();
    sync(&reg, a);
    let d = sync(&reg, b);
    assert_eq!(d.pulled.incidents, 1, "B learns at once: {d:?}");
    let d = sync(&reg, a);
    assert_eq!(d.pulled.incidents, 1, "A learns at its next pull: {d:?}");
    let inc: Vec<_> = reg
        .incidents()
        .into_iter()
        .filter(|i| i.kind == "ticket-reuse")
        .collect();
    let mut stations: Vec<&str> = inc.iter().map(|i| i.station_id.as_str()).collect();
    stations.sort();
    assert_eq!(stations, ["kiosk-a", "kiosk-b"], "{inc:?}");
    assert!(inc[0].detail.contains(&one.binding) && inc[0].detail.contains(&two.binding));
    for k in [a, b] {
        assert!(
            audit_actions(k).contains(&"fleet.incident".to_string()),
            "{}",
            k.id
        );
    }
    // Without offline enrollment allowed, a registry down refuses the
    // enrollment before the key is touched.
    let c = kiosk("kiosk-c", &reg.url(), "");
    reg.down();
    let log = EventLog::new();
    let e = enroll(&c, ticket(&c, &claims_for(&["kiosk-c"])), 43_000_003, &log)
        .expect_err("registry down");
    assert_eq!(e.reason, Reason::RegistryUnavailable, "{e}");
    assert!(e.message.contains("offline_enrollment"), "{e}");
    assert_eq!(started(&log.events()), ["ticket", "policy", "reserve"]);
}

/// A revocation at B of a key A enrolled: the registry applies it, A and C
/// refuse the key after their next pull.
fn revocation_at_one_station_reaches_the_others(db: &Db) {
    let reg = RegistryServer::start(&db.url);
    let ks = fleet(&reg, &["kiosk-a", "kiosk-b", "kiosk-c"], "");
    let (a, b, c) = (&ks[0], &ks[1], &ks[2]);
    let k = enroll(
        a,
        ticket(a, &claims_for(&["kiosk-a"])),
        44_000_001,
        &EventLog::new(),
    )
    .expect("enrollment at A");
    sync(&reg, a);
    let out = revoke(
        Books::of(&b.rig.station),
        &RevokeRequest {
            binding: k.binding.clone(),
            reason: RevokeReason::Stolen,
            operator: None,
        },
    )
    .expect("revoke at B");
    assert_eq!(out.device_serial.as_deref(), Some("44000001"));
    sync(&reg, b);
    assert_eq!(registry_state(&reg, &k.binding), "revoked");
    sync(&reg, a);
    assert_eq!(state(a, &k.binding), "revoked");
    sync(&reg, c);
    for st in [a, b, c] {
        let e = enroll(
            st,
            ticket(st, &claims_for(&[&st.id])),
            44_000_001,
            &EventLog::new(),
        )
        .expect_err("the revoked key");
        assert_eq!(e.reason, Reason::DeviceReported, "{}: {e}", st.id);
        assert!(e.message.contains("revoked"), "{e}");
    }
    // A binding that exists nowhere is refused by name.
    let e = revoke(
        Books::of(&b.rig.station),
        &RevokeRequest {
            binding: "no-such-binding".into(),
            reason: RevokeReason::Lost,
            operator: None,
        },
    )
    .expect_err("unknown binding");
    assert_eq!(e.reason, Reason::BindingNotFound, "{e}");
}

/// `keyward registry revoke` (the registry's own change) reaches the
/// station that enrolled the key.
fn registry_revocation_reaches_the_station(db: &Db) {
    let reg = RegistryServer::start(&db.url);
    let ks = fleet(&reg, &["kiosk-a"], "");
    let a = &ks[0];
    let k = enroll(
        a,
        ticket(a, &claims_for(&["kiosk-a"])),
        45_000_001,
        &EventLog::new(),
    )
    .expect("enrollment");
    sync(&reg, a);
    let changed = reg
        .rt
        .block_on(
            reg.reg
                .set_state(&k.binding, "revoked", "lost", sync_support::now()),
        )
        .unwrap();
    assert!(changed);
    let d = sync(&reg, a);
    assert_eq!(d.pulled.transitioned, 1, "{d:?}");
    assert_eq!(state(a, &k.binding), "revoked");
    // A's echo of the change does not bounce back as a new change.
    let d = sync(&reg, a);
    assert_eq!(d.pulled, Default::default(), "{d:?}");
}

fn replacing(aud: &str, binding: &str, sub: &str, ial: u8) -> Claims {
    let mut c = claims_for(&[aud]);
    c.sub = sub.into();
    c.ial = ial;
    c.replaces = Some(Replaces {
        serial: None,
        binding: Some(binding.into()),
        reason: "lost".into(),
    });
    c
}

/// Registry unreachable, `provisional_replacement` allowed: B replaces by
/// binding id under dual control; the registry checks the rules when the
/// replacement syncs. A replacement for another person leaves the
/// original alone and is an incident; a weaker one is an incident too.
fn provisional_replacement_is_checked_at_sync(db: &Db) {
    let mut reg = RegistryServer::start(&db.url);
    let ks = fleet(
        &reg,
        &["kiosk-a", "kiosk-b"],
        "provisional_replacement = true\noffline_enrollment = true",
    );
    let (a, b) = (&ks[0], &ks[1]);
    let one = enroll(
        a,
        ticket(a, &claims_for(&["kiosk-a"])),
        48_000_001,
        &EventLog::new(),
    )
    .unwrap();
    let mut c2 = claims_for(&["kiosk-a"]);
    c2.sub = "carol@example.test".into();
    let carol = enroll(a, ticket(a, &c2), 48_000_003, &EventLog::new()).unwrap();
    sync(&reg, a);
    reg.down();
    let replace = |c: &Claims, serial: u32, dual: bool| {
        let t = if dual {
            b.rig.dual_ticket(c)
        } else {
            ticket(b, c)
        };
        provision::replace(
            &b.rig.station,
            request(t, KeyTarget::device(sim_device(serial)), PIN),
            &EventLog::new(),
            &Cancel::new(),
        )
    };
    // One approval is not enough when the original cannot be checked.
    let e = replace(
        &replacing("kiosk-b", &one.binding, SUB, 2),
        48_000_010,
        false,
    )
    .expect_err("single approval");
    assert_eq!(e.reason, Reason::ReplaceDualControl, "{e}");
    let good = replace(
        &replacing("kiosk-b", &one.binding, SUB, 2),
        48_000_011,
        true,
    )
    .expect("provisional replacement");
    // Alice's ticket names Carol's binding: allowed offline, caught at sync.
    let wrong = replace(
        &replacing("kiosk-b", &carol.binding, SUB, 2),
        48_000_012,
        true,
    )
    .expect("provisional replacement of another person's binding");
    reg.up();
    sync(&reg, b);
    assert_eq!(registry_state(&reg, &one.binding), "replaced");
    assert_eq!(registry_state(&reg, &carol.binding), "active", "left alone");
    let kinds: Vec<(String, String)> = reg
        .incidents()
        .into_iter()
        .map(|i| (i.station_id, i.kind))
        .collect();
    assert!(
        kinds.contains(&("kiosk-b".into(), "replacement-mismatch".into()))
            && kinds.contains(&("kiosk-a".into(), "replacement-mismatch".into())),
        "{kinds:?}"
    );
    assert!(
        !kinds.iter().any(|(_, k)| k == "replacement-weaker"),
        "{kinds:?}"
    );
    let d = sync(&reg, a);
    assert_eq!(d.pulled.transitioned, 1, "{d:?}");
    assert_eq!(d.pulled.incidents, 1, "{d:?}");
    assert_eq!(state(a, &one.binding), "replaced");
    assert_eq!(state(a, &carol.binding), "active");
    let _ = (good, wrong);
}

/// The fleet routes check the signature and the signer like a push: no
/// headers, another station's name in the body, a stale signature and an
/// unknown station are all refused before anything is read or reserved.
#[test]
fn fleet_routes_refuse_unsigned_forged_and_stale_requests() {
    let db = Db::new(Kind::Sqlite).unwrap();
    let reg = RegistryServer::start(&db.url);
    let ks = fleet(&reg, &["kiosk-a", "kiosk-b"], "");
    let key_b = keyward::store::station_key::StationKey::load_or_create(
        &keyward::store::station_key::path_beside(&ks[1].rig.db),
    )
    .unwrap();
    let http = reqwest::Client::new();
    let post = |path: &str, body: &serde_json::Value, signer: Option<(&str, i64)>| {
        let body = serde_json::to_vec(body).unwrap();
        let mut req = http
            .post(format!("{}{path}", reg.url()))
            .header("content-type", "application/json");
        if let Some((keyid, created)) = signer {
            let h = keyward::sync::signature::sign(
                &key_b,
                "POST",
                path,
                &body,
                keyid,
                created,
                &"ab".repeat(16),
            );
            req = req
                .header("content-digest", h.content_digest)
                .header("signature-input", h.signature_input)
                .header("signature", h.signature);
        }
        reg.rt.block_on(async {
            let r = req.body(body).send().await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        })
    };
    let reserve_as = |station: &str| serde_json::json!({"v": 1, "station": station, "issuer": ISS, "jti": "j-1", "subject": SUB});
    let now = sync_support::now();
    let (s, body) = post("/v1/reserve", &reserve_as("kiosk-b"), None);
    assert_eq!((s, body.contains("unsigned")), (401, true), "{body}");
    // B signs a reservation in A's name.
    let (s, body) = post(
        "/v1/reserve",
        &reserve_as("kiosk-a"),
        Some(("kiosk-b", now)),
    );
    assert_eq!(
        (s, body.contains("station-mismatch")),
        (403, true),
        "{body}"
    );
    // B's key, A's keyid: the signature does not verify with A's key.
    let (s, body) = post(
        "/v1/reserve",
        &reserve_as("kiosk-a"),
        Some(("kiosk-a", now)),
    );
    assert_eq!((s, body.contains("bad-signature")), (401, true), "{body}");
    let (s, body) = post(
        "/v1/pull",
        &serde_json::json!({"v": 1, "station": "kiosk-b", "after": 0, "limit": 10}),
        Some(("kiosk-b", now - 3600)),
    );
    assert_eq!((s, body.contains("stale")), (401, true), "{body}");
    let (s, body) = post(
        "/v1/lookup",
        &serde_json::json!({"v": 1, "station": "kiosk-z", "binding": "x"}),
        Some(("kiosk-z", now)),
    );
    assert_eq!((s, body.contains("unknown-station")), (403, true), "{body}");
    let (s, body) = post(
        "/v1/pull",
        &serde_json::json!({"v": 1, "station": "kiosk-b", "after": 0, "limit": 10, "extra": 1}),
        Some(("kiosk-b", now)),
    );
    assert_eq!((s, body.contains("malformed")), (400, true), "{body}");
    // None of them reserved anything: B's own signed request still gets j-1.
    let (s, body) = post(
        "/v1/reserve",
        &reserve_as("kiosk-b"),
        Some(("kiosk-b", now)),
    );
    assert_eq!(s, 200, "{body}");
}

/// Without a registry a replacement whose original is elsewhere is refused
/// with a message that says how to reach it.
#[test]
fn replacement_of_an_unknown_binding_without_registry_says_why() {
    let r = rig();
    let mut c = claims("standard");
    c.replaces = Some(Replaces {
        serial: Some(46_000_001),
        binding: None,
        reason: "lost".into(),
    });
    let e = provision::replace(
        &r.station,
        request(r.ticket(&c), KeyTarget::device(sim_device(46_000_002)), PIN),
        &EventLog::new(),
        &Cancel::new(),
    )
    .expect_err("no original here");
    assert_eq!(e.reason, Reason::ReplaceNotFound, "{e}");
    assert!(e.message.contains("[sync]"), "{e}");
}

/// A station whose ledger is restored from an older copy: `audit verify
/// --registry` shows it rolled back against the registry's copy (and the
/// next push is refused as a cut, tests/sync.rs).
#[test]
fn restored_ledger_is_shown_by_audit_verify_against_the_registry() {
    let db = Db::new(Kind::Sqlite).unwrap();
    let reg = RegistryServer::start(&db.url);
    let ks = fleet(&reg, &["kiosk-a"], "");
    let a = &ks[0];
    enroll(
        a,
        ticket(a, &claims_for(&["kiosk-a"])),
        47_000_001,
        &EventLog::new(),
    )
    .unwrap();
    sync(&reg, a);
    let old = common::tempdir();
    {
        let c = rusqlite::Connection::open(&a.rig.db).unwrap();
        c.execute(
            "VACUUM INTO ?1",
            [old.path().join("ledger.db").to_str().unwrap()],
        )
        .unwrap();
    }
    enroll(
        a,
        ticket(a, &claims_for(&["kiosk-a"])),
        47_000_002,
        &EventLog::new(),
    )
    .unwrap();
    sync(&reg, a);

    let verify = |db: &std::path::Path| {
        common::run(
            common::keyward()
                .arg("--config")
                .arg(&a.rig.config)
                .arg("--db")
                .arg(db)
                .args(["audit", "verify", "--registry"]),
        )
    };
    let ok = verify(&a.rig.db);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(String::from_utf8_lossy(&ok.stdout).contains("registry copy agrees"));

    for f in ["station.key", "station.pub"] {
        std::fs::copy(a.rig.dir.path().join(f), old.path().join(f)).unwrap();
    }
    let bad = verify(&old.path().join("ledger.db"));
    assert_eq!(bad.status.code(), Some(5), "{bad:?}");
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("rolled back or cut short"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}
