//! Signed provisioning tickets (DESIGN.md, "Signed provisioning ticket";
//! format in docs/ticket.md).
//!
//! A ticket is a JWS (RFC 7515) whose payload is a JWT Claims Set
//! (RFC 7519) with `typ` `keyward-ticket+jwt`, signed with EdDSA over
//! Ed25519 (RFC 8037) or ES256 (RFC 7518 §3.4). Dual-control tickets use the
//! general JSON serialization with one signature per approver.
//!
//! jsonwebtoken (aws-lc backend) does the signature arithmetic and key
//! handling; the parsing in front of it is keyward's own because
//! jsonwebtoken accepts repeated JSON members, ignores unknown header
//! parameters such as `crit`, reads time from the system clock and has no
//! JSON serialization.
//!
//! ```text
//! parse   size, UTF-8, segments, base64url, JSON (no duplicate members), header
//! trust   kid → key (trust store), revoked, issuer window, alg == key type
//! verify  signature(s) → claims → iss, ops, policy, approvals, time, aud, jti
//! ```

mod claims;
mod digest;
mod error;
mod issue;
mod json;
mod keys;
mod ops;
mod parse;
mod replay;
mod trust;
mod verify;

use serde::Serialize;

pub use claims::{Audience, Claims, Device, Evidence, Replaces, VERSION};
pub use digest::{
    Fido2ClientData, PIV_BINDING_CONTEXT, TicketDigest, fido2_client_data, piv_binding_digest,
};
pub use error::{FailureClass, Part, TicketError};
pub use issue::{IssueError, cosign, sign_compact, sign_general};
pub use keys::{KeyError, PublicKey, SigningKey};
pub use ops::{Fido2Op, MAX_OPS, Op, OpKind, PivOp, UnblockOp};
pub use parse::{Form, Header, MAX_SIGNATURES, RawSignature, RawTicket, parse};
pub use replay::{MemoryReplayGuard, NoReplayCheck, ReplayError, ReplayGuard};
pub use trust::{
    IssuerConfig, KeyFile, TrustConfig, TrustError, TrustStore, parse_key_text, read_key_file,
};
pub use verify::{
    DEFAULT_MAX_BYTES, DEFAULT_MAX_LIFETIME_SECS, DEFAULT_SKEW_SECS, MAX_SKEW_SECS, Signer,
    VerifiedTicket, Verifier, VerifierConfigError, VerifyOptions,
};

/// The JWS `typ` of a ticket (RFC 7515 §4.1.9, explicit typing per
/// RFC 8725 §3.11).
pub const TYP: &str = "keyward-ticket+jwt";

/// The signature algorithms a ticket may use; each is tied to one key type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[non_exhaustive]
pub enum TicketAlg {
    /// EdDSA with Ed25519 (RFC 8037 §3.1).
    #[serde(rename = "EdDSA")]
    EdDsa,
    /// ECDSA P-256 SHA-256 (RFC 7518 §3.4).
    #[serde(rename = "ES256")]
    Es256,
}

/// The algorithms accepted, and no others (no `none`, no HMAC, no RSA).
pub const ALLOWED_ALGS: [TicketAlg; 2] = [TicketAlg::EdDsa, TicketAlg::Es256];

impl TicketAlg {
    /// The JWA name (RFC 7518 §3.1, RFC 8037 §3.1).
    pub fn name(self) -> &'static str {
        match self {
            TicketAlg::EdDsa => "EdDSA",
            TicketAlg::Es256 => "ES256",
        }
    }

    pub(crate) fn jwt(self) -> jsonwebtoken::Algorithm {
        match self {
            TicketAlg::EdDsa => jsonwebtoken::Algorithm::EdDSA,
            TicketAlg::Es256 => jsonwebtoken::Algorithm::ES256,
        }
    }
}

impl std::fmt::Display for TicketAlg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Seconds since the epoch as RFC 3339 (UTC), for messages.
pub fn fmt_time(secs: i64) -> String {
    jiff::Timestamp::from_second(secs).map_or_else(|_| format!("@{secs}"), |t| t.to_string())
}
