//! The trust store from configuration: PEM, JWK and JWK Set files, kids,
//! approvers, revocation and validity windows, as `keyward.toml` will give
//! them (deserialized here from JSON, the same serde shape).

mod ticket_support;

use keyward::ticket::*;
use serde_json::json;
use ticket_support::*;

fn pem_public(k: &SigningKey) -> String {
    use ed25519_dalek::pkcs8::EncodePublicKey;
    match k.public() {
        PublicKey::Ed25519(x) => ed25519_dalek::VerifyingKey::from_bytes(x)
            .unwrap()
            .to_public_key_pem(der::pem::LineEnding::LF)
            .unwrap(),
        PublicKey::P256(p) => p256::PublicKey::from_sec1_bytes(p.as_ref())
            .unwrap()
            .to_public_key_pem(der::pem::LineEnding::LF)
            .unwrap(),
        _ => unreachable!(),
    }
}

#[test]
fn config_loads_every_key_format_and_applies_revocation() {
    let k = keys();
    let d = tempfile::tempdir().unwrap();
    let p = |n: &str| d.path().join(n);
    std::fs::write(p("ed.pem"), pem_public(&k.ed)).unwrap();
    std::fs::write(p("es.pem"), pem_public(&k.es)).unwrap();
    std::fs::write(
        p("bob.jwk"),
        k.ed_bob.public().to_jwk("idp-ed-bob").to_string(),
    )
    .unwrap();
    let set = json!({"keys": [k.ed_alice2.public().to_jwk("idp-ed-alice2"), k.revoked.public().to_jwk("idp-old")]});
    std::fs::write(p("set.jwks"), set.to_string()).unwrap();
    let config: TrustConfig = serde_json::from_value(json!({"issuers": [{
        "iss": ISS,
        "allowed_ops": ["fido2", "piv", "replace"],
        "not_before": "2026-01-01T00:00:00Z",
        "not_after": "2028-01-01T00:00:00+01:00",
        "revoked_kids": ["idp-old"],
        "keys": [
            {"path": p("ed.pem"), "kid": "idp-ed", "approver": "alice"},
            {"path": p("es.pem"), "approver": "bob"},
            {"path": p("bob.jwk"), "approver": "bob"},
            {"path": p("set.jwks")}
        ]
    }]}))
    .expect("config");
    let store = TrustStore::load(&config).expect("load");
    assert_eq!(store.len(), 5);
    let v = Verifier::new(store, VerifyOptions::new(STATION)).unwrap();
    let g = NoReplayCheck;
    let good = good_claims_json();
    v.verify(signed(&good, &k.ed, "idp-ed").as_bytes(), NOW, &g)
        .expect("PEM key with configured kid");
    let es_kid = k.es.public().thumbprint();
    v.verify(signed(&good, &k.es, &es_kid).as_bytes(), NOW, &g)
        .expect("PEM key under its thumbprint");
    v.verify(
        signed(&good, &k.ed_alice2, "idp-ed-alice2").as_bytes(),
        NOW,
        &g,
    )
    .expect("key from a JWK Set");
    assert!(matches!(
        v.verify(signed(&good, &k.revoked, "idp-old").as_bytes(), NOW, &g),
        Err(TicketError::RevokedKid { .. })
    ));
    let dual = with(|m| {
        m.insert("approvals".into(), json!(2));
    });
    let two_bobs = general(&dual, &[(&k.es, &es_kid), (&k.ed_bob, "idp-ed-bob")]);
    assert!(matches!(
        v.verify(two_bobs.as_bytes(), NOW, &g),
        Err(TicketError::DuplicateApprover { approver }) if approver == "bob"
    ));
    assert!(matches!(
        v.verify(signed(&good, &k.ed, "idp-ed").as_bytes(), 1_900_000_000, &g),
        Err(TicketError::IssuerExpired { .. })
    ));
}

#[test]
fn config_errors_name_the_problem() {
    let k = keys();
    let d = tempfile::tempdir().unwrap();
    let missing = TrustConfig {
        issuers: vec![IssuerConfig {
            iss: ISS.into(),
            keys: vec![KeyFile {
                path: d.path().join("nope.pem"),
                kid: None,
                approver: None,
            }],
            allowed_ops: vec![OpKind::Fido2],
            not_before: None,
            not_after: None,
            revoked_kids: vec![],
        }],
    };
    assert!(matches!(
        TrustStore::load(&missing),
        Err(TrustError::Read { .. })
    ));
    // A private JWK in the trust store is refused.
    let mut jwk = k.ed.public().to_jwk("x");
    jwk["d"] = json!("AAAA");
    std::fs::write(d.path().join("priv.jwk"), jwk.to_string()).unwrap();
    let mut cfg = missing.clone();
    cfg.issuers[0].keys[0].path = d.path().join("priv.jwk");
    assert!(matches!(
        TrustStore::load(&cfg),
        Err(TrustError::Key {
            source: KeyError::PrivateInTrustStore,
            ..
        })
    ));
    // The same kid twice.
    std::fs::write(
        d.path().join("a.jwk"),
        k.ed.public().to_jwk("same").to_string(),
    )
    .unwrap();
    std::fs::write(
        d.path().join("b.jwk"),
        k.es.public().to_jwk("same").to_string(),
    )
    .unwrap();
    cfg.issuers[0].keys = vec![
        KeyFile {
            path: d.path().join("a.jwk"),
            kid: None,
            approver: None,
        },
        KeyFile {
            path: d.path().join("b.jwk"),
            kid: None,
            approver: None,
        },
    ];
    assert!(matches!(
        TrustStore::load(&cfg),
        Err(TrustError::DuplicateKid { .. })
    ));
    // Unknown fields in the configuration are an error, not ignored.
    assert!(
        serde_json::from_value::<TrustConfig>(json!({"issuers": [], "trust_everyone": true}))
            .is_err()
    );
}

#[test]
fn thumbprint_matches_rfc8037_appendix_a3() {
    // RFC 8037 Appendix A.3: the RFC 7638 thumbprint of the Ed25519 key of A.2.
    let jwk = r#"{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}"#;
    let key = PublicKey::parse(jwk).unwrap();
    assert_eq!(
        key.thumbprint(),
        "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
    );
}
