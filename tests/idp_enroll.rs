//! The station's identity-provider step (docs/idp.md), end to end: a
//! station (real configuration, ledger and enrollment workflow, simulated
//! key in process) asks a registry on loopback (`registry::server` with
//! the Entra ID adapter built from an `[idp]` file by `idp::config`),
//! which talks to the loopback Entra ID of tests/idp_support (strict about
//! Graph's request shapes, the clientDataJSON and the attestation object).
//!
//! Attack first: each test tries to get a key written without the IdP, a
//! credential registered twice, a method left behind after revocation, the
//! ticket unbound from the IdP credential, or a secret onto the station.
#![cfg(feature = "sim")]

mod common;
mod idp_support;
mod provision_support;
mod sync_support;

use std::io::Read as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use idp_support::{CERT, CLIENT_ID, FakeIdp, KEY, TENANT};
use keyward::provision::record::Books;
use keyward::provision::revoke::{RevokeRequest, revoke};
use keyward::provision::{self, Cancel, Event, EventLog, Events, KeyTarget, Reason, Step};
use keyward::store::stock::RevokeReason;
use provision_support::*;
use sha2::{Digest, Sha256};
use sync_support::RegistryServer;

const PROFILES_IDP: &str = r#"
[policy.profiles.entra-required]
pin = { min_length = 6, max_length = 8, digits_only = true }
idp = { provider = "entra", step = "required", display_name = "Kiosk key" }

[policy.profiles.entra-optional]
pin = { min_length = 6, max_length = 8, digits_only = true }
idp = { provider = "entra", step = "optional" }
"#;

/// The registry's `[idp]` file for the fake Entra ID (key mode 0600).
fn idp_config(dir: &Path, idp: &FakeIdp) -> keyward::idp::config::IdpConfig {
    std::fs::write(dir.join("client.crt"), CERT).unwrap();
    let key = dir.join("client.key");
    std::fs::write(&key, KEY).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let path = dir.join("idp.toml");
    std::fs::write(
        &path,
        format!(
            "provider = \"entra\"\ntenant = \"{TENANT}\"\nclient_id = \"{CLIENT_ID}\"\n\
             certificate = \"client.crt\"\nkey = \"client.key\"\n\
             authority = \"{u}\"\ngraph = \"{u}\"\n\
             limits = {{ timeout_secs = 5, max_attempts = 2, max_wait_secs = 1 }}\n",
            u = idp.url()
        ),
    )
    .unwrap();
    keyward::idp::config::IdpConfig::load(&path).expect("idp config")
}

/// A registry on loopback with the fake Entra ID, and one station of it.
struct World {
    idp: Option<FakeIdp>,
    _reg: RegistryServer,
    rig: Rig,
    _dirs: (tempfile::TempDir, tempfile::TempDir),
}

fn world_with(idp_configured: bool, registry_url: impl FnOnce(&RegistryServer) -> String) -> World {
    let regdir = tempfile::tempdir().unwrap();
    let cfgdir = tempfile::tempdir().unwrap();
    let idp = FakeIdp::entra();
    let db = regdir.path().join("registry.db").display().to_string();
    let reg = if idp_configured {
        let cfg = idp_config(cfgdir.path(), &idp);
        let p = keyward::idp::config::build(&cfg).expect("build the Entra adapter");
        RegistryServer::start_with_idp(&db, Arc::from(p))
    } else {
        RegistryServer::start(&db)
    };
    let url = registry_url(&reg);
    let rig = rig_with(|t| format!("{t}\n{PROFILES_IDP}\n[sync]\nregistry = \"{url}\"\n"));
    let key = rig
        .station
        .ledger
        .lock()
        .unwrap()
        .station_key()
        .unwrap()
        .public_key();
    reg.enroll(STATION, &key);
    World {
        idp: Some(idp),
        _reg: reg,
        rig,
        _dirs: (regdir, cfgdir),
    }
}

fn world() -> World {
    world_with(true, |r| r.url())
}

impl World {
    fn idp(&self) -> &FakeIdp {
        self.idp.as_ref().unwrap()
    }

