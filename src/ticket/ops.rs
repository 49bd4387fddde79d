//! The `ops` claim: what a ticket asks keyward to provision, and the
//! well-formedness rules for each operation (docs/ticket.md, "Operations").

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use super::claims::{bad, invalid, text};
use super::error::TicketError;

/// At most this many operations in one ticket.
pub const MAX_OPS: usize = 8;

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
    /// Help-desk unblock of the PIV PIN of the subject's bound key.
    #[serde(rename = "unblock")]
    Unblock(UnblockOp),
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
    /// Unblocking the PIV PIN of a bound key with its PUK.
    Unblock,
}

impl std::fmt::Display for OpKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            OpKind::Fido2 => "fido2",
            OpKind::Piv => "piv",
            OpKind::Replace => "replace",
            OpKind::Unblock => "unblock",
        })
    }
}

impl Op {
    /// The operation's kind.
    pub fn kind(&self) -> OpKind {
        match self {
            Op::Fido2(_) => OpKind::Fido2,
            Op::Piv(_) => OpKind::Piv,
            Op::Unblock(_) => OpKind::Unblock,
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
    /// `p256`, `p384`, `ed25519`, `rsa2048`, `rsa3072` or `rsa4096`.
    pub alg: String,
    /// `default`, `never`, `once` or `always`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pin_policy: Option<String>,
    /// `default`, `never`, `always` or `cached`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub touch_policy: Option<String>,
}

/// A help-desk PIN unblock (docs/lifecycle.md): the PIV PIN of the key
/// bound to `sub` is unblocked with its PUK and set anew. FIDO2 PINs are
/// never unblocked: a blocked FIDO2 PIN is cleared only by a reset, which is
/// a re-enrollment under a new ticket.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnblockOp {
    /// Also set a new PUK, where the station's policy profile allows it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub rotate_puk: bool,
}

impl PivOp {
    /// The slot's key reference byte.
    pub fn slot_byte(&self) -> Option<u8> {
        let b = u8::from_str_radix(&self.slot, 16).ok()?;
        (self.slot.len() == 2 && matches!(b, 0x9a | 0x9c | 0x9d | 0x9e | 0x82..=0x95)).then_some(b)
    }
}

pub(crate) fn check_ops(ops: &[Op]) -> Result<(), TicketError> {
    if ops.is_empty() || ops.len() > MAX_OPS {
        return invalid("ops", format!("must hold 1 to {MAX_OPS} operations"));
    }
    if ops.iter().any(|o| matches!(o, Op::Unblock(_))) && ops.len() > 1 {
        return invalid(
            "ops",
            "an unblock operation stands alone: it cannot be combined with another operation",
        );
    }
    let mut slots = Vec::new();
    let mut rps = Vec::new();
    for op in ops {
        match op {
            Op::Unblock(_) => {}
            Op::Fido2(f) => {
                check_rp_id(&f.rp_id)?;
                if let Some(u) = &f.user {
                    let ok = URL_SAFE_NO_PAD
                        .decode(u)
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
                // The signing key types keyward generates (src/piv/types.rs;
                // rsa3072/rsa4096 need firmware 5.7, checked on the card).
                if !matches!(
                    p.alg.as_str(),
                    "p256" | "p384" | "ed25519" | "rsa2048" | "rsa3072" | "rsa4096"
                ) {
                    return invalid(
                        "ops",
                        format!(
                            "PIV algorithm {:?} is not p256, p384, ed25519, rsa2048, rsa3072 or rsa4096",
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unblock_op_round_trips_and_stands_alone() {
        let op: Op = serde_json::from_str(r#"{"type":"unblock"}"#).unwrap();
        assert_eq!(op, Op::Unblock(UnblockOp { rotate_puk: false }));
        assert_eq!(op.kind(), OpKind::Unblock);
        assert_eq!(OpKind::Unblock.to_string(), "unblock");
        assert_eq!(serde_json::to_string(&op).unwrap(), r#"{"type":"unblock"}"#);
        let op: Op = serde_json::from_str(r#"{"type":"unblock","rotate_puk":true}"#).unwrap();
        assert_eq!(
            serde_json::to_string(&op).unwrap(),
            r#"{"type":"unblock","rotate_puk":true}"#
        );
        assert!(serde_json::from_str::<Op>(r#"{"type":"unblock","pin":"1"}"#).is_err());
        check_ops(std::slice::from_ref(&op)).unwrap();
        let fido = Op::Fido2(Fido2Op {
            rp_id: "example.com".into(),
            user: None,
            user_name: None,
        });
        let e = check_ops(&[op, fido]).unwrap_err();
        assert!(e.to_string().contains("stands alone"), "{e}");
    }
}
