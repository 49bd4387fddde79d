//! Attacks on tickets from the adversarial review (issue 13, items 3 and 6),
//! each reproduced first against the code as it was:
//!
//! - one key listed under two kids counted as two approvals;
//! - a high-S ES256 signature (the twin of a valid one) was accepted;
//! - the ticket digest changed with the serialization (compact vs JSON,
//!   whitespace, signature order) although the signed content did not;
//! - `sub` accepted invisible format and bidi characters and non-NFC text;
//! - the ledger refused a ticket whose jti another issuer had used.

mod common;
mod ticket_support;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use keyward::store::{CredentialRecord, DeviceRecord, EnrollmentRecord, Ledger, StoreError};
use keyward::ticket::*;
use serde_json::json;
use sha2::{Digest, Sha256};
use ticket_support::*;

fn jwk_file(dir: &std::path::Path, name: &str, k: &SigningKey, kid: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, k.public().to_jwk(kid).to_string()).unwrap();
    p
}

fn key_file(path: &std::path::Path, kid: &str, approver: &str) -> KeyFile {
    KeyFile {
        path: path.to_path_buf(),
        kid: Some(kid.into()),
        approver: Some(approver.into()),
    }
}

fn issuer_with(keys: Vec<KeyFile>) -> TrustConfig {
    TrustConfig {
        issuers: vec![IssuerConfig {
            iss: ISS.into(),
            keys,
            allowed_ops: vec![OpKind::Fido2, OpKind::Piv, OpKind::Replace],
            not_before: None,
            not_after: None,
            revoked_kids: vec![],
        }],
    }
}

#[test]
fn one_key_under_two_kids_is_refused_by_the_trust_store() {
    let k = keys();
    let d = tempfile::tempdir().unwrap();
    let a = jwk_file(d.path(), "a.jwk", &k.ed, "x");
    let b = jwk_file(d.path(), "b.jwk", &k.ed, "y");
    // Same file twice, and the same key in two files, as two approvers.
    for (p1, p2) in [(&a, &a), (&a, &b)] {
        let cfg = issuer_with(vec![
            key_file(p1, "alice-1", "alice"),
            key_file(p2, "bob-1", "bob"),
        ]);
        match TrustStore::load(&cfg) {
            Err(TrustError::DuplicateKey { kid, other, .. }) => {
                assert_eq!((kid.as_str(), other.as_str()), ("bob-1", "alice-1"));
            }
            other => panic!("one key under two kids must be refused: {other:?}"),
        }
    }
    // Across issuers too: one key is one approver wherever it is listed.
    let mut t = TrustStore::default();
    let cfg = issuer_with(vec![]);
    t.add_issuer(
        &cfg.issuers[0],
        vec![("k1".into(), "alice".into(), k.ed.public().clone())],
    )
    .unwrap();
    let mut other = cfg.issuers[0].clone();
    other.iss = "https://other.example.com".into();
    let e = t
        .add_issuer(
            &other,
            vec![("k2".into(), "bob".into(), k.ed.public().clone())],
        )
        .unwrap_err();
    assert!(e.to_string().contains("same key"), "{e}");
}

#[test]
fn cosigning_with_the_same_key_twice_is_not_dual_control_on_the_cli() {
    let d = common::tempdir();
    let dir = d.path();
    let run = |args: &[&str]| common::run(common::keyward().current_dir(dir).args(args));
    assert!(
        run(&[
            "ticket", "keygen", "--out", "alice", "--alg", "eddsa", "--kid", "alice-1"
        ])
        .status
        .success()
    );
    let issued = run(&[
        "ticket",
        "issue",
        "--key",
        "alice",
        "--kid",
        "alice-1",
        "--iss",
        ISS,
        "--sub",
        "employee:7",
        "--aud",
        "kiosk-1",
        "--op",
        "fido2:rp_id=login.example.com",
        "--approvals",
        "2",
        "--out",
        "t1.json",
    ]);
    assert!(issued.status.success(), "{issued:?}");
    let cosigned = run(&[
        "ticket", "cosign", "t1.json", "--key", "alice", "--kid", "bob-1", "--out", "t2.json",
    ]);
    assert!(cosigned.status.success(), "{cosigned:?}");
    // The reported attack: a trust store with the key under two kids.
    std::fs::write(
        dir.join("trust.json"),
        json!({"issuers": [{"iss": ISS, "allowed_ops": ["fido2"], "keys": [
            {"path": "alice.pub.jwk", "kid": "alice-1", "approver": "alice"},
            {"path": "alice.pub.jwk", "kid": "bob-1", "approver": "bob"}]}]})
        .to_string(),
    )
    .unwrap();
    let out = run(&[
        "ticket",
        "verify",
        "t2.json",
        "--trust",
        "trust.json",
        "--audience",
        "kiosk-1",
    ]);
    let (so, se) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(!so.contains("VALID"), "{so}");
    assert_eq!(out.status.code(), Some(1), "{so}{se}");
    assert!(se.contains("hold the same key"), "{se}");
}

