//! Request signatures: a fixed profile of HTTP Message Signatures (RFC 9421)
//! with Ed25519 and the station key, over the method, the path and the
//! body's `Content-Digest` (RFC 9530, sha-256).
//!
//! ```text
//! Content-Digest: sha-256=:<base64 SHA-256 of the body>:
//! Signature-Input: keyward=("@method" "@path" "content-digest");created=<unix>;nonce="<32 hex>";keyid="<station id>";alg="ed25519"
//! Signature: keyward=:<base64 Ed25519 signature>:
//! ```
//!
//! The signature base is RFC 9421 §2.5's, each line `"name": value`, the
//! last `"@signature-params": <the Signature-Input value after "keyward=">`,
//! joined with `\n`. The verifier accepts only this exact profile: any other
//! component list, label, algorithm or parameter order is refused, so no
//! header outside the signature can change what was signed.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use sha2::{Digest, Sha256};

use crate::store::station_key::{self, StationKey};

pub const CONTENT_DIGEST: &str = "content-digest";
pub const SIGNATURE_INPUT: &str = "signature-input";
pub const SIGNATURE: &str = "signature";
/// How far a request's `created` may be from the registry's clock.
pub const MAX_SKEW_SECS: i64 = 300;

const COMPONENTS: &str = r#"("@method" "@path" "content-digest")"#;

/// The three headers of a signed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedHeaders {
    pub content_digest: String,
    pub signature_input: String,
    pub signature: String,
}

