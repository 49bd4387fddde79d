//! `keyward daemon` as a process: its Unix-socket API, the event stream
//! with a virtual card on a leased vpcd reader, peer-credential access
//! control with clients run as other users, sd_notify readiness, /metrics,
//! and graceful shutdown.

mod common;
mod daemon_support;

use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Once;
use std::time::Duration;

use common::{keyward, run};
use daemon_support::{Daemon, wait_event};
use keyward::daemon::client::{ClientError, Event};
use keyward::store::{Ledger, RunEnd, RunKind, RunStart};
use serde_json::Value;

#[test]
fn api_answers_health_devices_errors_and_metrics_then_sigterm_exits_0() {
    let nd = common::tempdir();
    let notify_path = nd.path().join("notify");
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    notify
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut d = Daemon::start(&["--grace", "5s"], &[("NOTIFY_SOCKET", &notify_path)]);
    let mut buf = [0u8; 256];
    let n = notify.recv(&mut buf).expect("sd_notify message");
    assert!(
        String::from_utf8_lossy(&buf[..n])
            .lines()
            .any(|l| l == "READY=1")
    );

    // The socket is 0660, not world-usable.
    let mode = std::fs::metadata(&d.socket).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o660);

    let c = d.client();
    let h = c.health().unwrap();
    assert_eq!(h["status"], "ok");
    assert_eq!(h["peer"]["uid"], 0);
    let devs = c.devices().unwrap();
    assert_eq!(devs["version"], 2);
    assert!(devs["devices"].is_array());

    // Errors: JSON with a stable code and a message naming the problem.
    let e = c.get("/v1/nothing").unwrap_err();
    assert!(
        matches!(&e, ClientError::Api { status: 404, code, message } if code == "not-found" && message.contains("/v1/nothing")),
        "{e:?}"
    );
    let e = c.call("DELETE", "/v1/health", None).unwrap_err();
    assert!(matches!(&e, ClientError::Api { status: 405, .. }), "{e:?}");
    let e = c.get("/v1/jobs/0123").unwrap_err();
    assert!(matches!(&e, ClientError::Api { status: 404, code, .. } if code == "no-such-job"));
    let e = c
        .call("POST", "/v1/enroll", Some(b"{\"ticket\": 5"))
        .unwrap_err();
    assert!(
        matches!(&e, ClientError::Api { status: 400, message, .. } if message.contains("not valid")),
        "{e:?}"
    );
    let e = c
        .call(
            "POST",
            "/v1/enroll",
            Some(br#"{"ticket":"x","device":"pcsc:none","pin":"123456","colour":"red"}"#),
        )
        .unwrap_err();
    // The error says what kind of problem and where, never the body's
    // content (a field name, a ticket, a PIN).
    assert!(
        matches!(&e, ClientError::Api { status: 400, message, .. }
            if message.contains("not valid for this request") && !message.contains("colour") && !message.contains("123456")),
        "{e:?}"
    );
    // A numeric PIN was echoed by serde's "invalid type: integer" message.
    let e = c
        .call(
            "POST",
            "/v1/enroll",
            Some(br#"{"ticket":"x","device":"pcsc:none","pin":918273}"#),
        )
        .unwrap_err();
    assert!(
        matches!(&e, ClientError::Api { status: 400, message, .. }
            if !message.contains("918273") && message.contains("line 1 column")),
        "{e:?}"
    );
    assert!(!d.log_text().contains("918273"), "PIN in the daemon log");
    let big = vec![b' '; 70 * 1024];
    let e = c.call("POST", "/v1/enroll", Some(&big)).unwrap_err();
    assert!(matches!(&e, ClientError::Api { status: 413, .. }), "{e:?}");
    let raw = c.request("POST", "/v1/enroll", None).unwrap();
    assert_eq!(raw.status, 415);

    // /metrics counts from the ledger, as it is now.
    let m = c.request("GET", "/metrics", None).unwrap();
    assert_eq!(m.status, 200);
    assert!(
        m.content_type
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let text = String::from_utf8(m.body).unwrap();
    assert!(
        text.contains("\nkeyward_enrollments_started_total 0\n"),
        "{text}"
    );
    assert!(text.contains("\nkeyward_exception_rate_exceeded 0\n"));
    assert!(text.contains("\nkeyward_sync_backlog 0\n"), "{text}");
    {
        let mut l = Ledger::open_default_key(&d.db).unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let start = RunStart {
            actor: "test",
            ..RunStart::default()
        };
        let id = l.run_started(RunKind::Enroll, &start, now).unwrap();
        let mut end = RunEnd::failed("attestation-untrusted", "no root");
        end.aaguid = Some("ab".repeat(16));
        l.run_finished(&id, &end, "test", now).unwrap();
        l.add_exception(
            "attestation-none",
            "u1",
            "legacy key",
            "ciso",
            now + 86400,
            now,
        )
        .unwrap();
    }
    let text = String::from_utf8(c.request("GET", "/metrics", None).unwrap().body).unwrap();
    assert!(
        text.contains("\nkeyward_enrollments_started_total 1\n"),
        "{text}"
    );
    assert!(text.contains("keyward_enrollments_failed_total{reason=\"attestation-untrusted\"} 1"));
    assert!(text.contains(&format!(
        "keyward_attestation_failures_total{{aaguid=\"{}\",reason=\"attestation-untrusted\"}} 1",
        "ab".repeat(16)
    )));
    // A waiver with no key issued in the window: the rate flag goes up.
    assert!(text.contains("\nkeyward_exceptions_total 1\n"), "{text}");
    assert!(
        text.contains("\nkeyward_exception_rate_exceeded 1\n"),
        "{text}"
    );

    // An event stream open at shutdown gets a `shutdown` event.
    let mut events = c
        .clone()
        .with_timeout(Some(Duration::from_secs(30)))
        .events()
        .unwrap();
    let snap = events.next().unwrap().unwrap();
    assert_eq!(snap.event, "snapshot");
    let st = d.terminate(Duration::from_secs(20));
    assert!(st.success(), "exit {st}: {}", d.log_text());
    wait_event(&mut events, Duration::from_secs(10), |e| {
        e.event == "shutdown"
    });
    let n = notify.recv(&mut buf).expect("STOPPING=1");
    assert_eq!(&buf[..n], b"STOPPING=1");
    assert!(!d.socket.exists(), "socket removed on exit");
    assert!(d.log_text().contains("SIGTERM"));
}

#[test]
fn connections_that_stall_or_idle_are_closed() {
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream;
    use std::time::Instant;
    let d = Daemon::start(&["--header-timeout", "1s", "--idle-timeout", "3s"], &[]);
    // Half a request head, then nothing: closed at the header timeout.
    let mut s = UnixStream::connect(&d.socket).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(b"GET /v1/health HTTP/1.1\r\nHost: keyward\r\nX-Slow: ")
        .unwrap();
    let t0 = Instant::now();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let waited = t0.elapsed();
    assert!(
        waited < Duration::from_millis(2800),
        "half a header held the connection for {waited:?}"
    );
    assert!(!String::from_utf8_lossy(&buf).contains("200 OK"));
    // A connection that never sends a byte: closed at the header timeout
    // too (hyper starts it with the connection).
    let mut s = UnixStream::connect(&d.socket).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let t0 = Instant::now();
    let _ = s.read_to_end(&mut Vec::new());
    assert!(
        t0.elapsed() < Duration::from_millis(2800),
        "{:?}",
        t0.elapsed()
    );
    // A complete request is answered; the kept-alive connection is then
    // closed once idle.
    let mut s = UnixStream::connect(&d.socket).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(b"GET /v1/health HTTP/1.1\r\nHost: keyward\r\n\r\n")
        .unwrap();
    let t0 = Instant::now();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf);
    assert!(text.starts_with("HTTP/1.1 200 OK"), "{text}");
    assert!(
        t0.elapsed() < Duration::from_secs(8),
        "idle connection kept {:?}",
        t0.elapsed()
    );
    // An event stream outlives the idle timeout: keep-alives flow.
    let mut s = UnixStream::connect(&d.socket).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    s.write_all(b"GET /v1/events HTTP/1.1\r\nHost: keyward\r\n\r\n")
        .unwrap();
    let t0 = Instant::now();
    let mut seen = Vec::new();
    let mut chunk = [0u8; 4096];
    while t0.elapsed() < Duration::from_secs(7) {
        match s.read(&mut chunk) {
            Ok(0) => panic!(
                "event stream closed after {:?}: {}",
                t0.elapsed(),
                String::from_utf8_lossy(&seen)
            ),
            Ok(n) => seen.extend_from_slice(&chunk[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => panic!("{e}"),
        }
    }
    assert!(String::from_utf8_lossy(&seen).contains(": keepalive"));
}

#[test]
fn a_second_daemon_on_a_live_socket_refuses_to_start() {
    let d = Daemon::start(&[], &[]);
    let o = run(keyward()
        .arg("--db")
        .arg(d.dir.path().join("other.db"))
        .args(["daemon", "--socket"])
        .arg(&d.socket));
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("another keyward daemon"));
    assert!(d.client().health().is_ok());
}

#[test]
#[ignore = "needs the test rig: pcscd + vpcd (scripts/test runs it)"]
fn event_stream_shows_a_card_arriving_and_leaving() {
    common::require_rig();
    let d = Daemon::start(&[], &[]);
    let mut events = d
        .client()
        .with_timeout(Some(Duration::from_secs(60)))
        .events()
        .unwrap();
    assert_eq!(events.next().unwrap().unwrap().event, "snapshot");
    let mut sim = common::start_sim(&[]);
    let id = format!("pcsc:{}", sim.reader.name);
    let is = |kind: &'static str, id: String| {
        move |e: &Event| e.event == "device" && e.data["event"] == kind && e.data["id"] == *id
    };
    wait_event(
        &mut events,
        Duration::from_secs(30),
        is("arrived", id.clone()),
    );
    let ident = wait_event(
        &mut events,
        Duration::from_secs(30),
        is("identified", id.clone()),
    );
    assert!(
        ident.data["identity"]["serial"].is_u64(),
        "{:?}",
        ident.data
    );
    // The device table shows it.
    let devs = d.client().devices().unwrap();
    assert!(
        devs["devices"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["id"] == id.as_str() && x["interfaces"][0]["identity"]["fido2"].is_object())
    );
    // `keyward devices` asks the daemon when its socket answers.
    let o = run(keyward()
        .env("KEYWARD_SOCKET", &d.socket)
        .args(["devices", "--json"]));
    let listed: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(
        listed["devices"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["id"] == id.as_str())
    );
    sim.stop();
    wait_event(
        &mut events,
        Duration::from_secs(30),
        is("removed", id.clone()),
    );
    assert!(
        !d.client().devices().unwrap()["devices"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["id"] == id.as_str())
    );
}

const GROUP: &str = "keyward-test";
const MEMBER: &str = "keyward-test-member";
const OUTSIDER: &str = "keyward-test-nobody";

/// A group and two system users for the access tests (created once, kept).
fn users() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let exists = |db: &str, name: &str| {
            Command::new("getent")
                .args([db, name])
                .stdout(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        if !exists("group", GROUP) {
            let _ = Command::new("groupadd").args(["-r", GROUP]).status();
        }
        if !exists("passwd", MEMBER) {
            let _ = Command::new("useradd")
                .args(["-r", "-M", "-s", "/usr/sbin/nologin", "-G", GROUP, MEMBER])
                .status();
        }
        if !exists("passwd", OUTSIDER) {
            let _ = Command::new("useradd")
                .args(["-r", "-M", "-s", "/usr/sbin/nologin", OUTSIDER])
                .status();
        }
        assert!(exists("passwd", MEMBER) && exists("passwd", OUTSIDER));
    });
}

