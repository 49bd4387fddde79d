//! The bad-ticket corpus: every ticket is refused, each for the right reason
//! (the error variant is asserted, not just "some error"). Plus the good
//! tickets that must verify.

mod ticket_support;

use hmac::{KeyInit, Mac};
use keyward::ticket::*;
use serde_json::{Value, json};
use ticket_support::*;

type Check = Box<dyn Fn(&TicketError) -> bool>;

struct Case {
    name: &'static str,
    bytes: Vec<u8>,
    expect: Check,
    guard: MemoryReplayGuard,
}

macro_rules! case {
    (@guard) => {
        MemoryReplayGuard::new()
    };
    (@guard $g:expr) => {
        $g
    };
    ($name:expr, $bytes:expr, $pat:pat $(if $cond:expr)? $(, $guard:expr)?) => {
        Case {
            name: $name,
            bytes: $bytes.into(),
            expect: Box::new(|e: &TicketError| matches!(e, $pat $(if $cond)?)),
            guard: case!(@guard $($guard)?),
        }
    };
}

fn replace_json(s: &str, from: &str, to: &str) -> String {
    assert!(s.contains(from), "{from} not in {s}");
    s.replacen(from, to, 1)
}

fn missing(claim: &str) -> Value {
    with(|m| {
        m.remove(claim);
    })
}

