//! `keyward bulk` end to end: the real binary, a station configured by a
//! keyward.toml, signed tickets, keys on vpcd readers through pcscd (leased)
//! and in-process simulated keys, the SQLite ledger on disk, the report
//! files, and the PIN file read back with the real `age` CLI.

#![cfg(feature = "sim")]

mod common;
#[path = "provision_support/mod.rs"]
mod support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use keyward::sim::Fault;
use keyward::ticket::Device;

use common::{keyward, lease_reader, require_rig, run, wait_card};

/// One bulk station: config, issuer keys, an age identity.
struct Bulk {
    r: support::Rig,
    identity: PathBuf,
    recipient: String,
}

fn station() -> Bulk {
    let r = support::rig();
    let identity = r.dir.path().join("operator.agekey");
    let out = Command::new("age-keygen")
        .arg("-o")
        .arg(&identity)
        .output()
        .expect("age-keygen (apt-get install age)");
    assert!(out.status.success());
    let out = Command::new("age-keygen")
        .arg("-y")
        .arg(&identity)
        .output()
        .unwrap();
    let recipient = String::from_utf8(out.stdout).unwrap().trim().to_string();
    Bulk {
        r,
        identity,
        recipient,
    }
}

impl Bulk {
    fn path(&self, name: &str) -> PathBuf {
        self.r.dir.path().join(name)
    }

    /// A ticket for `sub`, optionally pre-assigned by claim to `serial`.
    fn ticket(&self, sub: &str, serial: Option<u32>) -> String {
        self.ticket_with(sub, serial, vec![support::fido_op()])
    }

    fn ticket_with(&self, sub: &str, serial: Option<u32>, ops: Vec<keyward::ticket::Op>) -> String {
        let mut c = support::claims("standard");
        c.ops = ops;
        c.sub = sub.into();
        c.device = serial.map(|serial| Device {
            serial,
            model: None,
        });
        String::from_utf8(self.r.ticket(&c)).unwrap()
    }

    /// A JSON-lines manifest of `rows` (ticket, device, label).
    fn manifest(&self, rows: &[serde_json::Value]) -> PathBuf {
        let p = self.path("manifest.jsonl");
        let text: String = rows.iter().map(|r| format!("{r}\n")).collect();
        std::fs::write(&p, text).unwrap();
        p
    }

    fn cmd(&self, manifest: &Path, extra: &[&str]) -> Command {
        let mut c = keyward();
        c.arg("--config")
            .arg(&self.r.config)
            .arg("bulk")
            .arg("--manifest")
            .arg(manifest)
            .arg("--report")
            .arg(self.path("report"))
            .args(["--pin-recipient", &self.recipient])
            .args(extra);
        c
    }

    fn report(&self) -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(self.path("report.json")).unwrap()).unwrap()
    }

    /// The PIN file through `age -d -i`: (serial, subject, pin, puk) rows.
    fn pins(&self) -> Vec<(String, String, String, String)> {
        let out = Command::new("age")
            .arg("-d")
            .arg("-i")
            .arg(&self.identity)
            .arg(self.path("report.pins.age"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "age -d: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut rd = csv::Reader::from_reader(&out.stdout[..]);
        assert_eq!(
            rd.headers().unwrap().iter().collect::<Vec<_>>(),
            ["serial", "subject", "jti", "binding", "pin", "puk"]
        );
        rd.records()
            .map(|r| {
                let r = r.unwrap();
                (
                    r[0].to_string(),
                    r[1].to_string(),
                    r[4].to_string(),
                    r[5].to_string(),
                )
            })
            .collect()
    }

    fn bindings(&self) -> usize {
        support::count(&self.r.db, "SELECT count(*) FROM bindings")
    }

    fn runs(&self) -> usize {
        support::count(&self.r.db, "SELECT count(*) FROM runs")
    }
}

fn stdout_events(out: &Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l:?}: {e}")))
        .collect()
}

