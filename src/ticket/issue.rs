//! Issuing tickets, for tests, the CLI and small deployments: the compact
//! serialization (RFC 7515 §7.1) for one signature, the general JSON
//! serialization (RFC 7515 §7.2.1) for dual control, and co-signing.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use thiserror::Error;

use super::TYP;
use super::claims::Claims;
use super::error::TicketError;
use super::keys::{KeyError, SigningKey};
use super::parse::{self, Form, MAX_SIGNATURES};

/// A ticket that cannot be issued.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum IssueError {
    /// The claims are not well-formed: keyward never signs what it would refuse.
    #[error("the claims would be refused by a verifier")]
    Claims(#[source] TicketError),
    /// The key failed.
    #[error("signing failed")]
    Key(#[source] KeyError),
    /// The ticket to co-sign is not a ticket.
    #[error("the ticket to co-sign cannot be read")]
    Parse(#[source] TicketError),
    /// The kid already signed the ticket.
    #[error("key {kid:?} already signed this ticket; a second approver must use their own key")]
    AlreadySigned { kid: String },
    /// No more room for signatures.
    #[error("the ticket already has {MAX_SIGNATURES} signatures")]
    Full,
    /// No signer given.
    #[error("no signing key given")]
    NoSigner,
}

/// The protected header for `key` and `kid`, base64url-encoded.
fn protected(key: &SigningKey, kid: &str) -> String {
    // Members in a fixed order; any order verifies (the bytes are signed).
    let header = json!({"alg": key.alg().name(), "kid": kid, "typ": TYP});
    URL_SAFE_NO_PAD.encode(header.to_string())
}

fn payload_b64(claims: &Claims) -> Result<String, IssueError> {
    claims.check().map_err(IssueError::Claims)?;
    let json = serde_json::to_vec(claims).map_err(|e| {
        IssueError::Claims(TicketError::Json {
            part: super::error::Part::Payload,
            reason: e.to_string(),
        })
    })?;
    Ok(URL_SAFE_NO_PAD.encode(json))
}

/// Sign `claims` with one key: a compact ticket.
pub fn sign_compact(claims: &Claims, key: &SigningKey, kid: &str) -> Result<String, IssueError> {
    let input = format!("{}.{}", protected(key, kid), payload_b64(claims)?);
    let sig = key.sign(input.as_bytes()).map_err(IssueError::Key)?;
    Ok(format!("{input}.{sig}"))
}

/// Sign `claims` with each `(key, kid)`: a general JSON ticket (even with
/// one signer, so others can co-sign).
pub fn sign_general(
    claims: &Claims,
    signers: &[(&SigningKey, &str)],
) -> Result<String, IssueError> {
    if signers.is_empty() {
        return Err(IssueError::NoSigner);
    }
    let payload = payload_b64(claims)?;
    let mut sigs = Vec::new();
    for (key, kid) in signers {
        sigs.push(signature_entry(key, kid, &payload)?);
    }
    Ok(json!({"payload": payload, "signatures": sigs}).to_string())
}

fn signature_entry(key: &SigningKey, kid: &str, payload: &str) -> Result<Value, IssueError> {
    let p = protected(key, kid);
    let sig = key
        .sign(format!("{p}.{payload}").as_bytes())
        .map_err(IssueError::Key)?;
    Ok(json!({"protected": p, "signature": sig}))
}

/// Add a signature by `key`/`kid` to a ticket (compact or general), giving a
/// general JSON ticket. Checks the ticket's structure, not its signatures.
pub fn cosign(ticket: &[u8], key: &SigningKey, kid: &str) -> Result<String, IssueError> {
    let raw = parse::parse(ticket, usize::MAX).map_err(IssueError::Parse)?;
    if raw.signatures.iter().any(|s| s.header.kid == kid) {
        return Err(IssueError::AlreadySigned {
            kid: kid.to_owned(),
        });
    }
    if raw.signatures.len() >= MAX_SIGNATURES {
        return Err(IssueError::Full);
    }
    let text = String::from_utf8_lossy(&raw.bytes);
    let mut entries = Vec::new();
    let payload = match raw.form {
        Form::Compact => {
            let mut parts = text.split('.');
            let (h, p, s) = (parts.next(), parts.next(), parts.next());
            let (Some(h), Some(p), Some(s)) = (h, p, s) else {
                return Err(IssueError::Parse(TicketError::Segments { found: 0 }));
            };
            entries.push(json!({"protected": h, "signature": s}));
            p.to_owned()
        }
        Form::General => {
            let v: Value = serde_json::from_slice(&raw.bytes).map_err(|e| {
                IssueError::Parse(TicketError::Json {
                    part: super::error::Part::Envelope,
                    reason: e.to_string(),
                })
            })?;
            entries.extend(v["signatures"].as_array().cloned().unwrap_or_default());
            v["payload"].as_str().unwrap_or_default().to_owned()
        }
    };
    entries.push(signature_entry(key, kid, &payload)?);
    Ok(json!({"payload": payload, "signatures": entries}).to_string())
}
