//! Revoke, return to stock and unblock through the daemon's API
//! (`POST /v1/revoke`, `/v1/return`, `/v1/unblock`) and through the CLI's
//! one workflow interface: the same `--json` document as standalone, the
//! same peer check as every route, bodies refused without echoing a
//! secret, and return and unblock run as daemon jobs on a virtual card
//! through pcscd.

#![cfg(feature = "sim")]

mod common;
mod daemon_support;
mod lifecycle_support;
mod provision_support;

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Output};
use std::time::Duration;

use daemon_support::{Daemon, wait_event};
use provision_support::{PIN, Rig, claims, count, rig};
use serde_json::json;

fn daemon(rig: &Rig, extra: &[&str]) -> Daemon {
    let config = rig.config.to_string_lossy().into_owned();
    let db = rig.db.to_string_lossy().into_owned();
    let mut args = vec!["--config", &config, "--db", &db];
    args.extend_from_slice(extra);
    Daemon::start(&args, &[])
}

/// `keyward ARGS` through `d` (else standalone), `stdin` fed.
fn kw(d: Option<&Daemon>, args: &[&str], stdin: &str) -> Output {
    let mut c = common::keyward();
    match d {
        Some(d) => c.env("KEYWARD_SOCKET", &d.socket),
        None => c.env("KEYWARD_NO_DAEMON", "1"),
    };
    c.args(args);
    lifecycle_support::run_in(&mut c, stdin)
}

/// Enroll the in-process simulator (serial 12345678) on `rig`, through
/// `d` or standalone; returns the binding.
fn enroll_sim(rig: &Rig, d: Option<&Daemon>) -> String {
    let ticket = rig.dir.path().join(format!("t-{}.jws", rand_suffix()));
    std::fs::write(&ticket, rig.ticket(&claims("standard"))).unwrap();
    let config = rig.config.to_string_lossy().into_owned();
    let ticket = ticket.to_string_lossy().into_owned();
    let mut args = vec!["--json"];
    if d.is_none() {
        args.extend(["--config", &config]);
    }
    args.extend(["enroll", "--device", "sim", "--ticket", &ticket]);
    let o = kw(d, &args, &format!("{PIN}\n"));
    assert!(o.status.success());
    lifecycle_support::json_of(&o)["binding"]
        .as_str()
        .unwrap()
        .to_string()
}

fn rand_suffix() -> String {
    let mut b = [0u8; 4];
    getrandom::fill(&mut b).unwrap();
    hex::encode(b)
}

