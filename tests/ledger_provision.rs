//! The ledger as the enroll workflow and the CLI use it: a waiver commits
//! with its binding or not at all (issue 13 item 8), and `--config` names
//! the ledger for the read commands too (item 4).

#![cfg(feature = "sim")]

mod common;
mod provision_support;

use keyward::provision::{self, Cancel, EventLog, KeyTarget, Step};
use provision_support::*;

#[test]
fn a_failed_commit_leaves_no_exception_or_audit_row_behind() {
    let rig = rig();
    // The binding's insert fails at commit time (as a full disk or a
    // concurrent writer would make it): the old code had already committed
    // the waiver, its audit row and its outbox event in a transaction of
    // their own.
    rusqlite::Connection::open(&rig.db)
        .unwrap()
        .execute_batch(
            "CREATE TRIGGER fail_binding BEFORE INSERT ON bindings
             BEGIN SELECT RAISE(ABORT, 'the disk is full'); END;",
        )
        .unwrap();
    let r = provision::enroll(
        &rig.station,
        request(
            rig.ticket(&claims("waived")),
            KeyTarget::device(sim_device(31_500_001)),
            PIN,
        ),
        &EventLog::new(),
        &Cancel::new(),
    );
    let e = r.expect_err("the commit fails");
    assert_eq!(e.step, Some(Step::Commit), "{e:?}");
    assert_eq!(count(&rig.db, "SELECT count(*) FROM exceptions"), 0);
    for sql in [
        "SELECT count(*) FROM audit WHERE action = 'exception.granted'",
        "SELECT count(*) FROM outbox WHERE kind = 'exception.granted'",
        "SELECT count(*) FROM tickets",
    ] {
        assert_eq!(count(&rig.db, sql), 0, "{sql}");
    }

    // Once the disk is fine, the waiver goes in with its binding and names it.
    rusqlite::Connection::open(&rig.db)
        .unwrap()
        .execute_batch("DROP TRIGGER fail_binding")
        .unwrap();
    let o = provision::enroll(
        &rig.station,
        request(
            rig.ticket(&claims("waived")),
            KeyTarget::device(sim_device(31_500_002)),
            PIN,
        ),
        &EventLog::new(),
        &Cancel::new(),
    )
    .expect("enrollment with its waiver");
    assert_eq!(count(&rig.db, "SELECT count(*) FROM exceptions"), 1);
    let named = format!(
        "SELECT count(*) FROM audit WHERE action = 'exception.granted' AND json_extract(detail, '$.binding') = '{}'",
        o.binding
    );
    assert_eq!(count(&rig.db, &named), 1);
    let l = rig.station.ledger().unwrap();
    let r = l.verify_audit().unwrap();
    assert!(r.ok(), "{r:?}");
}

#[test]
fn config_names_the_ledger_for_the_read_commands() {
    let rig = rig();
    provision::enroll(
        &rig.station,
        request(
            rig.ticket(&claims("standard")),
            KeyTarget::device(sim_device(31_500_010)),
            PIN,
        ),
        &EventLog::new(),
        &Cancel::new(),
    )
    .expect("enrollment");
    // A home with no ledger: the old code read the default ledger there
    // ("no bindings match", or created it).
    let home = common::tempdir();
    let kw = || {
        let mut c = common::keyward();
        c.env_remove("KEYWARD_DB")
            .env_remove("KEYWARD_CONFIG")
            .env("HOME", home.path())
            .env("XDG_DATA_HOME", home.path().join("data"))
            .arg("--config")
            .arg(&rig.config);
        c
    };
    let o = common::run(kw().args(["bindings", "list"]));
    assert!(o.status.success());
    assert!(String::from_utf8_lossy(&o.stdout).contains(SUB));
    let o = common::run(kw().args(["audit", "verify"]));
    assert!(o.status.success());
    assert!(String::from_utf8_lossy(&o.stdout).contains("audit log OK"));
    let o = common::run(kw().args(["--json", "report"]));
    assert!(o.status.success());
    assert!(
        !home.path().join("data").exists(),
        "nothing is created at the default ledger path"
    );
}
