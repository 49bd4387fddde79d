//! The claims of a version-1 ticket (docs/ticket.md) and their
//! well-formedness rules. Registered claims follow RFC 7519 §4.1; the rest
//! are keyward's private claims (RFC 7519 §4.3).

use serde::{Deserialize, Serialize};

use super::error::{Part, TicketError};
use super::json::{self, StrictJsonError};
use super::ops::{Op, OpKind, check_ops};
use super::parse::MAX_SIGNATURES;

/// The largest NumericDate accepted (9999-12-31T23:59:59Z): keeps all time
/// arithmetic far from overflow.
pub const MAX_NUMERIC_DATE: i64 = 253_402_300_799;

/// The ticket format version this build reads and writes (`ver` claim).
pub const VERSION: u64 = 1;

/// `aud` (RFC 7519 §4.1.3): one station or group, or several.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    /// A single string.
    One(String),
    /// An array of strings.
    Many(Vec<String>),
}

impl Audience {
    /// All audience values.
    pub fn values(&self) -> &[String] {
        match self {
            Audience::One(s) => std::slice::from_ref(s),
            Audience::Many(v) => v,
        }
    }
}

/// How and by whom the subject's identity was verified.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Evidence {
    /// Method, a short token such as `in_person_document`, `remote_video`,
    /// `existing_credential`.
    pub method: String,
    /// Who verified: an operator or system identity.
    pub verifier: String,
    /// When (NumericDate), not after `iat`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<i64>,
    /// A reference into the identity authority's records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
}

/// The device (or credential) a replacement ticket retires, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Replaces {
    /// Serial of the device being replaced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial: Option<u32>,
    /// The ledger binding id being replaced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binding: Option<String>,
    /// `lost`, `stolen`, `damaged`, `compromised` or `retired`.
    pub reason: String,
}

/// A device pre-assigned to this ticket (bulk issuance).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Device {
    /// The serial the key must report.
    pub serial: u32,
    /// Expected model, informational.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
}

/// The claims of a well-formed version-1 ticket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Claims {
    /// Format version, [`VERSION`].
    pub ver: u64,
    /// Issuer (RFC 7519 §4.1.1): must own the signing key.
    pub iss: String,
    /// Subject (RFC 7519 §4.1.2): the stable identity the key is for.
    pub sub: String,
    /// Audience (RFC 7519 §4.1.3): station id or group.
    pub aud: Audience,
    /// Issued at (RFC 7519 §4.1.6), seconds since the epoch.
    pub iat: i64,
    /// Not before (RFC 7519 §4.1.5).
    pub nbf: i64,
    /// Expiry (RFC 7519 §4.1.4).
    pub exp: i64,
    /// Ticket id (RFC 7519 §4.1.7): single use per issuer.
    pub jti: String,
    /// Identity assurance level, 1–3 (NIST SP 800-63A).
    pub ial: u8,
    /// How identity was verified.
    pub evidence: Evidence,
    /// What to provision, in order.
    pub ops: Vec<Op>,
    /// The device being replaced, for a replacement.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaces: Option<Replaces>,
    /// A pre-assigned device.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<Device>,
    /// Name of the local policy profile to apply.
    pub policy: String,
    /// Independent approvals (signatures by distinct approvers) required;
    /// 1 when absent, 2 or more makes this a dual-control ticket.
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub approvals: u8,
}

fn one() -> u8 {
    1
}

fn is_one(n: &u8) -> bool {
    *n == 1
}

/// Every claim optional, so that a missing one is reported by name.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawClaims {
    ver: Option<u64>,
    iss: Option<String>,
    sub: Option<String>,
    aud: Option<Audience>,
    iat: Option<i64>,
    nbf: Option<i64>,
    exp: Option<i64>,
    jti: Option<String>,
    ial: Option<u8>,
    evidence: Option<Evidence>,
    ops: Option<Vec<Op>>,
    replaces: Option<Replaces>,
    device: Option<Device>,
    policy: Option<String>,
    approvals: Option<u8>,
}

macro_rules! required {
    ($raw:ident . $field:ident) => {
        $raw.$field.ok_or(TicketError::MissingClaim {
            claim: stringify!($field),
        })?
    };
}

