//! Why a ticket was refused: one variant per reason, grouped into the
//! failure classes the CLI maps to exit codes.

use thiserror::Error;

/// Which JOSE part of a ticket a format error is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Part {
    /// The JWS Protected Header (RFC 7515 §4).
    Header,
    /// The JWS Payload, i.e. the JWT Claims Set (RFC 7519 §4).
    Payload,
    /// The JWS Signature (RFC 7515 §2).
    Signature,
    /// The JWS JSON Serialization envelope (RFC 7515 §7.2.1).
    Envelope,
}

impl std::fmt::Display for Part {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Part::Header => "protected header",
            Part::Payload => "payload",
            Part::Signature => "signature",
            Part::Envelope => "JSON envelope",
        })
    }
}

/// The failure classes; each has its own exit code (docs/ticket.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FailureClass {
    /// Not a well-formed keyward ticket (size, encoding, JSON, claims).
    Malformed,
    /// Not signed by a trusted, current key with an allowed algorithm, or not
    /// enough independent approvals.
    Untrusted,
    /// Outside its validity window, or the station clock is not trustworthy.
    Time,
    /// Addressed to another station.
    Audience,
    /// Already consumed.
    Replayed,
    /// Signed correctly, but asks for something its issuer may not grant or
    /// this station does not know.
    NotPermitted,
}

