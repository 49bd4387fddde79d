//! The claims of a version-1 ticket (docs/ticket.md) and their
//! well-formedness rules. Registered claims follow RFC 7519 §4.1; the rest
//! are keyward's private claims (RFC 7519 §4.3).

use serde::{Deserialize, Serialize};

use super::error::{Part, TicketError};
use super::json::{self, StrictJsonError};
use super::parse::MAX_SIGNATURES;

/// The ticket format version this build reads and writes (`ver` claim).
pub const VERSION: u64 = 1;

/// At most this many operations in one ticket.
pub const MAX_OPS: usize = 8;

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

/// One thing to provision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
#[non_exhaustive]
pub enum Op {
    /// Create a FIDO2 credential.
    #[serde(rename = "fido2")]
    Fido2(Fido2Op),
    /// Generate a PIV key in a slot.
    #[serde(rename = "piv")]
    Piv(PivOp),
}

/// The operation kinds an issuer may be allowed to grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum OpKind {
    /// FIDO2 credential creation.
    Fido2,
    /// PIV key generation.
    Piv,
    /// Replacing (and so revoking) an existing device: a ticket with `replaces`.
    Replace,
}

impl std::fmt::Display for OpKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            OpKind::Fido2 => "fido2",
            OpKind::Piv => "piv",
            OpKind::Replace => "replace",
        })
    }
}

impl Op {
    /// The operation's kind.
    pub fn kind(&self) -> OpKind {
        match self {
            Op::Fido2(_) => OpKind::Fido2,
            Op::Piv(_) => OpKind::Piv,
        }
    }
}

/// A FIDO2 credential for one relying party.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fido2Op {
    /// Relying party id, a lowercase DNS name (WebAuthn §5.4.2).
    pub rp_id: String,
    /// User handle, unpadded base64url of 1–64 bytes (CTAP 2.1 §6.1,
    /// PublicKeyCredentialUserEntity.id); absent: the workflow derives one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// User name shown by the authenticator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_name: Option<String>,
}

/// A PIV key to generate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PivOp {
    /// Slot in hex: `9a`, `9c`, `9d`, `9e` or a retired slot `82`–`95`
    /// (SP 800-73-4 Part 1 Table 4b).
    pub slot: String,
    /// `p256`, `p384`, `ed25519` or `rsa2048`.
    pub alg: String,
    /// `default`, `never`, `once` or `always`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pin_policy: Option<String>,
    /// `default`, `never`, `always` or `cached`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub touch_policy: Option<String>,
}

impl PivOp {
    /// The slot's key reference byte.
    pub fn slot_byte(&self) -> Option<u8> {
        let b = u8::from_str_radix(&self.slot, 16).ok()?;
        (self.slot.len() == 2 && matches!(b, 0x9a | 0x9c | 0x9d | 0x9e | 0x82..=0x95)).then_some(b)
    }
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
        text("sub", &self.sub, 256)?;
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
        if self.exp <= self.nbf || self.exp <= self.iat {
            return invalid("exp", "must be later than iat and nbf");
        }
        self.check_evidence()?;
        check_ops(&self.ops)?;
        if let Some(r) = &self.replaces {
            check_replaces(r)?;
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

fn check_ops(ops: &[Op]) -> Result<(), TicketError> {
    if ops.is_empty() || ops.len() > MAX_OPS {
        return invalid("ops", format!("must hold 1 to {MAX_OPS} operations"));
    }
    let mut slots = Vec::new();
    let mut rps = Vec::new();
    for op in ops {
        match op {
            Op::Fido2(f) => {
                check_rp_id(&f.rp_id)?;
                if let Some(u) = &f.user {
                    let ok = base64::Engine::decode(
                        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
                        u,
                    )
                    .is_ok_and(|b| (1..=64).contains(&b.len()));
                    if !ok {
                        return invalid(
                            "ops",
                            "fido2 user must be unpadded base64url of 1 to 64 bytes",
                        );
                    }
                }
                if let Some(n) = &f.user_name {
                    text("ops", n, 64)?;
                }
                if rps.contains(&&f.rp_id) {
                    return invalid("ops", format!("two fido2 operations for rp_id {}", f.rp_id));
                }
                rps.push(&f.rp_id);
            }
            Op::Piv(p) => {
                let slot = p.slot_byte().ok_or_else(|| {
                    bad(
                        "ops",
                        format!("PIV slot {:?} is not 9a, 9c, 9d, 9e or 82-95", p.slot),
                    )
                })?;
                if !matches!(p.alg.as_str(), "p256" | "p384" | "ed25519" | "rsa2048") {
                    return invalid(
                        "ops",
                        format!(
                            "PIV algorithm {:?} is not p256, p384, ed25519 or rsa2048",
                            p.alg
                        ),
                    );
                }
                if p.pin_policy
                    .as_deref()
                    .is_some_and(|v| !matches!(v, "default" | "never" | "once" | "always"))
                {
                    return invalid(
                        "ops",
                        "PIV pin_policy must be default, never, once or always",
                    );
                }
                if p.touch_policy
                    .as_deref()
                    .is_some_and(|v| !matches!(v, "default" | "never" | "always" | "cached"))
                {
                    return invalid(
                        "ops",
                        "PIV touch_policy must be default, never, always or cached",
                    );
                }
                if slots.contains(&slot) {
                    return invalid("ops", format!("two PIV operations for slot {}", p.slot));
                }
                slots.push(slot);
            }
        }
    }
    Ok(())
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

/// A WebAuthn RP ID is a valid domain string (WebAuthn §5.4.2 / URL
/// standard); keyward asks for its lowercase ASCII (A-label) form.
fn check_rp_id(rp: &str) -> Result<(), TicketError> {
    let ok = !rp.is_empty()
        && rp.len() <= 253
        && rp.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        });
    if ok {
        Ok(())
    } else {
        invalid(
            "ops",
            format!("fido2 rp_id {rp:?} is not a lowercase DNS name"),
        )
    }
}

/// Printable, non-empty, bounded text.
fn text(claim: &'static str, s: &str, max: usize) -> Result<(), TicketError> {
    if s.is_empty() || s.len() > max || s.chars().any(char::is_control) {
        return invalid(claim, format!("must be 1 to {max} bytes of printable text"));
    }
    Ok(())
}

fn bad(claim: &'static str, reason: impl Into<String>) -> TicketError {
    TicketError::InvalidClaim {
        claim,
        reason: reason.into(),
    }
}

fn invalid<T>(claim: &'static str, reason: impl Into<String>) -> Result<T, TicketError> {
    Err(bad(claim, reason))
}
