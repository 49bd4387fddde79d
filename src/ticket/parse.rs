//! Untrusted bytes to JWS structure: size limit, UTF-8, the compact
//! (RFC 7515 §7.1) or general JSON (RFC 7515 §7.2.1) serialization, strict
//! base64url, and the protected header. Nothing here trusts anything: the
//! payload is only decoded, and interpreted after a signature verified.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};

use super::digest::TicketDigest;
use super::error::{Part, TicketError};
use super::json::{self, StrictJsonError};
use super::{ALLOWED_ALGS, TYP, TicketAlg};

/// At most this many signatures (approvals) in one ticket.
pub const MAX_SIGNATURES: usize = 5;

/// Which serialization a ticket arrived in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Form {
    /// `header.payload.signature` (RFC 7515 §7.1): one signature.
    Compact,
    /// JWS JSON general serialization (RFC 7515 §7.2.1): one or more.
    General,
}

/// A checked protected header (RFC 7515 §4.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// `alg`, one of the allowed algorithms.
    pub alg: TicketAlg,
    /// `kid`, the trust store key id.
    pub kid: String,
}

/// One signature with what it covers.
#[derive(Debug, Clone)]
pub struct RawSignature {
    /// The protected header.
    pub header: Header,
    /// The JWS Signing Input, `BASE64URL(header) || '.' || BASE64URL(payload)`
    /// (RFC 7515 §5.1 step 5).
    pub signing_input: Vec<u8>,
    /// The signature, base64url as sent (canonical: checked on decode).
    pub signature_b64: String,
}

/// A ticket split into its parts; nothing verified yet.
#[derive(Debug, Clone)]
pub struct RawTicket {
    /// The serialization.
    pub form: Form,
    /// The ticket bytes with surrounding whitespace removed, as received.
    /// The digest covers the signed content, not these bytes.
    pub bytes: Vec<u8>,
    /// The decoded payload (JWT Claims Set), not yet parsed.
    pub payload: Vec<u8>,
    /// The signatures in order.
    pub signatures: Vec<RawSignature>,
}

impl RawTicket {
    /// The ticket digest over the signed content (docs/ticket.md §6).
    pub fn digest(&self) -> TicketDigest {
        TicketDigest::of_signing_inputs(self.signatures.iter().map(|s| s.signing_input.as_slice()))
    }
}

/// Split and check a ticket without verifying it. `max_bytes` applies to the
/// raw input, before anything else is looked at.
pub fn parse(input: &[u8], max_bytes: usize) -> Result<RawTicket, TicketError> {
    if input.len() > max_bytes {
        return Err(TicketError::TooLarge {
            len: input.len(),
            max: max_bytes,
        });
    }
    let text = std::str::from_utf8(input).map_err(|e| TicketError::NotUtf8 {
        offset: e.valid_up_to(),
    })?;
    let text = text.trim_matches(|c: char| c.is_ascii_whitespace());
    if text.is_empty() {
        return Err(TicketError::Empty);
    }
    let (form, (payload, signatures)) = if text.starts_with('{') {
        (Form::General, parse_general(text)?)
    } else {
        (Form::Compact, parse_compact(text)?)
    };
    Ok(RawTicket {
        form,
        bytes: text.as_bytes().to_vec(),
        payload,
        signatures,
    })
}

fn parse_compact(text: &str) -> Result<(Vec<u8>, Vec<RawSignature>), TicketError> {
    let segments: Vec<&str> = text.split('.').collect();
    let [header_b64, payload_b64, signature_b64] = segments[..] else {
        return Err(TicketError::Segments {
            found: segments.len(),
        });
    };
    let header = parse_header(header_b64)?;
    let payload = b64(payload_b64, Part::Payload)?;
    check_signature_b64(signature_b64)?;
    let sig = RawSignature {
        header,
        signing_input: text.as_bytes()[..header_b64.len() + 1 + payload_b64.len()].to_vec(),
        signature_b64: signature_b64.to_owned(),
    };
    Ok((payload, vec![sig]))
}

fn parse_general(text: &str) -> Result<(Vec<u8>, Vec<RawSignature>), TicketError> {
    // Base64url values and the few member names never need escapes; refusing
    // them keeps one signed ticket to one byte string (and one digest).
    if text.contains('\\') {
        return Err(envelope(
            "escape sequences are not allowed in the JSON envelope",
        ));
    }
    let top = object(text.as_bytes(), Part::Envelope)?;
    let mut payload_b64 = None;
    let mut entries = None;
    for (name, value) in &top {
        match (name.as_str(), value) {
            ("payload", Value::String(s)) => payload_b64 = Some(s.as_str()),
            ("signatures", Value::Array(a)) => entries = Some(a),
            ("protected" | "signature" | "header", _) => {
                return Err(envelope(
                    "the flattened JSON serialization is not accepted, use the general one",
                ));
            }
            ("payload" | "signatures", _) => {
                return Err(envelope(format!("{name:?} has the wrong type")));
            }
            _ => return Err(envelope(format!("unknown member {name:?}"))),
        }
    }
    let payload_b64 = payload_b64.ok_or_else(|| envelope("no \"payload\" member"))?;
    let entries = entries.ok_or_else(|| envelope("no \"signatures\" member"))?;
    if entries.is_empty() {
        return Err(envelope("\"signatures\" is empty"));
    }
    if entries.len() > MAX_SIGNATURES {
        return Err(TicketError::TooManySignatures {
            found: entries.len(),
            max: MAX_SIGNATURES,
        });
    }
    let payload = b64(payload_b64, Part::Payload)?;
    let mut signatures = Vec::with_capacity(entries.len());
    for (index, entry) in entries.iter().enumerate() {
        signatures.push(parse_entry(index, entry, payload_b64)?);
    }
    Ok((payload, signatures))
}

