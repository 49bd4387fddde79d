//! Sync end to end on loopback, against the registry on SQLite and on a real
//! PostgreSQL: every case ends with each event stored exactly once and the
//! outbox drained; every refusal the registry owes has its attack.
#![cfg(feature = "sim")]

mod sync_support;

use std::time::Duration;

use keyward::store::StationKey;
use keyward::sync::client::SyncError;
use keyward::sync::{bundle, client, signature, wire};
use sync_support::proxy::{Fault, Proxy};
use sync_support::{Db, Kind, RegistryServer, Station, assert_exactly_once, now, rt};

macro_rules! both {
    ($($name:ident),* $(,)?) => {
        mod on_sqlite { $( #[test] fn $name() { if let Some(db) = super::Db::new(super::Kind::Sqlite) { super::$name(&db, super::Kind::Sqlite) } } )* }
        mod on_postgres { $( #[test] #[ignore = "needs PostgreSQL (scripts/test installs it)"] fn $name() { if let Some(db) = super::Db::new(super::Kind::Postgres) { super::$name(&db, super::Kind::Postgres) } } )* }
    };
}

both!(
    normal_delivery,
    registry_down_then_back,
    injected_faults,
    duplicate_deliveries,
    refusals,
    fork_and_cut_are_refused_and_recorded,
    bundle_after_partial_push,
    sigkill_mid_batch,
    air_gapped_ack,
);

fn setup(db: &Db, id: &str, n: usize) -> (RegistryServer, Station) {
    let reg = RegistryServer::start(&db.url);
    let mut st = Station::new(id);
    reg.enroll(id, &st.public_key());
    st.enroll_many(n);
    (reg, st)
}

fn normal_delivery(db: &Db, _: Kind) {
    let (reg, mut st) = setup(db, "kiosk-a", 3);
    let (b, serial) = st.enroll("carol");
    st.ledger
        .transition(
            &b,
            keyward::store::BindingState::Lost,
            "lost",
            "test",
            now(),
        )
        .unwrap();
    let rt = rt();
    let d = st.drain(&rt, &reg.url()).unwrap();
    // Four enrollments (binding.created, notify.binding_created each), a
    // key lost (binding.state_changed, notify.revocation).
    assert_eq!((d.delivered, d.duplicates), (10, 0));
    assert_exactly_once(&reg, &st);
    let bs = reg.bindings();
    assert_eq!(bs.len(), 4);
    let carol = bs.iter().find(|x| x.binding_id == b).unwrap();
    assert_eq!(
        (
            carol.subject.as_str(),
            carol.device_serial.as_deref(),
            carol.state.as_str()
        ),
        ("carol", Some(serial.as_str()), "lost")
    );
    let head = st.ledger.signed_head().unwrap().unwrap();
    let s = &reg.stations()[0];
    assert_eq!(
        (s.head_seq, s.head_hash.clone()),
        (head.seq, hex::encode(head.hash))
    );
    // Nothing left: a second drain sends nothing.
    assert_eq!(st.drain(&rt, &reg.url()).unwrap().pushes, 0);
}

fn registry_down_then_back(db: &Db, _: Kind) {
    let (mut reg, mut st) = setup(db, "kiosk-b", 4);
    let rt = rt();
    reg.down();
    let e = st.drain(&rt, &reg.url()).unwrap_err();
    assert!(
        matches!(e, SyncError::Unreachable { .. }) && e.retryable(),
        "{e}"
    );
    let s = st.ledger.sync_state().unwrap();
    assert_eq!((s.backlog, s.delivery_errors), (8, 1));
    assert!(s.last_error.unwrap().contains("did not answer"));
    reg.up();
    st.drain(&rt, &reg.url()).unwrap();
    assert_exactly_once(&reg, &st);
}

fn injected_faults(db: &Db, _: Kind) {
    let (reg, mut st) = setup(db, "kiosk-c", 6);
    let proxy = Proxy::start(
        reg.addr,
        vec![
            Fault::Status(503, Some(1)),
            Fault::Status(500, None),
            Fault::ResetAfterCommit,
            Fault::Delay(Duration::from_secs(3)),
            Fault::HoldAfterCommit(Duration::from_secs(3)),
        ],
    );
    let rt = rt();
    let mut errors = Vec::new();
    loop {
        let before = st.event_ids();
        st.enroll("late");
        assert_eq!(st.event_ids().len(), before.len() + 2);
        match st.drain(&rt, &proxy.url()) {
            Ok(_) => break,
            Err(e) => {
                assert!(e.retryable(), "{e}");
                errors.push(e.to_string());
            }
        }
        assert!(errors.len() < 10, "{errors:?}");
    }
    assert_eq!(errors.len(), 5, "{errors:?}");
    assert!(errors[0].contains("503"), "{errors:?}");
    // Let the held and delayed requests reach the registry, then drain.
    std::thread::sleep(Duration::from_secs(3));
    st.drain(&rt, &proxy.url()).unwrap();
    assert_exactly_once(&reg, &st);
    assert!(proxy.forwarded.load(std::sync::atomic::Ordering::SeqCst) >= 4);
}

fn duplicate_deliveries(db: &Db, _: Kind) {
    let (reg, mut st) = setup(db, "kiosk-d", 5);
    let rt = rt();
    st.drain(&rt, &reg.url()).unwrap();
    // The station forgets every ack (as after a lost answer) and pushes all
    // again, from the start of its chain.
    let c = rusqlite::Connection::open(&st.db).unwrap();
    c.execute_batch(
        "UPDATE outbox SET delivered_at = NULL; DELETE FROM meta WHERE key LIKE 'sync.%';",
    )
    .unwrap();
    let d = st.drain(&rt, &reg.url()).unwrap();
    assert_eq!((d.delivered, d.duplicates), (10, 10));
    assert_exactly_once(&reg, &st);
}

/// Send raw bytes with the given signature headers.
fn send(
    rt: &tokio::runtime::Runtime,
    url: &str,
    body: Vec<u8>,
    h: Option<&signature::SignedHeaders>,
) -> (u16, wire::Refusal) {
    rt.block_on(async {
        let mut r = reqwest::Client::new()
            .post(format!("{url}{}", wire::PUSH_PATH))
            .body(body);
        if let Some(h) = h {
            r = r
                .header("content-digest", &h.content_digest)
                .header("signature-input", &h.signature_input)
                .header("signature", &h.signature);
        }
        let resp = r.send().await.unwrap();
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await.unwrap();
        let refusal = serde_json::from_slice(&bytes).unwrap_or(wire::Refusal {
            v: 1,
            error: "(ok)".into(),
            message: String::from_utf8_lossy(&bytes).into(),
            head: None,
        });
        (status, refusal)
    })
}

fn nonce() -> String {
    let mut b = [0u8; 16];
    keyward::random::fill(&mut b);
    hex::encode(b)
}

fn refusals(db: &Db, _: Kind) {
    let (reg, mut st) = setup(db, "kiosk-e", 2);
    let rt = rt();
    let url = reg.url();
    let opts = client::Options::new(&url, &st.id);
    let (push, _) = client::next_push(&st.ledger, &opts).unwrap().unwrap();
    let body = serde_json::to_vec(&push).unwrap();
    let sign = |key: &StationKey, id: &str, created: i64, body: &[u8]| {
        signature::sign(key, "POST", wire::PUSH_PATH, body, id, created, &nonce())
    };
    let key = StationKey::load_or_create(&st.key_path()).unwrap();
    // Unsigned.
    let (s, r) = send(&rt, &url, body.clone(), None);
    assert_eq!((s, r.error.as_str()), (401, "unsigned"));
    // Forged: signed by another key under this station's id.
    let (s, r) = send(
        &rt,
        &url,
        body.clone(),
        Some(&sign(&StationKey::generate(), &st.id, now(), &body)),
    );
    assert_eq!((s, r.error.as_str()), (401, "bad-signature"));
    // Body altered after signing.
    let h = sign(&key, &st.id, now(), &body);
    let mut altered = body.clone();
    altered[10] ^= 1;
    let (s, r) = send(&rt, &url, altered, Some(&h));
    assert_eq!((s, r.error.as_str()), (401, "bad-signature"));
    // Unknown station.
    let stranger = StationKey::generate();
    let (s, r) = send(
        &rt,
        &url,
        body.clone(),
        Some(&sign(&stranger, "kiosk-x", now(), &body)),
    );
    assert_eq!((s, r.error.as_str()), (403, "unknown-station"));
    // Stale (signed ten minutes ago).
    let (s, r) = send(
        &rt,
        &url,
        body.clone(),
        Some(&sign(&key, &st.id, now() - 600, &body)),
    );
    assert_eq!((s, r.error.as_str()), (401, "stale"));
    // Replayed: the same signed request twice.
    let h = sign(&key, &st.id, now(), &body);
    let (s, r) = send(&rt, &url, body.clone(), Some(&h));
    assert_eq!(s, 200, "{r:?}");
    let (s, r) = send(&rt, &url, body.clone(), Some(&h));
    assert_eq!((s, r.error.as_str()), (409, "replayed"));
    // Another station's push signed with this station's key.
    let mut other = push.clone();
    other.station = "kiosk-y".into();
    let ob = serde_json::to_vec(&other).unwrap();
    let (s, r) = send(&rt, &url, ob.clone(), Some(&sign(&key, &st.id, now(), &ob)));
    assert_eq!((s, r.error.as_str()), (403, "station-mismatch"));
    // Over the size limit: refused before parsing.
    let big = vec![b' '; wire::MAX_BODY + 10];
    let (s, _) = send(
        &rt,
        &url,
        big.clone(),
        Some(&sign(&key, &st.id, now(), &big)),
    );
    assert_eq!(s, 413);
    // An audit row altered in transit (re-signed request, row hash kept).
    st.enroll("dave");
    let c = rusqlite::Connection::open(&st.db).unwrap();
    c.execute_batch("DELETE FROM meta WHERE key LIKE 'sync.%';")
        .unwrap();
    let (mut p2, _) = client::next_push(&st.ledger, &opts).unwrap().unwrap();
    p2.audit.after = 0;
    p2.audit.rows[0].actor = "mallory".into();
    let b2 = serde_json::to_vec(&p2).unwrap();
    let (s, r) = send(&rt, &url, b2.clone(), Some(&sign(&key, &st.id, now(), &b2)));
    assert_eq!((s, r.error.as_str()), (400, "audit-invalid"));
    // A head signed by another key.
    let (mut p3, _) = client::next_push(&st.ledger, &opts).unwrap().unwrap();
    let h3 = p3.head.as_mut().unwrap();
    h3.signature = hex::encode(StationKey::generate().sign(b"x"));
    let b3 = serde_json::to_vec(&p3).unwrap();
    let (s, r) = send(&rt, &url, b3.clone(), Some(&sign(&key, &st.id, now(), &b3)));
    assert_eq!((s, r.error.as_str()), (400, "bad-head"));
    // None of it stored anything twice; the station still drains.
    st.drain(&rt, &url).unwrap();
    assert_exactly_once(&reg, &st);
}

fn fork_and_cut_are_refused_and_recorded(db: &Db, _: Kind) {
    let (reg, mut st) = setup(db, "kiosk-f", 2);
    let rt = rt();
    let backup = st.dir.path().join("backup");
    st.backup(&backup);
    st.enroll_many(2);
    st.drain(&rt, &reg.url()).unwrap();
    // Cut: the ledger restored from the backup (shorter chain, same key).
    let mut old = keyward::store::Ledger::open_default_key(&backup.join("ledger.db")).unwrap();
    let mut o = client::Options::new(&reg.url(), &st.id);
    o.timeout = Duration::from_secs(2);
    let c = client::Client::new(o).unwrap();
    let e = rt.block_on(c.drain(&mut old, now)).unwrap_err();
    assert!(
        matches!(&e, SyncError::Refused { code, .. } if code == "audit-cut"),
        "{e}"
    );
    // Fork: the restored ledger goes on recording other bindings.
    let mut forked = Station {
        id: st.id.clone(),
        dir: tempfile::tempdir().unwrap(),
        db: backup.join("ledger.db"),
        config: st.config.clone(),
        ledger: old,
        serial: 100,
    };
    forked.enroll_many(3);
    let e = forked.drain(&rt, &reg.url()).unwrap_err();
    assert!(
        matches!(&e, SyncError::Refused { code, .. } if code == "audit-fork"),
        "{e}"
    );
    let kinds: Vec<String> = reg.incidents().into_iter().map(|i| i.kind).collect();
    assert_eq!(kinds, ["audit-cut", "audit-fork"]);
    // The real station is unaffected.
    st.enroll("erin");
    st.drain(&rt, &reg.url()).unwrap();
    assert_exactly_once(&reg, &st);
}

fn bundle_after_partial_push(db: &Db, _: Kind) {
    let (reg, mut st) = setup(db, "kiosk-g", 5);
    let rt = rt();
    // The bundle holds all ten events (five enrollments, two each) and the
    // whole chain.
    let opts = client::Options::new(&reg.url(), &st.id);
    let (push, ids) = client::next_push(&st.ledger, &opts).unwrap().unwrap();
    assert_eq!(ids.len(), 10);
    let b = bundle::seal(st.ledger.station_key().unwrap(), &push, now());
    let file = serde_json::to_vec(&b).unwrap();
    // Two of them go online first (batches of two; the second push fails).
    let proxy = Proxy::start(reg.addr, vec![Fault::Pass, Fault::Status(503, None)]);
    let mut o = client::Options::new(&proxy.url(), &st.id);
    o.batch_events = 2;
    o.batch_rows = 3;
    let c = client::Client::new(o).unwrap();
    assert!(rt.block_on(c.drain(&mut st.ledger, now)).is_err());
    assert_eq!(st.backlog(), 8);
    // Import: eight stored, two already held; importing again stores none.
    let opened = bundle::open(&bundle::parse(&file).unwrap(), &st.public_key()).unwrap();
    let ack = rt.block_on(reg.reg.ingest(&opened, None, now())).unwrap();
    assert_eq!((ack.stored, ack.duplicates), (8, 2));
    let ack = rt.block_on(reg.reg.ingest(&opened, None, now())).unwrap();
    assert_eq!((ack.stored, ack.duplicates), (0, 10));
    // The station's next push is acked as duplicates and drains the outbox.
    let d = st.drain(&rt, &reg.url()).unwrap();
    assert_eq!((d.delivered, d.duplicates), (8, 8));
    assert_exactly_once(&reg, &st);
}

fn sigkill_mid_batch(db: &Db, _: Kind) {
    let (reg, mut st) = setup(db, "kiosk-h", 8);
    for fault in [
        Fault::HoldBeforeForward(Duration::from_secs(30)),
        Fault::HoldAfterCommit(Duration::from_secs(30)),
    ] {
        st.enroll_many(2);
        let proxy = Proxy::start(reg.addr, vec![fault.clone()]);
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_keyward"))
            .args([
                "--config",
                st.config.to_str().unwrap(),
                "sync",
                "--once",
                "--registry",
                &proxy.url(),
            ])
            .env("RUST_LOG", "warn")
            .spawn()
            .unwrap();
        let t0 = std::time::Instant::now();
        let seen = match fault {
            Fault::HoldAfterCommit(_) => &proxy.forwarded,
            _ => &proxy.received,
        };
        while seen.load(std::sync::atomic::Ordering::SeqCst) == 0 {
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "the station never pushed"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        // SAFETY: killing our own child by pid.
        unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
        let status = child.wait().unwrap();
        assert!(!status.success());
        assert!(st.backlog() > 0, "{fault:?}: nothing left to resume");
        // Restart: the same command, straight to the registry.
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_keyward"))
            .args([
                "--config",
                st.config.to_str().unwrap(),
                "sync",
                "--once",
                "--registry",
                &reg.url(),
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_exactly_once(&reg, &st);
    }
}

/// `keyward` with a clean environment (no KEYWARD_CONFIG / KEYWARD_DB).
fn keyward() -> std::process::Command {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_keyward"));
    c.env_remove("KEYWARD_CONFIG")
        .env_remove("KEYWARD_DB")
        .env("RUST_LOG", "warn");
    c
}

/// A refused command: nonzero exit, one line on stderr naming `what`.
fn assert_refused(out: &std::process::Output, what: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "succeeded: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "not one line: {err}");
    assert!(err.contains(what), "{what:?} not in: {err}");
}

/// `keyward registry serve` as a child process, killed (SIGTERM, then
/// waited for) on drop.
struct ServeProcess {
    child: std::process::Child,
    url: String,
}

impl ServeProcess {
    fn start(args: &[&str]) -> ServeProcess {
        use std::io::BufRead;
        let mut child = keyward()
            .args(["registry", "serve", "--listen", "127.0.0.1:0"])
            .args(args)
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
        let url = loop {
            let Some(Ok(line)) = lines.next() else {
                let _ = child.kill();
                let _ = child.wait();
                panic!("registry serve ended before listening");
            };
            if let Some(rest) = line.split("listening on ").nth(1) {
                break rest.split_whitespace().next().unwrap().to_string();
            }
        };
        // Keep draining its stderr so it never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        ServeProcess { child, url }
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        // SAFETY: signalling our own child by pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

/// HTTPS end to end through the command line: `registry serve --tls-cert
/// --tls-key`, a station trusting the test CA with `[sync] ca`. The attacks:
/// a station configured with another CA refuses the registry's certificate
/// (and sends nothing), plain http:// to a non-loopback registry is refused
/// before any connection, and the registry refuses to serve plain HTTP on a
/// non-loopback address.
#[test]
fn tls_registry_and_station_ca() {
    use sync_support::tls::TestCa;
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(dir.path(), "registry-ca");
    let other = TestCa::new(dir.path(), "other-ca");
    let (cert, key) = ca.server(dir.path(), "registry");
    let db = dir.path().join("registry.db").display().to_string();
    let mut st = Station::new("kiosk-tls");
    st.enroll_many(3);
    let r = rt();
    let reg = r.block_on(keyward::registry::Registry::open(&db)).unwrap();
    r.block_on(reg.add_station(&st.id, &st.public_key(), now()))
        .unwrap();
    let srv = ServeProcess::start(&[
        "--db",
        &db,
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ]);
    assert!(srv.url.starts_with("https://127.0.0.1:"), "{}", srv.url);
    let config = std::fs::read_to_string(&st.config).unwrap();
    let with_ca = |pem: &std::path::Path| {
        std::fs::copy(pem, st.dir.path().join("ca.pem")).unwrap();
        std::fs::write(
            &st.config,
            format!(
                "{config}\n[sync]\nregistry = \"{}\"\nca = \"ca.pem\"\n",
                srv.url
            ),
        )
        .unwrap();
    };
    let sync = || {
        keyward()
            .args(["--config", st.config.to_str().unwrap(), "sync", "--once"])
            .output()
            .unwrap()
    };

    // Attack: the registry's certificate does not chain to the CA we trust.
    with_ca(&other.pem);
    assert_refused(&sync(), "not trusted");
    assert_eq!(st.backlog(), 6);
    assert!(r.block_on(reg.events(None)).unwrap().is_empty());

    // Attack: plain HTTP to a registry that is not loopback.
    let out = keyward()
        .args(["--config", st.config.to_str().unwrap(), "sync", "--once"])
        .args(["--registry", "http://192.0.2.1:8080"])
        .output()
        .unwrap();
    assert_refused(&out, "refusing plain HTTP");

    // The registry will not serve plain HTTP beyond loopback.
    let out = keyward()
        .args(["--db", &db, "registry", "serve", "--listen", "0.0.0.0:0"])
        .output()
        .unwrap();
    assert_refused(&out, "refusing to serve plain HTTP");

    // The right CA: delivered over HTTPS, exactly once.
    with_ca(&ca.pem);
    let out = sync();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut stored: Vec<String> = r
        .block_on(reg.events(Some(&st.id)))
        .unwrap()
        .into_iter()
        .map(|e| e.event_id)
        .collect();
    stored.sort();
    assert_eq!(stored, st.event_ids());
    assert_eq!(st.backlog(), 0);
}

/// `sync status` and `outbox list` only read: on a missing ledger they fail
/// with one line and create nothing (no ledger, no station key).
#[test]
fn read_only_commands_create_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ledger.db");
    let config = dir.path().join("keyward.toml");
    std::fs::write(&config, "station = \"kiosk-ro\"\nledger = \"ledger.db\"\n").unwrap();
    for args in [
        &["sync", "status"][..],
        &["sync", "status", "--json"],
        &["outbox", "list"],
        &["outbox", "list", "--all", "--json"],
    ] {
        for by in [
            ["--db", db.to_str().unwrap()],
            ["--config", config.to_str().unwrap()],
        ] {
            let out = keyward().args(by).args(args).output().unwrap();
            assert_refused(&out, "ledger.db");
            let left: Vec<_> = std::fs::read_dir(dir.path())
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            assert_eq!(
                left,
                vec![std::ffi::OsString::from("keyward.toml")],
                "{args:?} {by:?}"
            );
        }
    }
}

fn ok(out: std::process::Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The air-gapped round trip: export, import with a signed ack, `outbox
/// ack` marks exactly the imported events delivered. Attacks: the ack's
/// body altered to name an event the registry does not hold, the same
/// re-signed with another key, an ack signed by the registry key for
/// another station or naming a stranger event, a head off this chain; each
/// refused with nothing marked.
fn air_gapped_ack(db: &Db, _: Kind) {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD as B64;
    use keyward::sync::ack;
    let (reg, mut st) = setup(db, "kiosk-ack", 4);
    let cfg = st.config.to_str().unwrap().to_string();
    let dir = st.dir.path().to_path_buf();
    let regdir = tempfile::tempdir().unwrap();
    let ack_key = regdir.path().join("ack.key");
    ok(keyward()
        .args(["--config", &cfg, "outbox", "export"])
        .arg(dir.join("b.bundle"))
        .output()
        .unwrap());
    let bundled = st.event_ids();
    let ack_file = dir.join("a.ack");
    ok(keyward()
        .args(["--db", &db.url, "registry", "import"])
        .arg(dir.join("b.bundle"))
        .arg("--ack-out")
        .arg(&ack_file)
        .arg("--ack-key")
        .arg(&ack_key)
        .output()
        .unwrap());
    std::fs::copy(regdir.path().join("station.pub"), dir.join("registry.pub")).unwrap();
    let config = std::fs::read_to_string(&st.config).unwrap();
    std::fs::write(
        &st.config,
        format!("{config}\n[sync]\nregistry_key = \"registry.pub\"\n"),
    )
    .unwrap();
    // An event the registry has never seen.
    st.enroll("after-export");
    let stranger: Vec<String> = st
        .event_ids()
        .into_iter()
        .filter(|e| !bundled.contains(e))
        .collect();
    assert_eq!(stranger.len(), 2, "binding.created, notify.binding_created");
    let genuine: ack::AckFile = serde_json::from_slice(&std::fs::read(&ack_file).unwrap()).unwrap();
    let body: ack::AckBody = serde_json::from_slice(&B64.decode(&genuine.ack).unwrap()).unwrap();
    assert_eq!(body.acked.len(), 8);
    let reg_key = keyward::store::StationKey::load_or_create(&ack_key).unwrap();
    let try_ack = |f: &ack::AckFile, what: &str| {
        let path = dir.join(format!(
            "forged-{}.ack",
            keyward::store::station_key::key_id(&[what.len() as u8; 32])
        ));
        let _ = std::fs::remove_file(&path);
        std::fs::write(&path, serde_json::to_vec(f).unwrap()).unwrap();
        let out = keyward()
            .args(["--config", &cfg, "outbox", "ack"])
            .arg(&path)
            .output()
            .unwrap();
        assert_refused(&out, what);
    };
    // The body altered to name the stranger: the signature breaks.
    let mut b = body.clone();
    b.acked.push(stranger[0].clone());
    let mut forged = genuine.clone();
    forged.ack = B64.encode(serde_json::to_vec(&b).unwrap());
    try_ack(&forged, "not signed by the registry key");
    // Re-signed with the attacker's own key.
    try_ack(
        &ack::seal(&keyward::store::StationKey::generate(), &b),
        "not signed by the registry key",
    );
    // The registry's key, but another station.
    let mut other = body.clone();
    other.station = "kiosk-other".into();
    try_ack(&ack::seal(&reg_key, &other), "is for station kiosk-other");
    // The registry's key, an event id this station never recorded.
    let mut strange = body.clone();
    strange.acked.push("ff".repeat(16));
    try_ack(&ack::seal(&reg_key, &strange), "never recorded");
    // The registry's key, a head that is not on this chain.
    let mut forked = body.clone();
    forked.head.hash = "00".repeat(32);
    try_ack(
        &ack::seal(&reg_key, &forked),
        "not this station's audit chain",
    );
    assert_eq!(st.backlog(), 10, "a refused ack marked something");

    // The genuine ack: exactly the eight bundled events delivered.
    let out = ok(keyward()
        .args(["--config", &cfg, "outbox", "ack"])
        .arg(&ack_file)
        .output()
        .unwrap());
    assert!(out.contains("8 event(s) marked delivered"), "{out}");
    let mut pending: Vec<String> = st
        .ledger
        .outbox_list(false, 100)
        .unwrap()
        .into_iter()
        .map(|(e, _)| e.event_id)
        .collect();
    pending.sort();
    assert_eq!(pending, stranger);
    // Replayed: harmless, nothing more marked.
    let out = ok(keyward()
        .args(["--config", &cfg, "outbox", "ack"])
        .arg(&ack_file)
        .output()
        .unwrap());
    assert!(out.contains("0 event(s) marked delivered"), "{out}");
    // Online for the rest: every event exactly once.
    let rt = rt();
    st.drain(&rt, &reg.url()).unwrap();
    assert_exactly_once(&reg, &st);
}
