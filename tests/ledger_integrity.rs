//! Attacks on the ledger by someone who can write the SQLite file but does
//! not hold the station key (issue 13, item 2): rewriting rows after the
//! last signature, cutting the tail, forging or deleting the head, editing
//! the tables the log covers, swapping the pinned key, and upgrading a
//! ledger written before the log covered its tables.

use keyward::store::audit::{head_message, verify_head};
use keyward::store::station_key::{self, StationKeyError, public_path_beside};
use keyward::store::{
    AuditEvent, AuditReport, BindingState, CredentialRecord, DeviceRecord, EnrollmentRecord,
    Ledger, StationKey, StoreError, TicketRecord,
};
use rusqlite::{Connection, params};
use sha2::Digest;

const T0: i64 = 1_800_000_000;

fn record(n: u32) -> EnrollmentRecord {
    EnrollmentRecord {
        subject: format!("user{n}@example.org"),
        ticket: TicketRecord {
            jti: format!("jti-{n}"),
            digest: format!("{n:064x}"),
            issuer: "idp".into(),
            ial: Some(2),
        },
        device: DeviceRecord {
            kind: "yubikey".into(),
            serial: Some(format!("{}", 20_000_000 + n)),
            aaguid: None,
            model: Some("YubiKey 5 NFC".into()),
            firmware: Some("5.7.1".into()),
        },
        policy: Some("staff".into()),
        credentials: vec![
            CredentialRecord {
                kind: "fido2".into(),
                credential_id: Some(vec![1, 2, 3, n as u8]),
                rp_id: Some("example.org".into()),
                slot: None,
                algorithm: "ES256".into(),
                public_key: vec![4; 65],
                attestation: Some(vec![0xA3; 300]),
                attestation_format: Some("packed".into()),
            },
            CredentialRecord {
                kind: "piv".into(),
                credential_id: None,
                rp_id: None,
                slot: Some("9a".into()),
                algorithm: "P-256".into(),
                public_key: vec![4; 65],
                attestation: Some(vec![0x30; 300]),
                attestation_format: Some("yubico-piv".into()),
            },
        ],
        actor: "kiosk-1".into(),
    }
}

struct Station {
    dir: tempfile::TempDir,
}

impl Station {
    fn new() -> Station {
        Station {
            dir: tempfile::tempdir().unwrap(),
        }
    }
    fn db(&self) -> std::path::PathBuf {
        self.dir.path().join("ledger.db")
    }
    fn writer(&self) -> Ledger {
        Ledger::open_default_key(&self.db()).unwrap()
    }
    fn pin(&self) -> [u8; 32] {
        station_key::load_pinned(&public_path_beside(&self.db())).unwrap()
    }
    /// `audit verify` as an auditor runs it: read-only, with the pin.
    fn verify(&self) -> AuditReport {
        Ledger::open_read_only(&self.db(), Some(self.pin()))
            .unwrap()
            .verify_audit()
            .unwrap()
    }
    fn raw(&self) -> Connection {
        let c = Connection::open(self.db()).unwrap();
        c.execute_batch("PRAGMA foreign_keys = OFF").unwrap();
        c
    }
    /// The demo's ledger: one enrollment (FIDO2 + PIV) and one more row:
    /// five audit rows, all after the last place the old code signed.
    fn demo(&self) -> String {
        let mut l = self.writer();
        let id = l.commit_enrollment(&record(1), T0).unwrap();
        l.record(
            &[AuditEvent {
                actor: "kiosk-1",
                action: "station.started",
                entity: "station",
                entity_id: "k1",
                detail: serde_json::json!({}),
            }],
            T0 + 1,
        )
        .unwrap();
        let r = self.verify();
        assert!(r.ok() && r.rows == 5 && r.signed_head == Some(5), "{r:?}");
        id
    }
}