/// The keyward binary where other users can run it: the build tree may sit
/// under a directory only root may enter (a CI clone in /root), so a copy
/// goes to a world-readable temporary directory (removed with it).
fn binary_for_others() -> (tempfile::TempDir, PathBuf) {
    let dir = common::tempdir();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let bin = dir.path().join("keyward");
    std::fs::copy(env!("CARGO_BIN_EXE_keyward"), &bin).unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    (dir, bin)
}

/// `keyward devices --json` against `socket`, run as `user` through
/// setpriv (`init_groups`: with the user's groups, else with none).
fn devices_as(bin: &Path, user: &str, init_groups: bool, socket: &Path) -> std::process::Output {
    let mut c = Command::new("setpriv");
    // The user's primary group: its name, or for nobody 65534 (nogroup).
    let gid = if user == "nobody" { "65534" } else { user };
    c.arg(format!("--reuid={user}"))
        .arg(format!("--regid={gid}"));
    c.arg(if init_groups {
        "--init-groups"
    } else {
        "--clear-groups"
    });
    c.arg(bin)
        .env("KEYWARD_SOCKET", socket)
        .env("RUST_LOG", "warn")
        .env("HOME", "/nonexistent")
        .args(["devices", "--json"]);
    run(&mut c)
}

#[test]
fn only_root_and_group_members_may_use_the_api() {
    users();
    let (_bin_dir, bin) = binary_for_others();
    // File permissions first: 0660 root:keyward-test.
    let d = Daemon::start(&["--group", GROUP], &[]);
    let o = devices_as(&bin, OUTSIDER, true, &d.socket);
    assert_eq!(o.status.code(), Some(6));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("refused this user") && err.contains("no permission"),
        "{err}"
    );
    let o = devices_as(&bin, MEMBER, true, &d.socket);
    assert!(o.status.success());
    let doc: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(doc["version"], 2);
    assert_eq!(doc["ok"], true);

    // Behind world-open file permissions, the daemon's own check decides:
    // an outsider gets 403 and a log line; membership comes from the
    // kernel's peer credentials only, so a member's process that dropped
    // its groups is refused whatever the group database says.
    let open = Daemon::start(&["--group", GROUP, "--danger-socket-mode", "666"], &[]);
    let o = devices_as(&bin, OUTSIDER, true, &open.socket);
    assert_eq!(o.status.code(), Some(6));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("refused this user")
            && err.contains("neither root nor a member of group keyward-test"),
        "{err}"
    );
    let o = devices_as(&bin, "nobody", false, &open.socket);
    assert_eq!(o.status.code(), Some(6));
    let o = devices_as(&bin, MEMBER, false, &open.socket);
    assert_eq!(
        o.status.code(),
        Some(6),
        "a member without the group in its credentials"
    );
    let o = devices_as(&bin, MEMBER, true, &open.socket);
    assert!(
        o.status.success(),
        "member with the group in its credentials"
    );
    assert!(open.client().health().is_ok(), "root");
    let log = open.log_text();
    let refused: Vec<_> = log
        .lines()
        .filter(|l| l.contains("refused API request"))
        .collect();
    assert_eq!(refused.len(), 3, "one line per refused request: {log}");
    assert!(
        refused[1].contains("uid=65534") && refused[1].contains("path=\"/v1/devices\""),
        "{log}"
    );
    assert!(!log.contains('\x1b'), "no colour codes in the log file");

    // Root only, when no group is configured.
    let root_only = Daemon::start(&["--danger-socket-mode", "666"], &[]);
    let o = devices_as(&bin, MEMBER, true, &root_only.socket);
    assert_eq!(o.status.code(), Some(6));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no group is configured"));
}