fn rows(report: &serde_json::Value) -> &Vec<serde_json::Value> {
    report["rows"].as_array().unwrap()
}

/// A `keyward sim --vpcd` process on a reader we hold the lease of; killed
/// on drop (also when the test fails half way).
struct Card(Child);

impl Drop for Card {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn sim_on(reader: &common::Reader, args: &[&str]) -> Card {
    // As common::start_sim_on: a stale connection in the vpcd driver's
    // backlog rarely keeps a new card out; re-insert once.
    wait_card(reader.name, false, Duration::from_secs(10));
    for _ in 0..2 {
        let card = Card(
            keyward()
                .args(["sim", "--vpcd", &reader.addr()])
                .args(args)
                .stdin(Stdio::null())
                .spawn()
                .unwrap(),
        );
        if wait_card(reader.name, true, Duration::from_secs(15)) {
            return card;
        }
        drop(card);
        wait_card(reader.name, false, Duration::from_secs(10));
    }
    panic!("card never appeared in {}", reader.name);
}

/// Take the key out, and wait until pcscd sees the reader empty.
fn stop(card: Card, reader: &common::Reader) {
    drop(card);
    wait_card(reader.name, false, Duration::from_secs(10));
}

/// 8 keys: two on vpcd readers (pre-assigned, one by manifest `device`, one
/// by the ticket's `device` claim; the first with FIDO2 and PIV) and six
/// in-process, four slots of them.
/// Every key bound, the ledger has the 8 bindings and a sound audit chain,
/// the PINs decrypt with `age -d` and appear nowhere else (stdout, stderr
/// with trace logging, report, ledger files).
#[test]
#[ignore = "needs the test rig: pcscd + vpcd (scripts/test runs it)"]
fn bulk_of_eight_keys_on_readers_and_simulated_keys() {
    require_rig();
    let b = station();
    let (ra, rb) = (lease_reader(), lease_reader());
    let sa = sim_on(&ra, &["--serial", "31000001"]);
    let sb = sim_on(&rb, &["--serial", "31000002", "--fido2"]);
    let mut rows_in = vec![
        serde_json::json!({"ticket": b.ticket_with("reader-a@example.test", None,
            vec![support::fido_op(), support::piv_op("9a", "p256")]),
            "device": "serial:31000001", "label": "reader A"}),
        serde_json::json!({"ticket": b.ticket("reader-b@example.test", Some(31_000_002)), "label": "reader B"}),
    ];
    for n in 0..6 {
        rows_in.push(serde_json::json!({"ticket": b.ticket(&format!("user{n}@example.test"), None), "label": format!("desk {n}")}));
    }
    let m = b.manifest(&rows_in);
    let readers = format!("{},{}", ra.name, rb.name);
    let out = run(b
        .cmd(
            &m,
            &[
                "--readers",
                &readers,
                "--sim",
                "4",
                "--parallel",
                "6",
                "--wait",
                "60s",
                "-vvv",
            ],
        )
        .env_remove("RUST_LOG"));
    stop(sa, &ra);
    stop(sb, &rb);
    assert!(out.status.success(), "exit {:?}", out.status);

    let report = b.report();
    assert_eq!(report["summary"]["tickets"], 8);
    assert_eq!(report["summary"]["bound"], 8);
    assert_eq!(report["summary"]["failed_attempts"], 0);
    let rows = rows(&report);
    assert_eq!(rows.len(), 8);
    for r in rows {
        assert_eq!(r["outcome"], "bound", "{r}");
        assert!(r["binding"].as_str().is_some_and(|s| !s.is_empty()));
        assert_eq!(r["pin_generated"], true);
    }
    // The pre-assigned tickets went to their reader keys.
    let by_line = |l: u64| rows.iter().find(|r| r["line"] == l).unwrap();
    assert_eq!(by_line(1)["serial"], "31000001");
    assert_eq!(by_line(1)["slot"], format!("reader:{}", ra.name));
    assert_eq!(by_line(2)["serial"], "31000002");
    assert_eq!(by_line(2)["slot"], format!("reader:{}", rb.name));
    let sims = rows
        .iter()
        .filter(|r| r["slot"].as_str().unwrap().starts_with("sim:"))
        .count();
    assert_eq!(sims, 6);
    // CSV: a header and 8 rows.
    let csv_text = std::fs::read_to_string(b.path("report.csv")).unwrap();
    assert_eq!(csv_text.lines().count(), 9);

    // Ledger: 8 bindings, 8 completed runs, sound audit chain.
    assert_eq!(b.bindings(), 8);
    assert_eq!(
        support::count(
            &b.r.db,
            "SELECT count(*) FROM runs WHERE outcome = 'completed'"
        ),
        8
    );
    let audit = run(keyward()
        .arg("--db")
        .arg(&b.r.db)
        .args(["audit", "verify", "--json"]));
    assert!(audit.status.success());
    let audit: serde_json::Value = serde_json::from_slice(&audit.stdout).unwrap();
    assert!(audit["audit"]["problem"].is_null(), "{audit}");
    assert!(audit["audit"]["rows"].as_u64().unwrap() >= 8);

    // Progress: JSON lines, every slot finished.
    let events = stdout_events(&out);
    assert_eq!(events[0]["event"], "run-started");
    assert_eq!(events[0]["version"], 1);
    assert_eq!(events.last().unwrap()["event"], "run-finished");
    let done = events
        .iter()
        .filter(|e| e["event"] == "slot" && e["state"] == "done")
        .count();
    assert_eq!(done, 8);

    // PINs: 8, distinct, only in the age file.
    let pins = b.pins();
    assert_eq!(pins.len(), 8);
    let mut distinct: Vec<&str> = pins.iter().map(|p| p.2.as_str()).collect();
    // The FIDO2 + PIV key also got a PUK; the others none.
    let with_puk: Vec<_> = pins.iter().filter(|p| !p.3.is_empty()).collect();
    assert_eq!(with_puk.len(), 1);
    assert_eq!(with_puk[0].0, "31000001");
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 8);
    assert!(
        pins.iter()
            .any(|p| p.0 == "31000001" && p.1 == "reader-a@example.test")
    );
    let mut haystacks = vec![
        ("stdout", out.stdout.clone()),
        ("stderr", out.stderr.clone()),
        ("report.json", std::fs::read(b.path("report.json")).unwrap()),
        ("report.csv", std::fs::read(b.path("report.csv")).unwrap()),
        (
            "pins file",
            std::fs::read(b.path("report.pins.age")).unwrap(),
        ),
    ];
    for f in std::fs::read_dir(b.r.dir.path()).unwrap() {
        let p = f.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with("ledger.db") {
            haystacks.push((Box::leak(name.into_boxed_str()), std::fs::read(&p).unwrap()));
        }
    }
    let secrets = pins
        .iter()
        .flat_map(|p| [p.2.clone(), p.3.clone()])
        .filter(|s| !s.is_empty());
    for secret in secrets {
        for (name, hay) in &haystacks {
            assert!(
                !hay.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "a generated PIN or PUK appears in {name}"
            );
        }
    }
}