/// What an attacker without the key does after editing rows: recompute
/// every hash from `from` to the end, so the chain is consistent again.
fn rechain(c: &Connection, from: i64) {
    let mut prev: Vec<u8> = c
        .query_row(
            "SELECT coalesce((SELECT hash FROM audit WHERE seq = ?1), zeroblob(32))",
            [from - 1],
            |r| r.get(0),
        )
        .unwrap();
    let last: i64 = c
        .query_row("SELECT max(seq) FROM audit", [], |r| r.get(0))
        .unwrap();
    for seq in from..=last {
        let (at, actor, action, entity, entity_id, detail): (
            i64,
            String,
            String,
            String,
            String,
            String,
        ) = c
            .query_row(
                "SELECT at, actor, action, entity, entity_id, detail FROM audit WHERE seq = ?1",
                [seq],
                |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                    ))
                },
            )
            .unwrap();
        let detail: serde_json::Value = serde_json::from_str(&detail).unwrap();
        let content =
            serde_json::to_string(&(seq, at, &actor, &action, &entity, &entity_id, &detail))
                .unwrap();
        let mut h = sha2::Sha256::new();
        h.update(b"keyward-audit-v1");
        h.update(&prev);
        h.update(content.as_bytes());
        let hash = h.finalize().to_vec();
        c.execute(
            "UPDATE audit SET prev_hash = ?2, hash = ?3 WHERE seq = ?1",
            params![seq, prev, hash],
        )
        .unwrap();
        prev = hash;
    }
}

fn assert_fails(r: &AuditReport, needle: &str) {
    assert!(!r.ok(), "verified after tampering: {r:?}");
    let p = r.problem.as_deref().unwrap_or_default();
    assert!(p.contains(needle), "{needle:?} not in {p:?}");
}

#[test]
fn the_demo_ledger_rewritten_and_rechained_without_the_key_fails() {
    // Issue 13 item 2: on a 5-row ledger, change the subject in identities
    // and in the audit rows, then recompute the chain: the old code said
    // "audit log OK" (no checkpoint before row 256).
    let s = Station::new();
    s.demo();
    let c = s.raw();
    c.execute_batch(
        "UPDATE identities SET subject = 'mallory@example.org';
         UPDATE audit SET detail = replace(detail, 'user1@example.org', 'mallory@example.org');
         UPDATE tickets SET subject = 'mallory@example.org';",
    )
    .unwrap();
    rechain(&c, 1);
    drop(c);
    assert_fails(&s.verify(), "signed head");
}

#[test]
fn the_head_cannot_be_cut_deleted_or_forged() {
    // The tail cut off, the head left: the head names a row that is gone.
    let s = Station::new();
    s.demo();
    s.raw()
        .execute("DELETE FROM audit WHERE seq = 5", [])
        .unwrap();
    assert_fails(
        &s.verify(),
        "signed head is row 5 but the log ends at row 4",
    );

    // The tail and the head cut together, rows left: no head at all.
    let s = Station::new();
    s.demo();
    s.raw()
        .execute_batch("DELETE FROM audit WHERE seq >= 4; DELETE FROM audit_head")
        .unwrap();
    assert_fails(&s.verify(), "no signed head");

    // A row appended and a head signed with the attacker's own key.
    let s = Station::new();
    s.demo();
    let c = s.raw();
    c.execute(
        "INSERT INTO audit SELECT 6, at, actor, action, entity, entity_id, detail, hash, hash FROM audit WHERE seq = 5",
        [],
    )
    .unwrap();
    rechain(&c, 6);
    let hash: Vec<u8> = c
        .query_row("SELECT hash FROM audit WHERE seq = 6", [], |r| r.get(0))
        .unwrap();
    let hash: [u8; 32] = hash.try_into().unwrap();
    let mallory = StationKey::generate();
    c.execute(
        "UPDATE audit_head SET seq = 6, hash = ?1, key_id = ?2, signature = ?3",
        params![
            hash.as_slice(),
            s.writer_key_id(),
            mallory.sign(&head_message(6, &hash)).as_slice()
        ],
    )
    .unwrap();
    drop(c);
    assert_fails(&s.verify(), "not signed by the pinned station key");

    // The head moved back to an older row (with its old, valid signature
    // replayed) and the rows after it cut.
    let s = Station::new();
    let mut l = s.writer();
    l.commit_enrollment(&record(1), T0).unwrap();
    let old = l.signed_head().unwrap().unwrap();
    l.commit_enrollment(&record(2), T0 + 5).unwrap();
    drop(l);
    let c = s.raw();
    c.execute(
        "UPDATE audit_head SET seq = ?1, hash = ?2, signature = ?3, at = ?4",
        params![
            old.seq,
            old.hash.as_slice(),
            old.signature.as_slice(),
            old.at
        ],
    )
    .unwrap();
    c.execute("DELETE FROM audit WHERE seq > ?1", [old.seq])
        .unwrap();
    drop(c);
    // The chain and head agree now, but the second binding's rows are
    // still in the tables: the replay finds them.
    assert_fails(&s.verify(), "not in the audit log");
}

