//! `keyward audit` and `keyward bindings` against a ledger on disk.

mod common;

use common::{keyward, run};
use keyward::store::{
    BindingState, CredentialRecord, DeviceRecord, EnrollmentRecord, Ledger, TicketRecord,
};

fn populate(db: &std::path::Path) -> String {
    let mut l = Ledger::open_default_key(db).unwrap();
    let rec = EnrollmentRecord {
        subject: "alice@example.org".into(),
        ticket: TicketRecord {
            jti: "t-1".into(),
            digest: "cd".repeat(32),
            issuer: "idp".into(),
            ial: Some(2),
        },
        device: DeviceRecord {
            kind: "yubikey".into(),
            serial: Some("12345678".into()),
            aaguid: None,
            model: None,
            firmware: Some("5.7.1".into()),
        },
        policy: Some("staff".into()),
        credentials: vec![CredentialRecord {
            kind: "piv".into(),
            credential_id: None,
            rp_id: None,
            slot: Some("9a".into()),
            algorithm: "P-256".into(),
            public_key: vec![4; 65],
            attestation: Some(vec![0x30; 900]),
            attestation_format: Some("yubico-piv".into()),
        }],
        actor: "kiosk".into(),
    };
    let id = l.commit_enrollment(&rec, 1_800_000_000).unwrap();
    l.transition(
        &id,
        BindingState::Suspended,
        "on leave",
        "hr",
        1_800_000_100,
    )
    .unwrap();
    id
}

fn out(o: &std::process::Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn bindings_list_and_show_as_text_and_json() {
    let dir = common::tempdir();
    let db = dir.path().join("ledger.db");
    let id = populate(&db);
    let o = run(keyward().arg("--db").arg(&db).args(["bindings", "list"]));
    let (stdout, _) = out(&o);
    assert!(
        o.status.success()
            && stdout.contains(&id)
            && stdout.contains("suspended")
            && stdout.contains("alice@example.org")
    );

    let o = run(keyward()
        .arg("--db")
        .arg(&db)
        .args(["--json", "bindings", "list", "--state", "active"]));
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(doc["bindings"].as_array().unwrap().len(), 0);

    let o = run(keyward()
        .arg("--db")
        .arg(&db)
        .args(["bindings", "show", &id, "--json"]));
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(doc["binding"]["state"], "suspended");
    assert_eq!(doc["binding"]["credentials"][0]["slot"], "9a");
    assert_eq!(doc["binding"]["audit"].as_array().unwrap().len(), 4);
    assert_eq!(doc["binding"]["lifecycle"]["suspended_at"], 1_800_000_100);
}

#[test]
fn audit_verify_passes_then_names_the_tampered_row_with_exit_5() {
    let dir = common::tempdir();
    let db = dir.path().join("ledger.db");
    populate(&db);
    let o = run(keyward().arg("--db").arg(&db).args(["audit", "verify"]));
    assert!(o.status.success());
    assert!(out(&o).0.contains("audit log OK: 4 rows"));

    rusqlite::Connection::open(&db)
        .unwrap()
        .execute("UPDATE audit SET actor = 'mallory' WHERE seq = 2", [])
        .unwrap();
    let o = run(keyward().arg("--db").arg(&db).args(["audit", "verify"]));
    assert_eq!(o.status.code(), Some(5));
    assert!(out(&o).1.contains("fails at sequence 2"), "{}", out(&o).1);
    let o = run(keyward()
        .arg("--db")
        .arg(&db)
        .args(["--json", "audit", "verify"]));
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(doc["audit"]["first_bad_seq"], 2);
}

#[test]
fn audit_export_is_jsonl_and_filters() {
    let dir = common::tempdir();
    let db = dir.path().join("ledger.db");
    populate(&db);
    let o = run(keyward().arg("--db").arg(&db).args(["audit", "export"]));
    let lines: Vec<serde_json::Value> = out(&o)
        .0
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 4);
    assert_eq!(lines[0]["action"], "ticket.consumed");
    assert_eq!(lines[3]["at_rfc3339"], "2027-01-15T08:01:40Z");
    let o = run(keyward()
        .arg("--db")
        .arg(&db)
        .args(["audit", "export", "--since", "3"]));
    assert_eq!(out(&o).0.lines().count(), 1);
    let o = run(keyward().arg("--db").arg(&db).args([
        "audit",
        "export",
        "--since",
        "2027-01-15T08:01:00Z",
    ]));
    assert_eq!(out(&o).0.lines().count(), 1);
}

