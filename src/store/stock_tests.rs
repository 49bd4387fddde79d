use super::*;
use crate::store::{CredentialRecord, EnrollmentRecord, StationKey};

const T0: i64 = 1_800_000_000;

fn ledger(dir: &tempfile::TempDir) -> Ledger {
    Ledger::open(&dir.path().join("l.db"), StationKey::generate()).unwrap()
}

fn ticket(jti: &str) -> TicketRecord {
    TicketRecord {
        jti: jti.into(),
        digest: "ab".repeat(32),
        issuer: "https://idp.example.com".into(),
        ial: Some(2),
    }
}

fn device(serial: &str) -> DeviceRecord {
    DeviceRecord {
        kind: "yubikey".into(),
        serial: Some(serial.into()),
        aaguid: None,
        model: None,
        firmware: Some("5.7.1".into()),
    }
}

fn enroll(l: &mut Ledger, serial: &str, jti: &str) -> String {
    let rec = EnrollmentRecord {
        subject: "alice".into(),
        ticket: ticket(jti),
        device: device(serial),
        policy: Some("default".into()),
        credentials: vec![CredentialRecord {
            kind: "piv".into(),
            credential_id: None,
            rp_id: None,
            slot: Some("9a".into()),
            algorithm: "p256".into(),
            public_key: vec![1, 2, 3],
            attestation: None,
            attestation_format: None,
        }],
        actor: "test".into(),
    };
    l.commit_enrollment(&rec, T0).unwrap()
}

/// Counts of rows that every write adds to, to prove nothing was written.
fn counts(l: &Ledger) -> [i64; 4] {
    ["audit", "outbox", "tickets", "stock"].map(|t| {
        l.conn()
            .query_row(&format!("SELECT count(*) FROM {t}"), [], |r| r.get(0))
            .unwrap()
    })
}

#[test]
fn revoke_writes_the_state_change_and_a_revoked_event_together() {
    let d = tempfile::tempdir().unwrap();
    let mut l = ledger(&d);
    let b = enroll(&mut l, "1001", "jti-revoke-0000001");
    let from = l
        .revoke_binding(&b, RevokeReason::Stolen, "op", T0 + 5)
        .unwrap();
    assert_eq!(from, BindingState::Active);
    let show = l.show_binding(&b).unwrap();
    assert_eq!(show.summary.state, "revoked");
    assert_eq!(show.state_reason.as_deref(), Some("stolen"));
    let kinds: Vec<String> = l
        .outbox_pending(100)
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert!(kinds.contains(&"binding.revoked".to_string()), "{kinds:?}");
    let ev = l
        .outbox_pending(100)
        .unwrap()
        .into_iter()
        .find(|e| e.kind == "binding.revoked")
        .unwrap();
    assert_eq!(ev.payload["reason"], "stolen");
    assert_eq!(ev.payload["device_serial"], "1001");

    // Already revoked: refused, nothing written.
    let before = counts(&l);
    let e = l
        .revoke_binding(&b, RevokeReason::Lost, "op", T0 + 6)
        .unwrap_err();
    assert!(
        matches!(
            e,
            StoreError::IllegalTransition {
                from: BindingState::Revoked,
                ..
            }
        ),
        "{e}"
    );
    let e = l
        .revoke_binding("nope", RevokeReason::Lost, "op", T0 + 6)
        .unwrap_err();
    assert!(matches!(e, StoreError::BindingNotFound(_)), "{e}");
    assert_eq!(counts(&l), before);
    assert!(l.verify_audit().unwrap().ok());
}

#[test]
fn reasons_parse_and_unknown_ones_are_named() {
    assert_eq!("left".parse::<RevokeReason>().unwrap(), RevokeReason::Left);
    let e = "misplaced".parse::<RevokeReason>().unwrap_err();
    assert!(e.contains("\"misplaced\"") && e.contains("lost, stolen, damaged, left"));
}

#[test]
fn return_closes_the_binding_then_stocks_the_key() {
    let d = tempfile::tempdir().unwrap();
    let mut l = ledger(&d);
    let b = enroll(&mut l, "2002", "jti-return-0000001");
    let open = l.open_bindings_for_serial("2002").unwrap();
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].credentials[0].slot.as_deref(), Some("9a"));
    assert_eq!(open[0].credentials[0].public_key, vec![1, 2, 3]);

    let dev = device("2002");
    let start = ReturnStart {
        binding: Some(&b),
        device: &dev,
        proof: json!({"piv": "9a"}),
        actor: "op",
    };
    let id = l.begin_return(&start, T0 + 10).unwrap();
    assert_eq!(l.show_binding(&b).unwrap().summary.state, "returned");
    assert!(l.open_bindings_for_serial("2002").unwrap().is_empty());
    let s = l.stock_for_serial("2002").unwrap().unwrap();
    assert_eq!(s.state, StockState::Quarantined);
    assert_eq!(s.note.as_deref(), Some(RESET_PENDING));
    assert_eq!(s.binding_id.as_deref(), Some(b.as_str()));

    l.finish_return(id, &json!({"drift": "clean"}), "op", T0 + 20)
        .unwrap();
    let s = l.stock_for_serial("2002").unwrap().unwrap();
    assert_eq!(
        (s.state, s.since, s.note),
        (StockState::InStock, T0 + 20, None)
    );
    // Finishing twice is refused.
    let e = l.finish_return(id, &json!({}), "op", T0 + 21).unwrap_err();
    assert!(e.to_string().contains("not awaiting its reset"), "{e}");
    let actions: Vec<String> = l
        .audit_rows(0, 0)
        .unwrap()
        .into_iter()
        .map(|r| r.action)
        .collect();
    assert!(actions.ends_with(&[
        "binding.state".into(),
        "device.return_started".into(),
        "device.stocked".into()
    ]));
    assert!(l.verify_audit().unwrap().ok());

    // The key can be enrolled again and leaves stock.
    enroll(&mut l, "2002", "jti-return-0000002");
    assert!(l.stock_for_serial("2002").unwrap().is_none());
}

