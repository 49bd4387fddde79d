//! Good tickets verify, consumption makes them single-use, issuing and
//! co-signing produce what the verifier accepts, and the skew is bounded.

mod ticket_support;

use keyward::ticket::*;
use serde_json::json;
use ticket_support::*;

#[test]
fn good_tickets_verify() {
    let k = keys();
    let v = verifier(&k);
    let g = MemoryReplayGuard::new();
    let good = good_claims_json();
    let dual = with(|m| {
        m.insert("approvals".into(), json!(2));
    });
    let replacing = with(|m| {
        m.insert(
            "replaces".into(),
            json!({"serial": 12345678, "reason": "lost"}),
        );
        m.insert(
            "device".into(),
            json!({"serial": 23456789, "model": "YubiKey 5 NFC"}),
        );
    });
    let tickets = [
        ("EdDSA compact", signed(&good, &k.ed, "idp-ed")),
        ("ES256 compact", signed(&good, &k.es, "idp-es")),
        (
            "EdDSA, one signature in JSON form",
            general(&good, &[(&k.ed, "idp-ed")]),
        ),
        (
            "dual control, EdDSA + ES256",
            general(&dual, &[(&k.ed, "idp-ed"), (&k.es, "idp-es")]),
        ),
        (
            "replacement by two approvers",
            general(&replacing, &[(&k.ed_bob, "idp-ed-bob"), (&k.ed, "idp-ed")]),
        ),
        (
            "group audience",
            signed(
                &with(|m| {
                    m.insert("aud".into(), json!(["group:berlin", "group:munich"]));
                }),
                &k.ed,
                "idp-ed",
            ),
        ),
        ("trailing newline", signed(&good, &k.ed, "idp-ed") + "\n"),
        (
            "typ with application/ prefix",
            raw(
                r#"{"alg":"EdDSA","kid":"idp-ed","typ":"application/keyward-ticket+jwt"}"#,
                &good.to_string(),
                &k.ed,
            ),
        ),
        (
            "exp just inside the skew",
            signed(
                &with(|m| {
                    m.insert("iat".into(), json!(NOW - 600));
                    m.insert("nbf".into(), json!(NOW - 600));
                    m.insert("exp".into(), json!(NOW - 30));
                }),
                &k.ed,
                "idp-ed",
            ),
        ),
        (
            "iat just inside the skew",
            signed(
                &with(|m| {
                    m.insert("iat".into(), json!(NOW + 30));
                    m.insert("nbf".into(), json!(NOW + 30));
                }),
                &k.ed,
                "idp-ed",
            ),
        ),
    ];
    for (name, t) in tickets {
        let vt = v
            .verify(t.as_bytes(), NOW, &g)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(vt.bytes, t.trim().as_bytes(), "{name}");
        assert_eq!(
            vt.digest,
            parse(t.as_bytes(), DEFAULT_MAX_BYTES).unwrap().digest(),
            "{name}"
        );
    }
}

#[test]
fn consumed_ticket_is_refused_the_second_time() {
    let k = keys();
    let v = verifier(&k);
    let g = MemoryReplayGuard::new();
    let t = signed(&good_claims_json(), &k.ed, "idp-ed");
    let vt = v.verify(t.as_bytes(), NOW, &g).unwrap();
    assert_eq!(vt.claims.sub, "employee:40213");
    vt.consume(&g, NOW).unwrap();
    assert!(matches!(
        vt.consume(&g, NOW),
        Err(TicketError::Replayed { .. })
    ));
    assert!(matches!(
        v.verify(t.as_bytes(), NOW, &g),
        Err(TicketError::Replayed { .. })
    ));
}

#[test]
fn issued_tickets_verify_and_cosigning_makes_dual_control() {
    let k = keys();
    let v = verifier(&k);
    let g = NoReplayCheck;
    let mut c = claims();
    let compact = sign_compact(&c, &k.es, "idp-es").unwrap();
    assert_eq!(v.verify(compact.as_bytes(), NOW, &g).unwrap().claims, c);
    c.approvals = 2;
    let first = sign_general(&c, &[(&k.ed, "idp-ed")]).unwrap();
    assert!(matches!(
        v.verify(first.as_bytes(), NOW, &g),
        Err(TicketError::InsufficientApprovals { .. })
    ));
    assert!(matches!(
        cosign(first.as_bytes(), &k.ed, "idp-ed"),
        Err(IssueError::AlreadySigned { .. })
    ));
    let both = cosign(first.as_bytes(), &k.ed_bob, "idp-ed-bob").unwrap();
    let vt = v.verify(both.as_bytes(), NOW, &g).unwrap();
    let approvers: Vec<_> = vt.signers.iter().map(|s| s.approver.as_str()).collect();
    assert_eq!(approvers, ["alice", "bob"]);
    assert_eq!(vt.form, Form::General);
}

#[test]
fn issuing_refuses_claims_a_verifier_would_refuse() {
    let k = keys();
    let mut c = claims();
    c.ial = 9;
    assert!(matches!(
        sign_compact(&c, &k.ed, "idp-ed"),
        Err(IssueError::Claims(TicketError::InvalidClaim {
            claim: "ial",
            ..
        }))
    ));
}

#[test]
fn skew_above_the_bound_is_a_configuration_error() {
    let k = keys();
    let mut o = VerifyOptions::new(STATION);
    o.skew_secs = 3600;
    assert!(matches!(
        Verifier::new(trust(&k), o),
        Err(VerifierConfigError::SkewTooLarge { .. })
    ));
}