/// `keyward revoke --json` through a running daemon and standalone give
/// the same document for the same binding (each on its own station, the
/// same key and ticket claims); only the ids new on every run (`run`,
/// `binding`) and the route (`via`) differ. A refusal carries the same
/// reason, step and exit code either way.
#[test]
fn revoke_json_is_the_same_through_the_daemon_and_standalone() {
    let (a, b) = (rig(), rig());
    let d = daemon(&a, &["--danger-simulator"]);
    let ba = enroll_sim(&a, Some(&d));
    let bb = enroll_sim(&b, None);
    let config_b = b.config.to_string_lossy().into_owned();

    let via_daemon = kw(
        Some(&d),
        &["--json", "revoke", &ba, "--reason", "stolen"],
        "",
    );
    assert!(via_daemon.status.success());
    let local = kw(
        None,
        &[
            "--json", "--config", &config_b, "revoke", &bb, "--reason", "stolen",
        ],
        "",
    );
    assert!(local.status.success());
    let norm = |o: &Output| {
        let mut v = lifecycle_support::json_of(o);
        for k in ["run", "binding", "via"] {
            v.as_object_mut().unwrap().remove(k);
        }
        v
    };
    let (dv, lv) = (norm(&via_daemon), norm(&local));
    assert_eq!(dv, lv);
    assert_eq!(dv["version"], 1);
    assert_eq!(dv["ok"], true);
    assert_eq!(dv["from"], "active");
    assert_eq!(dv["device_serial"], "12345678");
    assert_eq!(lifecycle_support::json_of(&via_daemon)["via"], "daemon");
    // The daemon's ledger: revoked, the run recorded.
    assert_eq!(
        count(
            &a.db,
            &format!("SELECT count(*) FROM bindings WHERE id = '{ba}' AND state = 'revoked'")
        ),
        1
    );
    assert_eq!(
        count(
            &a.db,
            "SELECT count(*) FROM runs WHERE kind = 'revoke' AND outcome = 'completed'"
        ),
        1
    );

    // Again: refused the same way on both routes.
    let again_d = kw(Some(&d), &["--json", "revoke", &ba, "--reason", "lost"], "");
    let again_l = kw(
        None,
        &[
            "--json", "--config", &config_b, "revoke", &bb, "--reason", "lost",
        ],
        "",
    );
    assert_eq!(again_d.status.code(), Some(1));
    assert_eq!(again_d.status.code(), again_l.status.code());
    let (ed, el) = (
        lifecycle_support::json_of(&again_d),
        lifecycle_support::json_of(&again_l),
    );
    assert_eq!(ed["ok"], false);
    assert_eq!(ed["error"]["reason"], "binding-state");
    assert_eq!(ed["error"]["reason"], el["error"]["reason"]);
    assert_eq!(ed["error"]["step"], el["error"]["step"]);
}

/// Through the daemon `--db` and `--config` are refused with one line
/// naming the flag and `KEYWARD_NO_DAEMON=1`, before anything runs.
#[test]
fn the_lifecycle_commands_refuse_what_the_daemon_cannot_honour() {
    let rig = rig();
    let d = daemon(&rig, &["--danger-simulator"]);
    let binding = enroll_sim(&rig, Some(&d));
    let runs = count(&rig.db, "SELECT count(*) FROM runs");
    for args in [
        vec![
            "--db",
            "/tmp/other.db",
            "revoke",
            &binding,
            "--reason",
            "lost",
        ],
        vec![
            "--config",
            "/etc/keyward/other.toml",
            "return",
            "--device",
            "sim",
        ],
        vec![
            "--db",
            "/tmp/other.db",
            "unblock",
            "--device",
            "sim",
            "--ticket",
            "/nonexistent",
        ],
    ] {
        let o = kw(Some(&d), &args, "");
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains(args[0]) && err.contains("KEYWARD_NO_DAEMON=1"),
            "{err}"
        );
        assert_eq!(err.lines().count(), 1, "{err}");
    }
    assert_eq!(count(&rig.db, "SELECT count(*) FROM runs"), runs);
}

