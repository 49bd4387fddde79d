//! Enrollment through the daemon's API: `POST /v1/enroll` on the in-process
//! simulator and on a virtual card through pcscd, progress on the event
//! stream, the job's result, the binding in the ledger, `/metrics` moving;
//! cancellation, and SIGTERM with a job in flight (finished within the
//! grace period, or aborted after it) — each time exit 0 and the run
//! recorded. The station is a real keyward.toml (tests/provision_support).

#![cfg(feature = "sim")]

mod common;
mod daemon_support;
mod provision_support;

use std::time::Duration;

use daemon_support::{Daemon, wait_event};
use keyward::daemon::client::{Client, Event, Events};
use provision_support::{PIN, Rig, claims, count, fido_op, piv_op, rig};
use serde_json::{Value, json};

/// One pcscd test at a time in this file: a daemon's detector probes every
/// card that arrives in any reader, and a probe between two commands of
/// another daemon's enrollment would be a test artefact (one kiosk runs one
/// daemon).
static PCSC: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn pcsc_lock() -> std::sync::MutexGuard<'static, ()> {
    PCSC.lock().unwrap_or_else(|p| p.into_inner())
}

/// Wait for `what` from job `id`; panics with the job's end if it ends first.
fn wait_job_event(ev: &mut Events, id: &str, what: &str) {
    let e = wait_event(ev, Duration::from_secs(60), |e| {
        e.data["job"] == id
            && (e.data["event"] == what || (e.event == "job" && e.data["state"] != "running"))
    });
    assert_eq!(e.data["event"], what, "job ended first: {:?}", e.data);
}

/// A simulator with a serial of our own on a leased reader that is empty:
/// a reader still holding another process's card is skipped (its lease
/// kept until we are done), so a test never provisions a card it did not
/// start.
fn own_sim(serial: u32, extra: &[&str]) -> (common::Sim, Vec<common::Reader>) {
    let mut skipped = Vec::new();
    loop {
        let r = common::lease_reader();
        if common::wait_card(r.name, false, Duration::from_secs(2)) {
            let mut args = vec!["--serial".to_string(), serial.to_string()];
            args.extend(extra.iter().map(|a| a.to_string()));
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            return (common::start_sim_on(r, &args), skipped);
        }
        eprintln!(
            "reader {:?} holds a card we did not start; skipping it",
            r.name
        );
        skipped.push(r);
        assert!(skipped.len() < 8, "every vpcd reader holds a foreign card");
    }
}

fn daemon(rig: &Rig, extra: &[&str]) -> Daemon {
    let config = rig.config.to_string_lossy().into_owned();
    let db = rig.db.to_string_lossy().into_owned();
    let mut args = vec!["--config", &config, "--db", &db];
    args.extend_from_slice(extra);
    Daemon::start(&args, &[])
}

fn events(c: &Client) -> Events {
    let mut ev = c
        .clone()
        .with_timeout(Some(Duration::from_secs(90)))
        .events()
        .unwrap();
    assert_eq!(ev.next().unwrap().unwrap().event, "snapshot");
    ev
}

fn post_enroll(c: &Client, ticket: &[u8], device: &str) -> String {
    let body = json!({"ticket": String::from_utf8_lossy(ticket), "device": device, "pin": PIN});
    let r = c
        .call("POST", "/v1/enroll", Some(body.to_string().as_bytes()))
        .expect("enroll accepted");
    r["job"].as_str().unwrap().to_string()
}

/// Read the stream until job `id` ends; returns its progress events and the
/// final `job` event.
fn follow(ev: &mut Events, id: &str) -> (Vec<Event>, Event) {
    let mut progress = Vec::new();
    loop {
        let e = wait_event(ev, Duration::from_secs(90), |e| e.data["job"] == id);
        if e.event == "progress" {
            progress.push(e);
        } else if e.event == "job" && e.data["state"] != "running" {
            return (progress, e);
        }
    }
}

fn steps(progress: &[Event]) -> Vec<String> {
    progress
        .iter()
        .filter(|e| e.data["event"] == "step-started")
        .map(|e| e.data["step"].as_str().unwrap().to_string())
        .collect()
}

fn metric(c: &Client, line_start: &str) -> f64 {
    let text = String::from_utf8(c.request("GET", "/metrics", None).unwrap().body).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(line_start)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {line_start} in {text}"))
}