impl Station {
    fn writer_key_id(&self) -> String {
        station_key::key_id(&self.pin())
    }
}

#[test]
fn the_signed_head_is_the_public_contract() {
    let s = Station::new();
    assert_eq!(s.writer().signed_head().unwrap(), None);
    s.demo();
    let head = Ledger::open_read_only(&s.db(), None)
        .unwrap()
        .signed_head()
        .unwrap()
        .unwrap();
    assert_eq!(head.seq, 5);
    assert!(verify_head(&s.pin(), &head));
    assert!(!verify_head(&StationKey::generate().public_key(), &head));
    let mut moved = head.clone();
    moved.seq = 4;
    assert!(!verify_head(&s.pin(), &moved));
    let json = serde_json::to_value(&head).unwrap();
    assert_eq!(json["hash"], hex::encode(head.hash));
    assert_eq!(json["signature"].as_str().unwrap().len(), 128);
    let mut msg = b"keyward-audit-head-v1".to_vec();
    msg.extend_from_slice(&5i64.to_be_bytes());
    msg.extend_from_slice(&head.hash);
    assert_eq!(head_message(5, &head.hash), msg);
}

#[test]
fn tables_must_be_what_the_log_replays_to() {
    let cases: &[(&str, &str)] = &[
        (
            "UPDATE identities SET subject = 'mallory@example.org'",
            "identities row 1 differs",
        ),
        (
            "DELETE FROM credentials WHERE binding_id = (SELECT id FROM bindings LIMIT 1); DELETE FROM bindings",
            "in the audit log but not in the table",
        ),
        (
            "INSERT INTO bindings(id, identity_id, device_id, ticket_issuer, ticket_jti, ial, policy, state, created_at)
             SELECT 'ff' || id, identity_id, device_id, ticket_issuer, 'forged', ial, policy, 'active', created_at FROM bindings",
            "is not in the audit log",
        ),
        (
            "UPDATE bindings SET state = 'active', revoked_at = NULL",
            "differs from what the audit log records",
        ),
        (
            "UPDATE credentials SET public_key = zeroblob(65) WHERE kind = 'piv'",
            "credentials row 2 differs",
        ),
        (
            "DELETE FROM tickets",
            "jti-1\"] is in the audit log but not in the table",
        ),
        (
            "UPDATE devices SET serial = '99999999'",
            "devices row 1 differs",
        ),
        (
            "UPDATE exceptions SET expires_at = expires_at + 86400000",
            "exceptions row 1 differs",
        ),
    ];
    for (sql, needle) in cases {
        let s = Station::new();
        let id = s.demo();
        let mut l = s.writer();
        l.transition(&id, BindingState::Revoked, "left", "hr", T0 + 10)
            .unwrap();
        l.add_exception("aaguid", "any", "pilot", "ciso", T0 + 86_400, T0 + 11)
            .unwrap();
        drop(l);
        assert!(s.verify().ok());
        s.raw().execute_batch(sql).unwrap();
        let r = s.verify();
        assert_fails(&r, needle);
        assert_eq!(r.first_bad_seq, None, "{sql}: the chain itself is intact");
    }
}

