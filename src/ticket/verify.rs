//! The verifier: every check in the order that gives the most precise
//! reason, with the clock, the trust store and the replay store passed in.
//!
//! Order: parse (size, encoding, headers) → clock rollback → per signature:
//! revocation, kid, issuer window, alg/key match, low-S (ES256), signature →
//! only then the payload: claims, issuer, permissions, approvals (distinct
//! approvers and key material), time, audience, replay (per `iss`, `jti`).

use serde::Serialize;
use thiserror::Error;

use super::claims::Claims;
use super::digest::TicketDigest;
use super::error::TicketError;
use super::ops::OpKind;
use super::parse::{self, Form, RawSignature};
use super::replay::{ReplayError, ReplayGuard};
use super::trust::{Issuer, Lookup, TrustStore, TrustedKey};
use super::{TicketAlg, fmt_time};

/// Default size limit for one ticket (both serializations).
pub const DEFAULT_MAX_BYTES: usize = 16 * 1024;
/// Default clock skew allowance.
pub const DEFAULT_SKEW_SECS: u64 = 60;
/// The largest clock skew a station may configure.
pub const MAX_SKEW_SECS: u64 = 300;
/// Default longest lifetime (`exp - iat`) a ticket may have.
pub const DEFAULT_MAX_LIFETIME_SECS: u64 = 24 * 3600;

/// What this station accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyOptions {
    /// This station's id and the groups it belongs to; `aud` must name one.
    pub audiences: Vec<String>,
    /// Size limit applied before parsing.
    pub max_bytes: usize,
    /// Clock skew allowance, at most [`MAX_SKEW_SECS`].
    pub skew_secs: u64,
    /// Longest accepted `exp - iat`.
    pub max_lifetime_secs: u64,
    /// Operations this station always puts under dual control (two
    /// approvers), whatever the ticket's `approvals` says.
    pub dual_control_ops: Vec<OpKind>,
    /// Policy profiles configured here; `None` accepts any well-formed name
    /// (the policy layer then decides).
    pub known_policies: Option<Vec<String>>,
}

impl VerifyOptions {
    /// Defaults for a station with this id: 16 KiB, 60 s skew, 24 h
    /// lifetime, `replace` under dual control.
    pub fn new(station: impl Into<String>) -> Self {
        Self {
            audiences: vec![station.into()],
            max_bytes: DEFAULT_MAX_BYTES,
            skew_secs: DEFAULT_SKEW_SECS,
            max_lifetime_secs: DEFAULT_MAX_LIFETIME_SECS,
            dual_control_ops: vec![OpKind::Replace],
            known_policies: None,
        }
    }
}

/// A verifier that cannot be built from its options.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum VerifierConfigError {
    /// The skew allowance is above the bound.
    #[error(
        "clock skew {skew_secs}s is above the maximum {MAX_SKEW_SECS}s; fix the station clock (NTP) instead of widening the skew"
    )]
    SkewTooLarge { skew_secs: u64 },
    /// No station id.
    #[error("no audience configured; give the station id (--audience)")]
    NoAudience,
    /// No trusted key.
    #[error("the trust store holds no issuer key; configure at least one issuer")]
    EmptyTrustStore,
}

/// Who signed, as proven.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Signer {
    /// Key id.
    pub kid: String,
    /// Approver the key belongs to.
    pub approver: String,
    /// Algorithm used.
    pub alg: TicketAlg,
}

/// A ticket that passed every check. Consume it (in the ledger transaction
/// that records the binding) with [`VerifiedTicket::consume`].
#[derive(Debug, Clone)]
pub struct VerifiedTicket {
    /// The exact bytes that were verified; store these.
    pub bytes: Vec<u8>,
    /// Their digest, bound into the enrollment.
    pub digest: TicketDigest,
    /// The serialization.
    pub form: Form,
    /// The claims.
    pub claims: Claims,
    /// The approvals, in signature order.
    pub signers: Vec<Signer>,
}

