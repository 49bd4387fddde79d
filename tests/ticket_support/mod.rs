//! Fixtures for the ticket tests: deterministic issuer keys, a trust store
//! with every situation the corpus needs, good claims, raw JWS builders.
#![allow(dead_code)]

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jiff::Timestamp;
use keyward::ticket::*;
use zeroize::Zeroizing;

/// The instant every test verifies at: 2027-01-15T08:00:00Z.
pub const NOW: i64 = 1_800_000_000;
/// The station the tickets are for.
pub const STATION: &str = "kiosk-berlin-01";
/// The trusted issuer.
pub const ISS: &str = "https://idp.example.com";
/// A second trusted issuer that may only grant fido2.
pub const ISS_FIDO_ONLY: &str = "https://fido-only.example.com";

/// Every key the fixtures use, by kid.
pub struct Keys {
    pub ed: SigningKey,          // kid "idp-ed", approver alice
    pub es: SigningKey,          // kid "idp-es", approver bob
    pub ed_bob: SigningKey,      // kid "idp-ed-bob", approver bob
    pub ed_alice2: SigningKey,   // kid "idp-ed-alice2", approver alice (same person, second key)
    pub revoked: SigningKey,     // kid "idp-old", revoked
    pub fido_only: SigningKey,   // kid "fido-ed", issuer ISS_FIDO_ONLY
    pub expired_iss: SigningKey, // kid "gone-ed", issuer window ended
    pub future_iss: SigningKey,  // kid "soon-ed", issuer window not started
    pub stranger: SigningKey,    // not in the trust store
}

pub fn key(alg: TicketAlg, n: u8) -> SigningKey {
    SigningKey::generate(alg, &Zeroizing::new([n; 32]))
        .expect("test key")
        .0
}

pub fn keys() -> Keys {
    Keys {
        ed: key(TicketAlg::EdDsa, 1),
        es: key(TicketAlg::Es256, 2),
        ed_bob: key(TicketAlg::EdDsa, 3),
        ed_alice2: key(TicketAlg::EdDsa, 4),
        revoked: key(TicketAlg::EdDsa, 5),
        fido_only: key(TicketAlg::EdDsa, 6),
        expired_iss: key(TicketAlg::EdDsa, 7),
        future_iss: key(TicketAlg::EdDsa, 8),
        stranger: key(TicketAlg::EdDsa, 9),
    }
}

fn issuer(iss: &str, ops: &[OpKind]) -> IssuerConfig {
    IssuerConfig {
        iss: iss.into(),
        keys: vec![],
        allowed_ops: ops.to_vec(),
        not_before: None,
        not_after: None,
        revoked_kids: vec![],
    }
}

fn entry(kid: &str, approver: &str, k: &SigningKey) -> (String, String, PublicKey) {
    (kid.into(), approver.into(), k.public().clone())
}

pub fn trust(k: &Keys) -> TrustStore {
    let mut t = TrustStore::default();
    let mut main = issuer(ISS, &[OpKind::Fido2, OpKind::Piv, OpKind::Replace]);
    main.revoked_kids = vec!["idp-old".into()];
    t.add_issuer(
        &main,
        vec![
            entry("idp-ed", "alice", &k.ed),
            entry("idp-es", "bob", &k.es),
            entry("idp-ed-bob", "bob", &k.ed_bob),
            entry("idp-ed-alice2", "alice", &k.ed_alice2),
            entry("idp-old", "carol", &k.revoked),
        ],
    )
    .expect("main issuer");
    t.add_issuer(
        &issuer(ISS_FIDO_ONLY, &[OpKind::Fido2]),
        vec![entry("fido-ed", "dave", &k.fido_only)],
    )
    .expect("fido-only issuer");
    let mut gone = issuer("https://gone.example.com", &[OpKind::Fido2]);
    gone.not_after = Some(Timestamp::from_second(NOW - 86_400).expect("ts"));
    t.add_issuer(&gone, vec![entry("gone-ed", "erin", &k.expired_iss)])
        .expect("gone");
    let mut soon = issuer("https://soon.example.com", &[OpKind::Fido2]);
    soon.not_before = Some(Timestamp::from_second(NOW + 86_400).expect("ts"));
    t.add_issuer(&soon, vec![entry("soon-ed", "frank", &k.future_iss)])
        .expect("soon");
    t
}

pub fn verifier(k: &Keys) -> Verifier {
    let mut o = VerifyOptions::new(STATION);
    o.audiences.push("group:berlin".into());
    o.known_policies = Some(vec!["kiosk-standard".into(), "bulk".into()]);
    Verifier::new(trust(k), o).expect("verifier")
}

/// Good claims: a FIDO2 credential and a PIV key for one person.
pub fn claims() -> Claims {
    serde_json::from_value(good_claims_json()).expect("claims")
}

pub fn good_claims_json() -> serde_json::Value {
    serde_json::json!({
        "ver": 1,
        "iss": ISS,
        "sub": "employee:40213",
        "aud": STATION,
        "iat": NOW - 60,
        "nbf": NOW - 60,
        "exp": NOW + 900,
        "jti": "3f6c1f0e-8d4b-4a57-9a53-0d1f5e7b2c11",
        "ial": 2,
        "evidence": {"method": "in_person_document", "verifier": "helpdesk:jdoe", "time": NOW - 7200},
        "ops": [
            {"type": "fido2", "rp_id": "login.example.com", "user": "ZW1wbG95ZWU6NDAyMTM", "user_name": "a.person@example.com"},
            {"type": "piv", "slot": "9a", "alg": "p256", "pin_policy": "once", "touch_policy": "always"}
        ],
        "policy": "kiosk-standard"
    })
}

pub fn b64(b: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(b)
}

pub fn header(alg: &str, kid: &str) -> String {
    format!(r#"{{"alg":"{alg}","kid":"{kid}","typ":"keyward-ticket+jwt"}}"#)
}

/// A compact JWS of arbitrary header and payload text, signed by `key`.
pub fn raw(header_json: &str, payload_json: &str, key: &SigningKey) -> String {
    let input = format!(
        "{}.{}",
        b64(header_json.as_bytes()),
        b64(payload_json.as_bytes())
    );
    let sig = key.sign(input.as_bytes()).expect("sign");
    format!("{input}.{sig}")
}

/// A compact ticket of `payload` (JSON value) signed by `key` as `kid`.
pub fn signed(payload: &serde_json::Value, key: &SigningKey, kid: &str) -> String {
    raw(&header(key.alg().name(), kid), &payload.to_string(), key)
}

/// A general JSON ticket of `payload` with one signature per `(key, kid)`.
pub fn general(payload: &serde_json::Value, signers: &[(&SigningKey, &str)]) -> String {
    let p = b64(payload.to_string().as_bytes());
    let sigs: Vec<_> = signers
        .iter()
        .map(|(k, kid)| {
            let h = b64(header(k.alg().name(), kid).as_bytes());
            let s = k.sign(format!("{h}.{p}").as_bytes()).expect("sign");
            serde_json::json!({"protected": h, "signature": s})
        })
        .collect();
    serde_json::json!({"payload": p, "signatures": sigs}).to_string()
}

/// `good_claims_json` with `f` applied.
pub fn with(f: impl FnOnce(&mut serde_json::Map<String, serde_json::Value>)) -> serde_json::Value {
    let mut v = good_claims_json();
    f(v.as_object_mut().expect("object"));
    v
}