#[test]
fn approvals_are_counted_by_key_material() {
    // Through the verifier: the same kid twice is one approver, and so is
    // the same key, whatever approver name the store gives it.
    let k = keys();
    let v = verifier(&k);
    let dual = with(|m| {
        m.insert("approvals".into(), json!(2));
    });
    let same = general(&dual, &[(&k.ed, "idp-ed"), (&k.ed, "idp-ed")]);
    assert!(matches!(
        v.verify(same.as_bytes(), NOW, &NoReplayCheck),
        Err(TicketError::DuplicateApprover { .. })
    ));
    let two = general(&dual, &[(&k.ed, "idp-ed"), (&k.es, "idp-es")]);
    let vt = v.verify(two.as_bytes(), NOW, &NoReplayCheck).unwrap();
    assert_eq!(vt.signers.len(), 2);
}

/// n − S for a base64url ES256 signature R || S.
fn flip_s(sig_b64: &str) -> String {
    let sig = URL_SAFE_NO_PAD.decode(sig_b64).unwrap();
    let s = p256::NonZeroScalar::try_from(&sig[32..]).unwrap();
    let neg = -*s;
    let mut out = sig[..32].to_vec();
    out.extend_from_slice(&neg.to_bytes());
    URL_SAFE_NO_PAD.encode(out)
}

#[test]
fn high_s_es256_signatures_are_refused_and_keyward_signs_low_s() {
    let k = keys();
    let v = verifier(&k);
    let good = good_claims_json();
    for n in 0..16 {
        let mut c = good.clone();
        c["jti"] = json!(format!("3f6c1f0e-8d4b-4a57-9a53-0d1f5e7b2c{n:02}"));
        let t = signed(&c, &k.es, "idp-es");
        v.verify(t.as_bytes(), NOW, &NoReplayCheck)
            .expect("keyward's own ES256 tickets are low-S");
        let (input, sig) = t.rsplit_once('.').unwrap();
        // The twin (R, n − S) is a valid ECDSA signature of the same input,
        // so only the low-S rule refuses it.
        let twin = format!("{input}.{}", flip_s(sig));
        match v.verify(twin.as_bytes(), NOW, &NoReplayCheck) {
            Err(TicketError::HighS { kid }) => assert_eq!(kid, "idp-es"),
            other => panic!("high-S twin accepted or misreported: {other:?}"),
        }
        assert_eq!(TicketError::HighS { kid: "k".into() }.code(), "high_s");
    }
}

/// The documented digest, computed here from its definition.
fn digest_by_definition(inputs: &[String]) -> String {
    let mut sorted = inputs.to_vec();
    sorted.sort();
    let mut h = Sha256::new();
    for i in sorted {
        h.update(i.as_bytes());
        h.update(b"\n");
    }
    hex::encode(h.finalize())
}

