//! The ledger on disk: atomic enrollment, replay, lifecycle, outbox, and
//! tamper evidence.

use keyward::store::{
    BindingState, CredentialRecord, DeviceRecord, EnrollmentRecord, Ledger, StationKey, StoreError,
    TicketRecord,
};
use rusqlite::Connection;

const T0: i64 = 1_800_000_000;

fn record(n: u32) -> EnrollmentRecord {
    EnrollmentRecord {
        subject: format!("user{n}@example.org"),
        ticket: TicketRecord {
            jti: format!("jti-{n}"),
            digest: format!("{:064x}", n),
            issuer: "idp".into(),
            ial: Some(2),
        },
        device: DeviceRecord {
            kind: "yubikey".into(),
            serial: Some(format!("{}", 10_000_000 + n)),
            aaguid: Some("6b657977-6172-642d-7369-6d2d6669646f".into()),
            model: Some("YubiKey 5 NFC".into()),
            firmware: Some("5.7.1".into()),
        },
        policy: Some("staff".into()),
        credentials: vec![CredentialRecord {
            kind: "fido2".into(),
            credential_id: Some(vec![1, 2, 3, n as u8]),
            rp_id: Some("example.org".into()),
            slot: None,
            algorithm: "ES256".into(),
            public_key: vec![4; 65],
            attestation: Some(vec![0xA3; 700]),
            attestation_format: Some("packed".into()),
        }],
        actor: "kiosk-1".into(),
    }
}

fn open(dir: &tempfile::TempDir) -> Ledger {
    Ledger::open_default_key(&dir.path().join("ledger.db")).unwrap()
}

fn raw(dir: &tempfile::TempDir) -> Connection {
    Connection::open(dir.path().join("ledger.db")).unwrap()
}

fn count(c: &Connection, table: &str) -> i64 {
    c.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
        .unwrap()
}

#[test]
fn an_enrollment_writes_binding_ticket_audit_and_outbox_together() {
    let dir = tempfile::tempdir().unwrap();
    let mut l = open(&dir);
    let id = l.commit_enrollment(&record(1), T0).unwrap();
    let c = raw(&dir);
    assert_eq!(
        (
            count(&c, "bindings"),
            count(&c, "tickets"),
            count(&c, "credentials")
        ),
        (1, 1, 1)
    );
    assert_eq!(
        count(&c, "audit"),
        3,
        "ticket.consumed, binding.created, credential.added"
    );
    let pending = l.outbox_pending(10).unwrap();
    assert_eq!(pending.len(), 2, "binding.created, notify.binding_created");
    assert_eq!(pending[0].kind, "binding.created");
    assert_eq!(pending[0].payload["binding"], id);
    // The out-of-band notice: who, which binding, which key, where, when;
    // no ticket, credential or attestation.
    let n = &pending[1];
    assert_eq!(n.kind, "notify.binding_created");
    assert_eq!(
        (
            &n.payload["binding"],
            &n.payload["subject"],
            &n.payload["device"]["kind"]
        ),
        (
            &serde_json::json!(id),
            &serde_json::json!(record(1).subject),
            &serde_json::json!("yubikey")
        )
    );
    assert_eq!(n.payload["station_key"], l.station_key().unwrap().key_id());
    assert_eq!(n.payload["at"], "2027-01-15T08:00:00Z");
    let mut keys: Vec<&String> = n.payload.as_object().unwrap().keys().collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "at",
            "binding",
            "device",
            "reason",
            "station_key",
            "subject"
        ]
    );
    let shown = l.show_binding(&id).unwrap();
    assert_eq!(shown.summary.state, "active");
    assert_eq!(shown.credentials[0].attestation_bytes, Some(700));
    assert_eq!(shown.audit.len(), 3);
    assert_eq!(l.latest_trusted_time().unwrap(), Some(T0));
}

#[test]
fn a_replayed_ticket_writes_nothing_and_names_the_first_use() {
    let dir = tempfile::tempdir().unwrap();
    let mut l = open(&dir);
    l.commit_enrollment(&record(1), T0).unwrap();
    let mut again = record(2);
    again.ticket.jti = "jti-1".into();
    let err = l.commit_enrollment(&again, T0 + 60).unwrap_err();
    assert!(
        matches!(err, StoreError::TicketReplayed { ref jti, .. } if jti == "jti-1"),
        "{err}"
    );
    assert!(err.to_string().contains("2027-01-15T08:00:00Z"), "{err}");
    let c = raw(&dir);
    assert_eq!(
        (
            count(&c, "bindings"),
            count(&c, "audit"),
            count(&c, "outbox"),
            count(&c, "identities")
        ),
        (1, 3, 2, 1)
    );
}

