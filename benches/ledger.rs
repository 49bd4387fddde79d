//! Ledger benchmarks: `cargo bench --bench ledger`.
//!
//! Prints two lines:
//! `ledger_commit bindings=1000000 n=... median_ms=... p99_ms=...` — the
//! atomic enrollment unit (synchronous=FULL, so each commit waits for fsync)
//! with its signed audit head (one Ed25519 signature per transaction) on a
//! ledger that already holds 1M bindings; and
//! `audit_verify rows=... rows_per_s=...` — chain, signed head and the
//! covered-table replay.
//! Targets (issues 8 and 13): p99 <= 5 ms, >= 200k rows/s.

use std::time::Instant;

use keyward::store::{
    AuditEvent, CredentialRecord, DeviceRecord, EnrollmentRecord, Ledger, TicketRecord,
};

const BINDINGS: i64 = 1_000_000;
const COMMITS: usize = 2_000;
const AUDIT_ROWS: usize = 1_000_000;

fn record(n: usize) -> EnrollmentRecord {
    EnrollmentRecord {
        subject: format!("bench-{n}@example.org"),
        ticket: TicketRecord {
            jti: format!("bench-{n}"),
            digest: "ef".repeat(32),
            issuer: "idp".into(),
            ial: Some(2),
        },
        device: DeviceRecord {
            kind: "yubikey".into(),
            serial: Some(format!("b{n}")),
            aaguid: None,
            model: None,
            firmware: None,
        },
        policy: Some("staff".into()),
        credentials: vec![CredentialRecord {
            kind: "fido2".into(),
            credential_id: Some(vec![7; 64]),
            rp_id: Some("example.org".into()),
            slot: None,
            algorithm: "ES256".into(),
            public_key: vec![4; 77],
            attestation: Some(vec![0xA5; 800]),
            attestation_format: Some("packed".into()),
        }],
        actor: "bench".into(),
    }
}

/// Fill 1M bindings with plain SQL in one transaction (no fsync per row):
/// the commit benchmark needs a big ledger, not a realistic way of making
/// one. These rows bypass the audit log, so this ledger is not meant to
/// verify; `audit_verify` runs on a ledger of its own.
fn prefill(db: &std::path::Path) {
    let c = rusqlite::Connection::open(db).expect("open");
    c.execute_batch(&format!(
        "PRAGMA synchronous=OFF; BEGIN;
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {BINDINGS})
         INSERT INTO identities(id, subject, created_at) SELECT i, 'prefill-' || i, 0 FROM n;
         INSERT INTO devices(id, kind, serial, first_seen) SELECT id, 'yubikey', 'p' || id, 0 FROM identities;
         INSERT INTO tickets(jti, digest, issuer, subject, ial, consumed_at) SELECT 'p' || id, '00', 'idp', subject, 2, 0 FROM identities;
         INSERT INTO bindings(id, identity_id, device_id, ticket_jti, ticket_issuer, ial, state, created_at) SELECT printf('%032x', id), id, id, 'p' || id, 'idp', 2, 'active', 0 FROM identities;
         INSERT INTO credentials(binding_id, kind, algorithm, public_key, attestation, created_at) SELECT id, 'fido2', 'ES256', zeroblob(77), zeroblob(800), 0 FROM bindings;
         COMMIT;"
    ))
    .expect("prefill");
}

fn main() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("ledger.db");
    drop(Ledger::open_default_key(&db).expect("create"));
    let t = Instant::now();
    prefill(&db);
    eprintln!(
        "prefilled {BINDINGS} bindings in {:.1}s",
        t.elapsed().as_secs_f64()
    );

    let mut ledger = Ledger::open_default_key(&db).expect("open");
    let mut samples: Vec<f64> = (0..COMMITS)
        .map(|n| {
            let rec = record(n);
            let t = Instant::now();
            ledger
                .commit_enrollment(&rec, 1_800_000_000)
                .expect("commit");
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    samples.sort_by(f64::total_cmp);
    // The part of a commit the per-transaction head adds in CPU: one
    // Ed25519 signature over the head message.
    let key = keyward::store::StationKey::generate();
    let t = Instant::now();
    for seq in 0..10_000i64 {
        std::hint::black_box(key.sign(&keyward::store::audit::head_message(seq, &[7; 32])));
    }
    let sign_us = t.elapsed().as_secs_f64() * 1e6 / 10_000.0;
    println!(
        "ledger_commit bindings={BINDINGS} n={COMMITS} median_ms={:.2} p99_ms={:.2} max_ms={:.2} head_sign_us={sign_us:.1}",
        samples[COMMITS / 2],
        samples[COMMITS * 99 / 100],
        samples[COMMITS - 1]
    );

    drop(ledger);
    let vdir = tempfile::tempdir().expect("tempdir");
    let mut ledger = Ledger::open_default_key(&vdir.path().join("ledger.db")).expect("open");
    for n in 0..1_000 {
        ledger
            .commit_enrollment(&record(BINDINGS as usize + n), 1_800_000_000)
            .expect("commit");
    }
    let detail = serde_json::json!({"note": "bench", "n": 1});
    let events: Vec<AuditEvent<'_>> = (0..10_000)
        .map(|_| AuditEvent {
            actor: "bench",
            action: "bench.event",
            entity: "station",
            entity_id: "s1",
            detail: detail.clone(),
        })
        .collect();
    for _ in 0..AUDIT_ROWS / events.len() {
        ledger.record(&events, 1_800_000_000).expect("record");
    }
    let t = Instant::now();
    let report = ledger.verify_audit().expect("verify");
    let secs = t.elapsed().as_secs_f64();
    assert!(report.ok(), "{report:?}");
    println!(
        "audit_verify rows={} signed_head={:?} rows_per_s={:.0}",
        report.rows,
        report.signed_head,
        report.rows as f64 / secs
    );
}
