//! `keyward report` on a ledger filled through the store API: runs started
//! and finished with `run_started` / `run_finished`, bindings committed,
//! revoked and an exception granted; the numbers must come out exactly.

mod common;

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use common::{keyward, run};
use keyward::store::{
    BindingState, CredentialRecord, DeviceRecord, EnrollmentRecord, Ledger, RunEnd, RunKind,
    RunOutcome, RunStart, TicketRecord,
};
use serde_json::Value;

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn record(n: u32) -> EnrollmentRecord {
    EnrollmentRecord {
        subject: format!("user{n}@example.org"),
        ticket: TicketRecord {
            jti: format!("t-{n}"),
            digest: "ab".repeat(32),
            issuer: "idp".into(),
            ial: Some(2),
        },
        device: DeviceRecord {
            kind: "yubikey".into(),
            serial: Some(format!("{}", 1000 + n)),
            aaguid: None,
            model: None,
            firmware: None,
        },
        policy: None,
        credentials: vec![CredentialRecord {
            kind: "fido2".into(),
            credential_id: Some(vec![n as u8; 16]),
            rp_id: Some("example.org".into()),
            slot: None,
            algorithm: "ES256".into(),
            public_key: vec![4; 65],
            attestation: None,
            attestation_format: Some("packed".into()),
        }],
        actor: "kiosk".into(),
    }
}

fn run_of(l: &mut Ledger, kind: RunKind, start: i64, end: Option<(RunEnd, i64)>) {
    let s = RunStart {
        actor: "kiosk",
        ..RunStart::default()
    };
    let id = l.run_started(kind, &s, start).unwrap();
    if let Some((e, at)) = end {
        l.run_finished(&id, &e, "kiosk", at).unwrap();
    }
}

/// A ledger with, in the last hour: 6 enroll runs (4 completed taking 10,
/// 20, 30 and 100 s; one failed device-removed; one failed
/// attestation-untrusted on AAGUID aa..; plus one aborted), one completed
/// unblock, two bindings (one revoked), one exception; and 40 days ago one
/// more completed enrollment.
fn populate(db: &Path) {
    let t = now() - 3600;
    let mut l = Ledger::open_default_key(db).unwrap();
    for (i, d) in [10, 20, 30, 100].into_iter().enumerate() {
        let s = t + i as i64 * 200;
        run_of(
            &mut l,
            RunKind::Enroll,
            s,
            Some((RunEnd::completed(None), s + d)),
        );
    }
    run_of(
        &mut l,
        RunKind::Enroll,
        t + 900,
        Some((
            RunEnd::failed("device-removed", "key pulled during makeCredential"),
            t + 905,
        )),
    );
    let mut att = RunEnd::failed("attestation-untrusted", "no trusted root");
    att.aaguid = Some("aa".repeat(16));
    run_of(&mut l, RunKind::Enroll, t + 1000, Some((att, t + 1001)));
    let mut ab = RunEnd::failed("cancelled", "operator cancelled");
    ab.outcome = RunOutcome::Aborted;
    run_of(&mut l, RunKind::Enroll, t + 1100, Some((ab, t + 1102)));
    run_of(
        &mut l,
        RunKind::Unblock,
        t + 1200,
        Some((RunEnd::completed(None), t + 1210)),
    );
    let old = now() - 40 * 86400;
    run_of(
        &mut l,
        RunKind::Enroll,
        old,
        Some((RunEnd::completed(None), old + 5)),
    );

    let b1 = l.commit_enrollment(&record(1), t + 10).unwrap();
    l.commit_enrollment(&record(2), t + 220).unwrap();
    l.transition(&b1, BindingState::Revoked, "lost", "helpdesk", t + 1300)
        .unwrap();
    l.add_exception(
        "attestation-none",
        "user2",
        "legacy key",
        "ciso",
        t + 86400,
        t + 1400,
    )
    .unwrap();
}

fn report_json(db: &Path, extra: &[&str]) -> Value {
    let o = run(keyward()
        .arg("--db")
        .arg(db)
        .args(["--json", "report"])
        .args(extra));
    assert!(o.status.success());
    serde_json::from_slice(&o.stdout).expect("report --json is JSON")
}