/// Each fault knob on the first key of one slot: that attempt fails with a
/// clear reason in the report, its ticket goes to the next key, and every
/// other slot is unaffected. The faults run on in-process keys, except
/// wrong-status-word, which only exists where there are APDUs: it runs on a
/// vpcd reader.
#[test]
#[ignore = "needs the test rig: pcscd + vpcd (scripts/test runs it)"]
fn each_fault_knob_fails_only_its_slot() {
    require_rig();
    let with_reader = true;
    let b = station();
    // drop-cred-protect fails only a profile that requires credProtect
    // (tests/fido_extensions.rs); this manifest's profile does not.
    let in_process: Vec<Fault> = Fault::ALL
        .into_iter()
        .filter(|f| *f != Fault::WrongStatusWord && *f != Fault::DropCredProtect)
        .collect();
    let n = in_process.len();
    let tickets = n + 2 + usize::from(with_reader);
    // The reader's ticket is pre-assigned to its key, so that no simulated
    // slot can take it first.
    let mut rows_in: Vec<_> = (0..n + 2)
        .map(|i| serde_json::json!({"ticket": b.ticket(&format!("u{i}@example.test"), None)}))
        .collect();
    if with_reader {
        rows_in.push(
            serde_json::json!({"ticket": b.ticket("r@example.test", None), "device": 33_000_001}),
        );
    }
    let m = b.manifest(&rows_in);
    let mut args: Vec<String> = vec!["--sim".into(), (n + 2).to_string()];
    for (i, f) in in_process.iter().enumerate() {
        args.push("--sim-fault".into());
        args.push(format!("{i}:{f}"));
    }
    let reader = with_reader.then(lease_reader);
    let mut card = reader.as_ref().map(|r| {
        args.push("--readers".into());
        args.push(r.name.into());
        sim_on(
            r,
            &[
                "--serial",
                "33000001",
                "--fido2",
                "--fault",
                "wrong-status-word",
            ],
        )
    });
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut child = b
        .cmd(&m, &args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    if let Some(r) = &reader {
        // The reader's key fails; the operator re-seats it (a good key with
        // the same serial) and its slot resumes.
        let slot = format!("reader:{}", r.name);
        loop {
            let l = lines.next().expect("bulk ended early").unwrap();
            let v: serde_json::Value = serde_json::from_str(&l).unwrap();
            if v["slot"] == slot.as_str() && v["state"] == "waiting-for-swap" {
                break;
            }
        }
        stop(card.take().unwrap(), r);
        card = Some(sim_on(r, &["--serial", "33000001", "--fido2"]));
    }
    let rest: Vec<String> = lines.map(|l| l.unwrap()).collect();
    let out = child.wait_with_output().unwrap();
    if let (Some(c), Some(r)) = (card, &reader) {
        stop(c, r);
    }
    assert!(rest.last().is_some_and(|l| l.contains("run-finished")));
    assert_eq!(
        out.status.code(),
        Some(1),
        "a failed key makes the exit status 1"
    );
    let faults = n + usize::from(with_reader);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("{faults} key attempt(s) failed")),
        "{stderr}"
    );

    let report = b.report();
    assert_eq!(report["summary"]["bound"], tickets);
    assert_eq!(report["summary"]["failed_attempts"], faults);
    let rows = rows(&report);
    let mut slots: Vec<(String, Fault)> = in_process
        .iter()
        .enumerate()
        .map(|(i, f)| (format!("sim:{i}"), *f))
        .collect();
    if let Some(r) = &reader {
        slots.push((format!("reader:{}", r.name), Fault::WrongStatusWord));
    }
    for (slot, f) in &slots {
        let failed: Vec<_> = rows
            .iter()
            .filter(|r| r["slot"] == slot.as_str() && r["outcome"] == "failed")
            .collect();
        assert_eq!(failed.len(), 1, "{f}: {rows:?}");
        let reason = failed[0]["reason"].as_str().unwrap();
        let message = failed[0]["message"].as_str().unwrap();
        assert!(!message.is_empty());
        eprintln!("fault {f}: reason {reason}: {message}");
        let expected: &[&str] = match f {
            Fault::UntrustedAttestation => &["attestation-untrusted"],
            Fault::AaguidMismatch => &["attestation-invalid"],
            Fault::Stall => &["timeout"],
            Fault::DisconnectMidCommand => &["device-removed"],
            _ => &["device-error"],
        };
        assert!(
            expected.contains(&reason),
            "{f}: reason {reason}: {message}"
        );
        // The ticket it failed went to another key and was bound.
        let line = failed[0]["line"].clone();
        assert!(
            rows.iter().any(|r| r["line"] == line
                && r["outcome"] == "bound"
                && r["attempt"].as_u64() > failed[0]["attempt"].as_u64()),
            "{f}: ticket not retried"
        );
    }
    for slot in [format!("sim:{n}"), format!("sim:{}", n + 1)] {
        let mine: Vec<_> = rows.iter().filter(|r| r["slot"] == slot.as_str()).collect();
        assert!(
            !mine.is_empty() && mine.iter().all(|r| r["outcome"] == "bound"),
            "{slot}"
        );
    }
    assert_eq!(b.bindings(), tickets);
    // Failed runs are recorded with their reason.
    assert_eq!(
        support::count(
            &b.r.db,
            "SELECT count(*) FROM runs WHERE outcome = 'failed'"
        ),
        faults
    );
}