#[test]
fn an_unknown_group_is_a_clear_startup_error() {
    let dir = common::tempdir();
    let o = run(keyward()
        .arg("--db")
        .arg(dir.path().join("l.db"))
        .args(["daemon", "--group", "no-such-group-kw", "--socket"])
        .arg(dir.path().join("s.sock")));
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no group \"no-such-group-kw\""));
}

#[test]
fn socket_activation_serves_the_inherited_socket() {
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    let dir = common::tempdir();
    let path = dir.path().join("activated.sock");
    let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
    let fd = listener.as_raw_fd();
    // LISTEN_PID must be the daemon's own pid: set by a shell that then
    // execs the daemon in its place, as systemd does.
    let mut cmd = Command::new("sh");
    cmd.args([
        "-c",
        "LISTEN_PID=$$ LISTEN_FDS=1 exec \"$0\" \"$@\"",
        env!("CARGO_BIN_EXE_keyward"),
        "--db",
    ])
    .arg(dir.path().join("l.db"))
    .args(["daemon", "--socket"])
    .arg(dir.path().join("unused.sock"))
    .env("RUST_LOG", "warn")
    .stdin(Stdio::null());
    // SAFETY: between fork and exec only async-signal-safe calls (fcntl,
    // dup2) on descriptors this process owns.
    unsafe {
        cmd.pre_exec(move || {
            // dup2 onto itself would keep close-on-exec: clear it instead.
            let rc = if fd == 3 {
                libc::fcntl(3, libc::F_SETFD, 0)
            } else {
                libc::dup2(fd, 3)
            };
            if rc < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut child = Kill(
        cmd.stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let c = keyward::daemon::client::Client::new(&path).with_timeout(Some(Duration::from_secs(2)));
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let health = loop {
        if let Ok(h) = c.health() {
            break h;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no answer on the activated socket"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(health["status"], "ok");
    assert!(
        !dir.path().join("unused.sock").exists(),
        "bound nothing itself"
    );
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.0.id() as i32, libc::SIGTERM) };
    assert!(child.0.wait().unwrap().success());
    // The socket belongs to systemd: left in place.
    assert!(path.exists());
}

#[test]
#[ignore = "needs systemd-analyze (scripts/test installs systemd)"]
fn systemd_units_verify() {
    let v = Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .expect("this test needs systemd-analyze: run scripts/test (it installs systemd)");
    assert!(v.status.success());
    let dir = common::tempdir();
    let units = Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/systemd");
    for name in ["keyward.service", "keyward.socket"] {
        let text = std::fs::read_to_string(units.join(name))
            .unwrap()
            .replace("/usr/bin/keyward", env!("CARGO_BIN_EXE_keyward"));
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    let o = run(Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(dir.path().join("keyward.socket"))
        .arg(dir.path().join("keyward.service")));
    assert!(o.status.success());
    assert!(o.stderr.is_empty(), "warnings from systemd-analyze");
    let service = std::fs::read_to_string(units.join("keyward.service")).unwrap();
    assert!(service.contains("Type=notify") && service.contains("DeviceAllow=char-hidraw rw"));
}