/// What a verified signature says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureParams {
    pub created: i64,
    pub nonce: String,
    pub keyid: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum SignatureError {
    #[error("the request is not signed (no Signature-Input, Signature or Content-Digest header)")]
    Unsigned,
    #[error("the request signature headers are not keyward's RFC 9421 profile: {0}")]
    Malformed(&'static str),
    #[error("the Content-Digest does not match the body")]
    DigestMismatch,
    #[error("the signature does not verify with the station's enrolled key")]
    BadSignature,
}

/// `sha-256=:<base64>:` of `body`.
pub fn content_digest(body: &[u8]) -> String {
    format!("sha-256=:{}:", B64.encode(Sha256::digest(body)))
}

fn params(created: i64, nonce: &str, keyid: &str) -> String {
    format!(r#"{COMPONENTS};created={created};nonce="{nonce}";keyid="{keyid}";alg="ed25519""#)
}

/// The RFC 9421 signature base.
pub fn signature_base(method: &str, path: &str, digest: &str, params: &str) -> String {
    format!(
        "\"@method\": {method}\n\"@path\": {path}\n\"content-digest\": {digest}\n\"@signature-params\": {params}"
    )
}

/// Sign a request. `nonce` is 16 random bytes in hex; `keyid` the station id.
pub fn sign(
    key: &StationKey,
    method: &str,
    path: &str,
    body: &[u8],
    keyid: &str,
    created: i64,
    nonce: &str,
) -> SignedHeaders {
    let digest = content_digest(body);
    let p = params(created, nonce, keyid);
    let sig = key.sign(signature_base(method, path, &digest, &p).as_bytes());
    SignedHeaders {
        content_digest: digest,
        signature_input: format!("keyward={p}"),
        signature: format!("keyward=:{}:", B64.encode(sig)),
    }
}

/// Read the parameters without verifying (to find the station's key).
pub fn parse_input(signature_input: &str) -> Result<SignatureParams, SignatureError> {
    let rest = signature_input
        .strip_prefix("keyward=")
        .and_then(|r| r.strip_prefix(COMPONENTS))
        .ok_or(SignatureError::Malformed("label or covered components"))?;
    let mut it = rest.split(';');
    if it.next() != Some("") {
        return Err(SignatureError::Malformed("parameters"));
    }
    let mut field = |name: &str, quoted: bool| -> Result<String, SignatureError> {
        let v = it
            .next()
            .and_then(|kv| kv.strip_prefix(name))
            .and_then(|kv| kv.strip_prefix('='))
            .ok_or(SignatureError::Malformed("parameter order"))?;
        if quoted {
            v.strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .filter(|v| !v.contains(['"', '\\']))
                .map(str::to_string)
                .ok_or(SignatureError::Malformed("quoted parameter"))
        } else {
            Ok(v.to_string())
        }
    };
    let created = field("created", false)?
        .parse::<i64>()
        .map_err(|_| SignatureError::Malformed("created"))?;
    let nonce = field("nonce", true)?;
    let keyid = field("keyid", true)?;
    let alg = field("alg", true)?;
    if alg != "ed25519" || it.next().is_some() {
        return Err(SignatureError::Malformed(
            "alg must be ed25519, nothing after it",
        ));
    }
    if nonce.len() != 32 || !nonce.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(SignatureError::Malformed("nonce must be 16 bytes in hex"));
    }
    if !super::wire::valid_id(&keyid) {
        return Err(SignatureError::Malformed("keyid"));
    }
    Ok(SignatureParams {
        created,
        nonce,
        keyid,
    })
}

/// Verify a request's headers and body against the station's public key.
/// Freshness and replay are the caller's (they need the registry's clock and
/// memory).
pub fn verify(
    public: &[u8; 32],
    method: &str,
    path: &str,
    body: &[u8],
    h: &SignedHeaders,
) -> Result<SignatureParams, SignatureError> {
    let p = parse_input(&h.signature_input)?;
    if h.content_digest != content_digest(body) {
        return Err(SignatureError::DigestMismatch);
    }
    let sig = h
        .signature
        .strip_prefix("keyward=:")
        .and_then(|s| s.strip_suffix(':'))
        .and_then(|s| B64.decode(s).ok())
        .ok_or(SignatureError::Malformed("Signature"))?;
    let base = signature_base(
        method,
        path,
        &h.content_digest,
        &params(p.created, &p.nonce, &p.keyid),
    );
    if !station_key::verify(public, base.as_bytes(), &sig) {
        return Err(SignatureError::BadSignature);
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NONCE: &str = "000102030405060708090a0b0c0d0e0f";

    #[test]
    fn headers_and_base_are_byte_exact() {
        let body = b"{}";
        // SHA-256("{}") = 44136fa3...; base64 below.
        assert_eq!(
            content_digest(body),
            "sha-256=:RBNvo1WzZ4oRRq0W9+hknpT7T8If536DEMBg9hyq/4o=:"
        );
        let key = StationKey::generate();
        let h = sign(
            &key,
            "POST",
            "/v1/push",
            body,
            "kiosk-1",
            1_800_000_000,
            NONCE,
        );
        assert_eq!(
            h.signature_input,
            r#"keyward=("@method" "@path" "content-digest");created=1800000000;nonce="000102030405060708090a0b0c0d0e0f";keyid="kiosk-1";alg="ed25519""#
        );
        assert_eq!(
            signature_base(
                "POST",
                "/v1/push",
                &h.content_digest,
                &h.signature_input[8..]
            ),
            concat!(
                "\"@method\": POST\n\"@path\": /v1/push\n",
                "\"content-digest\": sha-256=:RBNvo1WzZ4oRRq0W9+hknpT7T8If536DEMBg9hyq/4o=:\n",
                "\"@signature-params\": (\"@method\" \"@path\" \"content-digest\");created=1800000000;",
                "nonce=\"000102030405060708090a0b0c0d0e0f\";keyid=\"kiosk-1\";alg=\"ed25519\""
            )
        );
        let p = verify(&key.public_key(), "POST", "/v1/push", body, &h).unwrap();
        assert_eq!((p.created, p.keyid.as_str()), (1_800_000_000, "kiosk-1"));
    }

    #[test]
    fn forged_or_altered_requests_fail() {
        let key = StationKey::generate();
        let other = StationKey::generate();
        let h = sign(&key, "POST", "/v1/push", b"body", "k", 5, NONCE);
        let pk = key.public_key();
        assert_eq!(
            verify(&other.public_key(), "POST", "/v1/push", b"body", &h),
            Err(SignatureError::BadSignature)
        );
        assert_eq!(
            verify(&pk, "POST", "/v1/push", b"bodY", &h),
            Err(SignatureError::DigestMismatch)
        );
        let mut moved = h.clone();
        moved.content_digest = content_digest(b"bodY");
        assert_eq!(
            verify(&pk, "POST", "/v1/push", b"bodY", &moved),
            Err(SignatureError::BadSignature)
        );
        assert_eq!(
            verify(&pk, "POST", "/v1/other", b"body", &h),
            Err(SignatureError::BadSignature)
        );
        let mut later = h.clone();
        later.signature_input = later.signature_input.replace("created=5", "created=6");
        assert_eq!(
            verify(&pk, "POST", "/v1/push", b"body", &later),
            Err(SignatureError::BadSignature)
        );
        for bad in [
            r#"sig=("@method" "@path" "content-digest");created=5;nonce="000102030405060708090a0b0c0d0e0f";keyid="k";alg="ed25519""#,
            r#"keyward=("@method" "content-digest");created=5;nonce="000102030405060708090a0b0c0d0e0f";keyid="k";alg="ed25519""#,
            r#"keyward=("@method" "@path" "content-digest");created=5;nonce="000102030405060708090a0b0c0d0e0f";keyid="k";alg="hmac-sha256""#,
            r#"keyward=("@method" "@path" "content-digest");nonce="000102030405060708090a0b0c0d0e0f";created=5;keyid="k";alg="ed25519""#,
            r#"keyward=("@method" "@path" "content-digest");created=5;nonce="00";keyid="k";alg="ed25519""#,
        ] {
            let mut m = h.clone();
            m.signature_input = bad.into();
            assert!(
                matches!(
                    verify(&pk, "POST", "/v1/push", b"body", &m),
                    Err(SignatureError::Malformed(_))
                ),
                "{bad}"
            );
        }
    }
}