/// A key that fails on a reader is swapped for another (the faulty simulator
/// stopped, a good one started on the same reader): the slot resumes and the
/// ticket is bound on the new key.
#[test]
#[ignore = "needs the test rig: pcscd + vpcd (scripts/test runs it)"]
fn slot_resumes_after_a_failed_key_is_swapped() {
    require_rig();
    let b = station();
    let reader = lease_reader();
    let bad = sim_on(
        &reader,
        &[
            "--serial",
            "32000001",
            "--fido2",
            "--fault",
            "untrusted-attestation",
        ],
    );
    let m = b.manifest(&[serde_json::json!({"ticket": b.ticket("swap@example.test", None)})]);
    let mut child = b
        .cmd(&m, &["--readers", reader.name, "--wait", "60s"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen = Vec::new();
    // Until the slot reports the failure and waits for the swap.
    loop {
        let l = lines.next().expect("bulk ended early").unwrap();
        let v: serde_json::Value = serde_json::from_str(&l).unwrap();
        seen.push(v.clone());
        if v["state"] == "waiting-for-swap" {
            break;
        }
    }
    let failed = seen
        .iter()
        .find(|e| e["state"] == "failed")
        .expect("a failed event");
    assert_eq!(failed["reason"], "attestation-untrusted");
    assert_eq!(failed["serial"], "32000001");
    stop(bad, &reader);
    let good = sim_on(&reader, &["--serial", "32000002", "--fido2"]);
    let rest: Vec<serde_json::Value> = lines
        .map(|l| serde_json::from_str(&l.unwrap()).unwrap())
        .collect();
    let status = child.wait().unwrap();
    stop(good, &reader);
    let states: Vec<&str> = rest
        .iter()
        .filter(|e| e["event"] == "slot")
        .map(|e| e["state"].as_str().unwrap())
        .collect();
    assert!(
        states.starts_with(&["waiting-for-key", "identifying", "enrolling"]),
        "{states:?}"
    );
    assert!(states.contains(&"done"), "{states:?}");
    assert_eq!(status.code(), Some(1), "one key failed");
    let report = b.report();
    let rows = rows(&report);
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["outcome"], "failed");
    assert_eq!(rows[0]["serial"], "32000001");
    assert_eq!(rows[1]["outcome"], "bound");
    assert_eq!(rows[1]["serial"], "32000002");
    assert_eq!(rows[1]["attempt"], 2);
    assert_eq!(b.bindings(), 1);
    assert_eq!(b.pins().len(), 1);
}

/// Bad manifests are refused with a clear error before any key is touched:
/// no run recorded, no report, no PIN file.
#[test]
fn bad_manifests_are_refused_before_any_key() {
    let b = station();
    let good = b.ticket("a@example.test", None);
    let mut expired = support::claims("standard");
    expired.iat -= 7200;
    expired.nbf -= 7200;
    expired.exp = expired.iat + 600;
    let expired = String::from_utf8(b.r.ticket(&expired)).unwrap();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "m.jsonl",
            format!("{{\"ticket\": \"{good}\"}}\n{{\"ticket\": \"{good}\n").into_bytes(),
            "manifest line 2: not a JSON object",
        ),
        (
            "m.jsonl",
            format!(
                "{{\"ticket\": \"{good}\"}}\n{{\"ticket\": \"{good}\", \"label\": \"again\"}}\n"
            )
            .into_bytes(),
            "manifest line 2: ticket id (jti)",
        ),
        (
            "m.csv",
            format!("ticket,label\n{good},x\nnot-a-ticket,y\n").into_bytes(),
            "manifest line 3: the ticket is malformed",
        ),
        (
            "m.jsonl",
            format!("{{\"ticket\": \"{good}\"}}\n{{\"ticket\": \"{expired}\"}}\n").into_bytes(),
            "manifest line 2: ticket",
        ),
        ("m.jsonl", Vec::new(), "holds no ticket"),
    ];
    for (name, text, want) in cases {
        let m = b.path(name);
        std::fs::write(&m, text).unwrap();
        let out = run(&mut b.cmd(&m, &["--sim", "2"]));
        // A ticket the station refuses exits with its reason's code (22:
        // expired), a manifest that cannot be read with 5.
        let code = if want == "manifest line 2: ticket" {
            22
        } else {
            5
        };
        assert_eq!(out.status.code(), Some(code), "{want}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(want), "want {want:?} in {err}");
        assert!(out.stdout.is_empty(), "nothing started");
        assert!(!b.path("report.json").exists());
        assert!(!b.path("report.pins.age").exists());
        std::fs::remove_file(&m).unwrap();
    }
    // Oversized: refused from its size (sparse file).
    let m = b.path("big.jsonl");
    std::fs::File::create(&m)
        .unwrap()
        .set_len(keyward::provision::bulk::manifest::MAX_MANIFEST_BYTES + 1)
        .unwrap();
    let out = run(&mut b.cmd(&m, &["--sim", "2"]));
    assert_eq!(out.status.code(), Some(5));
    assert!(String::from_utf8_lossy(&out.stderr).contains("larger than"));
    assert_eq!(b.runs(), 0, "no workflow ran");
    assert_eq!(b.bindings(), 0);
}