/// Attack: a peer that is neither root nor in the group gets `403` from
/// the new routes as from every other, the CLI reports the refusal (exit
/// 6) instead of working around it, nothing is revoked, and each refused
/// request is logged with the path and never the body.
#[test]
fn an_unauthorized_peer_is_refused_by_the_lifecycle_routes() {
    let rig = rig();
    let d = daemon(&rig, &["--danger-simulator", "--danger-socket-mode", "666"]);
    let binding = enroll_sim(&rig, Some(&d));
    // The binary, a ticket and the PUK where `nobody` can read them.
    let dir = common::tempdir();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let bin = dir.path().join("keyward");
    std::fs::copy(env!("CARGO_BIN_EXE_keyward"), &bin).unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    let ticket = dir.path().join("t.jws");
    std::fs::write(&ticket, rig.ticket(&claims("standard"))).unwrap();
    std::fs::set_permissions(&ticket, std::fs::Permissions::from_mode(0o644)).unwrap();
    let ticket = ticket.to_string_lossy().into_owned();
    let as_nobody = |args: &[&str], stdin: &str| {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=nobody", "--regid=65534", "--clear-groups"])
            .arg(&bin)
            .env("KEYWARD_SOCKET", &d.socket)
            .env("RUST_LOG", "warn")
            .env("HOME", "/nonexistent")
            .args(args);
        lifecycle_support::run_in(&mut c, stdin)
    };
    // The CLI: revoke posts directly; return and unblock open the event
    // stream first, refused all the same. Exit 6, never a silent bypass.
    for (args, stdin) in [
        (vec!["revoke", &binding, "--reason", "stolen"], ""),
        (vec!["return", "--device", "sim"], ""),
        (
            vec![
                "unblock", "--device", "sim", "--puk-fd", "0", "--pin-fd", "0", "--ticket", &ticket,
            ],
            "80461735\n951847\n",
        ),
    ] {
        let o = as_nobody(&args, stdin);
        assert_eq!(o.status.code(), Some(6), "{args:?}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains("refused this user") && err.contains("no group is configured"),
            "{err}"
        );
    }
    // The routes themselves, with well-formed bodies, from the same peer.
    let ticket_text = std::fs::read_to_string(&ticket).unwrap();
    for (path, body) in [
        (
            "/v1/revoke",
            json!({"binding": binding, "reason": "stolen"}),
        ),
        (
            "/v1/return",
            json!({"device": "sim", "danger_allow_unbound": true}),
        ),
        (
            "/v1/unblock",
            json!({"ticket": ticket_text, "device": "sim", "puk": "80461735", "new_pin": "951847"}),
        ),
    ] {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=nobody", "--regid=65534", "--clear-groups"])
            .args(["curl", "-s", "-w", "\n%{http_code}", "--unix-socket"])
            .arg(&d.socket)
            .args(["-H", "Content-Type: application/json", "--data-binary"])
            .arg(body.to_string())
            .arg(format!("http://keyward{path}"));
        let o = common::run(&mut c);
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(out.ends_with("\n403"), "{path}: {out}");
        assert!(
            out.contains("\"forbidden\"") && !out.contains("80461735"),
            "{out}"
        );
    }
    assert_eq!(
        count(
            &rig.db,
            &format!("SELECT count(*) FROM bindings WHERE id = '{binding}' AND state = 'active'")
        ),
        1
    );
    assert_eq!(
        count(&rig.db, "SELECT count(*) FROM runs WHERE kind != 'enroll'"),
        0
    );
    let log = d.log_text();
    for path in ["/v1/revoke", "/v1/return", "/v1/unblock"] {
        assert!(
            log.lines()
                .any(|l| l.contains("refused API request") && l.contains(path)),
            "{path}: {log}"
        );
    }
    assert!(
        !log.contains("80461735") && !log.contains("951847"),
        "{log}"
    );
}