#[test]
fn digest_covers_the_signed_content_not_the_serialization() {
    let k = keys();
    let v = verifier(&k);
    let g = NoReplayCheck;
    let good = good_claims_json();
    let compact = signed(&good, &k.ed, "idp-ed");
    let (h, rest) = compact.split_once('.').unwrap();
    let (p, s) = rest.split_once('.').unwrap();
    let reformatted = [
        compact.clone(),
        format!(r#"{{"payload":"{p}","signatures":[{{"protected":"{h}","signature":"{s}"}}]}}"#),
        format!(
            "{{\n  \"signatures\" : [ {{ \"signature\": \"{s}\",\n \"protected\":\"{h}\" }} ],\n\t\"payload\": \"{p}\"\n}}\n"
        ),
    ];
    let want = digest_by_definition(&[format!("{h}.{p}")]);
    for t in &reformatted {
        let vt = v.verify(t.as_bytes(), NOW, &g).unwrap();
        assert_eq!(vt.digest.to_hex(), want, "{t}");
        assert_eq!(parse(t.as_bytes(), 16384).unwrap().digest(), vt.digest);
    }
    // Two approvals: signature order does not matter.
    let dual = with(|m| {
        m.insert("approvals".into(), json!(2));
    });
    let ab = general(&dual, &[(&k.ed, "idp-ed"), (&k.es, "idp-es")]);
    let mut doc: serde_json::Value = serde_json::from_str(&ab).unwrap();
    doc["signatures"].as_array_mut().unwrap().reverse();
    let ba = doc.to_string();
    let d1 = v.verify(ab.as_bytes(), NOW, &g).unwrap().digest;
    let d2 = v.verify(ba.as_bytes(), NOW, &g).unwrap().digest;
    assert_eq!(d1, d2);
    let inputs: Vec<String> = doc["signatures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            format!(
                "{}.{}",
                s["protected"].as_str().unwrap(),
                doc["payload"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(d1.to_hex(), digest_by_definition(&inputs));
    // Other content, other digest: one payload byte, or another header.
    let mut other = good.clone();
    other["sub"] = json!("employee:40214");
    let d3 = v
        .verify(signed(&other, &k.ed, "idp-ed").as_bytes(), NOW, &g)
        .unwrap()
        .digest;
    assert_ne!(d3.to_hex(), want);
    let d4 = v
        .verify(signed(&good, &k.ed_bob, "idp-ed-bob").as_bytes(), NOW, &g)
        .unwrap()
        .digest;
    assert_ne!(d4.to_hex(), want);
}

#[test]
fn subject_must_be_visible_nfc_text() {
    let k = keys();
    let v = verifier(&k);
    let bad = [
        ("right-to-left override", "employee:\u{202E}31204"),
        ("right-to-left isolate", "employee:\u{2067}40213\u{2069}"),
        ("left-to-right mark", "employee:\u{200E}40213"),
        ("arabic letter mark", "employee:\u{061C}40213"),
        ("zero-width space", "employee:402\u{200B}13"),
        ("zero-width joiner", "employee:402\u{200D}13"),
        ("soft hyphen", "employee:402\u{00AD}13"),
        ("byte order mark", "\u{FEFF}employee:40213"),
        ("tag character", "employee:40213\u{E0041}"),
        ("line separator", "employee:\u{2028}40213"),
        ("NFD (e + combining acute)", "jose\u{0301}@example.com"),
        ("NFD hangul jamo", "\u{1100}\u{1161}@example.com"),
    ];
    for (name, sub) in bad {
        let t = signed(
            &with(|m| {
                m.insert("sub".into(), json!(sub));
            }),
            &k.ed,
            "idp-ed",
        );
        match v.verify(t.as_bytes(), NOW, &NoReplayCheck) {
            Err(TicketError::InvalidClaim { claim: "sub", .. }) => {}
            other => panic!("{name}: {other:?}"),
        }
        // The issuing side refuses to sign it too.
        let mut c = claims();
        c.sub = sub.into();
        assert!(c.check().is_err(), "{name}");
    }
    for ok in [
        "jos\u{00E9}@example.com",
        "\u{AC00}@example.com",
        "employee:40213",
    ] {
        let t = signed(
            &with(|m| {
                m.insert("sub".into(), json!(ok));
            }),
            &k.ed,
            "idp-ed",
        );
        v.verify(t.as_bytes(), NOW, &NoReplayCheck)
            .unwrap_or_else(|e| panic!("{ok}: {e}"));
    }
}

fn record(issuer: &str, jti: &str, serial: &str) -> EnrollmentRecord {
    EnrollmentRecord {
        subject: "employee:7".into(),
        ticket: keyward::store::TicketRecord {
            jti: jti.into(),
            digest: "ab".repeat(32),
            issuer: issuer.into(),
            ial: Some(2),
        },
        device: DeviceRecord {
            kind: "yubikey".into(),
            serial: Some(serial.into()),
            aaguid: None,
            model: None,
            firmware: None,
        },
        policy: Some("standard".into()),
        credentials: vec![CredentialRecord {
            kind: "fido2".into(),
            credential_id: Some(vec![1, 2, 3]),
            rp_id: Some("example.test".into()),
            slot: None,
            algorithm: "ES256".into(),
            public_key: vec![4; 65],
            attestation: None,
            attestation_format: None,
        }],
        actor: "test".into(),
    }
}

#[test]
fn the_ledger_keys_replay_on_issuer_and_jti() {
    let d = tempfile::tempdir().unwrap();
    let mut l = Ledger::open_default_key(&d.path().join("l.db")).unwrap();
    let jti = "shared-jti-0000000001";
    l.commit_enrollment(&record("https://a.example", jti, "1001"), NOW)
        .unwrap();
    // Another issuer's ticket with the same jti is another ticket.
    l.commit_enrollment(&record("https://b.example", jti, "1002"), NOW + 1)
        .expect("(iss, jti) is the key, not jti alone");
    assert!(
        l.ticket_consumed("https://b.example", jti)
            .unwrap()
            .is_some()
    );
    assert!(
        l.ticket_consumed("https://c.example", jti)
            .unwrap()
            .is_none()
    );
    // The same issuer's jti again is a replay.
    match l.commit_enrollment(&record("https://a.example", jti, "1003"), NOW + 2) {
        Err(StoreError::TicketReplayed { issuer, .. }) => assert_eq!(issuer, "https://a.example"),
        other => panic!("{other:?}"),
    }
    // The verifier agrees with the ledger as its replay store.
    let k = keys();
    let v = verifier(&k);
    let c = with(|m| {
        m.insert("jti".into(), json!(jti));
    });
    let t = signed(&c, &k.ed, "idp-ed");
    assert!(
        v.verify(t.as_bytes(), NOW + 3, &l).is_ok(),
        "not used by ISS"
    );
    // The audit log's replay tells the two tickets with one jti apart.
    let report = l.verify_audit().unwrap();
    assert!(report.ok(), "{report:?}");
    drop(l);
}

#[test]
fn a_schema_2_ledger_migrates_its_tickets_and_bindings() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("old.db");
    {
        let c = rusqlite::Connection::open(&path).unwrap();
        c.execute_batch(include_str!("../src/store/migrations/0001_initial.sql"))
            .unwrap();
        c.execute_batch(include_str!("../src/store/migrations/0002_runs_stock.sql"))
            .unwrap();
        c.execute_batch(
            "INSERT INTO identities(id, subject, created_at) VALUES (1, 'employee:7', 1);
             INSERT INTO devices(id, kind, serial, first_seen) VALUES (1, 'yubikey', '1001', 1);
             INSERT INTO tickets(jti, digest, issuer, subject, ial, consumed_at) VALUES ('j-000000000000001', 'd', 'https://a.example', 'employee:7', 2, 5);
             INSERT INTO bindings(id, identity_id, device_id, ticket_jti, ial, policy, state, created_at) VALUES ('b1', 1, 1, 'j-000000000000001', 2, 'standard', 'active', 5);
             INSERT INTO credentials(binding_id, kind, algorithm, public_key, created_at) VALUES ('b1', 'fido2', 'ES256', x'04', 5);
             PRAGMA user_version = 2;",
        )
        .unwrap();
    }
    let mut l = Ledger::open_default_key(&path).unwrap();
    assert_eq!(l.schema_version().unwrap(), keyward::store::SCHEMA_VERSION);
    assert!(
        l.ticket_consumed("https://a.example", "j-000000000000001")
            .unwrap()
            .is_some()
    );
    let b = l.show_binding("b1").unwrap();
    assert_eq!(b.summary.ticket_jti, "j-000000000000001");
    assert_eq!(b.credentials.len(), 1);
    // Still one binding per ticket, and foreign keys enforced again.
    l.commit_enrollment(
        &record("https://b.example", "j-000000000000001", "1002"),
        10,
    )
    .unwrap();
    assert!(matches!(
        l.commit_enrollment(
            &record("https://a.example", "j-000000000000001", "1003"),
            11
        ),
        Err(StoreError::TicketReplayed { .. })
    ));
    let c = rusqlite::Connection::open(&path).unwrap();
    let fk: i64 = c
        .query_row("SELECT count(*) FROM pragma_foreign_key_check", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(fk, 0);
    // Rebuilt before the signed-head baseline, so the upgraded ledger
    // verifies with its tables as migrated.
    let report = l.verify_audit().unwrap();
    assert!(report.ok(), "{report:?}");
}
