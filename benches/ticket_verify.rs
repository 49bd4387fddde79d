//! Ticket verification throughput on one core: the bare EdDSA signature
//! check (jsonwebtoken/aws-lc on the same signing input) against the whole
//! verifier, without and with the replay check.
//!
//! `cargo bench --bench ticket_verify [-- SECONDS]`. Target: the verifier
//! without the replay check runs at >= 70% of the bare rate.

use std::hint::black_box;
use std::time::{Duration, Instant};

use jsonwebtoken::{Algorithm, DecodingKey};
use keyward::ticket::*;
use zeroize::Zeroizing;

const NOW: i64 = 1_800_000_000;

fn claims(jti: &str) -> Claims {
    serde_json::from_value(serde_json::json!({
        "ver": 1, "iss": "https://idp.example.com", "sub": "employee:40213",
        "aud": "kiosk-berlin-01", "iat": NOW - 60, "nbf": NOW - 60, "exp": NOW + 900,
        "jti": jti, "ial": 2,
        "evidence": {"method": "in_person_document", "verifier": "helpdesk:jdoe", "time": NOW - 600},
        "ops": [
            {"type": "fido2", "rp_id": "login.example.com", "user": "ZW1wbG95ZWU6NDAyMTM", "user_name": "a.person@example.com"},
            {"type": "piv", "slot": "9a", "alg": "p256", "pin_policy": "once", "touch_policy": "always"}
        ],
        "policy": "kiosk-standard"
    }))
    .expect("claims")
}

/// Run `f` repeatedly for `secs` and return calls per second.
fn rate(secs: f64, mut f: impl FnMut()) -> f64 {
    for _ in 0..200 {
        f();
    }
    let budget = Duration::from_secs_f64(secs);
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < budget {
        for _ in 0..100 {
            f();
        }
        n += 100;
    }
    n as f64 / start.elapsed().as_secs_f64()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let secs: f64 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(6.0);
    let (key, _) = SigningKey::generate(TicketAlg::EdDsa, &Zeroizing::new([7; 32])).expect("key");
    let PublicKey::Ed25519(raw) = key.public().clone() else {
        unreachable!("an EdDSA key")
    };
    let mut trust = TrustStore::default();
    let issuer = IssuerConfig {
        iss: "https://idp.example.com".into(),
        keys: vec![],
        allowed_ops: vec![OpKind::Fido2, OpKind::Piv, OpKind::Replace],
        not_before: None,
        not_after: None,
        revoked_kids: vec![],
    };
    trust
        .add_issuer(
            &issuer,
            vec![("idp-ed".into(), "alice".into(), key.public().clone())],
        )
        .expect("trust");
    let verifier = Verifier::new(trust, VerifyOptions::new("kiosk-berlin-01")).expect("verifier");
    let ticket = sign_compact(
        &claims("3f6c1f0e-8d4b-4a57-9a53-0d1f5e7b2c11"),
        &key,
        "idp-ed",
    )
    .expect("sign");
    let (input, sig) = ticket.rsplit_once('.').expect("compact");
    let dk = DecodingKey::from_ed_der(&raw);

    // A replay set holding 100 000 consumed tickets of the same issuer.
    let guard = MemoryReplayGuard::new();
    for i in 0..100_000 {
        guard
            .consume(
                "https://idp.example.com",
                &format!("consumed-ticket-{i:08}"),
                NOW + 900,
                NOW - 120,
            )
            .expect("fill");
    }

    // Three interleaved rounds, median of each: the machine is shared, so
    // a single run measures the neighbours as much as the code.
    let (mut bare, mut full, mut replay) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..3 {
        bare.push(rate(secs / 3.0, || {
            let ok = jsonwebtoken::crypto::verify(
                black_box(sig),
                black_box(input.as_bytes()),
                &dk,
                Algorithm::EdDSA,
            );
            assert!(matches!(ok, Ok(true)));
        }));
        full.push(rate(secs / 3.0, || {
            verifier
                .verify(black_box(ticket.as_bytes()), NOW, &NoReplayCheck)
                .expect("valid");
        }));
        replay.push(rate(secs / 3.0, || {
            verifier
                .verify(black_box(ticket.as_bytes()), NOW, &guard)
                .expect("valid");
        }));
    }
    let (bare, full, replay) = (median(bare), median(full), median(replay));
    let parse_only = rate(secs / 3.0, || {
        let raw = parse(black_box(ticket.as_bytes()), DEFAULT_MAX_BYTES).expect("parse");
        black_box(Claims::from_payload(&raw.payload).expect("claims"));
    });
    println!(
        "ticket verification, one core, {} byte EdDSA ticket:",
        ticket.len()
    );
    println!("  bare EdDSA signature check      {bare:>10.0} /s");
    println!(
        "  verify, no replay check         {full:>10.0} /s  ({:.0}% of bare)",
        100.0 * full / bare
    );
    println!(
        "  verify, replay check (100k set) {replay:>10.0} /s  ({:.0}% of bare)",
        100.0 * replay / bare
    );
    println!(
        "  parse + claims, no signature    {parse_only:>10.0} /s  ({:.1} us per ticket)",
        1e6 / parse_only
    );
    let ratio = full / bare;
    if ratio < 0.70 {
        println!("  BELOW TARGET: verification without replay check is under 70% of the bare rate");
    }
}
