//! `keyward demo`: a kiosk enrollment through the real workflow
//! (`provision::enroll`) on the built-in simulator.
//!
//! - through pcscd (the simulated card in a leased vpcd reader): FIDO2 and
//!   PIV on one key, the card gone from the reader afterwards;
//! - without pcscd (pcsc-lite pointed at a socket that does not exist):
//!   FIDO2 in-process, the PIV hint, exit 0;
//! - `--db` kept and read back by `bindings list`, `audit verify` (and
//!   `report` where the binary has it), a second run into the same ledger;
//! - the `--json` document;
//! - the PIN never in stdout, stderr at -vvv, or any file the demo leaves;
//! - its reader already holding another card: FIDO2 in-process, the other
//!   card left alone;
//! - Ctrl-C while the key waits for a touch: cancelled, nothing committed,
//!   the run recorded as aborted, no files left;
//! - bad inputs: a used --keep directory, a --db in a missing directory, a
//!   PIN the profile refuses, an unreadable --pin-fd, KEYWARD_DB ignored.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value;

/// A PIN the demo is given on --pin-fd 0, so the tests can look for it.
const PIN: &str = "80417263";

/// pcsc-lite's client library finds pcscd through this socket path; a path
/// that does not exist is a machine without pcscd.
const NO_PCSCD: (&str, &str) = (
    "PCSCLITE_CSOCK_NAME",
    "/nonexistent/keyward-test/pcscd.comm",
);

fn demo(args: &[&str]) -> Command {
    let mut c = common::keyward();
    c.arg("demo").args(args).env_remove("KEYWARD_DB");
    c
}

