//! Certification path validation (RFC 5280 §6, reduced to what attestation
//! needs): build a path from a leaf through the supplied intermediates to a
//! trust anchor, checking at a given instant every certificate's validity
//! period, signature, CA status (basicConstraints, pathLenConstraint) and
//! keyUsage keyCertSign. The trust anchor's own basicConstraints,
//! pathLenConstraint and keyUsage bind too (a CA:FALSE certificate or a
//! root with pathLen 0 above an intermediate anchors nothing); its dates are
//! not checked (RFC 5280 §6.1.1 (d)). Name constraints, policies and
//! revocation are not processed (attestation PKIs use none of them; MDS3
//! status reports take the place of revocation).
//!
//! Path building is a bounded depth-first search, so a hostile pile of
//! cross-signed intermediates cannot make it run long (the budget idea of
//! webpki `verify_cert.rs`, after golang CVE-2018-16875).
//!
//! One deliberate exception: a YubiKey PIV slot attestation is issued by the
//! device's F9 certificate, which on YubiKey 4 firmware carries no
//! basicConstraints at all. [`PathOptions::yubikey_f9`] names the F9
//! certificate the device supplied; that one certificate, and no other, is
//! accepted without basicConstraints, directly above the leaf, when it is
//! not itself a slot attestation certificate and a CA listed in
//! [`PathOptions::f9_issuers`] (a Yubico PIV attestation CA) issued it.
//! This is why keyward does not use rustls-webpki, which rejects that
//! certificate.

use std::time::SystemTime;

use x509_cert::ext::pkix::KeyUsages;

use super::anchors::{Anchor, TrustStore};
use super::cert::{Cert, CertError, rfc3339};
use super::sig::{EcdsaEncoding, PublicKey, SigAlg, SigError};

/// Longest path accepted, leaf and anchor included.
pub const MAX_PATH_LEN: usize = 6;
/// Most signature checks one validation may spend.
pub const SIGNATURE_BUDGET: usize = 64;

/// Why no valid path was found. When several candidate paths fail, the
/// error of the deepest one is reported.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PathError {
    #[error("{subject:?} expired at {not_after} (checked at {time})")]
    CertExpired {
        subject: String,
        time: String,
        not_after: String,
    },
    #[error("{subject:?} is not valid before {not_before} (checked at {time})")]
    CertNotValidYet {
        subject: String,
        time: String,
        not_before: String,
    },
    #[error(
        "no trusted or supplied certificate issued {subject:?} (issuer {issuer:?}); add its root with --roots"
    )]
    UnknownIssuer { subject: String, issuer: String },
    #[error("{subject:?} is used as a CA but is not one (basicConstraints)")]
    NotCa { subject: String },
    #[error("{subject:?} may not sign certificates (keyUsage lacks keyCertSign)")]
    KeyUsage { subject: String },
    #[error("path through {subject:?} is longer than its pathLenConstraint allows")]
    PathLenExceeded { subject: String },
    #[error("signature on {subject:?} by {issuer:?} is invalid: {source}")]
    BadSignature {
        subject: String,
        issuer: String,
        source: SigError,
    },
    #[error("{subject:?} has an unprocessed critical extension {oid}")]
    UnknownCriticalExtension { subject: String, oid: String },
    #[error("{subject:?}: {reason}")]
    Malformed { subject: String, reason: String },
    #[error(
        "the chain ends at {anchor:?}, which is not among the attestationRootCertificates of the MDS entry for {model}: the certificate belongs to another vendor, and a key naming this model must chain to the model's own roots"
    )]
    OutsideMdsEntry { model: String, anchor: String },
    #[error("path building gave up after {0} signature checks or {MAX_PATH_LEN} certificates")]
    BudgetExceeded(usize),
    #[error(
        "{subject:?} has no basicConstraints and is not accepted as a YubiKey F9 device certificate: {reason}"
    )]
    F9Exception { subject: String, reason: String },
}