impl Claims {
    /// Parse a decoded payload: no repeated members, no unknown claims, every
    /// required claim present and well-formed. Time, audience and trust are
    /// the verifier's business.
    pub fn from_payload(payload: &[u8]) -> Result<Self, TicketError> {
        json::check(payload).map_err(|e| match e {
            StrictJsonError::Duplicate(key) => TicketError::DuplicateKey {
                part: Part::Payload,
                key,
            },
            StrictJsonError::Syntax(reason) => TicketError::Json {
                part: Part::Payload,
                reason,
            },
        })?;
        let raw: RawClaims = serde_json::from_slice(payload).map_err(|e| TicketError::Json {
            part: Part::Payload,
            reason: e.to_string(),
        })?;
        let ver = required!(raw.ver);
        if ver != VERSION {
            return Err(TicketError::UnsupportedVersion { found: ver });
        }
        let claims = Claims {
            ver,
            iss: required!(raw.iss),
            sub: required!(raw.sub),
            aud: required!(raw.aud),
            iat: required!(raw.iat),
            nbf: required!(raw.nbf),
            exp: required!(raw.exp),
            jti: required!(raw.jti),
            ial: required!(raw.ial),
            evidence: required!(raw.evidence),
            ops: required!(raw.ops),
            replaces: raw.replaces,
            device: raw.device,
            policy: required!(raw.policy),
            approvals: raw.approvals.unwrap_or(1),
        };
        claims.check()?;
        Ok(claims)
    }

    /// Check well-formedness (the rules in docs/ticket.md). The issuing side
    /// calls this too, so keyward never signs what it would refuse.
    pub fn check(&self) -> Result<(), TicketError> {
        text("iss", &self.iss, 256)?;
        subject("sub", &self.sub)?;
        let aud = self.aud.values();
        if aud.is_empty() || aud.len() > 16 {
            return invalid("aud", "must name 1 to 16 stations or groups");
        }
        for a in aud {
            text("aud", a, 128)?;
        }
        if !(16..=128).contains(&self.jti.len())
            || !self
                .jti
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.:~".contains(&b))
        {
            return invalid(
                "jti",
                "must be 16 to 128 characters of A-Z a-z 0-9 - _ . : ~ (use a UUID or 128 random bits)",
            );
        }
        if !(1..=3).contains(&self.ial) {
            return invalid(
                "ial",
                format!(
                    "{} is not an identity assurance level (1, 2 or 3)",
                    self.ial
                ),
            );
        }
        for (claim, t) in [("iat", self.iat), ("nbf", self.nbf), ("exp", self.exp)] {
            if !(0..=MAX_NUMERIC_DATE).contains(&t) {
                return invalid(claim, "must be a NumericDate between 1970 and 9999");
            }
        }
        if self.exp <= self.nbf || self.exp <= self.iat {
            return invalid("exp", "must be later than iat and nbf");
        }
        self.check_evidence()?;
        check_ops(&self.ops)?;
        if let Some(r) = &self.replaces {
            check_replaces(r)?;
        }
        if self.replaces.is_some() && self.ops.iter().any(|o| matches!(o, Op::Unblock(_))) {
            return invalid("replaces", "an unblock ticket replaces no device");
        }
        if let Some(m) = self.device.as_ref().and_then(|d| d.model.as_ref()) {
            text("device", m, 64)?;
        }
        if self.policy.is_empty()
            || self.policy.len() > 64
            || !self
                .policy
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        {
            return invalid(
                "policy",
                "must be a profile name of 1 to 64 characters A-Z a-z 0-9 - _ .",
            );
        }
        if self.approvals == 0 || usize::from(self.approvals) > MAX_SIGNATURES {
            return invalid("approvals", format!("must be 1 to {MAX_SIGNATURES}"));
        }
        Ok(())
    }

    fn check_evidence(&self) -> Result<(), TicketError> {
        let e = &self.evidence;
        if e.method.is_empty()
            || e.method.len() > 64
            || !e
                .method
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_:-".contains(&b))
        {
            return invalid(
                "evidence",
                "method must be a lowercase token such as in_person_document",
            );
        }
        text("evidence", &e.verifier, 256)?;
        if let Some(r) = &e.reference {
            text("evidence", r, 256)?;
        }
        if e.time.is_some_and(|t| t > self.iat) {
            return invalid(
                "evidence",
                "identity was verified after the ticket was issued",
            );
        }
        Ok(())
    }