/// Usage errors: no PIN recipient, a bad one, no slot, a bad fault spec, a
/// reader that is not there.
#[test]
#[ignore = "needs the test rig: pcscd + vpcd (scripts/test runs it)"]
fn usage_errors_name_the_problem() {
    require_rig();
    let b = station();
    let m = b.manifest(&[serde_json::json!({"ticket": b.ticket("a@example.test", None)})]);
    let no_recipient = run(keyward()
        .arg("--config")
        .arg(&b.r.config)
        .args(["bulk", "--sim", "1", "--manifest"])
        .arg(&m)
        .arg("--report")
        .arg(b.path("r")));
    assert_eq!(no_recipient.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&no_recipient.stderr).contains("--pin-recipient"));
    let cases: &[(&[&str], &str, i32)] = &[
        (
            &["--pin-recipient", "age1nope", "--sim", "1"],
            "age recipient",
            2,
        ),
        (&[], "no device slot", 2),
        (
            &["--sim", "1", "--sim-fault", "3:stall"],
            "numbered from 0",
            2,
        ),
        (&["--sim", "1", "--sim-fault", "0:melt"], "unknown fault", 2),
        (&["--readers", "No Such Reader 99"], "not found", 3),
    ];
    for (args, want, code) in cases {
        let out = run(&mut b.cmd(&m, args));
        assert_eq!(out.status.code(), Some(*code), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(want), "want {want:?} in {err}");
    }
    assert_eq!(b.runs(), 0);
}

