//! Fuzz the ticket parser and verifier with arbitrary bytes.
//!
//! Properties: nothing panics; the parser and the claims parser never accept
//! what the verifier would find malformed in the same part; a ticket that
//! verifies has claims that re-serialize to well-formed claims, and its
//! digest is the one of its signed content (the stored bytes parse to it).
//!
//! The seed corpus (fuzz/corpus/ticket) holds tickets signed by the keys
//! below, so the fuzzer starts past the signature check; tests/ticket_fuzz_seeds.rs
//! keeps it valid.
#![no_main]

use std::sync::LazyLock;

use keyward::ticket::*;
use libfuzzer_sys::fuzz_target;
use zeroize::Zeroizing;

/// The instant the seed tickets are valid at (2027-01-15T08:00:00Z).
const NOW: i64 = 1_800_000_000;

static VERIFIER: LazyLock<Verifier> = LazyLock::new(|| {
    let ed = SigningKey::generate(TicketAlg::EdDsa, &Zeroizing::new([1; 32]))
        .expect("key")
        .0;
    let es = SigningKey::generate(TicketAlg::Es256, &Zeroizing::new([2; 32]))
        .expect("key")
        .0;
    let mut trust = TrustStore::default();
    let issuer = IssuerConfig {
        iss: "https://idp.example.com".into(),
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
                ("fuzz-ed".into(), "alice".into(), ed.public().clone()),
                ("fuzz-es".into(), "bob".into(), es.public().clone()),
            ],
        )
        .expect("trust");
    Verifier::new(trust, VerifyOptions::new("kiosk-fuzz")).expect("verifier")
});

fuzz_target!(|data: &[u8]| {
    if let Ok(raw) = parse(data, DEFAULT_MAX_BYTES) {
        assert!(!raw.signatures.is_empty() && raw.signatures.len() <= MAX_SIGNATURES);
        let _ = Claims::from_payload(&raw.payload);
    }
    let _ = Claims::from_payload(data);
    if let Ok(vt) = VERIFIER.verify(data, NOW, &NoReplayCheck) {
        assert_eq!(vt.digest, parse(&vt.bytes, DEFAULT_MAX_BYTES).expect("parsed").digest());
        let again = serde_json::to_vec(&vt.claims).expect("serialize");
        assert_eq!(Claims::from_payload(&again).expect("round trip"), vt.claims);
    }
});