/// Options of one validation.
#[derive(Debug, Clone, Copy, Default)]
pub struct PathOptions<'a> {
    /// The device-supplied YubiKey PIV F9 certificate: it alone may issue
    /// the leaf without basicConstraints. Only for PIV slot attestations.
    pub yubikey_f9: Option<&'a Cert>,
    /// Subjects of the CAs that may issue such an F9 certificate.
    pub f9_issuers: &'a [&'a str],
    /// Critical extensions of the leaf that the caller processes itself.
    pub leaf_known_critical: &'a [&'a str],
}

/// Subject CN prefix of a YubiKey PIV slot attestation certificate.
pub const SLOT_ATTESTATION_CN: &str = "YubiKey PIV Attestation ";
/// The Yubico PIV policy extension, carried only by slot attestations.
const OID_SLOT_POLICY: &str = "1.3.6.1.4.1.41482.3.8";

/// A validated path.
#[derive(Debug, Clone)]
pub struct ValidPath {
    /// Subjects from the leaf up to and including the trust anchor.
    pub subjects: Vec<String>,
    /// The anchor's subject.
    pub anchor: String,
    /// The anchor certificate's DER.
    pub anchor_der: Vec<u8>,
    /// Where the anchor came from (file name, "bundled", "MDS ...").
    pub anchor_source: String,
    /// Whether the F9 exception was used.
    pub used_f9_exception: bool,
}

struct Search<'a> {
    stores: &'a [&'a TrustStore],
    extra: &'a [Cert],
    at: SystemTime,
    opts: PathOptions<'a>,
    sigs: usize,
    best: Option<(usize, PathError)>,
}

/// Validate `leaf` to an anchor of `store`, with `intermediates` (e.g. the
/// rest of an x5c) and the store's own intermediates as candidates.
pub fn validate<'a>(
    leaf: &'a Cert,
    intermediates: &'a [Cert],
    stores: &'a [&'a TrustStore],
    at: SystemTime,
    opts: PathOptions<'a>,
) -> Result<ValidPath, PathError> {
    check_validity(leaf, at)?;
    // An anchor may be the attestation certificate itself (some MDS3
    // entries list the batch certificate as attestationRootCertificate).
    if let Some(a) = stores
        .iter()
        .flat_map(|s| s.anchors())
        .find(|a| a.cert.der() == leaf.der())
    {
        return Ok(ValidPath {
            subjects: vec![leaf.subject().to_string()],
            anchor: leaf.subject().to_string(),
            anchor_der: leaf.der().to_vec(),
            anchor_source: a.source.clone(),
            used_f9_exception: false,
        });
    }
    if let Some(oid) = leaf.unknown_critical_extension(opts.leaf_known_critical) {
        return Err(PathError::UnknownCriticalExtension {
            subject: leaf.subject().into(),
            oid,
        });
    }
    let mut s = Search {
        stores,
        extra: intermediates,
        at,
        opts,
        sigs: 0,
        best: None,
    };
    let mut chain = vec![leaf];
    if let Some(p) = s.extend(&mut chain)? {
        return Ok(p);
    }
    Err(s
        .best
        .map(|(_, e)| e)
        .unwrap_or_else(|| PathError::UnknownIssuer {
            subject: leaf.subject().into(),
            issuer: leaf.issuer(),
        }))
}

impl<'a> Search<'a> {
    fn note(&mut self, depth: usize, e: PathError) {
        if self.best.as_ref().is_none_or(|(d, _)| depth >= *d) {
            self.best = Some((depth, e));
        }
    }