#[test]
fn the_pin_lives_outside_the_database_and_is_never_re_recorded() {
    let s = Station::new();
    s.demo();
    // The old code read the checking key from the ledger's own meta table,
    // re-recording it if deleted: neither the pin nor the verdict depends
    // on meta now.
    s.raw()
        .execute_batch("DELETE FROM meta WHERE key = 'station_public_key'")
        .unwrap();
    assert!(s.verify().ok());

    // Another station's key as the pin: the head does not verify.
    let other = StationKey::generate().public_key();
    let r = Ledger::open_read_only(&s.db(), Some(other))
        .unwrap()
        .verify_audit()
        .unwrap();
    assert_fails(&r, "not signed by the pinned station key");

    // A read-only ledger without a pin refuses to verify.
    let e = Ledger::open_read_only(&s.db(), None)
        .unwrap()
        .verify_audit()
        .unwrap_err();
    assert!(matches!(e, StoreError::Unpinned), "{e}");

    // station.pub swapped for someone else's: the writer refuses to go on,
    // never re-pins.
    let pub_path = public_path_beside(&s.db());
    let stranger = tempfile::tempdir().unwrap();
    StationKey::load_or_create(&stranger.path().join("station.key")).unwrap();
    std::fs::copy(stranger.path().join("station.pub"), &pub_path).unwrap();
    let e = Ledger::open_default_key(&s.db()).unwrap_err();
    assert!(
        matches!(
            e,
            StoreError::StationKey(StationKeyError::PinMismatch { .. })
        ),
        "{e}"
    );
    // A deleted pin is an error for the auditor, never a silent re-pin.
    std::fs::remove_file(&pub_path).unwrap();
    let e = station_key::load_pinned(&pub_path).unwrap_err();
    assert!(
        e.to_string().contains("copy that station's station.pub"),
        "{e}"
    );
    assert!(!pub_path.exists());
}

#[test]
fn a_ledger_from_before_signed_heads_is_baselined_on_upgrade_and_keeps_verifying() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ledger.db");
    let key = StationKey::load_or_create(&dir.path().join("station.key")).unwrap();
    // A schema-2 ledger as the previous release wrote it: one binding, its
    // audit rows (no `rows` field) and no signed head.
    {
        let c = Connection::open(&db).unwrap();
        c.execute_batch(include_str!("../src/store/migrations/0001_initial.sql"))
            .unwrap();
        c.execute_batch(include_str!("../src/store/migrations/0002_runs_stock.sql"))
            .unwrap();
        c.execute_batch(&format!(
            "PRAGMA user_version = 2;
             INSERT INTO meta VALUES ('station_public_key', '{}');
             INSERT INTO identities VALUES (1, 'old@example.org', {T0});
             INSERT INTO devices(id, kind, serial, first_seen) VALUES (1, 'yubikey', '123', {T0});
             INSERT INTO tickets VALUES ('old-1', '{}', 'idp', 'old@example.org', 2, {T0});
             INSERT INTO bindings(id, identity_id, device_id, ticket_jti, state, created_at)
                 VALUES ('b1', 1, 1, 'old-1', 'active', {T0});
             INSERT INTO audit VALUES (1, {T0}, 'kiosk', 'binding.created', 'binding', 'b1', '{{}}', zeroblob(32), zeroblob(32));",
            hex::encode(key.public_key()),
            "ab".repeat(32)
        ))
        .unwrap();
        rechain(&c, 1);
    }
    drop(key);
    let l = Ledger::open_default_key(&db).unwrap();
    assert_eq!(l.schema_version().unwrap(), keyward::store::SCHEMA_VERSION);
    drop(l);
    let pin = station_key::load_pinned(&dir.path().join("station.pub")).unwrap();
    let verify = || {
        Ledger::open_read_only(&db, Some(pin))
            .unwrap()
            .verify_audit()
            .unwrap()
    };
    let r = verify();
    assert!(r.ok() && r.rows == 2 && r.signed_head == Some(2), "{r:?}");
    Connection::open(&db)
        .unwrap()
        .execute("UPDATE identities SET subject = 'mallory'", [])
        .unwrap();
    assert_fails(&verify(), "identities row 1 differs");
}