fn corpus(k: &Keys) -> Vec<Case> {
    use TicketError as E;
    let good = good_claims_json();
    let good_text = good.to_string();
    let ed = |v: &Value| signed(v, &k.ed, "idp-ed");
    let valid = ed(&good);
    let segs: Vec<&str> = valid.split('.').collect();
    let (h, p, s) = (segs[0].to_owned(), segs[1].to_owned(), segs[2].to_owned());

    // HS256 keyed with the issuer's public key: the classic confusion attack.
    let hs256 = {
        let input = format!("{}.{}", b64(header("HS256", "idp-ed").as_bytes()), p);
        let pem = serde_json::to_string(&k.ed.public().to_jwk("idp-ed")).unwrap();
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(pem.as_bytes()).unwrap();
        mac.update(input.as_bytes());
        format!("{input}.{}", b64(&mac.finalize().into_bytes()))
    };
    let consumed = MemoryReplayGuard::new();
    consumed
        .consume(
            ISS,
            "3f6c1f0e-8d4b-4a57-9a53-0d1f5e7b2c11",
            NOW + 900,
            NOW - 10,
        )
        .unwrap();
    let clock_ahead = MemoryReplayGuard::new();
    clock_ahead
        .consume(ISS, "some-other-ticket-0001", NOW + 9000, NOW + 3600)
        .unwrap();
    let unsigned_input = format!(
        "{}.{p}.",
        b64(br#"{"alg":"none","kid":"idp-ed","typ":"keyward-ticket+jwt"}"#)
    );
    let mut flipped = URL_SAFE_NO_PAD.decode(&s).unwrap();
    flipped[10] ^= 1;
    let tampered_payload =
        b64(replace_json(&good_text, "employee:40213", "employee:40214").as_bytes());
    let dual = with(|m| {
        m.insert("approvals".into(), json!(2));
    });
    let replacing = with(|m| {
        m.insert(
            "replaces".into(),
            json!({"serial": 12345678, "reason": "lost"}),
        );
    });

    vec![
        // --- algorithms ---------------------------------------------------
        case!("alg none", unsigned_input.clone(), E::UnsignedAlg),
        case!(
            "alg None mixed case",
            raw(
                r#"{"alg":"None","kid":"idp-ed","typ":"keyward-ticket+jwt"}"#,
                &good_text,
                &k.ed
            ),
            E::UnsignedAlg
        ),
        case!("HS256 keyed with the public key", hs256, E::AlgNotAllowed { alg } if alg == "HS256"),
        case!("RS256 not allowed", raw(&header("RS256", "idp-ed"), &good_text, &k.ed), E::AlgNotAllowed { alg } if alg == "RS256"),
        case!(
            "ES384 not allowed",
            raw(&header("ES384", "idp-es"), &good_text, &k.es),
            E::AlgNotAllowed { .. }
        ),
        case!(
            "Ed25519 (not a JWS alg name) not allowed",
            raw(&header("Ed25519", "idp-ed"), &good_text, &k.ed),
            E::AlgNotAllowed { .. }
        ),
        case!("ES256 header on an Ed25519 kid", raw(&header("ES256", "idp-ed"), &good_text, &k.es), E::AlgKeyMismatch { kid, .. } if kid == "idp-ed"),
        case!(
            "EdDSA header on a P-256 kid",
            raw(&header("EdDSA", "idp-es"), &good_text, &k.ed),
            E::AlgKeyMismatch {
                key_alg: "ES256",
                ..
            }
        ),
        // --- signatures ---------------------------------------------------
        case!("signed by a stranger's key", signed(&good, &k.stranger, "idp-ed"), E::BadSignature { kid } if kid == "idp-ed"),
        case!(
            "signature bit flipped",
            format!("{h}.{p}.{}", b64(&flipped)),
            E::BadSignature { .. }
        ),
        case!(
            "payload tampered",
            format!("{h}.{tampered_payload}.{s}"),
            E::BadSignature { .. }
        ),
        case!("header tampered (kid switched)", format!("{}.{p}.{s}", b64(header("EdDSA", "idp-ed-bob").as_bytes())), E::BadSignature { kid } if kid == "idp-ed-bob"),
        case!(
            "header tampered (whitespace added)",
            format!(
                "{}.{p}.{s}",
                b64(header("EdDSA", "idp-ed").replace(',', ", ").as_bytes())
            ),
            E::BadSignature { .. }
        ),
        case!(
            "ES256 signature from another P-256 key",
            signed(&good, &key(TicketAlg::Es256, 42), "idp-es"),
            E::BadSignature { .. }
        ),
        // --- keys and issuers --------------------------------------------
        case!("unknown kid", signed(&good, &k.stranger, "who-is-this"), E::UnknownKid { kid } if kid == "who-is-this"),
        case!("revoked kid", signed(&good, &k.revoked, "idp-old"), E::RevokedKid { kid, .. } if kid == "idp-old"),
        case!(
            "issuer trust expired",
            signed(&good, &k.expired_iss, "gone-ed"),
            E::IssuerExpired { .. }
        ),
        case!(
            "issuer trust not yet started",
            signed(&good, &k.future_iss, "soon-ed"),
            E::IssuerNotYetValid { .. }
        ),
        case!("iss claim is not the key's issuer", signed(&with(|m| { m.insert("iss".into(), json!(ISS_FIDO_ONLY)); }), &k.ed, "idp-ed"), E::IssuerMismatch { claimed, .. } if claimed == ISS_FIDO_ONLY),
        case!(
            "missing kid",
            raw(
                r#"{"alg":"EdDSA","typ":"keyward-ticket+jwt"}"#,
                &good_text,
                &k.ed
            ),
            E::MissingKid
        ),
        case!(
            "empty kid",
            raw(&header("EdDSA", ""), &good_text, &k.ed),
            E::MissingKid
        ),
        case!("embedded jwk header", raw(r#"{"alg":"EdDSA","kid":"idp-ed","typ":"keyward-ticket+jwt","jwk":{"kty":"OKP"}}"#, &good_text, &k.ed), E::HeaderParameter { name } if name == "jwk"),
        case!("crit header", raw(r#"{"alg":"EdDSA","kid":"idp-ed","typ":"keyward-ticket+jwt","crit":["exp"]}"#, &good_text, &k.ed), E::HeaderParameter { name } if name == "crit"),
        case!(
            "jku header",
            raw(
                r#"{"alg":"EdDSA","kid":"idp-ed","typ":"keyward-ticket+jwt","jku":"https://evil.example/k"}"#,
                &good_text,
                &k.ed
            ),
            E::HeaderParameter { .. }
        ),
        case!(
            "unencoded payload (RFC 7797 b64)",
            raw(
                r#"{"alg":"EdDSA","kid":"idp-ed","typ":"keyward-ticket+jwt","b64":false}"#,
                &good_text,
                &k.ed
            ),
            E::HeaderParameter { name } if name == "b64"
        ),
        case!(
            "nested JWT (cty)",
            raw(
                r#"{"alg":"EdDSA","kid":"idp-ed","typ":"keyward-ticket+jwt","cty":"JWT"}"#,
                &good_text,
                &k.ed
            ),
            E::HeaderParameter { name } if name == "cty"
        ),
        case!(
            "kid not a string",
            raw(
                r#"{"alg":"EdDSA","kid":7,"typ":"keyward-ticket+jwt"}"#,
                &good_text,
                &k.ed
            ),
            E::Json {
                part: Part::Header,
                ..
            }
        ),
        case!(
            "JSON envelope with escaped payload",
            general(&dual, &[(&k.ed, "idp-ed"), (&k.es, "idp-es")]).replacen(
                "\"payload\":\"e",
                "\"payload\":\"\\u0065",
                1
            ),
            E::Json {
                part: Part::Envelope,
                ..
            }
        ),
        case!(
            "exp after year 9999 (overflow bait)",
            ed(&with(|m| {
                m.insert("exp".into(), json!(i64::MAX));
                m.insert("iat".into(), json!(NOW - 60));
            })),
            E::InvalidClaim { claim: "exp", .. }
        ),
        case!(
            "iat before 1970",
            ed(&with(|m| {
                m.insert("iat".into(), json!(i64::MIN));
            })),
            E::InvalidClaim { claim: "iat", .. }
        ),
        // --- time ---------------------------------------------------------
        case!(
            "expired",
            ed(&with(|m| {
                m.insert("iat".into(), json!(NOW - 3600));
                m.insert("nbf".into(), json!(NOW - 3600));
                m.insert("exp".into(), json!(NOW - 61));
            })),
            E::Expired { .. }
        ),
        case!(
            "not yet valid",
            ed(&with(|m| {
                m.insert("nbf".into(), json!(NOW + 600));
            })),
            E::NotYetValid { .. }
        ),
        case!(
            "iat in the future",
            ed(&with(|m| {
                m.insert("iat".into(), json!(NOW + 120));
            })),
            E::IssuedInFuture { .. }
        ),
        case!(
            "lifetime over 24 h",
            ed(&with(|m| {
                m.insert("exp".into(), json!(NOW + 2 * 86_400));
            })),
            E::LifetimeTooLong { .. }
        ),
        case!(
            "exp before nbf",
            ed(&with(|m| {
                m.insert("exp".into(), json!(NOW - 100));
            })),
            E::InvalidClaim { claim: "exp", .. }
        ),
        case!(
            "station clock rolled back",
            valid.clone(),
            E::ClockRollback { .. },
            clock_ahead
        ),
        // --- audience -----------------------------------------------------
        case!(
            "wrong aud",
            ed(&with(|m| {
                m.insert("aud".into(), json!("kiosk-paris-02"));
            })),
            E::WrongAudience { .. }
        ),
        case!("aud array without this station", ed(&with(|m| { m.insert("aud".into(), json!(["kiosk-paris-02", "group:paris"])); })), E::WrongAudience { aud, .. } if aud.len() == 2),
        case!(
            "aud empty array",
            ed(&with(|m| {
                m.insert("aud".into(), json!([]));
            })),
            E::InvalidClaim { claim: "aud", .. }
        ),
        // --- required claims ----------------------------------------------
        case!(
            "missing iss",
            ed(&missing("iss")),
            E::MissingClaim { claim: "iss" }
        ),
        case!(
            "missing sub",
            ed(&missing("sub")),
            E::MissingClaim { claim: "sub" }
        ),
        case!(
            "missing aud",
            ed(&missing("aud")),
            E::MissingClaim { claim: "aud" }
        ),
        case!(
            "missing iat",
            ed(&missing("iat")),
            E::MissingClaim { claim: "iat" }
        ),
        case!(
            "missing nbf",
            ed(&missing("nbf")),
            E::MissingClaim { claim: "nbf" }
        ),
        case!(
            "missing exp",
            ed(&missing("exp")),
            E::MissingClaim { claim: "exp" }
        ),
        case!(
            "missing jti",
            ed(&missing("jti")),
            E::MissingClaim { claim: "jti" }
        ),
        case!(
            "missing ial",
            ed(&missing("ial")),
            E::MissingClaim { claim: "ial" }
        ),
        case!(
            "missing evidence",
            ed(&missing("evidence")),
            E::MissingClaim { claim: "evidence" }
        ),
        case!(
            "missing ops",
            ed(&missing("ops")),
            E::MissingClaim { claim: "ops" }
        ),
        case!(
            "missing policy",
            ed(&missing("policy")),
            E::MissingClaim { claim: "policy" }
        ),
        case!(
            "missing ver",
            ed(&missing("ver")),
            E::MissingClaim { claim: "ver" }
        ),
        case!(
            "exp null counts as missing",
            ed(&with(|m| {
                m.insert("exp".into(), Value::Null);
            })),
            E::MissingClaim { claim: "exp" }
        ),
        // --- claim contents -----------------------------------------------
        case!(
            "unknown claim",
            ed(&with(|m| {
                m.insert("admin".into(), json!(true));
            })),
            E::Json {
                part: Part::Payload,
                ..
            }
        ),
        case!(
            "version 2",
            ed(&with(|m| {
                m.insert("ver".into(), json!(2));
            })),
            E::UnsupportedVersion { found: 2 }
        ),
        case!(
            "exp not an integer",
            ed(&with(|m| {
                m.insert("exp".into(), json!(1.8e9));
            })),
            E::Json {
                part: Part::Payload,
                ..
            }
        ),
        case!(
            "jti too short",
            ed(&with(|m| {
                m.insert("jti".into(), json!("1"));
            })),
            E::InvalidClaim { claim: "jti", .. }
        ),
        case!(
            "ial 4",
            ed(&with(|m| {
                m.insert("ial".into(), json!(4));
            })),
            E::InvalidClaim { claim: "ial", .. }
        ),
        case!(
            "ops empty",
            ed(&with(|m| {
                m.insert("ops".into(), json!([]));
            })),
            E::InvalidClaim { claim: "ops", .. }
        ),
        case!(
            "ops unknown type",
            ed(&with(|m| {
                m.insert("ops".into(), json!([{"type": "ssh", "host": "x"}]));
            })),
            E::Json {
                part: Part::Payload,
                ..
            }
        ),
        case!(
            "ops PIV slot 9f",
            ed(&with(|m| {
                m.insert(
                    "ops".into(),
                    json!([{"type": "piv", "slot": "9f", "alg": "p256"}]),
                );
            })),
            E::InvalidClaim { claim: "ops", .. }
        ),
        case!(
            "ops PIV alg rsa1024",
            ed(&with(|m| {
                m.insert(
                    "ops".into(),
                    json!([{"type": "piv", "slot": "9a", "alg": "rsa1024"}]),
                );
            })),
            E::InvalidClaim { claim: "ops", .. }
        ),
        case!(
            "ops PIV slot twice",
            ed(&with(|m| {
                m.insert("ops".into(), json!([{"type": "piv", "slot": "9a", "alg": "p256"}, {"type": "piv", "slot": "9a", "alg": "p384"}]));
            })),
            E::InvalidClaim { claim: "ops", .. }
        ),
        case!(
            "ops rp_id not a DNS name",
            ed(&with(|m| {
                m.insert(
                    "ops".into(),
                    json!([{"type": "fido2", "rp_id": "https://Login.Example.com/"}]),
                );
            })),
            E::InvalidClaim { claim: "ops", .. }
        ),
        case!(
            "ops user handle over 64 bytes",
            ed(&with(|m| {
                m.insert(
                    "ops".into(),
                    json!([{"type": "fido2", "rp_id": "example.com", "user": b64(&[7u8; 65])}]),
                );
            })),
            E::InvalidClaim { claim: "ops", .. }
        ),
        case!(
            "replaces without a device",
            ed(&with(|m| {
                m.insert("replaces".into(), json!({"reason": "lost"}));
            })),
            E::InvalidClaim {
                claim: "replaces",
                ..
            }
        ),
        case!(
            "replaces with an unknown reason",
            ed(&with(|m| {
                m.insert("replaces".into(), json!({"serial": 1, "reason": "bored"}));
            })),
            E::InvalidClaim {
                claim: "replaces",
                ..
            }
        ),
        case!(
            "device serial not a number",
            ed(&with(|m| {
                m.insert("device".into(), json!({"serial": "12345678"}));
            })),
            E::Json {
                part: Part::Payload,
                ..
            }
        ),
        case!(
            "policy not configured here",
            ed(&with(|m| {
                m.insert("policy".into(), json!("lab-relaxed"));
            })),
            E::UnknownPolicy { .. }
        ),
        case!(
            "evidence after issuance",
            ed(&with(|m| {
                m.insert(
                    "evidence".into(),
                    json!({"method": "in_person_document", "verifier": "x", "time": NOW}),
                );
            })),
            E::InvalidClaim {
                claim: "evidence",
                ..
            }
        ),
        // --- JSON strictness ----------------------------------------------
        case!("duplicate sub in payload", raw(&header("EdDSA", "idp-ed"), &replace_json(&good_text, "\"sub\":", "\"sub\":\"employee:1\",\"sub\":"), &k.ed), E::DuplicateKey { part: Part::Payload, key } if key == "sub"),
        case!("duplicate escaped aud in payload", raw(&header("EdDSA", "idp-ed"), &replace_json(&good_text, "\"aud\":", "\"\\u0061ud\":\"kiosk-paris-02\",\"aud\":"), &k.ed), E::DuplicateKey { key, .. } if key == "aud"),
        case!("duplicate member inside ops", raw(&header("EdDSA", "idp-ed"), &replace_json(&good_text, "\"slot\":\"9a\"", "\"slot\":\"9a\",\"slot\":\"9c\""), &k.ed), E::DuplicateKey { key, .. } if key == "slot"),
        case!(
            "duplicate alg in header",
            raw(
                r#"{"alg":"EdDSA","alg":"HS256","kid":"idp-ed","typ":"keyward-ticket+jwt"}"#,
                &good_text,
                &k.ed
            ),
            E::DuplicateKey {
                part: Part::Header,
                ..
            }
        ),
        case!(
            "header is not JSON",
            format!("{}.{p}.{s}", b64(b"alg=EdDSA")),
            E::Json {
                part: Part::Header,
                ..
            }
        ),
        case!(
            "payload is a JSON array",
            raw(&header("EdDSA", "idp-ed"), "[1,2,3]", &k.ed),
            E::Json {
                part: Part::Payload,
                ..
            }
        ),
        // --- typ ----------------------------------------------------------
        case!("typ JWT", raw(r#"{"alg":"EdDSA","kid":"idp-ed","typ":"JWT"}"#, &good_text, &k.ed), E::WrongType { found: Some(t) } if t == "JWT"),
        case!(
            "typ missing",
            raw(r#"{"alg":"EdDSA","kid":"idp-ed"}"#, &good_text, &k.ed),
            E::WrongType { found: None }
        ),
        case!(
            "typ of another keyward token",
            raw(
                r#"{"alg":"EdDSA","kid":"idp-ed","typ":"keyward-receipt+jwt"}"#,
                &good_text,
                &k.ed
            ),
            E::WrongType { .. }
        ),
        // --- encoding and size --------------------------------------------
        case!(
            "oversize",
            valid.clone() + &"A".repeat(17_000),
            E::TooLarge { .. }
        ),
        case!(
            "bytes not UTF-8",
            [valid.as_bytes(), &[0xff, 0xfe]].concat(),
            E::NotUtf8 { .. }
        ),
        case!("empty", "", E::Empty),
        case!(
            "four segments",
            format!("{valid}.{s}"),
            E::Segments { found: 4 }
        ),
        case!(
            "five segments (JWE shape)",
            format!("{h}.{p}.{s}.{s}.{s}"),
            E::Segments { found: 5 }
        ),
        case!("two segments", format!("{h}.{p}"), E::Segments { found: 2 }),
        case!(
            "padded base64 header",
            format!("{h}=.{p}.{s}"),
            E::Base64 { part: Part::Header }
        ),
        case!(
            "standard-alphabet base64 in payload",
            format!("{h}.{}+.{s}", &p[..p.len() - 1]),
            E::Base64 {
                part: Part::Payload
            }
        ),
        case!(
            "non-canonical base64 signature",
            format!("{h}.{p}.{}", noncanonical(&s)),
            E::Base64 {
                part: Part::Signature
            }
        ),
        case!(
            "empty signature",
            format!("{h}.{p}."),
            E::Base64 {
                part: Part::Signature
            }
        ),
        case!(
            "whitespace inside",
            format!("{h}.\n{p}.{s}"),
            E::Base64 {
                part: Part::Payload
            }
        ),
        // --- replay, permissions -------------------------------------------
        case!("replayed jti", valid.clone(), E::Replayed { jti, .. } if jti == "3f6c1f0e-8d4b-4a57-9a53-0d1f5e7b2c11", consumed),
        case!("fido-only issuer grants piv", signed(&with(|m| { m.insert("iss".into(), json!(ISS_FIDO_ONLY)); }), &k.fido_only, "fido-ed"), E::OperationNotAllowed { op, .. } if op == "piv"),
        case!("fido-only issuer grants a replacement", general(&with(|m| { m.insert("iss".into(), json!(ISS_FIDO_ONLY)); m.insert("ops".into(), json!([{"type": "fido2", "rp_id": "example.com"}])); m.insert("replaces".into(), json!({"serial": 1, "reason": "lost"})); m.insert("approvals".into(), json!(1)); }), &[(&k.fido_only, "fido-ed")]), E::OperationNotAllowed { op, .. } if op == "replace"),
        // --- dual control ---------------------------------------------------
        case!(
            "dual control, one signature (compact)",
            ed(&dual),
            E::InsufficientApprovals {
                required: 2,
                found: 1
            }
        ),
        case!(
            "dual control, one signature (JSON)",
            general(&dual, &[(&k.ed, "idp-ed")]),
            E::InsufficientApprovals {
                required: 2,
                found: 1
            }
        ),
        case!(
            "replacement with one approval",
            ed(&replacing),
            E::InsufficientApprovals {
                required: 2,
                found: 1
            }
        ),
        case!("dual control, same approver with two keys", general(&dual, &[(&k.ed, "idp-ed"), (&k.ed_alice2, "idp-ed-alice2")]), E::DuplicateApprover { approver } if approver == "alice"),
        case!(
            "dual control, same key twice",
            general(&dual, &[(&k.ed, "idp-ed"), (&k.ed, "idp-ed")]),
            E::DuplicateApprover { .. }
        ),
        case!("dual control, second signature forged", general(&dual, &[(&k.ed, "idp-ed"), (&k.stranger, "idp-ed-bob")]), E::BadSignature { kid } if kid == "idp-ed-bob"),
        case!(
            "dual control, approvers of different issuers",
            general(&dual, &[(&k.ed, "idp-ed"), (&k.fido_only, "fido-ed")]),
            E::IssuerMismatch { .. }
        ),
        case!(
            "dual control, unprotected header",
            unprotected(&general(&dual, &[(&k.ed, "idp-ed"), (&k.es, "idp-es")])),
            E::UnprotectedHeader { index: 0 }
        ),
        case!(
            "flattened JSON serialization",
            flattened(&valid),
            E::Json {
                part: Part::Envelope,
                ..
            }
        ),
        case!(
            "JSON envelope with duplicate payload",
            general(&dual, &[(&k.ed, "idp-ed")]).replacen(
                "{\"payload\":",
                "{\"payload\":\"e30\",\"payload\":",
                1
            ),
            E::DuplicateKey {
                part: Part::Envelope,
                ..
            }
        ),
        case!(
            "six signatures",
            general(
                &dual,
                &[
                    (&k.ed, "idp-ed"),
                    (&k.es, "idp-es"),
                    (&k.ed_bob, "idp-ed-bob"),
                    (&k.ed_alice2, "idp-ed-alice2"),
                    (&k.revoked, "a"),
                    (&k.stranger, "b")
                ]
            ),
            E::TooManySignatures { found: 6, .. }
        ),
        case!(
            "approvals above the maximum",
            ed(&with(|m| {
                m.insert("approvals".into(), json!(9));
            })),
            E::InvalidClaim {
                claim: "approvals",
                ..
            }
        ),
    ]
}

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Re-encode a base64url string so its last character carries non-zero
/// padding bits: same bytes to a lenient decoder, refused by a strict one.
fn noncanonical(s: &str) -> String {
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let last = s.as_bytes()[s.len() - 1];
    let i = alphabet.iter().position(|&c| c == last).unwrap();
    // 64-byte signatures end in a 2-char group: 4 low bits are padding.
    format!("{}{}", &s[..s.len() - 1], alphabet[i | 1] as char)
}

fn unprotected(general: &str) -> String {
    general.replacen(
        "{\"protected\":",
        "{\"header\":{\"kid\":\"idp-ed\"},\"protected\":",
        1,
    )
}

fn flattened(compact: &str) -> String {
    let p: Vec<&str> = compact.split('.').collect();
    json!({"protected": p[0], "payload": p[1], "signature": p[2]}).to_string()
}

#[test]
fn bad_tickets_are_refused_for_the_right_reason() {
    let k = keys();
    let v = verifier(&k);
    let cases = corpus(&k);
    assert!(cases.len() >= 40, "corpus has only {} tickets", cases.len());
    let mut wrong = Vec::new();
    for c in &cases {
        match v.verify(&c.bytes, NOW, &c.guard) {
            Ok(_) => wrong.push(format!("{}: ACCEPTED", c.name)),
            Err(e) if (c.expect)(&e) => {}
            Err(e) => wrong.push(format!("{}: refused for the wrong reason: {e:?}", c.name)),
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {} cases wrong:\n{}",
        wrong.len(),
        cases.len(),
        wrong.join("\n")
    );
    eprintln!("{} bad tickets refused for the right reason", cases.len());
}

#[test]
fn every_failure_message_says_what_to_do() {
    let k = keys();
    let v = verifier(&k);
    for c in corpus(&k) {
        let e = v.verify(&c.bytes, NOW, &c.guard).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.len() > 30 && msg.contains(';'),
            "{}: terse message {msg:?}",
            c.name
        );
    }
}