/// Ctrl-C (SIGINT) stops the run: the key in progress is cancelled with
/// nothing committed, the other tickets are reported not run, and the
/// report and PIN file are complete.
#[test]
fn interrupt_stops_the_run_cleanly() {
    let b = station();
    let rows_in: Vec<_> = (0..3)
        .map(|i| serde_json::json!({"ticket": b.ticket(&format!("i{i}@example.test"), None)}))
        .collect();
    let m = b.manifest(&rows_in);
    let mut child = b
        .cmd(&m, &["--sim", "1", "--sim-keygen-ms", "3000"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    loop {
        let l = lines.next().expect("bulk ended early").unwrap();
        if l.contains("\"make-credential\"") {
            break;
        }
    }
    // SAFETY: signalling our own child by its pid.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGINT) }, 0);
    let rest: Vec<String> = lines.map(|l| l.unwrap()).collect();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("interrupted"));
    assert!(rest.last().unwrap().contains("run-finished"), "{rest:?}");
    let report = b.report();
    assert_eq!(report["summary"]["bound"], 0);
    assert_eq!(report["summary"]["not_run"], 2);
    let rows = rows(&report);
    assert_eq!(rows[0]["outcome"], "failed");
    assert_eq!(rows[0]["reason"], "cancelled");
    assert_eq!(rows[1]["outcome"], "not-run");
    assert_eq!(b.bindings(), 0, "nothing committed");
    assert_eq!(
        support::count(&b.r.db, "SELECT count(*) FROM tickets"),
        0,
        "no ticket consumed"
    );
    assert_eq!(b.pins().len(), 0);
}

/// The config's `[bulk]` table supplies the PIN recipient and defaults; a
/// key it does not know is refused, naming the file.
#[test]
fn bulk_table_of_the_config_supplies_defaults() {
    let b = station();
    let m = b.manifest(&[
        serde_json::json!({"ticket": b.ticket("c1@example.test", None)}),
        serde_json::json!({"ticket": b.ticket("c2@example.test", None)}),
    ]);
    let base = std::fs::read_to_string(&b.r.config).unwrap();
    let with =
        |table: &str| std::fs::write(&b.r.config, format!("{base}\n[bulk]\n{table}\n")).unwrap();
    let cmd = || {
        let mut c = keyward();
        c.arg("--config")
            .arg(&b.r.config)
            .args(["bulk", "--sim", "2", "--manifest"])
            .arg(&m)
            .arg("--report")
            .arg(b.path("report"));
        c
    };
    with("pin_recipient = \"x\"");
    let out = run(&mut cmd());
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("keyward.toml: [bulk]") && err.contains("pin_recipients"),
        "{err}"
    );
    with(&format!(
        "pin_recipients = [\"{}\"]\nparallel = 1\nwait = \"30s\"",
        b.recipient
    ));
    let out = run(&mut cmd());
    assert!(out.status.success());
    assert_eq!(b.report()["parallel"], 1);
    assert_eq!(b.pins().len(), 2);
}