#[test]
fn enroll_on_the_in_process_simulator_through_the_api() {
    let rig = rig();
    let d = daemon(&rig, &["--danger-simulator", "-vvv"]);
    let c = d.client();
    assert_eq!(metric(&c, "keyward_enrollments_completed_total "), 0.0);
    let mut ev = events(&c);
    let ticket = rig.ticket(&claims("standard"));
    let id = post_enroll(&c, &ticket, "sim");
    let (progress, end) = follow(&mut ev, &id);
    assert_eq!(end.data["state"], "completed", "{:?}", end.data);
    assert_eq!(
        steps(&progress),
        [
            "ticket",
            "policy",
            "identify",
            "set-pin",
            "enterprise-attestation",
            "make-credential",
            "fido-attestation",
            "get-assertion",
            "commit"
        ]
    );
    let job = c.get(&format!("/v1/jobs/{id}")).unwrap();
    assert_eq!(job["state"], "completed");
    let binding = job["result"]["binding"].as_str().unwrap();
    assert_eq!(job["result"]["subject"], provision_support::SUB);
    assert_eq!(
        count(
            &rig.db,
            &format!("SELECT count(*) FROM bindings WHERE id = '{binding}' AND state = 'active'")
        ),
        1
    );
    assert_eq!(metric(&c, "keyward_enrollments_started_total "), 1.0);
    assert_eq!(metric(&c, "keyward_enrollments_completed_total "), 1.0);
    assert_eq!(metric(&c, "keyward_time_to_issue_seconds_count "), 1.0);
    assert_eq!(metric(&c, "keyward_bindings_active "), 1.0);

    // The same ticket again: the job fails with the stable reason, and the
    // failure is counted by reason.
    let id = post_enroll(&c, &ticket, "sim");
    let (_, end) = follow(&mut ev, &id);
    assert_eq!(end.data["state"], "failed");
    assert_eq!(end.data["error"]["reason"], "ticket-replayed");
    assert_eq!(
        metric(
            &c,
            "keyward_enrollments_failed_total{reason=\"ticket-replayed\"} "
        ),
        1.0
    );

    // No PIN anywhere: not in the daemon's log at -vvv, not in any answer.
    drop(ev);
    let log = d.log_text();
    assert!(!log.contains(PIN), "PIN in the daemon log");
    let jobs = c.get("/v1/jobs").unwrap().to_string();
    assert!(!jobs.contains(PIN));
}

#[test]
fn enroll_refusals_name_the_problem() {
    let rig = rig();
    // Without --danger-simulator, "sim" is not a device.
    let d = daemon(&rig, &[]);
    let c = d.client();
    let ticket = String::from_utf8(rig.ticket(&claims("standard"))).unwrap();
    let call = |body: Value| {
        c.call("POST", "/v1/enroll", Some(body.to_string().as_bytes()))
            .unwrap_err()
            .to_string()
    };
    let e = call(json!({"ticket": ticket, "device": "sim", "pin": PIN}));
    assert!(
        e.contains("404 no-such-device") && e.contains("--danger-simulator"),
        "{e}"
    );
    let e = call(json!({"ticket": ticket, "device": "pcsc:No Such Reader", "pin": PIN}));
    assert!(
        e.contains("\"pcsc:No Such Reader\"") && e.contains("/v1/devices"),
        "{e}"
    );
    let e = call(json!({"ticket": ticket, "device": "sim"}));
    assert!(e.contains("\"pin\" is required"), "{e}");
    // Nothing was started, nothing written.
    assert_eq!(c.get("/v1/jobs").unwrap()["jobs"], json!([]));
    assert_eq!(count(&rig.db, "SELECT count(*) FROM runs"), 0);

    // A daemon without a station configuration refuses enrollments.
    let bare = Daemon::start(&[], &[]);
    let e = bare
        .client()
        .call(
            "POST",
            "/v1/enroll",
            Some(
                json!({"ticket": ticket, "device": "sim", "pin": PIN})
                    .to_string()
                    .as_bytes(),
            ),
        )
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("503 no-station") && e.contains("--config"),
        "{e}"
    );
}

fn fido_and_piv() -> keyward::ticket::Claims {
    let mut c = claims("standard");
    c.ops = vec![fido_op(), piv_op("9a", "p256")];
    c
}