/// A ticket refused by [`crate::ticket::Verifier`]. Every message ends with
/// what to do about it.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum TicketError {
    // --- format -----------------------------------------------------------
    /// Larger than the configured limit; refused before any parsing.
    #[error(
        "ticket is {len} bytes, over the {max}-byte limit; a ticket is small, check that the right file was given"
    )]
    TooLarge { len: usize, max: usize },
    /// Empty input.
    #[error("ticket is empty; give the file the issuer produced")]
    Empty,
    /// The bytes are not UTF-8.
    #[error(
        "ticket is not UTF-8 text (invalid byte at offset {offset}); it is corrupt or not a ticket"
    )]
    NotUtf8 { offset: usize },
    /// Compact serialization with other than three dot-separated segments
    /// (RFC 7515 §7.1); JWE (five segments) and detached payloads included.
    #[error(
        "compact ticket has {found} segments, a JWS has exactly 3 (header.payload.signature); ask the issuer for a new ticket"
    )]
    Segments { found: usize },
    /// A segment is not canonical unpadded base64url (RFC 7515 §2).
    #[error(
        "{part} is not valid unpadded base64url; the ticket was damaged in transit, ask the issuer for a new one"
    )]
    Base64 { part: Part },
    /// A part does not hold well-formed JSON of the right shape.
    #[error(
        "{part} is not valid: {reason}; ask the issuer for a ticket in the keyward-ticket format (docs/ticket.md)"
    )]
    Json { part: Part, reason: String },
    /// A JSON object repeats a member name. RFC 7515 §5.2 and RFC 7519 §7.2
    /// require refusing (or last-wins, which lets two parsers disagree).
    #[error(
        "{part} repeats the JSON member {key:?}; refused because parsers disagree on which copy counts. The ticket is forged or broken"
    )]
    DuplicateKey { part: Part, key: String },

    // --- header -----------------------------------------------------------
    /// `typ` is not `keyward-ticket+jwt` (RFC 7515 §4.1.9, RFC 8725 §3.11).
    #[error(
        "header typ is {found:?}, expected \"keyward-ticket+jwt\"; this is some other kind of token, not a provisioning ticket"
    )]
    WrongType { found: Option<String> },
    /// `alg` is `none`: an unsecured JWS (RFC 7518 §3.6).
    #[error(
        "ticket is unsigned (alg \"none\"); refused: tickets must be signed with EdDSA or ES256"
    )]
    UnsignedAlg,
    /// `alg` other than EdDSA (RFC 8037 §3.1) or ES256 (RFC 7518 §3.4).
    #[error("algorithm {alg:?} is not allowed; tickets must be signed with EdDSA or ES256")]
    AlgNotAllowed { alg: String },
    /// No `kid`, so no key can be chosen from the trust store.
    #[error(
        "header has no kid; the issuer must name its key (kid) so it can be looked up in the trust store"
    )]
    MissingKid,
    /// A header parameter keyward does not accept, e.g. `jwk`, `jku`, `x5u`,
    /// `x5c` (keys come only from the trust store) or `crit` (RFC 7515 §4.1.11).
    #[error(
        "header parameter {name:?} is not accepted in a keyward ticket; the issuer must send only alg, typ and kid"
    )]
    HeaderParameter { name: String },
    /// The JSON serialization carries an unprotected `header` member.
    #[error(
        "signature {index} has an unprotected header; every parameter must be in the protected header"
    )]
    UnprotectedHeader { index: usize },

    // --- keys and signatures ----------------------------------------------
    /// No trusted key has this `kid`.
    #[error(
        "no trusted issuer key has kid {kid:?}; add the issuer's public key to the trust store if it is genuine"
    )]
    UnknownKid { kid: String },
    /// The key is listed as revoked.
    #[error(
        "issuer key {kid:?} of {iss:?} is revoked; ask the issuer for a ticket signed with a current key"
    )]
    RevokedKid { kid: String, iss: String },
    /// The issuer's validity window has not started.
    #[error(
        "issuer {iss:?} is trusted only from {not_before}; check the station clock or the trust store"
    )]
    IssuerNotYetValid { iss: String, not_before: String },
    /// The issuer's validity window has ended.
    #[error(
        "issuer {iss:?} was trusted only until {not_after}; renew the issuer's entry in the trust store"
    )]
    IssuerExpired { iss: String, not_after: String },
    /// The header `alg` is not the one algorithm of the `kid`'s key type.
    #[error(
        "header alg {alg} does not match key {kid:?}, which is {key_alg}; the ticket is forged or the kid is wrong"
    )]
    AlgKeyMismatch {
        alg: String,
        kid: String,
        key_alg: &'static str,
    },
    /// The signature does not verify.
    #[error(
        "signature by key {kid:?} does not verify; the ticket was altered or forged, ask the issuer for a new one"
    )]
    BadSignature { kid: String },
    /// An ES256 signature whose S is above n/2: valid ECDSA, but the twin of
    /// a low-S signature, so one ticket would have two encodings.
    #[error(
        "ES256 signature by key {kid:?} is not in low-S form (S > n/2); the issuer must replace S by n - S before encoding the signature (docs/ticket.md)"
    )]
    HighS { kid: String },
    /// The `iss` claim is not the issuer the key belongs to.
    #[error(
        "ticket claims issuer {claimed:?} but key {kid:?} belongs to {key_iss:?}; the ticket is forged"
    )]
    IssuerMismatch {
        kid: String,
        key_iss: String,
        claimed: String,
    },
    /// More signatures than any dual-control rule needs.
    #[error(
        "ticket carries {found} signatures, at most {max} are accepted; ask the issuer for a ticket with only the required approvals"
    )]
    TooManySignatures { found: usize, max: usize },
    /// Fewer distinct approvals than the ticket or the station requires.
    #[error(
        "ticket needs {required} independent approvals but has {found}; have a second approver co-sign it (keyward ticket cosign)"
    )]
    InsufficientApprovals { required: usize, found: usize },
    /// Two signatures from the same approver.
    #[error(
        "approver {approver:?} signed more than once; dual control needs signatures from different approvers"
    )]
    DuplicateApprover { approver: String },

    // --- claims -----------------------------------------------------------
    /// A required claim is absent.
    #[error("required claim {claim:?} is missing; ask the issuer for a complete ticket")]
    MissingClaim { claim: &'static str },
    /// A claim is present but not acceptable.
    #[error("claim {claim:?} is invalid: {reason}; ask the issuer for a corrected ticket")]
    InvalidClaim { claim: &'static str, reason: String },
    /// The `ver` claim names a format this build does not know.
    #[error(
        "ticket format version {found} is not supported (this keyward reads version 1); upgrade keyward or ask for a version-1 ticket"
    )]
    UnsupportedVersion { found: u64 },

    // --- time -------------------------------------------------------------
    /// `exp` has passed (RFC 7519 §4.1.4).
    #[error(
        "ticket expired at {exp} (now {now}, allowed skew {skew_secs}s); ask the issuer for a new ticket"
    )]
    Expired {
        exp: String,
        now: String,
        skew_secs: u64,
    },
    /// `nbf` is in the future (RFC 7519 §4.1.5).
    #[error("ticket is not valid before {nbf} (now {now}); wait, or check the station clock")]
    NotYetValid { nbf: String, now: String },
    /// `iat` is in the future (RFC 7519 §4.1.6).
    #[error(
        "ticket claims it was issued at {iat}, after now ({now}); the issuer's or this station's clock is wrong"
    )]
    IssuedInFuture { iat: String, now: String },
    /// `exp - iat` exceeds the station's maximum ticket lifetime.
    #[error(
        "ticket lifetime {lifetime_secs}s exceeds the allowed {max_secs}s; tickets must be short-lived, ask for one with a shorter ttl"
    )]
    LifetimeTooLong { lifetime_secs: i64, max_secs: u64 },
    /// The station clock is earlier than a time the ledger already trusted.
    #[error(
        "station clock ({now}) is behind the latest trusted time ({trusted}) by more than the allowed skew; fix the clock before provisioning"
    )]
    ClockRollback { now: String, trusted: String },

    // --- audience, replay, permission -------------------------------------
    /// `aud` does not name this station or one of its groups (RFC 7519 §4.1.3).
    #[error(
        "ticket is for {aud:?}, not for this station ({accepted:?}); use it at the station it was issued for"
    )]
    WrongAudience {
        aud: Vec<String>,
        accepted: Vec<String>,
    },
    /// The `jti` was consumed before.
    #[error(
        "ticket {jti:?} from {iss:?} was already used; a ticket is single-use, ask the issuer for a new one"
    )]
    Replayed { iss: String, jti: String },
    /// The replay store could not answer.
    #[error("replay check failed; the ticket was not accepted, retry once the ledger is available")]
    ReplayStore(#[source] super::replay::ReplayError),
    /// The issuer may not grant this operation.
    #[error(
        "issuer {iss:?} is not allowed to grant {op} operations; ask an issuer that is, or extend its allowed_ops in the trust store"
    )]
    OperationNotAllowed { iss: String, op: String },
    /// The `policy` claim names a profile this station does not have.
    #[error(
        "policy profile {policy:?} is not configured on this station; configure it or ask for a ticket naming a known profile"
    )]
    UnknownPolicy { policy: String },
}