fn parse_entry(
    index: usize,
    entry: &Value,
    payload_b64: &str,
) -> Result<RawSignature, TicketError> {
    let Value::Object(members) = entry else {
        return Err(envelope(format!("signatures[{index}] is not an object")));
    };
    let mut protected = None;
    let mut signature = None;
    for (name, value) in members {
        match (name.as_str(), value) {
            ("protected", Value::String(s)) => protected = Some(s.as_str()),
            ("signature", Value::String(s)) => signature = Some(s.as_str()),
            ("header", _) => return Err(TicketError::UnprotectedHeader { index }),
            _ => {
                return Err(envelope(format!(
                    "signatures[{index}].{name} is not expected"
                )));
            }
        }
    }
    let protected = protected
        .ok_or_else(|| envelope(format!("signatures[{index}] has no protected header")))?;
    let signature =
        signature.ok_or_else(|| envelope(format!("signatures[{index}] has no signature")))?;
    let header = parse_header(protected)?;
    check_signature_b64(signature)?;
    Ok(RawSignature {
        header,
        signing_input: format!("{protected}.{payload_b64}").into_bytes(),
        signature_b64: signature.to_owned(),
    })
}

/// Decode and check a protected header: `alg` first (so an unsigned or HMAC
/// ticket says so whatever else is wrong), then no unexpected parameters,
/// then `typ`, then `kid`.
fn parse_header(header_b64: &str) -> Result<Header, TicketError> {
    let raw = b64(header_b64, Part::Header)?;
    let members = object(&raw, Part::Header)?;
    let alg = match members.get("alg") {
        None => {
            return Err(TicketError::Json {
                part: Part::Header,
                reason: "no \"alg\"".into(),
            });
        }
        Some(Value::String(a)) => a.as_str(),
        Some(_) => {
            return Err(TicketError::Json {
                part: Part::Header,
                reason: "\"alg\" is not a string".into(),
            });
        }
    };
    if alg.eq_ignore_ascii_case("none") {
        return Err(TicketError::UnsignedAlg);
    }
    let alg = ALLOWED_ALGS
        .iter()
        .copied()
        .find(|a| a.name() == alg)
        .ok_or_else(|| TicketError::AlgNotAllowed {
            alg: alg.to_owned(),
        })?;
    if let Some(name) = members
        .keys()
        .find(|k| !matches!(k.as_str(), "alg" | "typ" | "kid"))
    {
        return Err(TicketError::HeaderParameter { name: name.clone() });
    }
    // RFC 7515 §4.1.9: media type names compare case-insensitively, and the
    // "application/" prefix may be left out.
    match members.get("typ") {
        Some(Value::String(t))
            if t.eq_ignore_ascii_case(TYP)
                || t.strip_prefix("application/")
                    .is_some_and(|s| s.eq_ignore_ascii_case(TYP)) => {}
        other => {
            return Err(TicketError::WrongType {
                found: other.map(|v| match v {
                    Value::String(s) => s.clone(),
                    v => v.to_string(),
                }),
            });
        }
    }
    let kid = match members.get("kid") {
        Some(Value::String(k)) if !k.is_empty() && k.len() <= 256 => k.clone(),
        None => return Err(TicketError::MissingKid),
        Some(Value::String(k)) if k.is_empty() => return Err(TicketError::MissingKid),
        Some(_) => {
            return Err(TicketError::Json {
                part: Part::Header,
                reason: "kid must be a string of 1 to 256 characters".into(),
            });
        }
    };
    Ok(Header { alg, kid })
}

fn check_signature_b64(s: &str) -> Result<(), TicketError> {
    // Decoded again by the verifier; this pass makes non-canonical or broken
    // encodings a format error instead of a signature failure.
    let sig = b64(s, Part::Signature)?;
    if sig.is_empty() {
        return Err(TicketError::Base64 {
            part: Part::Signature,
        });
    }
    Ok(())
}

/// Strict unpadded base64url: no padding, no whitespace, no other alphabet,
/// zero trailing bits (so one byte string has exactly one encoding).
fn b64(s: &str, part: Part) -> Result<Vec<u8>, TicketError> {
    URL_SAFE_NO_PAD
        .decode(s)
        .map_err(|_| TicketError::Base64 { part })
}

/// Parse a JSON object, refusing repeated member names.
pub(crate) fn object(raw: &[u8], part: Part) -> Result<Map<String, Value>, TicketError> {
    json::check(raw).map_err(|e| match e {
        StrictJsonError::Duplicate(key) => TicketError::DuplicateKey { part, key },
        StrictJsonError::Syntax(reason) => TicketError::Json { part, reason },
    })?;
    match serde_json::from_slice(raw) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(TicketError::Json {
            part,
            reason: "not a JSON object".into(),
        }),
        Err(e) => Err(TicketError::Json {
            part,
            reason: e.to_string(),
        }),
    }
}

fn envelope(reason: impl Into<String>) -> TicketError {
    TicketError::Json {
        part: Part::Envelope,
        reason: reason.into(),
    }
}