    fn enroll(
        &self,
        policy: &str,
        serial: u32,
        events: &dyn Events,
    ) -> (
        keyward::ticket::Claims,
        Result<provision::EnrollOutcome, provision::ProvisionError>,
    ) {
        let c = claims(policy);
        let r = provision::enroll(
            &self.rig.station,
            request(
                self.rig.ticket(&c),
                KeyTarget::device(sim_device(serial)),
                PIN,
            ),
            events,
            &Cancel::new(),
        );
        (c, r)
    }

    fn idp_row(&self, binding: &str) -> keyward::store::idp::IdpMethod {
        self.rig
            .station
            .ledger
            .lock()
            .unwrap()
            .idp_method(binding)
            .unwrap()
            .expect("the binding has an IdP row")
    }

    fn cli(&self, args: &[&str]) -> (i32, String, String) {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_keyward"))
            .arg("--config")
            .arg(&self.rig.config)
            .arg("--db")
            .arg(&self.rig.db)
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

fn audit_row(w: &World, binding: &str, action: &str) -> serde_json::Value {
    let l = w.rig.station.ledger.lock().unwrap();
    l.audit_rows_for(binding)
        .unwrap()
        .into_iter()
        .find(|r| r.action == action)
        .unwrap_or_else(|| panic!("no {action} audit row for {binding}"))
        .detail
}

/// A full enrollment under a required step: two credentials on the key
/// (the ticket's, the IdP's), the IdP's method id with the binding, one
/// registration at Entra, no request the fake refused.
#[test]
fn full_enrollment_registers_the_key_with_entra() {
    let w = world();
    let log = EventLog::new();
    let (_, r) = w.enroll("entra-required", 52_000_001, &log);
    let o = r.expect("enrollment");
    let idp = o.idp.as_ref().expect("the IdP step ran");
    assert_eq!(idp.state, "registered", "{idp:?}");
    let methods = w.idp().methods(SUB);
    assert_eq!(methods.len(), 1, "one method at Entra");
    assert_eq!(idp.method.as_deref(), Some(methods[0].id.as_str()));
    assert_eq!(methods[0].display_name, "Kiosk key");
    let row = w.idp_row(&o.binding);
    assert_eq!(row.state, "registered");
    assert_eq!(row.method.as_deref(), Some(methods[0].id.as_str()));
    assert_eq!(
        row.credential_id.as_deref(),
        Some(&methods[0].credential_id[..])
    );
    let seen = w.idp().seen();
    assert!(seen.rejected.is_empty(), "{:?}", seen.rejected);
    assert_eq!(seen.registered, 1);
    let rps: Vec<_> = o.credentials.iter().map(|c| c.rp_id.clone()).collect();
    assert_eq!(
        rps,
        [
            Some(RP.to_string()),
            Some(idp_support::ENTRA_RP_ID.to_string())
        ]
    );
    // The options were asked before the key was touched, the registration
    // after the commit.
    let steps = started(&log.events());
    let pos = |s: &str| steps.iter().position(|x| x == s).unwrap();
    assert!(pos("idp-options") < pos("identify"), "{steps:?}");
    assert!(pos("commit") < pos("idp-register"), "{steps:?}");
}

/// The required step with the IdP down (and with a registry that has no
/// IdP): refused with idp-unavailable before the key is touched; nothing
/// committed, the ticket not consumed.
#[test]
fn required_step_with_the_idp_down_refuses_before_the_key_is_touched() {
    for configured in [true, false] {
        let mut w = world_with(configured, |r| r.url());
        drop(w.idp.take()); // Entra goes away: its port closes.
        let log = EventLog::new();
        let (c, r) = w.enroll("entra-required", 52_000_002, &log);
        let e = r.expect_err("no IdP, no enrollment");
        assert_eq!(e.reason, Reason::IdpUnavailable, "{e}");
        assert_eq!(e.step, Some(Step::IdpOptions));
        assert!(e.message.contains("nothing was written to the key"), "{e}");
        if !configured {
            assert!(e.message.contains("idp-not-configured"), "{e}");
        }
        let steps = started(&log.events());
        assert!(
            !steps.iter().any(|s| matches!(
                s.as_str(),
                "identify" | "set-pin" | "make-credential" | "commit"
            )),
            "the key was touched: {steps:?}"
        );
        let conn = rusqlite::Connection::open(&w.rig.db).unwrap();
        let used: i64 = conn
            .query_row(
                "SELECT count(*) FROM tickets WHERE jti = ?1",
                [&c.jti],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(used, 0, "the ticket was consumed");
        let bindings: i64 = conn
            .query_row("SELECT count(*) FROM bindings", [], |r| r.get(0))
            .unwrap();
        assert_eq!(bindings, 0);
    }
}

/// Optional, IdP down: the enrollment goes on, the binding shows the step
/// skipped with the reason, in `keyward report --json`.
#[test]
fn optional_step_with_the_idp_down_enrolls_and_shows_it_skipped() {
    let mut w = world();
    drop(w.idp.take());
    let (_, r) = w.enroll("entra-optional", 52_000_003, &EventLog::new());
    let o = r.expect("an optional step does not stop the enrollment");
    assert_eq!(o.idp.as_ref().map(|i| i.state.as_str()), Some("skipped"));
    let (code, out, err) = w.cli(&["--json", "report"]);
    assert_eq!(code, 0, "{err}");
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    let rows = doc["idp_unfinished"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{doc}");
    assert_eq!(rows[0]["binding"], o.binding.as_str());
    assert_eq!(rows[0]["state"], "skipped");
    assert_eq!(rows[0]["error_code"], "idp-transport", "{doc}");
    assert_eq!(
        audit_row(&w, &o.binding, "idp.skipped")["code"],
        "idp-transport"
    );
}

/// Events forwarded to a closure (to change the fake mid-enrollment).
struct OnEvent<F: Fn(&Event) + Send + Sync>(F);

impl<F: Fn(&Event) + Send + Sync> Events for OnEvent<F> {
    fn emit(&self, e: &Event) {
        (self.0)(e)
    }
}

/// Entra throttles once the options are out: the binding is committed and
/// `pending`, visible in the report; `keyward idp retry` (the real CLI)
/// registers it once.
#[test]
fn a_throttled_registration_is_pending_then_retried_once() {
    let w = world();
    let fake = w.idp();
    let events = OnEvent(|e: &Event| {
        if let Event::StepDone {
            step: Step::IdpOptions,
            ..
        } = e
        {
            fake.knobs(|k| {
                k.throttle = 1000;
                k.retry_after = Some("0".into());
            });
        }
    });
    let (_, r) = w.enroll("entra-optional", 52_000_004, &events);
    let o = r.expect("committed although Entra throttles");
    let idp = o.idp.clone().unwrap();
    assert_eq!(idp.state, "pending", "{idp:?}");
    assert_eq!(idp.code.as_deref(), Some("idp-throttled"));
    assert!(w.idp().methods(SUB).is_empty());

    let (code, out, err) = w.cli(&["--json", "report"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(&o.binding) && out.contains("\"pending\""),
        "{out}"
    );
    // Still throttled: the retry says so and fails.
    let (code, _, err) = w.cli(&["idp", "retry"]);
    assert_ne!(code, 0);
    assert!(err.contains("still pending"), "{err}");

    w.idp().knobs(|k| k.throttle = 0);
    let (code, out, err) = w.cli(&["--json", "idp", "retry"]);
    assert_eq!(code, 0, "{out}{err}");
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(doc["retried"][0]["state"], "registered", "{doc}");
    assert_eq!(w.idp().seen().registered, 1);
    assert_eq!(w.idp().methods(SUB).len(), 1);
    assert_eq!(w.idp_row(&o.binding).state, "registered");
    // Nothing left to do: a second retry registers nothing.
    let (code, out, _) = w.cli(&["idp", "retry"]);
    assert_eq!(code, 0);
    assert!(out.contains("nothing to retry"), "{out}");
    assert_eq!(w.idp().seen().registered, 1);
}

/// A TCP relay between the station and the registry that, when armed,
/// lets a `/v1/idp/register` through to the registry and drops its answer.
struct LossyRelay {
    addr: std::net::SocketAddr,
    armed: Arc<AtomicBool>,
}

fn lossy_relay(rt: &tokio::runtime::Runtime, upstream: std::net::SocketAddr) -> LossyRelay {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let l = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = l.local_addr().unwrap();
    let armed = Arc::new(AtomicBool::new(false));
    let a = armed.clone();
    rt.spawn(async move {
        while let Ok((client, _)) = l.accept().await {
            let Ok(server) = tokio::net::TcpStream::connect(upstream).await else {
                continue;
            };
            let armed = a.clone();
            let lose = Arc::new(AtomicBool::new(false));
            let (mut cr, mut cw) = client.into_split();
            let (mut sr, mut sw) = server.into_split();
            let l2 = lose.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 << 10];
                while let Ok(n) = cr.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    let chunk = &buf[..n];
                    if armed.load(Ordering::SeqCst)
                        && chunk.windows(22).any(|w| w == b"POST /v1/idp/register ")
                    {
                        armed.store(false, Ordering::SeqCst);
                        l2.store(true, Ordering::SeqCst);
                    }
                    if sw.write_all(chunk).await.is_err() {
                        break;
                    }
                }
            });
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 << 10];
                while let Ok(n) = sr.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    if lose.load(Ordering::SeqCst) {
                        // The registry answered; the station never hears.
                        let _ = cw.shutdown().await;
                        return;
                    }
                    if cw.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    LossyRelay { addr, armed }
}

/// The registry registers at Entra but its answer is lost on the way to
/// the station: the binding stays pending; the retry looks the credential
/// up first and registers nothing twice. (Graph's method list does not
/// always name the method id of a credential; the Entra adapter then
/// refuses with a sentence saying so, and the binding is `failed`, visible,
/// instead of registered twice.)
#[test]
fn a_lost_register_answer_is_retried_without_a_duplicate() {
    let mut relay = None;
    let w = world_with(true, |reg| {
        let r = lossy_relay(&reg.rt, reg.addr);
        let url = format!("http://{}", r.addr);
        relay = Some(r);
        url
    });
    let relay = relay.unwrap();
    relay.armed.store(true, Ordering::SeqCst);
    let (_, r) = w.enroll("entra-required", 52_000_005, &EventLog::new());
    let o = r.expect("committed");
    assert_eq!(o.idp.as_ref().unwrap().state, "pending", "{:?}", o.idp);
    assert_eq!(w.idp().seen().registered, 1, "Entra did register it");

    let done = provision::idp::retry(Books::of(&w.rig.station)).expect("retry");
    assert_eq!(done.len(), 1);
    assert_eq!(w.idp().seen().registered, 1, "registered twice");
    let methods = w.idp().methods(SUB);
    assert_eq!(methods.len(), 1);
    match done[0].state.as_str() {
        "registered" => {
            assert_eq!(done[0].method.as_deref(), Some(methods[0].id.as_str()));
            assert_eq!(audit_row(&w, &o.binding, "idp.registered")["existed"], true);
        }
        "failed" => {
            assert_eq!(done[0].code.as_deref(), Some("idp-refused"), "{done:?}");
            let m = done[0].message.as_deref().unwrap_or_default();
            assert!(m.contains("does not register it twice"), "{m}");
            assert_eq!(w.idp_row(&o.binding).state, "failed");
        }
        s => panic!("unexpected state {s}: {done:?}"),
    }
    // Nothing is retried again: the outcome is final and visible.
    assert!(
        provision::idp::retry(Books::of(&w.rig.station))
            .unwrap()
            .is_empty()
    );
    assert_eq!(w.idp().seen().registered, 1);
}

/// Revocation deletes the binding's method at Entra, after the commit.
#[test]
fn revocation_deletes_the_idp_method() {
    let w = world();
    let (_, r) = w.enroll("entra-required", 52_000_006, &EventLog::new());
    let o = r.expect("enrollment");
    assert_eq!(w.idp().methods(SUB).len(), 1);
    revoke(
        Books::of(&w.rig.station),
        &RevokeRequest {
            binding: o.binding.clone(),
            reason: RevokeReason::Lost,
            operator: None,
        },
    )
    .expect("revoke");
    assert!(
        w.idp().methods(SUB).is_empty(),
        "the method outlived the key"
    );
    assert_eq!(w.idp_row(&o.binding).state, "deleted");
    assert!(audit_row(&w, &o.binding, "idp.deleted").is_object());
}

/// The `idp.bound` row, written with the binding, holds the ticket's
/// digest, Entra's challenge, and the digests of the clientDataJSON (whose
/// challenge is that one) and of the attestation object Entra received;
/// changing it breaks the ledger's verification.
#[test]
fn the_audit_row_binds_ticket_and_idp_credential_and_tampering_shows() {
    let w = world();
    let (_, r) = w.enroll("entra-required", 52_000_007, &EventLog::new());
    let o = r.expect("enrollment");
    let d = audit_row(&w, &o.binding, "idp.bound");
    let row = w.idp_row(&o.binding);
    let reg = row.registration.clone().unwrap();
    let conn = rusqlite::Connection::open(&w.rig.db).unwrap();
    let ticket_digest: String = conn
        .query_row(
            "SELECT t.digest FROM tickets t JOIN bindings b ON b.ticket_jti = t.jti WHERE b.id = ?1",
            [&o.binding],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(d["ticket_digest"], ticket_digest.as_str());
    assert_eq!(
        d["attestation_sha256"],
        hex::encode(Sha256::digest(&reg.attestation_object))
    );
    assert_eq!(
        d["client_data_sha256"],
        hex::encode(Sha256::digest(&reg.client_data_json))
    );
    let cdj: serde_json::Value = serde_json::from_slice(&reg.client_data_json).unwrap();
    assert_eq!(cdj["type"], "webauthn.create");
    assert_eq!(
        cdj["challenge"], d["challenge"],
        "the IdP challenge is hashed"
    );
    // The attestation Entra holds is the one the row names.
    assert_eq!(
        d["credential_id"],
        hex::encode(&w.idp().methods(SUB)[0].credential_id)
    );
    assert!(
        w.rig
            .station
            .ledger
            .lock()
            .unwrap()
            .verify_audit()
            .unwrap()
            .ok()
    );

    // Point the row at another ticket: the hash chain no longer holds.
    conn.execute(
        "UPDATE audit SET detail = replace(detail, ?1, ?2) WHERE action = 'idp.bound'",
        [&ticket_digest, &"0".repeat(64)],
    )
    .unwrap();
    let report = w.rig.station.ledger.lock().unwrap().verify_audit().unwrap();
    assert!(!report.ok(), "a tampered idp.bound row passed verification");
    let (code, _, err) = w.cli(&["audit", "verify"]);
    assert_ne!(code, 0, "{err}");
}

/// No IdP secret or token on the station: not in its files (ledger, WAL,
/// configuration), its events, its outcome.
#[test]
fn no_idp_secret_or_token_reaches_the_station() {
    let w = world();
    let log = EventLog::new();
    let (_, r) = w.enroll("entra-required", 52_000_008, &log);
    let o = r.expect("enrollment");
    let key_body: Vec<&str> = KEY
        .lines()
        .filter(|l| !l.starts_with("-----") && l.len() > 20)
        .collect();
    let mut texts = vec![
        serde_json::to_string(&o).unwrap(),
        serde_json::to_string(&log.events()).unwrap(),
    ];
    for entry in std::fs::read_dir(w.rig.dir.path()).unwrap() {
        let p = entry.unwrap().path();
        if p.is_file() {
            let mut b = Vec::new();
            std::fs::File::open(&p)
                .unwrap()
                .read_to_end(&mut b)
                .unwrap();
            texts.push(String::from_utf8_lossy(&b).into_owned());
        }
    }
    for t in &texts {
        for line in &key_body {
            assert!(!t.contains(line), "the Entra private key is on the station");
        }
        for needle in ["access_token", "Bearer ", "client_assertion", TENANT] {
            assert!(!t.contains(needle), "{needle} is on the station");
        }
    }
}

/// The registry's IdP routes refuse, before the IdP is called: an unsigned
/// request, one naming another station than its signer, a body over the
/// limit, an unknown field, a name out of bounds; and a registry without an
/// IdP says so (`idp-not-configured`).
#[test]
fn the_registry_idp_routes_refuse_what_they_must() {
    use keyward::sync::client::{Options, SyncError};
    use keyward::sync::fleet::FleetClient;
    use keyward::sync::idp::{OPTIONS_PATH, REGISTER_PATH};
    let w = world();
    let url = format!("http://{}", w._reg.addr);
    let client = FleetClient::new(Options::new(&url, STATION)).unwrap();
    let ledger = w.rig.station.ledger.lock().unwrap();
    let key = ledger.station_key().unwrap();
    let now = sync_support::now();
    let call = |path: &str, body: serde_json::Value| -> (u16, String) {
        let r: Result<serde_json::Value, SyncError> =
            w._reg.rt.block_on(client.call(key, path, &body, now));
        match r {
            Ok(v) => (200, v.to_string()),
            Err(SyncError::Refused { status, code, .. }) => (status, code),
            Err(e) => panic!("{e}"),
        }
    };
    let ok = serde_json::json!({"v": 1, "station": STATION, "issuer": ISS, "jti": "j-1",
        "subject": SUB, "user": SUB});
    let mut other = ok.clone();
    other["station"] = "kiosk-other".into();
    assert_eq!(call(OPTIONS_PATH, other), (403, "station-mismatch".into()));
    let mut extra = ok.clone();
    extra["access_token"] = "x".into();
    assert_eq!(call(OPTIONS_PATH, extra), (400, "malformed".into()));
    let mut long = ok.clone();
    long["user"] = "u".repeat(1025).into();
    assert_eq!(call(OPTIONS_PATH, long), (400, "malformed".into()));
    let mut huge = ok.clone();
    huge["user"] = "u".repeat(70_000).into();
    assert_eq!(call(OPTIONS_PATH, huge), (413, "too-large".into()));
    let reg = serde_json::json!({"v": 1, "station": STATION, "binding": "b", "user": SUB,
        "registration": {"credential_id": "", "client_data_json": "e30", "attestation_object": "oA",
        "display_name": "k", "state": null}});
    assert_eq!(call(REGISTER_PATH, reg), (400, "malformed".into()));
    // The well-formed request gets options.
    assert_eq!(call(OPTIONS_PATH, ok.clone()).0, 200);
    // Attack: options for someone other than the ticket's subject.
    let mut mismatch = ok.clone();
    mismatch["user"] = "mallory@example.test".into();
    assert_eq!(
        call(OPTIONS_PATH, mismatch),
        (403, "idp-user-mismatch".into())
    );
    // Attack: a registration answering no options this registry issued
    // (a station that skipped /v1/idp/options, or forged the challenge)
    // never reaches the IdP.
    let b64 = |b: &[u8]| {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
    };
    let forged_cdj = format!(
        "{{\"type\":\"webauthn.create\",\"challenge\":\"{}\",\
         \"origin\":\"https://login.microsoftonline.com\",\"crossOrigin\":false}}",
        b64(b"never issued")
    );
    let forged = serde_json::json!({"v": 1, "station": STATION, "binding": "b", "user": SUB,
        "registration": {"credential_id": b64(&[7; 16]),
        "client_data_json": b64(forged_cdj.as_bytes()), "attestation_object": "oA",
        "display_name": "k", "state": null}});
    assert_eq!(call(REGISTER_PATH, forged), (403, "idp-not-issued".into()));
    assert!(
        w.idp().methods(SUB).is_empty(),
        "a forged registration reached the IdP"
    );
    drop(ledger);

    // Unsigned.
    let r = w
        ._reg
        .rt
        .block_on(
            reqwest::Client::new()
                .post(format!("{url}{OPTIONS_PATH}"))
                .body(ok.to_string())
                .send(),
        )
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);

    // A registry without an IdP.
    let bare = world_with(false, |r| r.url());
    let c2 = FleetClient::new(Options::new(&bare._reg.url(), STATION)).unwrap();
    let l2 = bare.rig.station.ledger.lock().unwrap();
    let r: Result<serde_json::Value, SyncError> =
        bare._reg
            .rt
            .block_on(c2.call(l2.station_key().unwrap(), OPTIONS_PATH, &ok, now));
    match r {
        Err(SyncError::Refused { code, message, .. }) => {
            assert_eq!(code, "idp-not-configured");
            assert!(message.contains("--idp"), "{message}");
        }
        r => panic!("{r:?}"),
    }
}
