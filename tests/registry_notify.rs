//! Out-of-band notification end to end (docs/notify.md), on SQLite and a
//! real PostgreSQL: a station records bindings, a replacement and
//! revocations, syncs to a registry on loopback, and the registry's webhook
//! worker delivers each `notify.*` event to a real HTTP receiver (axum, on
//! loopback) that checks every Standard Webhooks signature with its own
//! HMAC code and deduplicates by `webhook-id`. The receiver fails, then
//! times out (having processed the event: the case deduplication is for),
//! then accepts: each event must be processed exactly once and sent at least
//! three times. Also: the dead-letter list and `registry notify retry`, two
//! workers on one database not double-sending, and `registry serve
//! --webhook` as a process whose stderr never holds the secret or a body.
#![cfg(feature = "sim")]

mod sync_support;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{KeyInit, Mac};
use keyward::registry::notify::{NotifyEntry, NotifyState};
use keyward::registry::webhook::{self, Secret, Worker};
use keyward::store::stock::RevokeReason;
use keyward::store::{
    BindingState, CredentialRecord, DeviceRecord, EnrollmentRecord, TicketRecord,
};
use sync_support::{Db, Kind, RegistryServer, Station, now, rt};

macro_rules! both {
    ($($name:ident),* $(,)?) => {
        mod on_sqlite { $( #[test] fn $name() { if let Some(db) = super::Db::new(super::Kind::Sqlite) { super::$name(&db, super::Kind::Sqlite) } } )* }
        mod on_postgres { $( #[test] #[ignore = "needs PostgreSQL (scripts/test installs it)"] fn $name() { if let Some(db) = super::Db::new(super::Kind::Postgres) { super::$name(&db, super::Kind::Postgres) } } )* }
    };
}

both!(
    each_event_exactly_once_through_failures_and_timeouts,
    dead_letter_and_retry,
    two_workers_do_not_double_send,
    serve_process_keeps_the_secret_out_of_its_logs,
);

/// The worker's request timeout in these tests.
const TIMEOUT: Duration = Duration::from_millis(600);

fn secret_text() -> String {
    format!("whsec_{}", B64.encode([0x5au8; 32]))
}

fn options(url: &str, max_attempts: u32) -> webhook::Options {
    let mut o = webhook::Options::new(url);
    o.timeout = TIMEOUT;
    o.max_attempts = max_attempts;
    o.retry_base = Duration::from_millis(50);
    o.retry_cap = Duration::from_millis(200);
    o.poll = Duration::from_millis(50);
    o
}

// ---- the receiver ---------------------------------------------------------

/// How the receiver answers the n-th request (1-based) for an id.
#[derive(Debug, Clone, Copy)]
enum Mode {
    /// 500, then processes and answers after the worker's timeout, then 200.
    Flaky,
    Status(u16),
    /// Processes, waits, answers 200 (to widen any double-send window).
    SlowOk(Duration),
}

#[derive(Default)]
struct Seen {
    /// Every request: (webhook-id, signature valid).
    raw: Vec<(String, bool)>,
    /// Bodies processed, once per id (the receiver's deduplication).
    processed: HashMap<String, serde_json::Value>,
    /// Requests whose id was processed before (dropped by dedup).
    deduplicated: usize,
    /// Requests in flight at once, at most.
    in_flight: usize,
    max_in_flight: usize,
}

struct Receiver {
    addr: SocketAddr,
    seen: Arc<Mutex<Seen>>,
    mode: Arc<Mutex<Mode>>,
    _rt: tokio::runtime::Runtime,
}

#[derive(Clone)]
struct Hook {
    key: Vec<u8>,
    seen: Arc<Mutex<Seen>>,
    mode: Arc<Mutex<Mode>>,
}

/// The receiver's own verification (Standard Webhooks 1.0, "Verifying
/// signatures"), written here without keyward's signer.
fn verify(key: &[u8], headers: &HeaderMap, body: &[u8]) -> Option<String> {
    let h = |n: &str| headers.get(n)?.to_str().ok().map(str::to_string);
    let (id, ts, sigs) = (
        h("webhook-id")?,
        h("webhook-timestamp")?,
        h("webhook-signature")?,
    );
    let t: i64 = ts.parse().ok()?;
    if (now() - t).abs() > 300 || id.contains('.') {
        return None;
    }
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key).ok()?;
    mac.update(format!("{id}.{ts}.").as_bytes());
    mac.update(body);
    let want = mac.finalize().into_bytes();
    sigs.split(' ')
        .filter_map(|s| s.strip_prefix("v1,"))
        .filter_map(|s| B64.decode(s).ok())
        .any(|s| s.as_slice() == want.as_slice())
        .then_some(id)
}

fn process(seen: &mut Seen, id: &str, body: &[u8]) {
    if seen.processed.contains_key(id) {
        seen.deduplicated += 1;
    } else {
        seen.processed
            .insert(id.to_string(), serde_json::from_slice(body).unwrap());
    }
}

async fn hook(State(s): State<Hook>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let verified = verify(&s.key, &headers, &body);
    let id = headers
        .get("webhook-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let mode = *s.mode.lock().unwrap();
    let n = {
        let mut seen = s.seen.lock().unwrap();
        seen.raw.push((id.clone(), verified.is_some()));
        seen.in_flight += 1;
        seen.max_in_flight = seen.max_in_flight.max(seen.in_flight);
        seen.raw.iter().filter(|(i, _)| *i == id).count()
    };
    let done = |code| {
        s.seen.lock().unwrap().in_flight -= 1;
        StatusCode::from_u16(code).unwrap()
    };
    if verified.is_none() {
        return done(401);
    }
    // (answer, process first, then wait)
    let (code, processes, wait) = match mode {
        Mode::Status(c) => (c, (200..300).contains(&c), None),
        Mode::Flaky if n == 1 => (500, false, None),
        // Processed, but the answer comes after the worker gave up.
        Mode::Flaky if n == 2 => (200, true, Some(TIMEOUT * 3)),
        Mode::Flaky => (200, true, None),
        Mode::SlowOk(d) => (200, true, Some(d)),
    };
    if processes {
        process(&mut s.seen.lock().unwrap(), &id, &body);
    }
    if let Some(d) = wait {
        tokio::time::sleep(d).await;
    }
    done(code)
}

impl Receiver {
    fn start(mode: Mode) -> Receiver {
        let rt = rt();
        let seen = Arc::new(Mutex::new(Seen::default()));
        let mode = Arc::new(Mutex::new(mode));
        let state = Hook {
            key: [0x5au8; 32].to_vec(),
            seen: seen.clone(),
            mode: mode.clone(),
        };
        let l = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = l.local_addr().unwrap();
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(hook))
            .with_state(state);
        rt.spawn(async move { axum::serve(l, app).await.unwrap() });
        Receiver {
            addr,
            seen,
            mode,
            _rt: rt,
        }
    }

    fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    fn set(&self, m: Mode) {
        *self.mode.lock().unwrap() = m;
    }

    fn raw_count(&self, id: &str) -> usize {
        self.seen
            .lock()
            .unwrap()
            .raw
            .iter()
            .filter(|(i, _)| i == id)
            .count()
    }
}

// ---- the station and registry --------------------------------------------

fn record(subject: &str, serial: &str, jti: &str) -> EnrollmentRecord {
    EnrollmentRecord {
        subject: subject.into(),
        ticket: TicketRecord {
            jti: jti.into(),
            digest: "cd".repeat(32),
            issuer: "https://idp.example.com".into(),
            ial: Some(2),
        },
        device: DeviceRecord {
            kind: "yubikey".into(),
            serial: Some(serial.into()),
            aaguid: None,
            model: None,
            firmware: Some("5.7.1".into()),
        },
        policy: None,
        credentials: vec![CredentialRecord {
            kind: "piv".into(),
            credential_id: None,
            rp_id: None,
            slot: Some("9a".into()),
            algorithm: "p256".into(),
            public_key: vec![4, 5, 6],
            attestation: None,
            attestation_format: None,
        }],
        actor: "test".into(),
    }
}

/// A station with three enrollments, a replacement, a revocation and a lost
/// key, synced to a new registry: six notify.* events queued there.
fn setup(db: &Db, id: &str) -> (RegistryServer, Station, Vec<String>) {
    let reg = RegistryServer::start(&db.url);
    let mut st = Station::new(id);
    reg.enroll(id, &st.public_key());
    let (alice, _) = st.enroll("alice");
    let (bob, _) = st.enroll("bob");
    let (carol, _) = st.enroll("carol");
    st.ledger
        .commit_replacement(
            &alice,
            &record("alice", "7700001", &format!("{id}-r")),
            "damaged",
            now(),
        )
        .unwrap();
    st.ledger
        .revoke_binding(&bob, RevokeReason::Stolen, "helpdesk", now())
        .unwrap();
    st.ledger
        .transition(
            &carol,
            BindingState::Lost,
            "lost on the train",
            "carol",
            now(),
        )
        .unwrap();
    let rt = rt();
    st.drain(&rt, &reg.url()).unwrap();
    let ids: Vec<String> = st
        .ledger
        .outbox_list(true, 1000)
        .unwrap()
        .into_iter()
        .filter(|(e, _)| e.kind.starts_with("notify."))
        .map(|(e, _)| keyward::registry::notify::webhook_id(id, &e.event_id))
        .collect();
    assert_eq!(ids.len(), 6, "3 bindings, 1 replacement, 2 revocations");
    let queued = list(&reg, Some(NotifyState::Pending));
    assert_eq!(queued.len(), 6);
    (reg, st, ids)
}

fn list(reg: &RegistryServer, state: Option<NotifyState>) -> Vec<NotifyEntry> {
    reg.rt.block_on(reg.reg.notify_list(state)).unwrap()
}

struct Running {
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

fn start_worker(
    reg: &RegistryServer,
    reg_handle: Arc<keyward::registry::Registry>,
    o: webhook::Options,
) -> Running {
    let w = Worker::new(reg_handle, o, Secret::parse(&secret_text()).unwrap()).unwrap();
    let (stop, rx) = tokio::sync::watch::channel(false);
    let task = reg.rt.spawn(w.run(rx));
    Running { stop, task }
}

impl Running {
    fn stop(self, reg: &RegistryServer) {
        self.stop.send(true).unwrap();
        let task = self.task;
        reg.rt
            .block_on(async { tokio::time::timeout(Duration::from_secs(10), task).await })
            .expect("the worker stops when told")
            .unwrap();
    }
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let end = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn all_in(reg: &RegistryServer, state: NotifyState, n: usize) -> bool {
    list(reg, Some(state)).len() == n
}

/// `keyward` with a clean environment.
fn keyward() -> std::process::Command {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_keyward"));
    c.env_remove("KEYWARD_CONFIG")
        .env_remove("KEYWARD_DB")
        .env("RUST_LOG", "warn");
    c
}

// ---- the cases ------------------------------------------------------------

fn each_event_exactly_once_through_failures_and_timeouts(db: &Db, _: Kind) {
    let (reg, st, ids) = setup(db, "kiosk.n1");
    let recv = Receiver::start(Mode::Flaky);
    let w = start_worker(&reg, reg.reg.clone(), options(&recv.url(), 8));
    wait_for("every event delivered", || {
        all_in(&reg, NotifyState::Delivered, 6)
    });
    w.stop(&reg);

    let seen = recv.seen.lock().unwrap();
    assert!(
        seen.raw.iter().all(|(_, ok)| *ok),
        "a signature did not verify"
    );
    let mut processed: Vec<&String> = seen.processed.keys().collect();
    processed.sort();
    let mut want: Vec<&String> = ids.iter().collect();
    want.sort();
    assert_eq!(processed, want, "each event processed exactly once");
    drop(seen);
    for id in &ids {
        assert!(
            recv.raw_count(id) >= 3,
            "{id}: failed, timed out, then accepted"
        );
    }
    assert!(recv.seen.lock().unwrap().deduplicated >= 6);
    // The documents: envelope, and payloads without secrets.
    let seen = recv.seen.lock().unwrap();
    let mut kinds: Vec<&str> = seen
        .processed
        .values()
        .map(|b| b["kind"].as_str().unwrap())
        .collect();
    kinds.sort();
    assert_eq!(
        kinds,
        [
            "notify.binding_created",
            "notify.binding_created",
            "notify.binding_created",
            "notify.replacement",
            "notify.revocation",
            "notify.revocation"
        ]
    );
    for (id, b) in &seen.processed {
        assert_eq!(
            (b["v"].as_i64(), b["id"].as_str()),
            (Some(1), Some(id.as_str()))
        );
        assert_eq!(b["station"], "kiosk.n1");
        assert!(id.starts_with("kiosk%2En1:"), "{id}");
        let p = &b["payload"];
        assert!(p["subject"].is_string() && p["binding"].is_string(), "{b}");
        assert_eq!(p["device"]["kind"], "yubikey");
        assert_eq!(p["station_key"], st.ledger.station_key().unwrap().key_id());
        let text = b.to_string();
        for banned in ["ticket", "credential", "public_key", "pin", "puk", "digest"] {
            assert!(!text.contains(banned), "{banned} in {text}");
        }
    }
    let rev: Vec<&serde_json::Value> = seen
        .processed
        .values()
        .filter(|b| b["kind"] == "notify.revocation")
        .map(|b| &b["payload"])
        .collect();
    assert!(
        rev.iter()
            .any(|p| p["subject"] == "bob" && p["state"] == "revoked" && p["reason"] == "stolen")
    );
    assert!(
        rev.iter()
            .any(|p| p["subject"] == "carol" && p["state"] == "lost")
    );
    let rep = seen
        .processed
        .values()
        .find(|b| b["kind"] == "notify.replacement")
        .unwrap();
    assert_eq!(
        (
            &rep["payload"]["subject"],
            &rep["payload"]["device"]["serial"],
            &rep["payload"]["reason"]
        ),
        (
            &serde_json::json!("alice"),
            &serde_json::json!("7700001"),
            &serde_json::json!("damaged")
        )
    );
    drop(seen);
    // The queue's record agrees: three attempts each, delivered.
    for e in list(&reg, None) {
        assert_eq!((e.state.as_str(), e.attempts), ("delivered", 3), "{e:?}");
        assert!(e.delivered_at.is_some());
    }
    // A station resending everything queues nothing again.
    let c = rusqlite::Connection::open(&st.db).unwrap();
    c.execute_batch(
        "UPDATE outbox SET delivered_at = NULL; DELETE FROM meta WHERE key LIKE 'sync.%';",
    )
    .unwrap();
    let mut st = st;
    let d = st.drain(&rt(), &reg.url()).unwrap();
    assert_eq!(d.duplicates, d.delivered);
    assert_eq!(list(&reg, None).len(), 6);
    assert!(all_in(&reg, NotifyState::Delivered, 6));
}

fn dead_letter_and_retry(db: &Db, _: Kind) {
    let (reg, _st, ids) = setup(db, "kiosk-n2");
    let recv = Receiver::start(Mode::Status(500));
    let w = start_worker(&reg, reg.reg.clone(), options(&recv.url(), 3));
    wait_for("every event dead-lettered", || {
        all_in(&reg, NotifyState::Dead, 6)
    });
    for e in list(&reg, None) {
        assert_eq!(e.attempts, 3, "{e:?}");
        let err = e.last_error.unwrap();
        assert!(
            err.contains("500") && err.contains("gave up after 3"),
            "{err}"
        );
        assert_eq!(recv.raw_count(&e.id), 3);
    }
    assert!(recv.seen.lock().unwrap().processed.is_empty());
    let cli = |args: &[&str]| {
        keyward()
            .args(["--db", &db.url, "registry", "notify"])
            .args(args)
            .output()
            .unwrap()
    };
    let out = cli(&["list", "--state", "dead", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["notifications"].as_array().unwrap().len(), 6);
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("alice"),
        "no bodies in the list"
    );

    // One event back while the receiver refuses it for good (400): one
    // attempt, dead again at once.
    recv.set(Mode::Status(400));
    let out = cli(&["retry", &ids[0]]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_for("the retried event sent once more", || {
        recv.raw_count(&ids[0]) == 4
    });
    wait_for("it is dead again", || all_in(&reg, NotifyState::Dead, 6));
    let e = list(&reg, None)
        .into_iter()
        .find(|e| e.id == ids[0])
        .unwrap();
    assert_eq!(e.attempts, 1);
    assert!(e.last_error.unwrap().contains("not retried"));

    // Unknown id: one line, exit 1, nothing changed.
    let out = cli(&["retry", "kiosk-n2:ffff"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.contains("notify list --state dead"), "{err}");

    // The receiver is fixed: all of them again, each processed once.
    recv.set(Mode::Status(200));
    let out = cli(&["retry", "--all-dead"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_for("every event delivered", || {
        all_in(&reg, NotifyState::Delivered, 6)
    });
    w.stop(&reg);
    let seen = recv.seen.lock().unwrap();
    assert_eq!(seen.processed.len(), 6);
    assert_eq!(seen.deduplicated, 0);
}

fn two_workers_do_not_double_send(db: &Db, _: Kind) {
    let (reg, _st, ids) = setup(db, "kiosk-n3");
    let second = Arc::new(
        reg.rt
            .block_on(keyward::registry::Registry::open(&db.url))
            .unwrap(),
    );
    let recv = Receiver::start(Mode::SlowOk(Duration::from_millis(300)));
    // One at a time each: two requests in flight at once are the two workers.
    let mut o = options(&recv.url(), 8);
    o.batch = 1;
    let a = start_worker(&reg, reg.reg.clone(), o.clone());
    let b = start_worker(&reg, second, o);
    wait_for("every event delivered", || {
        all_in(&reg, NotifyState::Delivered, 6)
    });
    a.stop(&reg);
    b.stop(&reg);
    for id in &ids {
        assert_eq!(recv.raw_count(id), 1, "{id} sent twice");
    }
    // Both workers sent at the same time (the claims interleaved).
    assert!(recv.seen.lock().unwrap().max_in_flight >= 2);
}

/// A child process killed on drop if it still runs (a failed assertion
/// must not leave a registry behind).
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

fn serve_process_keeps_the_secret_out_of_its_logs(db: &Db, _: Kind) {
    use std::io::Read;
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("webhook.secret");
    std::fs::write(&secret, format!("{}\n", secret_text())).unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o644)).unwrap();
    let recv = Receiver::start(Mode::Flaky);
    let serve = |secret: &std::path::Path, url: &str| {
        let mut c = keyward();
        c.args([
            "--db",
            &db.url,
            "registry",
            "serve",
            "--listen",
            "127.0.0.1:0",
        ])
        .args(["--webhook", url, "--webhook-secret-file"])
        .arg(secret)
        .args([
            "--webhook-retry-base",
            "100ms",
            "--webhook-timeout",
            "600ms",
        ]);
        c
    };
    // A secret others can read: refused before anything listens.
    let out = serve(&secret, &recv.url()).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.contains("chmod 600"), "{err}");
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    // Plain HTTP to a receiver that is not loopback: refused.
    let out = serve(&secret, "http://192.0.2.1/hook").output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("refusing plain HTTP"), "{err}");

    // Registry and station: the registry's database made in-process, then
    // served by the process.
    let mut st = Station::new("kiosk-n4");
    {
        let r = rt();
        let reg = r
            .block_on(keyward::registry::Registry::open(&db.url))
            .unwrap();
        r.block_on(reg.add_station("kiosk-n4", &st.public_key(), now()))
            .unwrap();
    }
    st.enroll("dora-the-subject");
    let mut child = Killed(
        serve(&secret, &recv.url())
            .env("RUST_LOG", "trace")
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let child = &mut child.0;
    let mut stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        let mut all = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match stderr.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    all.extend_from_slice(&buf[..n]);
                    let _ = tx.send(String::from_utf8_lossy(&all).into_owned());
                }
            }
        }
        String::from_utf8_lossy(&all).into_owned()
    });
    let url = loop {
        let text = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("registry serve listens");
        // Only a whole line: a read may end inside the address.
        if let Some((line, _)) = text
            .split("listening on ")
            .nth(1)
            .and_then(|rest| rest.split_once('\n'))
        {
            break line.split_whitespace().next().unwrap().to_string();
        }
    };
    st.drain(&rt(), &url).unwrap();
    wait_for("the notice processed and accepted", || {
        let s = recv.seen.lock().unwrap();
        s.processed.len() == 1 && s.raw.len() >= 3
    });
    // SIGTERM: the server and the worker stop.
    // SAFETY: signalling our own child by pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let end = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < end,
            "registry serve did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status:?}");
    let log = reader.join().unwrap();
    assert!(log.contains("webhook"), "{log}");
    let key_b64 = B64.encode([0x5au8; 32]);
    for banned in [secret_text().as_str(), key_b64.as_str(), "dora-the-subject"] {
        assert!(!log.contains(banned), "{banned} in the registry's stderr");
    }
    assert!(!log.contains("/hook"), "the receiver's path in the log");
}