impl VerifiedTicket {
    /// Mark the ticket used.
    pub fn consume(&self, guard: &dyn ReplayGuard, now: i64) -> Result<(), TicketError> {
        guard
            .consume(&self.claims.iss, &self.claims.jti, self.claims.exp, now)
            .map_err(|e| match e {
                ReplayError::AlreadyConsumed { iss, jti } => TicketError::Replayed { iss, jti },
                e => TicketError::ReplayStore(e),
            })
    }
}

/// Verifies tickets against one trust store and one station's options.
#[derive(Debug, Clone)]
pub struct Verifier {
    trust: TrustStore,
    opts: VerifyOptions,
}

impl Verifier {
    /// Check the options and build the verifier.
    pub fn new(trust: TrustStore, opts: VerifyOptions) -> Result<Self, VerifierConfigError> {
        if opts.skew_secs > MAX_SKEW_SECS {
            return Err(VerifierConfigError::SkewTooLarge {
                skew_secs: opts.skew_secs,
            });
        }
        if opts.audiences.is_empty() {
            return Err(VerifierConfigError::NoAudience);
        }
        if trust.is_empty() {
            return Err(VerifierConfigError::EmptyTrustStore);
        }
        Ok(Self { trust, opts })
    }

    /// The options in force.
    pub fn options(&self) -> &VerifyOptions {
        &self.opts
    }

    /// Verify `input` at time `now` (seconds since the epoch). Does not
    /// consume the ticket: see [`VerifiedTicket::consume`].
    pub fn verify(
        &self,
        input: &[u8],
        now: i64,
        replay: &dyn ReplayGuard,
    ) -> Result<VerifiedTicket, TicketError> {
        let raw = parse::parse(input, self.opts.max_bytes)?;
        let skew = self.opts.skew_secs as i64;
        let trusted = replay
            .latest_trusted_time()
            .map_err(TicketError::ReplayStore)?;
        if let Some(trusted) = trusted.filter(|t| now < t.saturating_sub(skew)) {
            return Err(TicketError::ClockRollback {
                now: fmt_time(now),
                trusted: fmt_time(trusted),
            });
        }
        let mut proven = Vec::with_capacity(raw.signatures.len());
        for sig in &raw.signatures {
            proven.push(self.check_signature(sig, now)?);
        }
        let claims = Claims::from_payload(&raw.payload)?;
        for (key, issuer) in &proven {
            if issuer.iss != claims.iss {
                return Err(TicketError::IssuerMismatch {
                    kid: key.kid.clone(),
                    key_iss: issuer.iss.clone(),
                    claimed: claims.iss.clone(),
                });
            }
        }
        let issuer = proven[0].1;
        self.check_permissions(&claims, issuer)?;
        self.check_approvals(&claims, &proven)?;
        self.check_time(&claims, now)?;
        self.check_audience(&claims)?;
        if replay
            .is_consumed(&claims.iss, &claims.jti)
            .map_err(TicketError::ReplayStore)?
        {
            return Err(TicketError::Replayed {
                iss: claims.iss,
                jti: claims.jti,
            });
        }
        let signers = proven
            .iter()
            .map(|(k, _)| Signer {
                kid: k.kid.clone(),
                approver: k.approver.clone(),
                alg: k.key.alg(),
            })
            .collect();
        Ok(VerifiedTicket {
            digest: raw.digest(),
            bytes: raw.bytes,
            form: raw.form,
            claims,
            signers,
        })
    }