#[test]
fn a_key_with_an_active_binding_cannot_be_bound_again() {
    let dir = tempfile::tempdir().unwrap();
    let mut l = open(&dir);
    let first = l.commit_enrollment(&record(1), T0).unwrap();
    let mut same_key = record(2);
    same_key.device.serial = record(1).device.serial;
    let err = l.commit_enrollment(&same_key, T0 + 1).unwrap_err();
    assert!(
        matches!(err, StoreError::DeviceAlreadyBound { ref binding, .. } if *binding == first),
        "{err}"
    );
    // Once returned to stock the key can be bound again.
    l.transition(&first, BindingState::Returned, "left", "helpdesk", T0 + 2)
        .unwrap();
    l.commit_enrollment(&same_key, T0 + 3).unwrap();
}

#[test]
fn invalid_records_are_refused_before_any_write() {
    let dir = tempfile::tempdir().unwrap();
    let mut l = open(&dir);
    for (mutate, expect) in [
        (
            Box::new(|r: &mut EnrollmentRecord| r.subject.clear())
                as Box<dyn Fn(&mut EnrollmentRecord)>,
            "subject is empty",
        ),
        (
            Box::new(|r: &mut EnrollmentRecord| r.ticket.digest = "abc".into()),
            "64 hex digits",
        ),
        (
            Box::new(|r: &mut EnrollmentRecord| r.device.kind = "usb-stick".into()),
            "device kind",
        ),
        (
            Box::new(|r: &mut EnrollmentRecord| r.credentials.clear()),
            "at least one credential",
        ),
        (
            Box::new(|r: &mut EnrollmentRecord| r.credentials[0].public_key.clear()),
            "no public key",
        ),
    ] {
        let mut r = record(1);
        mutate(&mut r);
        let e = l.commit_enrollment(&r, T0).unwrap_err();
        assert!(e.to_string().contains(expect), "{e}");
    }
    assert_eq!(count(&raw(&dir), "audit"), 0);
}

#[test]
fn lifecycle_changes_are_timestamped_audited_and_queued() {
    let dir = tempfile::tempdir().unwrap();
    let mut l = open(&dir);
    let id = l.commit_enrollment(&record(1), T0).unwrap();
    assert_eq!(
        l.transition(&id, BindingState::Suspended, "on leave", "hr", T0 + 10)
            .unwrap(),
        BindingState::Active
    );
    l.transition(&id, BindingState::Lost, "lost on train", "user", T0 + 20)
        .unwrap();
    let err = l
        .transition(&id, BindingState::Active, "found it", "user", T0 + 30)
        .unwrap_err();
    assert!(
        err.to_string().contains("is lost; it cannot become active"),
        "{err}"
    );
    l.transition(&id, BindingState::Revoked, "lost", "helpdesk", T0 + 40)
        .unwrap();
    let shown = l.show_binding(&id).unwrap();
    assert_eq!(shown.summary.state, "revoked");
    assert_eq!(shown.lifecycle["suspended_at"], T0 + 10);
    assert_eq!(shown.lifecycle["lost_at"], T0 + 20);
    assert_eq!(shown.lifecycle["revoked_at"], T0 + 40);
    // binding.created and notify.binding_created, one state change each,
    // and notify.revocation for lost and for revoked.
    let kinds: Vec<String> = l
        .outbox_pending(10)
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(
        kinds,
        [
            "binding.created",
            "notify.binding_created",
            "binding.state_changed",
            "binding.state_changed",
            "notify.revocation",
            "binding.state_changed",
            "notify.revocation"
        ]
    );
    let revoked = &l.outbox_pending(10).unwrap()[6].payload;
    assert_eq!(
        (&revoked["state"], &revoked["from"], &revoked["reason"]),
        (
            &serde_json::json!("revoked"),
            &serde_json::json!("lost"),
            &serde_json::json!("lost")
        )
    );
    assert!(matches!(
        l.transition("nope", BindingState::Revoked, "x", "y", T0),
        Err(StoreError::BindingNotFound(_))
    ));
    assert_eq!(
        l.list_bindings(None, Some(BindingState::Revoked))
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        l.list_bindings(Some("user1@example.org"), Some(BindingState::Active))
            .unwrap()
            .len(),
        0
    );
}