impl TicketError {
    /// The failure class, which decides the CLI exit code.
    pub fn class(&self) -> FailureClass {
        use TicketError::*;
        match self {
            TooLarge { .. }
            | Empty
            | NotUtf8 { .. }
            | Segments { .. }
            | Base64 { .. }
            | Json { .. }
            | DuplicateKey { .. }
            | WrongType { .. }
            | MissingKid
            | HeaderParameter { .. }
            | UnprotectedHeader { .. }
            | MissingClaim { .. }
            | InvalidClaim { .. }
            | UnsupportedVersion { .. }
            | TooManySignatures { .. } => FailureClass::Malformed,
            UnsignedAlg
            | AlgNotAllowed { .. }
            | UnknownKid { .. }
            | RevokedKid { .. }
            | IssuerNotYetValid { .. }
            | IssuerExpired { .. }
            | AlgKeyMismatch { .. }
            | BadSignature { .. }
            | HighS { .. }
            | IssuerMismatch { .. }
            | InsufficientApprovals { .. }
            | DuplicateApprover { .. } => FailureClass::Untrusted,
            Expired { .. }
            | NotYetValid { .. }
            | IssuedInFuture { .. }
            | LifetimeTooLong { .. }
            | ClockRollback { .. } => FailureClass::Time,
            WrongAudience { .. } => FailureClass::Audience,
            Replayed { .. } | ReplayStore(_) => FailureClass::Replayed,
            OperationNotAllowed { .. } | UnknownPolicy { .. } => FailureClass::NotPermitted,
        }
    }

    /// A stable machine-readable name for `--json` output.
    pub fn code(&self) -> &'static str {
        use TicketError::*;
        match self {
            TooLarge { .. } => "too_large",
            Empty => "empty",
            NotUtf8 { .. } => "not_utf8",
            Segments { .. } => "segments",
            Base64 { .. } => "base64",
            Json { .. } => "json",
            DuplicateKey { .. } => "duplicate_key",
            WrongType { .. } => "wrong_typ",
            UnsignedAlg => "alg_none",
            AlgNotAllowed { .. } => "alg_not_allowed",
            MissingKid => "missing_kid",
            HeaderParameter { .. } => "header_parameter",
            UnprotectedHeader { .. } => "unprotected_header",
            UnknownKid { .. } => "unknown_kid",
            RevokedKid { .. } => "revoked_kid",
            IssuerNotYetValid { .. } => "issuer_not_yet_valid",
            IssuerExpired { .. } => "issuer_expired",
            AlgKeyMismatch { .. } => "alg_key_mismatch",
            BadSignature { .. } => "bad_signature",
            HighS { .. } => "high_s",
            IssuerMismatch { .. } => "issuer_mismatch",
            TooManySignatures { .. } => "too_many_signatures",
            InsufficientApprovals { .. } => "insufficient_approvals",
            DuplicateApprover { .. } => "duplicate_approver",
            MissingClaim { .. } => "missing_claim",
            InvalidClaim { .. } => "invalid_claim",
            UnsupportedVersion { .. } => "unsupported_version",
            Expired { .. } => "expired",
            NotYetValid { .. } => "not_yet_valid",
            IssuedInFuture { .. } => "iat_in_future",
            LifetimeTooLong { .. } => "lifetime_too_long",
            ClockRollback { .. } => "clock_rollback",
            WrongAudience { .. } => "wrong_audience",
            Replayed { .. } => "replayed",
            ReplayStore(_) => "replay_store",
            OperationNotAllowed { .. } => "operation_not_allowed",
            UnknownPolicy { .. } => "unknown_policy",
        }
    }
}