    /// Depth-first: try anchors first (shortest path), then intermediates.
    fn extend(&mut self, chain: &mut Vec<&'a Cert>) -> Result<Option<ValidPath>, PathError> {
        let child: &'a Cert = chain.last().copied().ok_or(PathError::BudgetExceeded(0))?;
        let depth = chain.len();
        if depth >= MAX_PATH_LEN {
            self.note(depth, PathError::BudgetExceeded(self.sigs));
            return Ok(None);
        }
        let stores = self.stores;
        for anchor in stores.iter().flat_map(|s| s.anchors()) {
            if !child.issued_by(&anchor.cert) {
                continue;
            }
            if let Err(e) = self
                .check_anchor(anchor, chain)
                .and_then(|()| self.check_f9_issuer(&anchor.cert, chain))
            {
                self.note(depth, e);
                continue;
            }
            match self.check_sig(child, &anchor.cert, anchor.key.as_ref())? {
                Ok(()) => {
                    let mut subjects: Vec<String> =
                        chain.iter().map(|c| c.subject().to_string()).collect();
                    subjects.push(anchor.cert.subject().to_string());
                    return Ok(Some(ValidPath {
                        subjects,
                        anchor: anchor.cert.subject().to_string(),
                        anchor_der: anchor.cert.der().to_vec(),
                        anchor_source: anchor.source.clone(),
                        used_f9_exception: self.used_f9(chain),
                    }));
                }
                Err(e) => self.note(depth, e),
            }
        }
        let extra: &'a [Cert] = self.extra;
        let candidates: Vec<&'a Cert> = extra
            .iter()
            .chain(stores.iter().flat_map(|s| s.intermediates()))
            .filter(|c| child.issued_by(c) && !chain.iter().any(|x| x.der() == c.der()))
            .collect();
        for issuer in candidates {
            if let Err(e) = self
                .check_issuer(issuer, chain)
                .and_then(|()| self.check_f9_issuer(issuer, chain))
            {
                self.note(depth, e);
                continue;
            }
            let key = PublicKey::from_spki(issuer.spki()).ok();
            if let Err(e) = self.check_sig(child, issuer, key.as_ref())? {
                self.note(depth, e);
                continue;
            }
            chain.push(issuer);
            let found = self.extend(chain)?;
            chain.pop();
            if found.is_some() {
                return Ok(found);
            }
        }
        if self.best.is_none() {
            self.note(
                depth,
                PathError::UnknownIssuer {
                    subject: child.subject().into(),
                    issuer: child.issuer(),
                },
            );
        }
        Ok(None)
    }

    fn used_f9(&self, chain: &[&Cert]) -> bool {
        self.opts.yubikey_f9.is_some()
            && chain
                .get(1)
                .is_some_and(|c| matches!(c.basic_constraints(), Ok(None)))
    }

    /// The F9 exception's second half: an F9 taken without basicConstraints
    /// (`chain[1]`) must have been issued by a Yubico PIV attestation CA.
    fn check_f9_issuer(&self, issuer: &Cert, chain: &[&Cert]) -> Result<(), PathError> {
        if chain.len() != 2 || !self.used_f9(chain) {
            return Ok(());
        }
        if self.opts.f9_issuers.contains(&issuer.subject()) {
            return Ok(());
        }
        Err(PathError::F9Exception {
            subject: chain[1].subject().into(),
            reason: format!(
                "its issuer {:?} is not a Yubico PIV attestation CA",
                issuer.subject()
            ),
        })
    }

    /// RFC 5280 §6.1.4 (k), (l), (n) applied to the trust anchor itself:
    /// a CA (or a v1 root) whose pathLenConstraint admits the
    /// intermediates below it, and whose keyUsage (if any) has keyCertSign.
    fn check_anchor(&self, anchor: &Anchor, chain: &[&Cert]) -> Result<(), PathError> {
        let c = &anchor.cert;
        let subject = c.subject().to_string();
        let malformed = |e: CertError| PathError::Malformed {
            subject: subject.clone(),
            reason: e.to_string(),
        };
        match c.basic_constraints().map_err(malformed)? {
            Some(bc) if bc.ca => {
                if let Some(max) = bc.path_len_constraint
                    && chain.len() - 1 > usize::from(max)
                {
                    return Err(PathError::PathLenExceeded { subject });
                }
            }
            // A version 1 root predates extensions (RFC 5280 §6.1.4 (k)
            // asks basicConstraints of version 3 certificates only).
            None if !c.version3() => {}
            _ => return Err(PathError::NotCa { subject }),
        }
        if !c
            .key_usage_allows(KeyUsages::KeyCertSign)
            .map_err(malformed)?
        {
            return Err(PathError::KeyUsage { subject });
        }
        Ok(())
    }