#[test]
fn a_replacement_closes_the_old_binding_and_opens_the_new_in_one_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let mut l = open(&dir);
    let old = l.commit_enrollment(&record(1), T0).unwrap();
    l.transition(&old, BindingState::Lost, "lost", "user", T0 + 5)
        .unwrap();
    let mut new = record(2);
    new.subject = record(1).subject;
    let new_id = l.commit_replacement(&old, &new, "lost", T0 + 10).unwrap();
    let o = l.show_binding(&old).unwrap();
    assert_eq!(
        (o.summary.state.as_str(), o.replaced_by.as_deref()),
        ("replaced", Some(new_id.as_str()))
    );
    let kinds: Vec<String> = l
        .outbox_pending(20)
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert!(
        kinds.contains(&"notify.replacement".to_string()),
        "{kinds:?}"
    );

    // A replacement of a revoked binding fails and leaves nothing behind.
    l.transition(
        &new_id,
        BindingState::Revoked,
        "stolen",
        "helpdesk",
        T0 + 20,
    )
    .unwrap();
    let before = count(&raw(&dir), "audit");
    let err = l
        .commit_replacement(&new_id, &record(3), "again", T0 + 30)
        .unwrap_err();
    assert!(matches!(err, StoreError::IllegalTransition { .. }), "{err}");
    assert_eq!(count(&raw(&dir), "audit"), before);
    assert!(l.ticket_consumed("idp", "jti-3").unwrap().is_none());
}

#[test]
fn delivered_events_leave_the_outbox_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut l = open(&dir);
    l.commit_enrollment(&record(1), T0).unwrap();
    l.commit_enrollment(&record(2), T0).unwrap();
    let ids: Vec<String> = l
        .outbox_pending(10)
        .unwrap()
        .into_iter()
        .map(|e| e.event_id)
        .collect();
    l.outbox_attempted(&ids[..1]).unwrap();
    assert_eq!(l.outbox_pending(10).unwrap()[0].attempts, 1);
    assert_eq!(l.outbox_delivered(&ids[..1], T0 + 1).unwrap(), 1);
    assert_eq!(
        l.outbox_delivered(&ids[..1], T0 + 2).unwrap(),
        0,
        "idempotent"
    );
    assert_eq!(l.outbox_pending(10).unwrap().len(), 3);
}

#[test]
fn exceptions_need_a_future_expiry() {
    let dir = tempfile::tempdir().unwrap();
    let mut l = open(&dir);
    let e = l
        .add_exception(
            "attestation.none",
            "aaguid:00",
            "legacy key",
            "ciso",
            T0,
            T0,
        )
        .unwrap_err();
    assert!(e.to_string().contains("not in the future"), "{e}");
    l.add_exception(
        "attestation.none",
        "aaguid:00",
        "legacy key",
        "ciso",
        T0 + 86_400,
        T0,
    )
    .unwrap();
    assert!(l.verify_audit().unwrap().ok());
}

/// A ledger with 600 audit rows, its head signed at the last.
fn busy_ledger(dir: &tempfile::TempDir) -> i64 {
    let mut l = open(dir);
    for n in 0..200 {
        l.commit_enrollment(&record(n), T0 + n as i64).unwrap();
    }
    let r = l.verify_audit().unwrap();
    assert!(r.ok(), "{r:?}");
    assert_eq!((r.rows, r.signed_head), (600, Some(600)));
    r.rows
}

fn verify(dir: &tempfile::TempDir) -> keyward::store::AuditReport {
    open(dir).verify_audit().unwrap()
}

#[test]
fn tampering_is_found_at_the_first_bad_row() {
    let cases: [(&str, i64); 7] = [
        ("UPDATE audit SET actor = 'mallory' WHERE seq = 42", 42),
        (
            "UPDATE audit SET detail = '{\"subject\":\"mallory\"}' WHERE seq = 100",
            100,
        ),
        ("UPDATE audit SET at = at + 1 WHERE seq = 7", 7),
        ("DELETE FROM audit WHERE seq = 300", 300),
        // Swap two rows' contents (reorder).
        (
            "UPDATE audit SET seq = -1 WHERE seq = 10; UPDATE audit SET seq = 10 WHERE seq = 11; UPDATE audit SET seq = 11 WHERE seq = -1",
            10,
        ),
        // Insert a forged row in the middle by shifting the tail.
        (
            "UPDATE audit SET seq = seq + 1000 WHERE seq >= 50; UPDATE audit SET seq = seq - 999 WHERE seq >= 1050; INSERT INTO audit SELECT 50, at, actor, action, entity, entity_id, detail, prev_hash, hash FROM audit WHERE seq = 49",
            50,
        ),
        // Rewrite a row and its hash (chain re-computed for one row only).
        ("UPDATE audit SET hash = zeroblob(32) WHERE seq = 599", 599),
    ];
    for (sql, first_bad) in cases {
        let dir = tempfile::tempdir().unwrap();
        busy_ledger(&dir);
        raw(&dir)
            .execute_batch(&format!("PRAGMA foreign_keys=OFF; {sql}"))
            .unwrap();
        let r = verify(&dir);
        assert_eq!(r.first_bad_seq, Some(first_bad), "{sql}: {r:?}");
        assert!(r.problem.is_some());
    }
}