    /// The operation kinds this ticket asks for, including `replace`.
    pub fn op_kinds(&self) -> Vec<OpKind> {
        let mut kinds: Vec<OpKind> = self.ops.iter().map(Op::kind).collect();
        if self.replaces.is_some() {
            kinds.push(OpKind::Replace);
        }
        kinds.dedup();
        kinds
    }
}

fn check_replaces(r: &Replaces) -> Result<(), TicketError> {
    if r.serial.is_none() && r.binding.is_none() {
        return invalid(
            "replaces",
            "must name the device (serial) or the binding being replaced",
        );
    }
    if let Some(b) = &r.binding {
        text("replaces", b, 128)?;
    }
    if !matches!(
        r.reason.as_str(),
        "lost" | "stolen" | "damaged" | "compromised" | "retired"
    ) {
        return invalid(
            "replaces",
            "reason must be lost, stolen, damaged, compromised or retired",
        );
    }
    Ok(())
}

/// Printable, non-empty, bounded text.
pub(crate) fn text(claim: &'static str, s: &str, max: usize) -> Result<(), TicketError> {
    if s.is_empty() || s.len() > max || s.chars().any(char::is_control) {
        return invalid(claim, format!("must be 1 to {max} bytes of printable text"));
    }
    Ok(())
}

/// Format characters (General_Category=Cf, Unicode 15.1
/// `DerivedGeneralCategory.txt`), which include every bidirectional control
/// (`Bidi_Control=Yes`: U+061C, U+200E-U+200F, U+202A-U+202E,
/// U+2066-U+2069), plus the line and paragraph separators (Zl, Zp). Each is
/// invisible or reorders text, so two identities that look alike would be
/// different byte strings, or one would display as another.
const FORMAT_OR_BIDI: &[(u32, u32)] = &[
    (0x00AD, 0x00AD),
    (0x0600, 0x0605),
    (0x061C, 0x061C),
    (0x06DD, 0x06DD),
    (0x070F, 0x070F),
    (0x0890, 0x0891),
    (0x08E2, 0x08E2),
    (0x180E, 0x180E),
    (0x200B, 0x200F),
    (0x2028, 0x202E),
    (0x2060, 0x2064),
    (0x2066, 0x206F),
    (0xFEFF, 0xFEFF),
    (0xFFF9, 0xFFFB),
    (0x110BD, 0x110BD),
    (0x110CD, 0x110CD),
    (0x13430, 0x1343F),
    (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A),
    (0xE0001, 0xE0001),
    (0xE0020, 0xE007F),
];

fn is_format_or_bidi(c: char) -> bool {
    let c = u32::from(c);
    FORMAT_OR_BIDI
        .iter()
        .any(|&(lo, hi)| (lo..=hi).contains(&c))
}

/// The subject: printable text as [`text`], without format or bidi
/// characters, and in Unicode Normalization Form C (UAX #15), so one
/// identity has one byte string in the ledger and in the registry.
pub(crate) fn subject(claim: &'static str, s: &str) -> Result<(), TicketError> {
    text(claim, s, 256)?;
    if let Some(c) = s.chars().find(|&c| is_format_or_bidi(c)) {
        return invalid(
            claim,
            format!(
                "contains the invisible format or bidirectional control character U+{:04X}; an identity must be visible text",
                u32::from(c)
            ),
        );
    }
    if !unicode_normalization::is_nfc(s) {
        return invalid(
            claim,
            "is not in Unicode Normalization Form C (NFC); the issuer must normalize identities to NFC",
        );
    }
    Ok(())
}

pub(crate) fn bad(claim: &'static str, reason: impl Into<String>) -> TicketError {
    TicketError::InvalidClaim {
        claim,
        reason: reason.into(),
    }
}

pub(crate) fn invalid<T>(claim: &'static str, reason: impl Into<String>) -> Result<T, TicketError> {
    Err(bad(claim, reason))
}