    fn check_signature(
        &self,
        sig: &RawSignature,
        now: i64,
    ) -> Result<(&TrustedKey, &Issuer), TicketError> {
        let kid = &sig.header.kid;
        let (key, issuer) = match self.trust.lookup(kid) {
            Lookup::Found(k, i) => (k, i),
            Lookup::Revoked(i) => {
                return Err(TicketError::RevokedKid {
                    kid: kid.clone(),
                    iss: i.iss.clone(),
                });
            }
            Lookup::Unknown => return Err(TicketError::UnknownKid { kid: kid.clone() }),
        };
        if let Some(nb) = issuer.not_before.filter(|nb| now < *nb) {
            return Err(TicketError::IssuerNotYetValid {
                iss: issuer.iss.clone(),
                not_before: fmt_time(nb),
            });
        }
        if let Some(na) = issuer.not_after.filter(|na| now > *na) {
            return Err(TicketError::IssuerExpired {
                iss: issuer.iss.clone(),
                not_after: fmt_time(na),
            });
        }
        // The key type fixes the algorithm (RFC 8725 §3.1): never take the
        // header's word for which verifier to run.
        if sig.header.alg != key.key.alg() {
            return Err(TicketError::AlgKeyMismatch {
                alg: sig.header.alg.name().to_owned(),
                kid: kid.clone(),
                key_alg: key.key.alg().name(),
            });
        }
        if key.key.alg() == TicketAlg::Es256 && !super::keys::es256_low_s(&sig.signature_b64) {
            return Err(TicketError::HighS { kid: kid.clone() });
        }
        let ok = jsonwebtoken::crypto::verify(
            &sig.signature_b64,
            &sig.signing_input,
            &key.decoding,
            key.key.alg().jwt(),
        )
        .unwrap_or(false);
        if !ok {
            return Err(TicketError::BadSignature { kid: kid.clone() });
        }
        Ok((key, issuer))
    }

    fn check_approvals(
        &self,
        claims: &Claims,
        proven: &[(&TrustedKey, &Issuer)],
    ) -> Result<(), TicketError> {
        // One approval per person and per key: the approver names must
        // differ, and so must the key material (RFC 7638 thumbprint), so one
        // key listed under two kids never counts twice.
        let mut approvers: Vec<&str> = Vec::with_capacity(proven.len());
        let mut material: Vec<&str> = Vec::with_capacity(proven.len());
        for (key, _) in proven {
            if approvers.contains(&key.approver.as_str())
                || material.contains(&key.thumbprint.as_str())
            {
                return Err(TicketError::DuplicateApprover {
                    approver: key.approver.clone(),
                });
            }
            approvers.push(&key.approver);
            material.push(&key.thumbprint);
        }
        let station_dual = claims
            .op_kinds()
            .iter()
            .any(|k| self.opts.dual_control_ops.contains(k));
        let required = usize::from(claims.approvals).max(if station_dual { 2 } else { 1 });
        if approvers.len() < required {
            return Err(TicketError::InsufficientApprovals {
                required,
                found: approvers.len(),
            });
        }
        Ok(())
    }

    fn check_time(&self, c: &Claims, now: i64) -> Result<(), TicketError> {
        let skew = self.opts.skew_secs as i64;
        let lifetime = c.exp - c.iat.min(c.nbf);
        if lifetime > self.opts.max_lifetime_secs as i64 {
            return Err(TicketError::LifetimeTooLong {
                lifetime_secs: lifetime,
                max_secs: self.opts.max_lifetime_secs,
            });
        }
        if c.iat > now.saturating_add(skew) {
            return Err(TicketError::IssuedInFuture {
                iat: fmt_time(c.iat),
                now: fmt_time(now),
            });
        }
        if c.nbf > now.saturating_add(skew) {
            return Err(TicketError::NotYetValid {
                nbf: fmt_time(c.nbf),
                now: fmt_time(now),
            });
        }
        if now.saturating_sub(skew) >= c.exp {
            return Err(TicketError::Expired {
                exp: fmt_time(c.exp),
                now: fmt_time(now),
                skew_secs: self.opts.skew_secs,
            });
        }
        Ok(())
    }

    fn check_audience(&self, c: &Claims) -> Result<(), TicketError> {
        let aud = c.aud.values();
        if aud.iter().any(|a| self.opts.audiences.contains(a)) {
            return Ok(());
        }
        Err(TicketError::WrongAudience {
            aud: aud.to_vec(),
            accepted: self.opts.audiences.clone(),
        })
    }

    fn check_permissions(&self, c: &Claims, issuer: &Issuer) -> Result<(), TicketError> {
        if let Some(kind) = c
            .op_kinds()
            .into_iter()
            .find(|k| !issuer.allowed_ops.contains(k))
        {
            return Err(TicketError::OperationNotAllowed {
                iss: issuer.iss.clone(),
                op: kind.to_string(),
            });
        }
        if let Some(known) = &self.opts.known_policies
            && !known.contains(&c.policy)
        {
            return Err(TicketError::UnknownPolicy {
                policy: c.policy.clone(),
            });
        }
        Ok(())
    }
}
