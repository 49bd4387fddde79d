//! Crash safety: a child process commits enrollments in a loop and is killed
//! with SIGKILL at random moments, 200 times. After every kill the ledger
//! opens, its audit chain verifies, and every ticket is either consumed with
//! its whole binding, audit rows and outbox events, or absent with none.

use std::process::{Command, Stdio};
use std::time::Duration;

use keyward::store::{CredentialRecord, DeviceRecord, EnrollmentRecord, Ledger, TicketRecord};
use rusqlite::Connection;

const CHILD_ENV: &str = "KEYWARD_CRASH_CHILD_DB";
const KILLS: usize = 200;

fn record(tag: &str) -> EnrollmentRecord {
    EnrollmentRecord {
        subject: format!("user-{tag}"),
        ticket: TicketRecord {
            jti: format!("jti-{tag}"),
            digest: "ab".repeat(32),
            issuer: "idp".into(),
            ial: Some(2),
        },
        device: DeviceRecord {
            kind: "fido2".into(),
            serial: None,
            aaguid: None,
            model: None,
            firmware: None,
        },
        policy: None,
        credentials: vec![CredentialRecord {
            kind: "fido2".into(),
            credential_id: Some(tag.as_bytes().to_vec()),
            rp_id: Some("example.org".into()),
            slot: None,
            algorithm: "ES256".into(),
            public_key: vec![4; 65],
            attestation: Some(vec![0x55; 512]),
            attestation_format: Some("packed".into()),
        }],
        actor: "crash-test".into(),
    }
}

/// The child: runs only when the parent sets CHILD_ENV.
#[test]
fn crash_child_writer() {
    let Some(db) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let mut l = Ledger::open_default_key(std::path::Path::new(&db)).unwrap();
    let mut tag = [0u8; 8];
    loop {
        keyward::random::fill(&mut tag);
        l.commit_enrollment(&record(&hex::encode(tag)), 1_800_000_000)
            .unwrap();
    }
}

fn random_ms(lo: u64, hi: u64) -> u64 {
    let mut b = [0u8; 8];
    keyward::random::fill(&mut b);
    lo + u64::from_le_bytes(b) % (hi - lo)
}

fn check_consistent(db: &std::path::Path) -> usize {
    let l = Ledger::open_default_key(db).expect("ledger opens after SIGKILL");
    let r = l.verify_audit().unwrap();
    assert!(r.ok(), "audit chain broken after a crash: {r:?}");
    drop(l);
    let c = Connection::open(db).unwrap();
    let q = |sql: &str| -> i64 { c.query_row(sql, [], |r| r.get(0)).unwrap() };
    let tickets = q("SELECT count(*) FROM tickets");
    assert_eq!(
        q("SELECT count(*) FROM tickets t JOIN bindings b ON b.ticket_jti = t.jti"),
        tickets,
        "ticket without binding"
    );
    assert_eq!(
        q(
            "SELECT count(*) FROM bindings b WHERE NOT EXISTS (SELECT 1 FROM credentials c WHERE c.binding_id = b.id)"
        ),
        0
    );
    assert_eq!(
        q("SELECT count(*) FROM audit WHERE action = 'ticket.consumed'"),
        tickets
    );
    assert_eq!(
        q("SELECT count(*) FROM audit WHERE action = 'binding.created'"),
        tickets
    );
    assert_eq!(
        q(
            "SELECT count(*) FROM outbox o JOIN bindings b ON json_extract(o.payload, '$.binding') = b.id WHERE o.kind = 'binding.created'"
        ),
        tickets
    );
    assert_eq!(
        q(
            "SELECT count(*) FROM outbox o JOIN bindings b ON json_extract(o.payload, '$.binding') = b.id WHERE o.kind = 'notify.binding_created'"
        ),
        tickets
    );
    assert_eq!(
        q("SELECT count(*) FROM outbox"),
        2 * tickets,
        "outbox event without binding"
    );
    tickets as usize
}

#[test]
fn sigkill_at_random_moments_never_leaves_half_an_enrollment() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ledger.db");
    let exe = std::env::current_exe().unwrap();
    let mut last = 0;
    for _ in 0..KILLS {
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "crash_child_writer",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, &db)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(random_ms(5, 60)));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let n = check_consistent(&db);
        assert!(
            n >= last,
            "committed enrollments disappeared: {last} -> {n}"
        );
        last = n;
    }
    assert!(
        last > 0,
        "the child never committed anything; the test proved nothing"
    );
    eprintln!("{KILLS} kills, {last} enrollments committed, all consistent");
}