#[test]
fn report_counts_runs_bindings_and_exceptions() {
    let dir = common::tempdir();
    let db = dir.path().join("ledger.db");
    populate(&db);

    let r = report_json(&db, &["--since", "7d"]);
    assert_eq!(r["version"], 1);
    let e = &r["runs"]["enroll"];
    assert_eq!(
        (&e["started"], &e["completed"], &e["failed"], &e["aborted"]),
        (&7.into(), &4.into(), &2.into(), &1.into())
    );
    assert!((r["completion_rate"].as_f64().unwrap() - 4.0 / 7.0).abs() < 1e-9);
    let q = &r["time_to_issue"];
    assert_eq!(
        (&q["median"], &q["p90"], &q["count"]),
        (&20.into(), &100.into(), &4.into())
    );
    let failures = r["failures"].as_array().unwrap();
    assert_eq!(failures.len(), 2);
    assert!(
        failures
            .iter()
            .any(|f| f["reason"] == "device-removed" && f["count"] == 1)
    );
    assert_eq!(r["attestation_failures"][0]["aaguid"], "aa".repeat(16));
    assert_eq!(
        r["attestation_failures"][0]["reason"],
        "attestation-untrusted"
    );
    assert_eq!(r["resets"], 1);
    assert_eq!(r["revocations"], 1);
    assert_eq!(r["bindings_created"], 2);
    assert_eq!(r["exceptions"], 1);
    assert_eq!(r["active_bindings"], 1);
    // One waiver for two keys issued: far over 5 %.
    assert!((r["exception_rate"].as_f64().unwrap() - 0.5).abs() < 1e-9);
    assert_eq!(r["exception_rate_exceeded"], true);

    // Without --since the old enrollment counts too; a lax threshold clears
    // the flag.
    let all = report_json(&db, &["--exception-threshold", "0.6"]);
    assert_eq!(all["runs"]["enroll"]["started"], 8);
    assert_eq!(all["time_to_issue"]["count"], 5);
    assert_eq!(all["exception_rate_exceeded"], false);

    // RFC 3339 --since in the future: nothing.
    let none = report_json(&db, &["--since", "2999-01-01T00:00:00Z"]);
    assert!(none["runs"].as_object().unwrap().is_empty());
    assert!(none["time_to_issue"].is_null());
}

#[test]
fn text_report_reads_well_and_flags_the_exception_rate() {
    let dir = common::tempdir();
    let db = dir.path().join("ledger.db");
    populate(&db);
    let o = run(keyward()
        .arg("--db")
        .arg(&db)
        .args(["report", "--since", "24h"]));
    assert!(o.status.success());
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("started 7, completed 4, failed 2, aborted 1"),
        "{text}"
    );
    assert!(text.contains("completion rate 57.1%"), "{text}");
    assert!(text.contains("median 20 s, p90 100 s"), "{text}");
    assert!(text.contains("device-removed"), "{text}");
    assert!(text.contains("EXCEEDED"), "{text}");
}

#[test]
fn bad_arguments_are_usage_errors_naming_the_value() {
    let dir = common::tempdir();
    let db = dir.path().join("ledger.db");
    populate(&db);
    for (args, needle) in [
        (
            &["report", "--since", "last tuesday"][..],
            "\"last tuesday\"",
        ),
        (
            &["report", "--since", "2026-13-45T00:00:00Z"][..],
            "RFC 3339",
        ),
        (
            &["report", "--exception-threshold", "7"][..],
            "exception threshold 7",
        ),
    ] {
        let o = run(keyward().arg("--db").arg(&db).args(args));
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(needle), "{args:?}: {err}");
        assert!(o.stdout.is_empty());
    }
    // A missing ledger is named, and not created.
    let missing = dir.path().join("nope.db");
    let o = run(keyward().arg("--db").arg(&missing).arg("report"));
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("nope.db"));
    assert!(!missing.exists());
}

#[test]
fn threshold_and_ledger_come_from_the_config_file_unless_given() {
    let dir = common::tempdir();
    let db = dir.path().join("ledger.db");
    populate(&db);
    let config = dir.path().join("keyward.toml");
    std::fs::write(
        &config,
        format!(
            "station = \"k1\"\nledger = \"{}\"\n[daemon]\nexception_rate_threshold = 0.9\n",
            db.display()
        ),
    )
    .unwrap();
    let o = run(keyward()
        .env_remove("KEYWARD_DB")
        .arg("--config")
        .arg(&config)
        .args(["--json", "report"]));
    assert!(o.status.success());
    let r: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["exception_threshold"], 0.9);
    assert_eq!(r["exception_rate_exceeded"], false);
    assert_eq!(r["runs"]["enroll"]["started"], 8, "the config's ledger");
    // The flag wins over the file.
    let r = report_json(
        &db,
        &[
            "--config",
            &config.to_string_lossy(),
            "--exception-threshold",
            "0.1",
        ],
    );
    assert_eq!(r["exception_rate_exceeded"], true);
    // A bad [daemon] table is a usage error naming the file.
    std::fs::write(
        &config,
        "station = \"k1\"\n[daemon]\nexception_rate_threshold = 3.0\n",
    )
    .unwrap();
    let o = run(keyward()
        .arg("--config")
        .arg(&config)
        .arg("--db")
        .arg(&db)
        .arg("report"));
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("keyward.toml") && err.contains("between 0 and 1"),
        "{err}"
    );
}