#[test]
fn a_rewritten_chain_fails_on_its_signed_head() {
    let dir = tempfile::tempdir().unwrap();
    busy_ledger(&dir);
    // An attacker without the station key recomputes every hash after row
    // 100: the chain is consistent, the signed head is not.
    let c = raw(&dir);
    c.execute("UPDATE audit SET actor = 'mallory' WHERE seq = 100", [])
        .unwrap();
    let mut prev: Vec<u8> = c
        .query_row("SELECT hash FROM audit WHERE seq = 99", [], |r| r.get(0))
        .unwrap();
    for seq in 100..=600i64 {
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
        use sha2::Digest;
        let mut h = sha2::Sha256::new();
        h.update(b"keyward-audit-v1");
        h.update(&prev);
        h.update(content.as_bytes());
        let hash = h.finalize().to_vec();
        c.execute(
            "UPDATE audit SET prev_hash = ?2, hash = ?3 WHERE seq = ?1",
            rusqlite::params![seq, prev, hash],
        )
        .unwrap();
        prev = hash;
    }
    let r = verify(&dir);
    assert_eq!(r.first_bad_seq, Some(600), "{r:?}");
    assert!(r.problem.unwrap().contains("signed head"));

    // Deleting the head is found too.
    let dir = tempfile::tempdir().unwrap();
    busy_ledger(&dir);
    raw(&dir).execute("DELETE FROM audit_head", []).unwrap();
    let r = verify(&dir);
    assert!(r.problem.unwrap().contains("no signed head"));
}

#[test]
fn schema_migrates_from_empty_and_refuses_a_newer_one() {
    let dir = tempfile::tempdir().unwrap();
    // Version 0: an empty SQLite file, as left by an interrupted first run.
    Connection::open(dir.path().join("ledger.db")).unwrap();
    let l = open(&dir);
    assert_eq!(l.schema_version().unwrap(), keyward::store::SCHEMA_VERSION);
    drop(l);
    let c = raw(&dir);
    assert_eq!(
        c.query_row("PRAGMA journal_mode", [], |r| r.get::<_, String>(0))
            .unwrap(),
        "wal"
    );
    c.pragma_update(None, "user_version", 99).unwrap();
    drop(c);
    let err = Ledger::open_default_key(&dir.path().join("ledger.db")).unwrap_err();
    assert!(
        err.to_string().contains("version 99") && err.to_string().contains("upgrade keyward"),
        "{err}"
    );
}

#[test]
fn a_ledger_refuses_another_stations_key() {
    let dir = tempfile::tempdir().unwrap();
    drop(open(&dir));
    let err = Ledger::open(&dir.path().join("ledger.db"), StationKey::generate()).unwrap_err();
    assert!(
        matches!(err, StoreError::StationKeyMismatch { .. }),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("restore that station's station.key"),
        "{err}"
    );
}

#[test]
fn two_processes_worth_of_connections_do_not_lose_updates() {
    let dir = tempfile::tempdir().unwrap();
    open(&dir);
    let key = dir.path().join("station.key");
    let threads: Vec<_> = (0..4u32)
        .map(|t| {
            let path = dir.path().join("ledger.db");
            let key = key.clone();
            std::thread::spawn(move || {
                let mut l = Ledger::open(&path, StationKey::load_or_create(&key).unwrap()).unwrap();
                for n in 0..25 {
                    l.commit_enrollment(&record(t * 100 + n), T0).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let l = open(&dir);
    assert_eq!(l.list_bindings(None, None).unwrap().len(), 100);
    let r = l.verify_audit().unwrap();
    assert!(r.ok() && r.rows == 300, "{r:?}");
}