/// Run with `stdin` as the input (the PIN line for --pin-fd 0).
fn run_with_stdin(mut c: Command, stdin: &str) -> Output {
    c.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().expect("spawn keyward demo");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().expect("wait for keyward demo");
    eprintln!(
        "$ {c:?}\n-> {}\n--- stdout\n{}--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn json_doc(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not one JSON document ({e}):\n{}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The step names of the `step-started` events, in order.
fn started(doc: &Value) -> Vec<String> {
    doc["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| e["event"] == "step-started")
        .map(|e| e["step"].as_str().unwrap().to_string())
        .collect()
}

/// (kind, slot) of each credential of the outcome.
fn credentials(doc: &Value) -> Vec<(String, Option<String>)> {
    doc["outcome"]["credentials"]
        .as_array()
        .expect("credentials")
        .iter()
        .map(|c| {
            (
                c["kind"].as_str().unwrap().to_string(),
                c["slot"].as_str().map(str::to_string),
            )
        })
        .collect()
}

/// `bindings list --json` on `db`.
fn bindings(db: &Path) -> Vec<Value> {
    let out = common::run_ok(
        common::keyward()
            .arg("--db")
            .arg(db)
            .args(["bindings", "list", "--json"]),
    );
    let v: Value = serde_json::from_str(&out).expect("bindings list --json");
    let list = v.get("bindings").unwrap_or(&v);
    list.as_array().expect("a list of bindings").clone()
}

fn audit_verifies(db: &Path) {
    let out = common::run(
        common::keyward()
            .arg("--db")
            .arg(db)
            .args(["audit", "verify"]),
    );
    assert!(out.status.success(), "audit verify failed on {db:?}");
}

/// Every byte the demo left behind, and what it printed, is free of the PIN.
fn assert_no_pin(out: &Output, dirs: &[&Path]) {
    for (what, bytes) in [("stdout", &out.stdout), ("stderr", &out.stderr)] {
        assert!(
            !contains(bytes, PIN.as_bytes()),
            "the PIN appears in {what}"
        );
    }
    for dir in dirs {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_file() {
                let data = std::fs::read(&p).unwrap();
                assert!(!contains(&data, PIN.as_bytes()), "the PIN is in {p:?}");
            }
        }
    }
}

/// Run a demo through pcscd with a fresh ledger directory; once more when
/// the first run lost pcscd (another test file restarts pcscd on this
/// shared rig: the demo then runs FIDO2 in-process, or fails at whatever
/// step the card vanished). The second run must stand on its own.
fn through_pcscd(
    reader: &common::Reader,
    run: impl Fn(&Path) -> Output,
) -> (Output, tempfile::TempDir) {
    let dir = common::tempdir();
    let out = run(&dir.path().join("ledger.db"));
    let text = stdout(&out);
    if out.status.success() && !text.contains("in-process") {
        return (out, dir);
    }
    eprintln!("the demo did not get through pcscd (pcscd restarted by another test?); once more");
    common::require_rig();
    assert!(common::wait_card(
        reader.name,
        false,
        Duration::from_secs(10)
    ));
    let dir = common::tempdir();
    let out = run(&dir.path().join("ledger.db"));
    (out, dir)
}

/// Lease a reader that holds no card. A simulator some other test left
/// behind can sit in a reader whose lease was released; keep such leases
/// (so `lease_reader` moves on) until an empty reader turns up.
fn lease_empty_reader() -> common::Reader {
    let mut occupied = Vec::new();
    loop {
        let r = common::lease_reader();
        if common::wait_card(r.name, false, Duration::from_secs(2)) {
            return r;
        }
        eprintln!(
            "{:?} holds a card nobody leased; trying another reader",
            r.name
        );
        occupied.push(r);
        assert!(
            occupied.len() < common::READERS.len(),
            "every vpcd reader holds a card"
        );
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[test]
#[ignore = "needs the test rig: pcscd + vpcd (scripts/test runs it)"]
fn demo_through_pcscd_enrolls_fido2_and_piv_on_one_key() {
    common::require_rig();
    let reader = lease_empty_reader();
    let port = reader.port.to_string();
    let (out, dir) = through_pcscd(&reader, |db| {
        let mut c = demo(&["--json", "--pin-fd", "0", "--vpcd-port", &port]);
        c.arg("--db").arg(db);
        run_with_stdin(c, &format!("{PIN}\n"))
    });
    let db = dir.path().join("ledger.db");
    assert!(out.status.success(), "demo failed");
    let doc = json_doc(&out);
    assert_eq!(doc["ok"], true);
    assert_eq!(doc["key"]["transport"], "pcsc", "{}", doc["key"]);
    assert_eq!(doc["key"]["reader"], reader.name);
    assert_eq!(doc["key"]["piv"], true);
    assert_eq!(
        credentials(&doc),
        [
            ("fido2".to_string(), None),
            ("piv".to_string(), Some("9a".to_string())),
            ("piv".to_string(), Some("9c".to_string()))
        ]
    );
    let steps = started(&doc);
    for s in [
        "ticket",
        "policy",
        "identify",
        "drift-check",
        "set-pin",
        "enterprise-attestation",
        "make-credential",
        "fido-attestation",
        "get-assertion",
        "piv-pin",
        "piv-management-key",
        "piv-keygen",
        "piv-attestation",
        "piv-bind",
        "cross-check",
        "commit",
    ] {
        assert!(steps.contains(&s.to_string()), "{s} missing from {steps:?}");
    }
    // The FIDO2 attestation and the PIV card agree on the key's serial.
    let serial = doc["key"]["serial"].to_string();
    assert_eq!(doc["outcome"]["serial"], serial.as_str());
    assert_eq!(doc["binding"]["state"], "active");
    assert_eq!(doc["binding"]["device_serial"], serial.as_str());
    assert_eq!(doc["audit"]["ok"], true);
    // The demo took its card out of the reader when it finished.
    assert!(
        common::wait_card(reader.name, false, Duration::from_secs(10)),
        "the demo's card is still in {:?}",
        reader.name
    );
    let list = bindings(&db);
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["device_serial"], serial.as_str());
    audit_verifies(&db);
    assert_no_pin(&out, &[dir.path()]);
}

#[test]
fn demo_without_pcscd_enrolls_fido2_in_process_and_says_how_to_start_pcscd() {
    let dir = common::tempdir();
    let db = dir.path().join("kept.db");
    let mut serials = Vec::new();
    for run in 0..2 {
        let out = common::run(demo(&[]).arg("--db").arg(&db).env(NO_PCSCD.0, NO_PCSCD.1));
        let text = stdout(&out);
        assert!(out.status.success(), "run {run} failed");
        for needle in [
            "PIV is skipped: pcscd is not running",
            "sudo apt-get install pcscd vsmartcard-vpcd",
            "sudo pcscd",
            "in-process",
            "fido2 credential for example.org",
            "Audit log verified",
            "Every check passed.",
            &format!("keyward --db {} bindings list", db.display()),
        ] {
            assert!(text.contains(needle), "run {run}: {needle:?} missing");
        }
        for step in [
            "ticket",
            "policy",
            "identify",
            "set-pin",
            "enterprise-attestation",
            "make-credential",
            "fido-attestation",
            "get-assertion",
            "commit",
        ] {
            assert!(
                text.lines()
                    .any(|l| l.contains(&format!("] {step} ")) && l.contains(" ok ")),
                "run {run}: step {step} not shown as ok"
            );
        }
        assert!(!text.contains("piv-keygen"), "PIV ran without pcscd");
        let line = text
            .lines()
            .find(|l| l.starts_with("Enrolled "))
            .expect("summary line");
        serials.push(
            line.split_whitespace()
                .nth(5)
                .unwrap()
                .trim_end_matches('.')
                .to_string(),
        );
    }
    assert_ne!(serials[0], serials[1], "each run is a new key");
    // The kept ledger holds both enrollments and verifies.
    let list = bindings(&db);
    assert_eq!(list.len(), 2);
    let mut listed: Vec<String> = list
        .iter()
        .map(|b| {
            assert_eq!(b["state"], "active");
            assert_eq!(b["subject"], "demo-user@example.org");
            b["device_serial"].as_str().unwrap().to_string()
        })
        .collect();
    listed.sort();
    serials.sort();
    assert_eq!(listed, serials);
    audit_verifies(&db);
    assert!(
        db.with_file_name("station.key").exists(),
        "station key beside the ledger"
    );
    // `keyward report` (the daemon engineer's) reads the same ledger.
    let help = common::run(common::keyward().arg("--help"));
    if stdout(&help).contains("\n  report") {
        let out = common::run(
            common::keyward()
                .arg("--db")
                .arg(&db)
                .args(["report", "--json"]),
        );
        assert!(out.status.success(), "report on the demo ledger failed");
    } else {
        eprintln!("this build has no `keyward report`; not checked");
    }
}

#[test]
fn demo_json_is_one_versioned_document() {
    let out = common::run(demo(&["--json"]).env(NO_PCSCD.0, NO_PCSCD.1));
    assert!(out.status.success());
    let doc = json_doc(&out);
    assert_eq!(doc["version"], 1);
    assert_eq!(doc["ok"], true);
    for key in [
        "station",
        "key",
        "ticket",
        "events",
        "outcome",
        "binding",
        "audit",
        "outbox_pending",
    ] {
        assert!(doc.get(key).is_some(), "{key} missing from {doc}");
    }
    assert_eq!(doc["station"]["kept"], false);
    assert_eq!(doc["station"]["ledger_kept"], false);
    assert_eq!(doc["key"]["transport"], "in-process");
    assert_eq!(doc["key"]["piv"], false);
    assert_eq!(doc["key"]["piv_skipped"]["reason"], "no-pcscd");
    assert!(
        doc["key"]["piv_skipped"]["hint"]
            .as_str()
            .unwrap()
            .contains("vsmartcard-vpcd")
    );
    // The hint also goes to stderr, where a person sees it.
    assert!(stderr(&out).contains("PIV skipped"));
    assert_eq!(doc["ticket"]["sub"], "demo-user@example.org");
    assert_eq!(doc["ticket"]["policy"], "demo-kiosk");
    assert_eq!(doc["ticket"]["ops"].as_array().unwrap().len(), 1);
    // Every event is tagged; every started step finished.
    let events = doc["events"].as_array().unwrap();
    assert!(events.iter().all(|e| e["event"].is_string()));
    let done: Vec<&str> = events
        .iter()
        .filter(|e| e["event"] == "step-done")
        .map(|e| e["step"].as_str().unwrap())
        .collect();
    assert_eq!(started(&doc), done);
    // Over USB (in-process CTAPHID) the key asks for a touch and the
    // workflow says so before the simulated person touches it.
    for step in ["make-credential", "get-assertion"] {
        assert!(
            events
                .iter()
                .any(|e| e["event"] == "touch-needed" && e["step"] == step),
            "no touch prompt for {step}"
        );
    }
    assert_eq!(credentials(&doc), [("fido2".to_string(), None)]);
    let binding = doc["outcome"]["binding"].as_str().unwrap();
    assert_eq!(doc["binding"]["id"], binding);
    assert_eq!(doc["outcome"]["subject"], "demo-user@example.org");
    assert_eq!(
        doc["outcome"]["aaguid"],
        "6b657977-6172-642d-7369-6d2d6669646f"
    );
    assert_eq!(doc["audit"]["ok"], true);
    assert!(doc["audit"]["rows"].as_i64().unwrap() >= 3);
    assert_eq!(
        doc["outbox_pending"],
        serde_json::json!(["binding.created", "notify.binding_created", "run.finished"])
    );
    assert!(doc["outcome"].get("generated_pin").is_none());
    // The temporary station is gone.
    let dir = doc["station"]["dir"].as_str().unwrap();
    assert!(!Path::new(dir).exists(), "{dir} left behind");
}

#[test]
#[ignore = "needs the test rig: pcscd + vpcd (scripts/test runs it)"]
fn the_pin_never_appears_in_output_logs_or_files() {
    let keep = common::tempdir();
    let dbdir = common::tempdir();
    let db = dbdir.path().join("ledger.db");
    let mut c = demo(&["-vvv", "--pin-fd", "0"]);
    c.env_remove("RUST_LOG")
        .env(NO_PCSCD.0, NO_PCSCD.1)
        .arg("--keep")
        .arg(keep.path().join("station"))
        .arg("--db")
        .arg(&db);
    let out = run_with_stdin(c, &format!("{PIN}\n"));
    assert!(out.status.success());
    assert!(
        stderr(&out).contains("TRACE") || stderr(&out).contains("DEBUG"),
        "-vvv gave no log output to scan"
    );
    assert_no_pin(&out, &[&keep.path().join("station"), dbdir.path()]);

    // Through pcscd too (PIV VERIFY and CHANGE REFERENCE DATA carry it).
    common::require_rig();
    let reader = lease_empty_reader();
    let port = reader.port.to_string();
    let (out, dbdir) = through_pcscd(&reader, |db| {
        let mut c = demo(&["-vvv", "--pin-fd", "0", "--vpcd-port", &port]);
        c.env_remove("RUST_LOG").arg("--db").arg(db);
        run_with_stdin(c, &format!("{PIN}\n"))
    });
    assert!(out.status.success());
    assert!(stdout(&out).contains("piv-keygen"), "PIV did not run");
    assert_no_pin(&out, &[dbdir.path()]);
}

#[test]
fn a_pin_the_profile_refuses_fails_before_the_key_and_commits_nothing() {
    let dir = common::tempdir();
    let db = dir.path().join("ledger.db");
    let mut c = demo(&["--json", "--pin-fd", "0"]);
    c.env(NO_PCSCD.0, NO_PCSCD.1).arg("--db").arg(&db);
    let out = run_with_stdin(c, "777777\n");
    assert_eq!(out.status.code(), Some(1));
    let doc = json_doc(&out);
    assert_eq!(doc["ok"], false);
    assert_eq!(doc["error"]["reason"], "policy-pin");
    assert_eq!(doc["error"]["step"], "policy");
    assert!(
        doc["error"]["run"].is_string(),
        "the failed run is recorded"
    );
    assert!(
        doc["error"]["message"]
            .as_str()
            .unwrap()
            .contains("trivial")
    );
    assert!(!started(&doc).contains(&"identify".to_string()));
    assert!(stderr(&out).contains("policy-pin"));
    assert!(!contains(&out.stdout, b"777777") && !contains(&out.stderr, b"777777"));
    assert!(bindings(&db).is_empty());
    audit_verifies(&db);
}

#[test]
fn bad_arguments_are_refused_with_what_was_wrong() {
    let dir = common::tempdir();
    // A --keep directory that holds something.
    std::fs::write(dir.path().join("other"), b"x").unwrap();
    let out = common::run(
        demo(&["--keep"])
            .arg(dir.path())
            .env(NO_PCSCD.0, NO_PCSCD.1),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("not empty"));
    // A --db in a directory that does not exist.
    let missing = dir.path().join("no/such/dir/ledger.db");
    let out = common::run(
        demo(&[])
            .arg("--db")
            .arg(&missing)
            .env(NO_PCSCD.0, NO_PCSCD.1),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("does not exist"), "{}", stderr(&out));
    // A --pin-fd that is not open, and one that gives nothing.
    let out = common::run(demo(&["--pin-fd", "57"]).env(NO_PCSCD.0, NO_PCSCD.1));
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("--pin-fd 57: not an open file descriptor"),
        "{}",
        stderr(&out)
    );
    let out = run_with_stdin(
        {
            let mut c = demo(&["--pin-fd", "0"]);
            c.env(NO_PCSCD.0, NO_PCSCD.1);
            c
        },
        "",
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("no PIN"), "{}", stderr(&out));
    // KEYWARD_DB never receives demo bindings: only --db on the command
    // line keeps the ledger.
    let env_db = dir.path().join("env.db");
    let out = common::run(
        common::keyward()
            .arg("demo")
            .env("KEYWARD_DB", &env_db)
            .env(NO_PCSCD.0, NO_PCSCD.1),
    );
    assert!(out.status.success());
    assert!(!env_db.exists(), "the demo wrote into KEYWARD_DB");
    assert!(!stdout(&out).contains(&env_db.display().to_string()));
}

#[test]
#[ignore = "needs the test rig: pcscd + vpcd (scripts/test runs it)"]
fn demo_falls_back_to_in_process_when_its_reader_holds_a_card() {
    common::require_rig();
    let sim = common::start_sim_on(lease_empty_reader(), &["--serial", "5100001"]);
    let port = sim.reader.port.to_string();
    let out = common::run(&mut demo(&["--json", "--vpcd-port", &port]));
    assert!(out.status.success());
    let doc = json_doc(&out);
    assert_eq!(doc["ok"], true);
    assert_eq!(doc["key"]["transport"], "in-process");
    assert_eq!(doc["key"]["piv_skipped"]["reason"], "no-free-reader");
    let msg = doc["key"]["piv_skipped"]["message"].as_str().unwrap();
    assert!(
        msg.contains(sim.reader.name) && msg.contains("already holds a card"),
        "{msg}"
    );
    assert_eq!(credentials(&doc), [("fido2".to_string(), None)]);
    // The other key is left alone in its reader.
    assert!(common::wait_card(
        sim.reader.name,
        true,
        Duration::from_secs(1)
    ));
}

#[test]
fn ctrl_c_while_the_key_waits_for_a_touch_cancels_cleanly() {
    use std::io::BufRead;
    let dir = common::tempdir();
    let db = dir.path().join("ledger.db");
    let mut c = demo(&["--touch-delay-ms", "60000"]);
    c.arg("--db")
        .arg(&db)
        .env(NO_PCSCD.0, NO_PCSCD.1)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().expect("spawn keyward demo");
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        seen.push(line.clone());
        if line.contains("make-credential: touch your key now") {
            // SAFETY: signalling our own child process by its pid.
            unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
            break;
        }
    }
    assert!(
        seen.iter().any(|l| l.contains("touch your key")),
        "no touch prompt: {seen:?}"
    );
    let rest: Vec<String> = lines.map(Result::unwrap).collect();
    let out = child.wait_with_output().unwrap();
    let err = stderr(&out);
    eprintln!("{}\n{}\n{err}", seen.join("\n"), rest.join("\n"));
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("[cancelled]"), "{err}");
    assert!(
        rest.iter()
            .any(|l| l.contains("make-credential") && l.contains("FAILED (cancelled)"))
    );
    // Nothing committed; the run is recorded as aborted; the temporary
    // station is gone.
    assert!(bindings(&db).is_empty());
    let conn =
        rusqlite::Connection::open_with_flags(&db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    let (outcome, reason): (String, String) = conn
        .query_row("SELECT outcome, reason FROM runs", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!(
        (outcome.as_str(), reason.as_str()),
        ("aborted", "cancelled")
    );
    let station = seen
        .iter()
        .find_map(|l| l.strip_prefix("Demo station in "))
        .and_then(|l| l.split(" (").next())
        .expect("the station line");
    assert!(!Path::new(station).exists(), "{station} left behind");
    audit_verifies(&db);
}

#[test]
fn a_kept_station_enrolls_more_keys_into_its_own_ledger() {
    let dir = common::tempdir();
    let station = dir.path().join("kiosk");
    let out = common::run(demo(&["--keep"]).arg(&station).env(NO_PCSCD.0, NO_PCSCD.1));
    assert!(out.status.success());
    for f in [
        "issuer.key",
        "issuer.pub.jwk",
        "keyward.toml",
        "ticket.jwt",
        "ledger.db",
        "station.key",
    ] {
        assert!(station.join(f).exists(), "{f} not kept");
    }
    // The demo's ticket is consumed: the same ticket again is a replay.
    let config = station.join("keyward.toml");
    let again = run_with_stdin(
        {
            let mut c = common::keyward();
            c.arg("enroll")
                .arg("--config")
                .arg(&config)
                .arg("--ticket")
                .arg(station.join("ticket.jwt"))
                .args(["--device", "sim", "--pin-fd", "0"])
                .env_remove("KEYWARD_DB");
            c
        },
        &format!("{PIN}\n"),
    );
    assert!(!again.status.success());
    assert!(
        stderr(&again).contains("ticket-replayed"),
        "{}",
        stderr(&again)
    );
    // A new ticket from the kept issuer key enrolls another person at the
    // kept station, into the station's own ledger (keyward.toml names it).
    let ticket = station.join("bob.jwt");
    common::run_ok(
        common::keyward()
            .args(["ticket", "issue", "--key"])
            .arg(station.join("issuer.key"))
            .args([
                "--kid",
                "demo-issuer-1",
                "--iss",
                "https://idp.example.org",
                "--sub",
                "bob@example.org",
                "--aud",
                "demo-kiosk",
                "--op",
                "fido2:rp_id=example.org",
                "--ial",
                "2",
                "--policy",
                "demo-kiosk",
                "--out",
            ])
            .arg(&ticket),
    );
    let out = run_with_stdin(
        {
            let mut c = common::keyward();
            c.arg("enroll")
                .arg("--config")
                .arg(&config)
                .arg("--ticket")
                .arg(&ticket)
                .args(["--device", "sim", "--pin-fd", "0"])
                .env_remove("KEYWARD_DB");
            c
        },
        &format!("{PIN}\n"),
    );
    assert!(out.status.success());
    let subjects: Vec<String> = bindings(&station.join("ledger.db"))
        .iter()
        .map(|b| b["subject"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(subjects.len(), 2, "{subjects:?}");
    assert!(subjects.contains(&"bob@example.org".to_string()));
    audit_verifies(&station.join("ledger.db"));
    // Now the ledger holds a real person: the demo refuses to add to it.
    let out = common::run(
        demo(&["--db"])
            .arg(station.join("ledger.db"))
            .env(NO_PCSCD.0, NO_PCSCD.1),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("holds real bindings"),
        "{}",
        stderr(&out)
    );
    assert_eq!(bindings(&station.join("ledger.db")).len(), 2);
}