    /// An intermediate `issuer` about to sign `chain.last()`: dates, CA flag
    /// (or the F9 exception), path length, key usage, critical extensions.
    fn check_issuer(&self, issuer: &Cert, chain: &[&Cert]) -> Result<(), PathError> {
        let subject = issuer.subject().to_string();
        check_validity(issuer, self.at)?;
        let malformed = |e: CertError| PathError::Malformed {
            subject: subject.clone(),
            reason: e.to_string(),
        };
        // Certificates below this one, not counting the leaf (RFC 5280 §6.1.4 (l)).
        let below = chain.len() - 1;
        match issuer.basic_constraints().map_err(malformed)? {
            Some(bc) if bc.ca => {
                if let Some(max) = bc.path_len_constraint
                    && below > usize::from(max)
                {
                    return Err(PathError::PathLenExceeded { subject });
                }
            }
            // YubiKey 4 F9: no basicConstraints, directly above the leaf
            // only, and only the certificate the device supplied.
            None if chain.len() == 1 && self.opts.yubikey_f9.is_some() => {
                self.check_f9(issuer)?;
            }
            _ => return Err(PathError::NotCa { subject }),
        }
        if !issuer
            .key_usage_allows(KeyUsages::KeyCertSign)
            .map_err(malformed)?
        {
            return Err(PathError::KeyUsage { subject });
        }
        if let Some(oid) = issuer.unknown_critical_extension(&[]) {
            return Err(PathError::UnknownCriticalExtension { subject, oid });
        }
        Ok(())
    }

    /// `issuer` lacks basicConstraints: it is the device-supplied F9 and
    /// not a slot attestation certificate, or it is no CA at all.
    fn check_f9(&self, issuer: &Cert) -> Result<(), PathError> {
        let refuse = |reason: &str| PathError::F9Exception {
            subject: issuer.subject().into(),
            reason: reason.into(),
        };
        if self
            .opts
            .yubikey_f9
            .is_none_or(|f9| f9.der() != issuer.der())
        {
            return Err(PathError::NotCa {
                subject: issuer.subject().into(),
            });
        }
        let slot_cn = issuer
            .subject_attr("2.5.4.3")
            .iter()
            .any(|cn| cn.starts_with(SLOT_ATTESTATION_CN));
        if slot_cn || issuer.extension(OID_SLOT_POLICY).is_some() {
            return Err(refuse("it is a slot attestation certificate"));
        }
        Ok(())
    }

    /// Outer `Err` ends the search (budget); inner `Err` rejects this issuer.
    fn check_sig(
        &mut self,
        child: &Cert,
        issuer: &Cert,
        key: Option<&PublicKey>,
    ) -> Result<Result<(), PathError>, PathError> {
        self.sigs += 1;
        if self.sigs > SIGNATURE_BUDGET {
            return Err(PathError::BudgetExceeded(self.sigs));
        }
        let bad = |source| PathError::BadSignature {
            subject: child.subject().into(),
            issuer: issuer.subject().into(),
            source,
        };
        let Some(key) = key else {
            let e = PublicKey::from_spki(issuer.spki())
                .err()
                .unwrap_or(SigError::BadKey);
            return Ok(Err(bad(e)));
        };
        let r = SigAlg::from_x509(child.signature_algorithm()).and_then(|alg| {
            key.verify(alg, child.tbs_der(), child.signature(), EcdsaEncoding::Der)
        });
        Ok(r.map_err(bad))
    }
}

/// RFC 5280 §6.1.3 (a)(2): the instant lies within the validity period.
pub fn check_validity(c: &Cert, at: SystemTime) -> Result<(), PathError> {
    if at < c.not_before() {
        return Err(PathError::CertNotValidYet {
            subject: c.subject().into(),
            time: rfc3339(at),
            not_before: rfc3339(c.not_before()),
        });
    }
    if at > c.not_after() {
        return Err(PathError::CertExpired {
            subject: c.subject().into(),
            time: rfc3339(at),
            not_after: rfc3339(c.not_after()),
        });
    }
    Ok(())
}