/// Bodies the routes refuse, each with its status and code, none echoing
/// a secret; no job started, no run recorded.
#[test]
fn bad_lifecycle_bodies_are_refused_without_echoing_them() {
    let rig = rig();
    let d = daemon(&rig, &["--danger-simulator"]);
    let c = d.client();
    let ticket = String::from_utf8(rig.ticket(&claims("standard"))).unwrap();
    let post = |path: &str, body: &str| {
        c.call("POST", path, Some(body.as_bytes()))
            .unwrap_err()
            .to_string()
    };
    let secret = "80461735";
    for (path, body, want) in [
        (
            "/v1/unblock",
            json!({"ticket": ticket, "device": "sim", "puk": secret}).to_string(),
            "\"new_pin\" are required",
        ),
        (
            "/v1/unblock",
            json!({"ticket": ticket, "device": "sim", "puk": 80461735, "new_pin": "951847"})
                .to_string(),
            "400 bad-request",
        ),
        (
            "/v1/unblock",
            json!({"ticket": ticket, "device": "sim", "puk": secret, "new_pin": "951847", "pin": "1"})
                .to_string(),
            "400 bad-request",
        ),
        (
            "/v1/unblock",
            format!("{{\"ticket\":\"t\",\"device\":\"sim\",\"puk\":\"{secret}"),
            "400 bad-request",
        ),
        (
            "/v1/return",
            json!({"device": "sim", "danger_allow_unbound": "yes"}).to_string(),
            "400 bad-request",
        ),
        (
            "/v1/return",
            json!({"device": "pcsc:No Such Reader"}).to_string(),
            "404 no-such-device",
        ),
        (
            "/v1/revoke",
            json!({"binding": "b", "reason": "misplaced"}).to_string(),
            "400 bad-request",
        ),
        (
            "/v1/revoke",
            json!({"binding": "0123abcd", "reason": "lost"}).to_string(),
            "422 binding-not-found",
        ),
    ] {
        let e = post(path, &body);
        assert!(e.contains(want), "{path} {body}: {e}");
        assert!(!e.contains(secret), "{e}");
    }
    // Over the size limit.
    let big = json!({"binding": "x".repeat(70 * 1024), "reason": "lost"}).to_string();
    assert!(post("/v1/revoke", &big).contains("413 body-too-large"));
    // Not JSON.
    let r = c
        .request("POST", "/v1/revoke", None)
        .map(|r| r.status)
        .unwrap();
    assert_eq!(r, 415);
    // Wrong method.
    assert!(
        c.get("/v1/unblock")
            .unwrap_err()
            .to_string()
            .contains("405 method-not-allowed")
    );
    assert_eq!(c.get("/v1/jobs").unwrap()["jobs"], json!([]));
    // The failed revocation of an unknown binding is the only run.
    assert_eq!(count(&rig.db, "SELECT count(*) FROM runs"), 1);
    assert!(!d.log_text().contains(secret));

    // Return and unblock need a station; revoke only the ledger.
    let bare = Daemon::start(&[], &[]);
    let e = bare
        .client()
        .call(
            "POST",
            "/v1/return",
            Some(json!({"device": "sim"}).to_string().as_bytes()),
        )
        .unwrap_err()
        .to_string();
    assert!(e.contains("503 no-station"), "{e}");
    let e = bare
        .client()
        .call(
            "POST",
            "/v1/revoke",
            Some(
                json!({"binding": "0123abcd", "reason": "lost"})
                    .to_string()
                    .as_bytes(),
            ),
        )
        .unwrap_err()
        .to_string();
    assert!(e.contains("422 binding-not-found"), "{e}");
}

// ------------------------------------------------- on the rig (pcscd + vpcd)

/// A daemon over the station of tests/lifecycle_support.
fn lifecycle_daemon(st: &lifecycle_support::Station) -> Daemon {
    let config = st.path("keyward.toml").to_string_lossy().into_owned();
    let db = st.db().to_string_lossy().into_owned();
    Daemon::start(&["--config", &config, "--db", &db], &[])
}

/// Wait until the daemon has identified the card in `reader`.
fn identified(d: &Daemon, reader: &str) {
    let id = format!("pcsc:{reader}");
    let c = d.client();
    let mut ev = c
        .clone()
        .with_timeout(Some(Duration::from_secs(60)))
        .events()
        .unwrap();
    let known = |c: &keyward::daemon::client::Client| {
        c.devices().unwrap()["devices"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["id"] == id.as_str() && !x["interfaces"][0]["identity"].is_null())
    };
    if !known(&c) {
        wait_event(&mut ev, Duration::from_secs(30), |e| {
            e.event == "device" && e.data["event"] == "identified" && e.data["id"] == id.as_str()
        });
    }
}