/// A CSV manifest (quoted label with a comma, a pre-assigned serial) runs on
/// simulated keys; the labels and serials come through to both reports.
#[test]
fn csv_manifest_on_simulated_keys() {
    let b = station();
    let m = b.path("tickets.csv");
    std::fs::write(
        &m,
        format!(
            "label,device,ticket\n\"Smith, Ann\",,{}\nBob,serial:34000001,{}\n",
            b.ticket("ann@example.test", None),
            b.ticket("bob@example.test", None)
        ),
    )
    .unwrap();
    let out = run(&mut b.cmd(&m, &["--sim", "2"]));
    assert!(out.status.success());
    let report = b.report();
    let rows = rows(&report);
    assert_eq!(rows[0]["label"], "Smith, Ann");
    assert_eq!(rows[0]["subject"], "ann@example.test");
    assert_eq!(rows[1]["serial"], "34000001");
    let mut rd = csv::Reader::from_path(b.path("report.csv")).unwrap();
    let recs: Vec<csv::StringRecord> = rd.records().map(Result::unwrap).collect();
    assert_eq!(&recs[0][1], "Smith, Ann");
    assert_eq!(&recs[1][5], "34000001");
    assert_eq!(&recs[1][9], "bound");
    let pins = b.pins();
    assert!(
        pins.iter()
            .any(|p| p.0 == "34000001" && p.1 == "bob@example.test")
    );
}