#[test]
fn bad_ledger_arguments_are_explained() {
    let dir = common::tempdir();
    let db = dir.path().join("ledger.db");
    populate(&db);
    let o = run(keyward()
        .arg("--db")
        .arg(&db)
        .args(["audit", "export", "--since", "yesterday"]));
    assert_eq!(o.status.code(), Some(2));
    assert!(
        out(&o)
            .1
            .contains("neither a sequence number nor an RFC 3339 time")
    );
    let o = run(keyward()
        .arg("--db")
        .arg(&db)
        .args(["bindings", "list", "--state", "stolen"]));
    assert_eq!(o.status.code(), Some(2));
    assert!(out(&o).1.contains("unknown binding state \"stolen\""));
    let o = run(keyward()
        .arg("--db")
        .arg(&db)
        .args(["bindings", "show", "nope"]));
    assert_eq!(o.status.code(), Some(1));
    assert!(out(&o).1.contains("no binding nope"));
    std::fs::write(
        dir.path().join("junk.db"),
        b"this is not sqlite at all, not even close......",
    )
    .unwrap();
    let o = run(keyward()
        .arg("--db")
        .arg(dir.path().join("junk.db"))
        .args(["audit", "verify"]));
    assert_eq!(o.status.code(), Some(1));
    assert!(out(&o).1.contains("opening the ledger"), "{}", out(&o).1);
}

/// Every file in `dir`, for checking that a command created none.
fn listing(dir: &std::path::Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn a_mistyped_db_is_an_error_and_creates_nothing() {
    // The old code created the file and a station key and said
    // "audit log OK: 0 rows" with exit 0.
    let dir = common::tempdir();
    let typo = dir.path().join("ledgr.db");
    for args in [
        &["audit", "verify"][..],
        &["audit", "export"],
        &["bindings", "list"],
        &["bindings", "show", "x"],
        &["report"],
    ] {
        let o = run(keyward().arg("--db").arg(&typo).args(args));
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        assert!(
            out(&o).1.contains("no ledger at"),
            "{args:?}: {}",
            out(&o).1
        );
        assert!(listing(dir.path()).is_empty(), "{args:?} created files");
    }
}

#[test]
fn read_commands_work_on_a_read_only_copy_and_write_nothing() {
    let dir = common::tempdir();
    let db = dir.path().join("ledger.db");
    let id = populate(&db);
    // A copy, as an auditor gets it: the ledger (checkpointed, no -wal) and
    // the station's public key, files 0444 in a 0555 directory, read by an
    // unprivileged user so the modes bind even when the tests run as root.
    let outer = common::tempdir();
    let copy = outer.path().join("copy");
    std::fs::create_dir(&copy).unwrap();
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
        .unwrap();
    for f in ["ledger.db", "station.pub"] {
        std::fs::copy(dir.path().join(f), copy.join(f)).unwrap();
    }
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &std::path::Path, m| {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap()
    };
    mode(&copy.join("ledger.db"), 0o444);
    mode(&copy.join("station.pub"), 0o444);
    mode(&copy, 0o555);
    mode(outer.path(), 0o755);
    let before = listing(&copy);
    let as_nobody = |args: &[&str]| {
        let mut c = keyward();
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            c = std::process::Command::new("setpriv");
            c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
                .arg(env!("CARGO_BIN_EXE_keyward"))
                .env("RUST_LOG", "warn");
        }
        c.env("HOME", outer.path())
            .arg("--db")
            .arg(copy.join("ledger.db"))
            .args(args);
        run(&mut c)
    };
    let o = as_nobody(&["audit", "verify"]);
    assert!(o.status.success() && out(&o).0.contains("audit log OK: 4 rows"));
    let o = as_nobody(&["bindings", "list"]);
    assert!(o.status.success() && out(&o).0.contains(&id));
    let o = as_nobody(&["bindings", "show", &id]);
    assert!(o.status.success());
    let o = as_nobody(&["audit", "export"]);
    assert_eq!(out(&o).0.lines().count(), 4);
    let o = as_nobody(&["report"]);
    assert!(o.status.success(), "{}", out(&o).1);
    assert_eq!(listing(&copy), before);
    mode(&copy, 0o755);
}

#[test]
fn audit_verify_needs_the_pinned_key() {
    let dir = common::tempdir();
    let db = dir.path().join("ledger.db");
    populate(&db);
    std::fs::remove_file(dir.path().join("station.pub")).unwrap();
    let o = run(keyward().arg("--db").arg(&db).args(["audit", "verify"]));
    assert_eq!(o.status.code(), Some(5));
    assert!(out(&o).1.contains("no station public key"), "{}", out(&o).1);
    assert!(!dir.path().join("station.pub").exists(), "never re-pinned");
}

#[test]
fn an_unknown_state_is_reported_as_damage_not_printed() {
    let dir = common::tempdir();
    let db = dir.path().join("ledger.db");
    let id = populate(&db);
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute_batch("PRAGMA ignore_check_constraints = ON; UPDATE bindings SET state = 'pwned'")
        .unwrap();
    for args in [&["bindings", "list"][..], &["bindings", "show", &id]] {
        let o = run(keyward().arg("--db").arg(&db).args(args));
        assert_eq!(o.status.code(), Some(1), "{args:?}");
        let (stdout, stderr) = out(&o);
        assert!(!stdout.contains("pwned"), "{stdout}");
        assert!(
            stderr.contains("ledger is damaged") && stderr.contains("\"pwned\""),
            "{stderr}"
        );
    }
}