/// `keyward return` through the daemon on a virtual card: the job proves,
/// resets and stocks the key exactly as standalone, its touch prompt comes
/// from the job's event stream, and the document names the job.
#[test]
#[ignore = "needs the test rig: pcscd + vpcd (scripts/test runs it)"]
fn return_to_stock_through_the_daemon() {
    common::require_rig();
    let st = lifecycle_support::Station::new();
    let sim = common::start_sim(&["--serial", "7101"]);
    let reader = sim.reader.name;
    let (b, _puk) = lifecycle_support::enroll(&st, reader, "alice", lifecycle_support::PIV_PIN);
    let d = lifecycle_daemon(&st);
    identified(&d, reader);
    let o = kw(
        Some(&d),
        &[
            "return",
            "--json",
            "--reinsert-timeout",
            "30",
            "--device",
            reader,
        ],
        "",
    );
    assert!(o.status.success(), "{}", d.log_text());
    let v = lifecycle_support::json_of(&o);
    assert_eq!((&v["ok"], &v["via"]), (&json!(true), &json!("daemon")));
    assert!(v["job"].is_string());
    assert_eq!(v["serial"], "7101");
    assert_eq!(v["binding"], b.as_str());
    assert_eq!(v["stock"], "in_stock");
    assert_eq!(
        (&v["reset"]["piv"], &v["reset"]["fido2"]),
        (&json!(true), &json!(true))
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("Touch your key"));
    assert_eq!(lifecycle_support::binding_state(&st, &b), "returned");
    let job = d
        .client()
        .get(&format!("/v1/jobs/{}", v["job"].as_str().unwrap()))
        .unwrap();
    assert_eq!(
        (&job["kind"], &job["state"]),
        (&json!("return"), &json!("completed"))
    );
    lifecycle_support::audit_ok(&st);
}

/// `keyward unblock` through the daemon on a virtual card with a blocked
/// PIN: the PUK and new PIN travel only in the request body, the PIN is
/// unblocked, the ticket consumed, and no secret reaches the output, the
/// daemon's log or the ledger.
#[test]
#[ignore = "needs the test rig: pcscd + vpcd (scripts/test runs it)"]
fn unblock_through_the_daemon() {
    use lifecycle_support::{NEW_PIN, PIV_PIN};
    common::require_rig();
    let st = lifecycle_support::Station::new();
    let sim = common::start_sim(&["--serial", "7102"]);
    let reader = sim.reader.name;
    let (b, puk) = lifecycle_support::enroll(&st, reader, "bob", PIV_PIN);
    lifecycle_support::block_pin(reader);
    let ticket = st.ticket("unblock.jwt", "bob", &["unblock"], "default");
    let ticket = ticket.to_string_lossy().into_owned();
    let d = lifecycle_daemon(&st);
    identified(&d, reader);
    let o = kw(
        Some(&d),
        &[
            "unblock", "--json", "--device", reader, "--puk-fd", "0", "--pin-fd", "0", "--ticket",
            &ticket,
        ],
        &format!("{}\n{NEW_PIN}\n", puk.expose_secret()),
    );
    assert!(o.status.success(), "{}", d.log_text());
    let v = lifecycle_support::json_of(&o);
    assert_eq!((&v["ok"], &v["via"]), (&json!(true), &json!("daemon")));
    assert_eq!(v["binding"], b.as_str());
    assert_eq!(v["changed"], json!(["pin"]));
    assert!(lifecycle_support::pin_works(reader, NEW_PIN));
    lifecycle_support::no_secret_in(&o, &st, puk.expose_secret());
    let log = d.log_text();
    for s in [NEW_PIN, puk.expose_secret()] {
        assert!(!log.contains(s), "secret in the daemon log");
    }
    let jobs = d.client().get("/v1/jobs").unwrap().to_string();
    assert!(!jobs.contains(NEW_PIN) && !jobs.contains(puk.expose_secret()));
    // The same ticket again: refused as used, before the card.
    let o = kw(
        Some(&d),
        &[
            "unblock", "--device", reader, "--puk-fd", "0", "--pin-fd", "0", "--ticket", &ticket,
        ],
        &format!("{}\n{NEW_PIN}\n", puk.expose_secret()),
    );
    assert_eq!(o.status.code(), Some(24));
}
