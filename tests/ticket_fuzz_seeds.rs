//! The fuzz seed corpus (fuzz/corpus/ticket) stays meaningful: its `valid-*`
//! tickets verify with the keys and instant of fuzz/fuzz_targets/ticket.rs,
//! so the fuzzer starts past the signature check. Regenerate with
//! `KEYWARD_REGEN_FUZZ_CORPUS=1 cargo test --test ticket_fuzz_seeds`.

mod ticket_support;

use std::path::PathBuf;

use keyward::ticket::*;
use serde_json::json;
use ticket_support::*;

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/ticket")
}

/// Mirrors the fuzz target's verifier.
fn fuzz_verifier(k: &Keys) -> Verifier {
    let mut trust = TrustStore::default();
    let issuer = IssuerConfig {
        iss: ISS.into(),
        keys: vec![],
        allowed_ops: vec![OpKind::Fido2, OpKind::Piv, OpKind::Replace],
        not_before: None,
        not_after: None,
        revoked_kids: vec!["fuzz-old".into()],
    };
    trust
        .add_issuer(
            &issuer,
            vec![
                ("fuzz-ed".into(), "alice".into(), k.ed.public().clone()),
                ("fuzz-es".into(), "bob".into(), k.es.public().clone()),
            ],
        )
        .unwrap();
    Verifier::new(trust, VerifyOptions::new("kiosk-fuzz")).unwrap()
}

fn seeds(k: &Keys) -> Vec<(&'static str, String)> {
    let c = with(|m| {
        m.insert("aud".into(), json!("kiosk-fuzz"));
    });
    let full = with(|m| {
        m.insert("aud".into(), json!(["kiosk-fuzz", "group:x"]));
        m.insert("approvals".into(), json!(2));
        m.insert(
            "replaces".into(),
            json!({"serial": 12345678, "binding": "b-1", "reason": "lost"}),
        );
        m.insert(
            "device".into(),
            json!({"serial": 23456789, "model": "YubiKey 5 NFC"}),
        );
        m.insert("evidence".into(), json!({"method": "in_person_document", "verifier": "helpdesk:jdoe", "time": NOW - 7200, "reference": "case-1"}));
    });
    let ed = signed(&c, &k.ed, "fuzz-ed");
    vec![
        ("valid-compact-eddsa", ed.clone()),
        ("valid-compact-es256", signed(&c, &k.es, "fuzz-es")),
        (
            "valid-general-dual",
            general(&full, &[(&k.ed, "fuzz-ed"), (&k.es, "fuzz-es")]),
        ),
        (
            "bad-alg-none",
            format!(
                "{}.{}.",
                b64(br#"{"alg":"none","kid":"fuzz-ed","typ":"keyward-ticket+jwt"}"#),
                ed.split('.').nth(1).unwrap()
            ),
        ),
        (
            "bad-duplicate-key",
            raw(
                &header("EdDSA", "fuzz-ed"),
                &c.to_string()
                    .replacen("\"sub\":", "\"sub\":\"x\",\"sub\":", 1),
                &k.ed,
            ),
        ),
        ("bad-one-of-two", general(&full, &[(&k.ed, "fuzz-ed")])),
        ("bad-revoked", signed(&c, &k.revoked, "fuzz-old")),
        (
            "bad-unprotected",
            general(&full, &[(&k.ed, "fuzz-ed")]).replacen(
                "{\"protected\":",
                "{\"header\":{},\"protected\":",
                1,
            ),
        ),
        ("claims-only", c.to_string()),
    ]
}

#[test]
fn seed_corpus_is_current() {
    let k = keys();
    let dir = corpus_dir();
    if std::env::var_os("KEYWARD_REGEN_FUZZ_CORPUS").is_some() {
        std::fs::create_dir_all(&dir).unwrap();
        for (name, t) in seeds(&k) {
            std::fs::write(dir.join(name), t).unwrap();
        }
    }
    let v = fuzz_verifier(&k);
    let mut valid = 0;
    for (name, _) in seeds(&k) {
        let bytes = std::fs::read(dir.join(name)).unwrap_or_else(|e| {
            panic!("{name}: {e}; regenerate the corpus (see this file's header)")
        });
        let r = v.verify(&bytes, NOW, &NoReplayCheck);
        if name.starts_with("valid-") {
            r.unwrap_or_else(|e| panic!("seed {name} no longer verifies: {e}"));
            valid += 1;
        } else {
            assert!(r.is_err(), "seed {name} verifies");
        }
    }
    assert_eq!(valid, 3);
}