/// Wait until the daemon has identified the card in `reader`, and check it
/// is ours (`serial`).
fn identified(ev: &mut Events, c: &Client, reader: &str, serial: u32) -> String {
    let id = format!("pcsc:{reader}");
    let known = c.devices().unwrap()["devices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["id"] == id.as_str() && !x["interfaces"][0]["identity"].is_null())
        .map(|x| x["interfaces"][0]["identity"].clone());
    let identity = known.unwrap_or_else(|| {
        wait_event(ev, Duration::from_secs(30), |e| {
            e.event == "device" && e.data["event"] == "identified" && e.data["id"] == id.as_str()
        })
        .data["identity"]
            .clone()
    });
    assert_eq!(
        identity["serial"], serial,
        "the card in {reader} is not ours"
    );
    id
}

#[test]
#[ignore = "needs the test rig: pcscd + vpcd (scripts/test runs it)"]
fn enroll_fido2_and_piv_through_pcscd_via_the_api() {
    common::require_rig();
    let _one = pcsc_lock();
    let rig = rig();
    let d = daemon(&rig, &[]);
    let c = d.client();
    let mut ev = events(&c);
    let (sim, _skipped) = own_sim(4_200_001, &[]);
    let device = identified(&mut ev, &c, sim.reader.name, 4_200_001);
    let id = post_enroll(&c, &rig.ticket(&fido_and_piv()), &device);
    // A second job on the same device is refused while the first runs.
    let again = c.call(
        "POST",
        "/v1/enroll",
        Some(
            json!({"ticket": "x", "device": device, "pin": PIN})
                .to_string()
                .as_bytes(),
        ),
    );
    if let Err(e) = again {
        let e = e.to_string();
        assert!(
            e.contains("409 device-busy") || e.contains("no-such-device"),
            "{e}"
        );
    }
    let (progress, end) = follow(&mut ev, &id);
    assert_eq!(end.data["state"], "completed", "{:?}", end.data);
    let s = steps(&progress);
    assert!(s.contains(&"piv-keygen".to_string()) && s.contains(&"make-credential".to_string()));
    let job = c.get(&format!("/v1/jobs/{id}")).unwrap();
    assert_eq!(job["result"]["serial"], "4200001");
    assert_eq!(job["result"]["credentials"].as_array().unwrap().len(), 2);
    assert_eq!(count(&rig.db, "SELECT count(*) FROM bindings"), 1);
}

#[test]
#[ignore = "needs the test rig: pcscd + vpcd (scripts/test runs it)"]
fn cancel_aborts_a_job_waiting_for_a_touch_and_commits_nothing() {
    common::require_rig();
    let _one = pcsc_lock();
    let rig = rig();
    let d = daemon(&rig, &[]);
    let c = d.client();
    let mut ev = events(&c);
    let (sim, _skipped) = own_sim(4200101, &["--no-touch", "--touch-timeout-ms", "60000"]);
    let device = identified(&mut ev, &c, sim.reader.name, 4200101);
    let id = post_enroll(&c, &rig.ticket(&claims("standard")), &device);
    wait_job_event(&mut ev, &id, "touch-needed");
    let r = c
        .call("POST", &format!("/v1/jobs/{id}/cancel"), None)
        .unwrap();
    assert_eq!(r["id"], id.as_str());
    let (_, end) = follow(&mut ev, &id);
    assert_eq!(end.data["state"], "aborted", "{:?}", end.data);
    assert_eq!(end.data["error"]["reason"], "cancelled");
    assert_eq!(count(&rig.db, "SELECT count(*) FROM bindings"), 0);
    assert_eq!(count(&rig.db, "SELECT count(*) FROM tickets"), 0);
    assert_eq!(
        count(
            &rig.db,
            "SELECT count(*) FROM runs WHERE outcome = 'aborted'"
        ),
        1
    );
    assert_eq!(metric(&c, "keyward_enrollments_aborted_total "), 1.0);
}

#[test]
#[ignore = "needs the test rig: pcscd + vpcd (scripts/test runs it)"]
fn sigterm_lets_a_job_finish_within_the_grace_period() {
    common::require_rig();
    let _one = pcsc_lock();
    let rig = rig();
    let mut d = daemon(&rig, &["--grace", "60s"]);
    let c = d.client();
    let mut ev = events(&c);
    let (sim, _skipped) = own_sim(4200102, &["--touch-delay-ms", "3000"]);
    let device = identified(&mut ev, &c, sim.reader.name, 4200102);
    let id = post_enroll(&c, &rig.ticket(&claims("standard")), &device);
    wait_job_event(&mut ev, &id, "touch-needed");
    let st = d.terminate(Duration::from_secs(90));
    assert!(st.success(), "exit {st}: {}", d.log_text());
    assert_eq!(
        count(
            &rig.db,
            "SELECT count(*) FROM runs WHERE outcome = 'completed'"
        ),
        1,
        "{}",
        d.log_text()
    );
    assert_eq!(count(&rig.db, "SELECT count(*) FROM bindings"), 1);
}

#[test]
#[ignore = "needs the test rig: pcscd + vpcd (scripts/test runs it)"]
fn sigterm_after_the_grace_period_aborts_the_job_cleanly() {
    common::require_rig();
    let _one = pcsc_lock();
    let rig = rig();
    let mut d = daemon(&rig, &["--grace", "1s"]);
    let c = d.client();
    let mut ev = events(&c);
    let (sim, _skipped) = own_sim(4200103, &["--no-touch", "--touch-timeout-ms", "60000"]);
    let device = identified(&mut ev, &c, sim.reader.name, 4200103);
    let id = post_enroll(&c, &rig.ticket(&claims("standard")), &device);
    wait_job_event(&mut ev, &id, "touch-needed");
    let st = d.terminate(Duration::from_secs(60));
    assert!(st.success(), "exit {st}: {}", d.log_text());
    assert!(d.log_text().contains("cancelling running jobs"));
    assert_eq!(
        count(
            &rig.db,
            "SELECT count(*) FROM runs WHERE outcome = 'aborted' AND reason = 'cancelled'"
        ),
        1,
        "{}",
        d.log_text()
    );
    assert_eq!(count(&rig.db, "SELECT count(*) FROM bindings"), 0);
    assert_eq!(count(&rig.db, "SELECT count(*) FROM tickets"), 0);
    drop(sim);
}

/// `keyward enroll` with a daemon on `KEYWARD_SOCKET`: PIN on stdin.
fn cli_enroll(d: &Daemon, ticket: &std::path::Path, json: bool) -> std::process::Output {
    let json: &[&str] = if json { &["--json"] } else { &[] };
    enroll_cmd(Some(d), json, &[], ticket)
}

/// `keyward [GLOBAL] enroll --device sim [EXTRA] --ticket T`, the PIN on
/// stdin, through `d` (else standalone).
fn enroll_cmd(
    d: Option<&Daemon>,
    global: &[&str],
    extra: &[&str],
    ticket: &std::path::Path,
) -> std::process::Output {
    use std::io::Write;
    let mut c = common::keyward();
    match d {
        Some(d) => c.env("KEYWARD_SOCKET", &d.socket),
        None => c.env("KEYWARD_NO_DAEMON", "1"),
    };
    c.args(global)
        .args(["enroll", "--device", "sim"])
        .args(extra)
        .arg("--ticket")
        .arg(ticket)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = c.spawn().unwrap();
    writeln!(child.stdin.take().unwrap(), "{PIN}").unwrap();
    let o = child.wait_with_output().unwrap();
    eprintln!(
        "-> {}\n{}\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

#[test]
fn keyward_enroll_goes_through_a_running_daemon() {
    let rig = rig();
    let d = daemon(&rig, &["--danger-simulator"]);
    let ticket = rig.dir.path().join("t.jws");
    std::fs::write(&ticket, rig.ticket(&claims("standard"))).unwrap();
    let o = cli_enroll(&d, &ticket, true);
    assert!(o.status.success());
    let doc: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!((&doc["ok"], &doc["via"]), (&json!(true), &json!("daemon")));
    let binding = doc["binding"].as_str().unwrap();
    assert_eq!(
        count(
            &rig.db,
            &format!("SELECT count(*) FROM bindings WHERE id = '{binding}'")
        ),
        1
    );
    // The job is the daemon's.
    assert_eq!(
        d.client().get("/v1/jobs").unwrap()["jobs"][0]["state"],
        "completed"
    );
    // The same ticket again: refused by the daemon's ticket check before
    // the key, exit 24 (replayed) as from `ticket verify`.
    let o = cli_enroll(&d, &ticket, false);
    assert_eq!(o.status.code(), Some(24));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("[ticket-replayed]"), "{err}");
    for out in [&o.stdout, &o.stderr] {
        assert!(!String::from_utf8_lossy(out).contains(PIN));
    }
}

#[test]
#[ignore = "needs the test rig: pcscd + vpcd (scripts/test runs it)"]
fn a_key_pulled_mid_job_ends_it_with_nothing_committed() {
    common::require_rig();
    let _one = pcsc_lock();
    let rig = rig();
    let d = daemon(&rig, &[]);
    let c = d.client();
    let mut ev = events(&c);
    let (mut sim, _skipped) = own_sim(4200104, &["--no-touch", "--touch-timeout-ms", "60000"]);
    let device = identified(&mut ev, &c, sim.reader.name, 4200104);
    let id = post_enroll(&c, &rig.ticket(&claims("standard")), &device);
    wait_job_event(&mut ev, &id, "touch-needed");
    sim.stop();
    let (_, end) = follow(&mut ev, &id);
    assert_ne!(end.data["state"], "completed", "{:?}", end.data);
    // The daemon's removal event ends the run as device-removed; the
    // transport may see the card go first (device-error). Either way
    // nothing is committed.
    let reason = end.data["error"]["reason"].as_str().unwrap();
    assert!(
        ["device-removed", "device-error"].contains(&reason),
        "{:?}",
        end.data
    );
    assert_eq!(count(&rig.db, "SELECT count(*) FROM bindings"), 0);
    assert_eq!(count(&rig.db, "SELECT count(*) FROM tickets"), 0);
    assert_eq!(
        count(
            &rig.db,
            "SELECT count(*) FROM runs WHERE outcome IS NOT NULL AND outcome != 'completed'"
        ),
        1
    );
}

/// `keyward enroll --json` through a running daemon and standalone give the
/// same document for the same ticket and key (the in-process simulator,
/// serial 12345678, on two stations with the same issuer trust). Only the
/// fields that must differ are dropped before comparing: the binding and
/// run ids (fresh per run), the job id and `via` (the route), the FIDO2
/// credential id (a new random credential) and step timings.
#[test]
fn enroll_json_is_the_same_through_the_daemon_and_standalone() {
    let a = rig();
    let b = rig();
    let d = daemon(&a, &["--danger-simulator"]);
    let ticket = a.dir.path().join("t.jws");
    std::fs::write(&ticket, a.ticket(&claims("standard"))).unwrap();
    let via_daemon = cli_enroll(&d, &ticket, true);
    assert!(via_daemon.status.success());
    let config = b.config.to_string_lossy().into_owned();
    let local = enroll_cmd(None, &["--config", &config, "--json"], &[], &ticket);
    assert!(local.status.success());
    let norm = |out: &[u8]| {
        let mut v: Value = serde_json::from_slice(out).unwrap();
        let m = v.as_object_mut().unwrap();
        for k in ["binding", "run", "job", "via"] {
            m.remove(k);
        }
        for c in m["credentials"].as_array_mut().unwrap() {
            c.as_object_mut().unwrap().remove("credential_id");
        }
        for s in m["steps"].as_array_mut().unwrap() {
            let s = s.as_object_mut().unwrap();
            s.remove("elapsed_ms");
            // The same two ids again, in the steps' details.
            if let Some(d) = s.get_mut("detail").and_then(Value::as_object_mut) {
                d.remove("credential_id");
                d.remove("binding");
            }
        }
        v
    };
    let (dv, lv) = (norm(&via_daemon.stdout), norm(&local.stdout));
    assert_eq!(dv, lv);
    assert_eq!(dv["version"], 1);
    assert_eq!(dv["serial"], "12345678");
    let raw: Value = serde_json::from_slice(&via_daemon.stdout).unwrap();
    assert_eq!(raw["via"], "daemon");
}

/// Flags the daemon route cannot honour are refused with one line, before
/// any PIN is asked for or key touched.
#[test]
fn the_daemon_route_refuses_flags_it_cannot_honour() {
    let rig = rig();
    let d = daemon(&rig, &["--danger-simulator"]);
    let ticket = rig.dir.path().join("t.jws");
    std::fs::write(&ticket, rig.ticket(&claims("standard"))).unwrap();
    for extra in [
        vec!["--db", "/tmp/other.db"],
        vec!["--config", "/etc/keyward/other.toml"],
    ] {
        let o = common::keyward()
            .env("KEYWARD_SOCKET", &d.socket)
            .args(&extra)
            .args(["enroll", "--device", "sim", "--ticket"])
            .arg(&ticket)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(2), "{o:?}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains(extra[0]) && err.contains("KEYWARD_NO_DAEMON"),
            "{err}"
        );
        assert_eq!(err.lines().count(), 1, "{err}");
    }
    let o = common::keyward()
        .env("KEYWARD_SOCKET", &d.socket)
        .args(["enroll", "--device", "sim", "--puk-out-fd", "5", "--ticket"])
        .arg(&ticket)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    assert!(String::from_utf8_lossy(&o.stderr).contains("--puk-out-fd"));
    // Nothing ran.
    assert!(
        d.client().get("/v1/jobs").unwrap()["jobs"]
            .as_array()
            .unwrap()
            .is_empty()
    );
}

/// `--slot` and `--touch-timeout` reach the daemon's run, and the ticket
/// is checked through `POST /v1/preview` before the key: an expired ticket
/// exits 22 and no job is started.
#[test]
fn the_daemon_route_honours_slot_and_checks_the_ticket_first() {
    let rig = rig();
    let d = daemon(&rig, &["--danger-simulator"]);
    let mut c = claims("standard");
    c.iat -= 7200;
    c.nbf -= 7200;
    c.exp = c.iat + 600;
    let expired = rig.dir.path().join("expired.jws");
    std::fs::write(&expired, rig.ticket(&c)).unwrap();
    let o = cli_enroll(&d, &expired, false);
    assert_eq!(o.status.code(), Some(22));
    assert!(String::from_utf8_lossy(&o.stderr).contains("[ticket-time]"));
    assert!(
        d.client().get("/v1/jobs").unwrap()["jobs"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    let ticket = rig.dir.path().join("t.jws");
    std::fs::write(&ticket, rig.ticket(&claims("standard"))).unwrap();
    let o = enroll_cmd(
        Some(&d),
        &[],
        &["--slot", "kiosk-7", "--touch-timeout", "12"],
        &ticket,
    );
    assert!(o.status.success(), "{o:?}");
    assert_eq!(
        count(
            &rig.db,
            "SELECT count(*) FROM runs WHERE slot = 'kiosk-7' AND outcome = 'completed'"
        ),
        1
    );
}

/// Ctrl-C on `keyward enroll` through the daemon cancels the daemon's job
/// (it would otherwise go on without the person): the job ends aborted,
/// nothing is committed, and the CLI exits 1 with `[cancelled]`.
#[test]
#[ignore = "needs the test rig: pcscd + vpcd (scripts/test runs it)"]
fn ctrl_c_on_the_cli_cancels_the_daemons_job() {
    common::require_rig();
    let _one = pcsc_lock();
    let rig = rig();
    let d = daemon(&rig, &[]);
    let c = d.client();
    let mut ev = events(&c);
    let (sim, _skipped) = own_sim(4200301, &["--no-touch", "--touch-timeout-ms", "60000"]);
    identified(&mut ev, &c, sim.reader.name, 4200301);
    let ticket = rig.dir.path().join("t.jws");
    std::fs::write(&ticket, rig.ticket(&claims("standard"))).unwrap();
    let mut cmd = common::keyward();
    cmd.env("KEYWARD_SOCKET", &d.socket)
        .args(["enroll", "--device", sim.reader.name, "--ticket"])
        .arg(&ticket)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    {
        use std::io::Write;
        writeln!(child.stdin.take().unwrap(), "{PIN}").unwrap();
    }
    let job = wait_event(&mut ev, Duration::from_secs(60), |e| {
        e.data["event"] == "touch-needed"
    });
    assert!(job.data["job"].is_string());
    // SAFETY: kill has no memory preconditions; the pid is our child's.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("[cancelled]"), "{err}");
    assert_eq!(count(&rig.db, "SELECT count(*) FROM bindings"), 0);
    assert_eq!(
        count(
            &rig.db,
            "SELECT count(*) FROM runs WHERE outcome = 'aborted'"
        ),
        1
    );
}