#[test]
fn a_lost_binding_can_be_returned_but_a_revoked_one_cannot() {
    let d = tempfile::tempdir().unwrap();
    let mut l = ledger(&d);
    let b = enroll(&mut l, "3003", "jti-lost-00000001");
    l.transition(&b, BindingState::Lost, "lost", "op", T0 + 1)
        .unwrap();
    let dev = device("3003");
    let start = ReturnStart {
        binding: Some(&b),
        device: &dev,
        proof: json!({}),
        actor: "op",
    };
    l.begin_return(&start, T0 + 2).unwrap();
    assert_eq!(l.show_binding(&b).unwrap().summary.state, "returned");

    let b2 = enroll(&mut l, "3004", "jti-lost-00000002");
    l.revoke_binding(&b2, RevokeReason::Damaged, "op", T0 + 3)
        .unwrap();
    let before = counts(&l);
    let dev = device("3004");
    let start = ReturnStart {
        binding: Some(&b2),
        device: &dev,
        proof: json!({}),
        actor: "op",
    };
    assert!(matches!(
        l.begin_return(&start, T0 + 4).unwrap_err(),
        StoreError::IllegalTransition { .. }
    ));
    assert_eq!(counts(&l), before);
}

#[test]
fn an_unbound_key_is_stocked_but_never_one_still_bound() {
    let d = tempfile::tempdir().unwrap();
    let mut l = ledger(&d);
    let dev = device("4004");
    let start = ReturnStart {
        binding: None,
        device: &dev,
        proof: json!({"unbound": true}),
        actor: "op",
    };
    let id = l.begin_return(&start, T0).unwrap();
    l.quarantine(
        id,
        "drift-not-clean",
        &json!({"facts": ["slot-in-use"]}),
        "op",
        T0 + 1,
    )
    .unwrap();
    let s = l.stock_for_serial("4004").unwrap().unwrap();
    assert_eq!(s.state, StockState::Quarantined);
    assert_eq!(s.note.as_deref(), Some("drift-not-clean"));

    enroll(&mut l, "4005", "jti-unbound-000001");
    let before = counts(&l);
    let dev = device("4005");
    let start = ReturnStart {
        binding: None,
        device: &dev,
        proof: json!({}),
        actor: "op",
    };
    let e = l.begin_return(&start, T0 + 2).unwrap_err();
    assert!(matches!(e, StoreError::DeviceAlreadyBound { .. }), "{e}");
    assert_eq!(counts(&l), before);
    let no_serial = DeviceRecord {
        serial: None,
        ..device("x")
    };
    let start = ReturnStart {
        binding: None,
        device: &no_serial,
        proof: json!({}),
        actor: "op",
    };
    assert!(l.begin_return(&start, T0 + 2).is_err());
    assert_eq!(counts(&l), before);
}

#[test]
fn unblock_consumes_its_ticket_once_with_the_audit_rows() {
    let d = tempfile::tempdir().unwrap();
    let mut l = ledger(&d);
    let b = enroll(&mut l, "5005", "jti-enroll-0000005");
    let t = ticket("jti-unblock-000001");
    let u = UnblockRecord {
        binding: &b,
        subject: "alice",
        ticket: &t,
        changed: &["pin"],
        actor: "helpdesk",
    };
    l.commit_unblock(&u, T0 + 1).unwrap();
    assert_eq!(l.ticket_consumed(&t.issuer, &t.jti).unwrap(), Some(T0 + 1));
    let rows = l.audit_rows_for(&b).unwrap();
    assert!(rows.iter().any(|r| r.action == "piv.pin_unblocked"));
    let before = counts(&l);
    let e = l.commit_unblock(&u, T0 + 2).unwrap_err();
    assert!(matches!(e, StoreError::TicketReplayed { .. }), "{e}");
    l.revoke_binding(&b, RevokeReason::Left, "op", T0 + 3)
        .unwrap();
    let before_revoked = counts(&l);
    let t2 = ticket("jti-unblock-000002");
    let u2 = UnblockRecord {
        ticket: &t2,
        ..u.clone()
    };
    let e = l.commit_unblock(&u2, T0 + 4).unwrap_err();
    assert!(e.to_string().contains("only an active binding"), "{e}");
    assert_eq!(counts(&l), before_revoked);
    assert!(before_revoked[0] > before[0]);
    assert!(l.verify_audit().unwrap().ok());
}
