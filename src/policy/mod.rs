//! Attestation policy: decides from the facts `crate::attest` proved.
//!
//! The verifier says what it found (chain, AAGUID, serial, attestation
//! type, MDS status, PIN/touch policy) and which of it is attested; this
//! module says whether the organisation accepts it. A rule that grants
//! acceptance (allowed AAGUID, model, certification, MDS entry, enterprise
//! serial, firmware, PIN/touch policy) is met only by an attested fact: a
//! fido-u2f AAGUID, or anything a self or untrusted statement says, never
//! meets it. A rule that refuses (an MDS status report) applies to claimed
//! facts too. Every failed rule is reported, not just the first, and a
//! recorded exception (with approver, reason and expiry) can waive a rule
//! for one model or one device. A waived rule carries the exception as a
//! typed [`Waiver`] (its id, rule, scope and expiry), which provision
//! records with the binding as it is: nothing downstream parses or matches
//! a formatted string to find the exception again. The configuration is plain serde, e.g. in
//! TOML:
//!
//! ```toml
//! allowed_aaguids = ["cb69481e-8ff7-4039-93ec-0a2729a154a8"]
//! min_firmware = "5.4.3"
//! required_certification = "FIDO_CERTIFIED_L1"
//! allowed_pin_policies = ["once", "always"]
//!
//! [[exceptions]]
//! serial = 12345678
//! waive = ["touch-policy"]
//! reason = "accessibility: touch impossible"
//! approver = "ciso@example.org"
//! expires = "2027-01-01T00:00:00Z"
//! ```

use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::attest::mds::{AUTHENTICATOR_STATUSES, REJECTING_STATUSES, certification_rank};
use crate::attest::piv::{PinPolicy, TouchPolicy};
use crate::attest::{AttestationType, EntryStatus, Fact, FidoFacts, PivFacts};

/// What an organisation accepts. Empty lists mean "any".
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AttestationPolicy {
    /// FIDO AAGUIDs (MDS3 form, with dashes) allowed.
    pub allowed_aaguids: Vec<String>,
    /// Model descriptions (MDS3 `description`) allowed, case-insensitive.
    pub allowed_models: Vec<String>,
    /// Lowest PIV firmware accepted, "major.minor.patch".
    pub min_firmware: Option<String>,
    /// Lowest FIDO certification level (e.g. "FIDO_CERTIFIED_L1"); needs an
    /// MDS entry.
    pub required_certification: Option<String>,
    /// MDS3 AuthenticatorStatus values (§3.1.4) the entry's latest status
    /// report may have, e.g. `["FIDO_CERTIFIED_L1", "FIDO_CERTIFIED_L2",
    /// "UPDATE_AVAILABLE"]`; needs an attested MDS entry. Empty: any. A
    /// rejecting status (REVOKED, the compromises) is refused whatever
    /// this says, and a profile may not list one.
    pub accepted_statuses: Vec<String>,
    /// Require the authenticator to be listed in the MDS BLOB.
    pub require_mds_entry: bool,
    /// Require enterprise attestation (device serial in the attestation).
    pub require_enterprise_attestation: bool,
    pub allowed_pin_policies: Vec<PinPolicy>,
    pub allowed_touch_policies: Vec<TouchPolicy>,
    /// Recorded waivers.
    pub exceptions: Vec<Exception>,
}

/// A rule of the policy, as named in exceptions and verdicts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Rule {
    /// The chain does not reach a trust anchor.
    Untrusted,
    /// `none` or self attestation: nothing vouches for the model.
    NoAttestation,
    Aaguid,
    Model,
    Firmware,
    Certification,
    MdsEntry,
    /// The entry's latest status is not one the profile accepts
    /// (`accepted_statuses`).
    MdsStatus,
    /// An MDS3 status report rejects the model (REVOKED, compromises...).
    /// No exception waives it.
    MdsRejected,
    EnterpriseAttestation,
    PinPolicy,
    TouchPolicy,
}

impl Rule {
    /// The stable kebab-case name (as in the configuration and the
    /// ledger's exceptions table).
    pub fn as_str(self) -> &'static str {
        match self {
            Rule::Untrusted => "untrusted",
            Rule::NoAttestation => "no-attestation",
            Rule::Aaguid => "aaguid",
            Rule::Model => "model",
            Rule::Firmware => "firmware",
            Rule::Certification => "certification",
            Rule::MdsEntry => "mds-entry",
            Rule::MdsStatus => "mds-status",
            Rule::MdsRejected => "mds-rejected",
            Rule::EnterpriseAttestation => "enterprise-attestation",
            Rule::PinPolicy => "pin-policy",
            Rule::TouchPolicy => "touch-policy",
        }
    }
}

impl std::fmt::Display for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<&str> for Rule {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// What an exception covers: one model (AAGUID), one device (attested
/// serial), or that model's device with that serial.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaiverScope {
    pub aaguid: Option<String>,
    pub serial: Option<u64>,
}

/// When an exception stops waiving (`None`: no expiry was recorded).
/// Shown and serialized as RFC 3339.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expiry(pub Option<SystemTime>);

impl Expiry {
    /// Unix seconds, if it has an expiry.
    pub fn unix_secs(self) -> Option<i64> {
        self.0
            .map(|t| match t.duration_since(SystemTime::UNIX_EPOCH) {
                Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
                Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
            })
    }
}

impl std::fmt::Display for Expiry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(t) => write!(f, "{}", crate::time::format_rfc3339_seconds(t)),
            None => f.write_str("no expiry"),
        }
    }
}

impl Serialize for Expiry {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Some(t) => s.collect_str(&crate::time::format_rfc3339_seconds(t)),
            None => s.serialize_none(),
        }
    }
}

impl<'de> Deserialize<'de> for Expiry {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Option::<String>::deserialize(d)? {
            None => Ok(Expiry(None)),
            Some(s) => crate::time::parse_rfc3339(&s)
                .map(|t| Expiry(Some(t)))
                .map_err(serde::de::Error::custom),
        }
    }
}

/// The exception that waived one rule, as a value: from the policy's
/// verdict to the ledger's exceptions table, never re-parsed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Waiver {
    /// The exception's place in the policy (`exceptions[2]`).
    pub id: String,
    /// The rule it waived here.
    pub rule: Rule,
    pub scope: WaiverScope,
    pub reason: String,
    pub approver: String,
    pub expires: Expiry,
}

impl std::fmt::Display for Waiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (approved by {})", self.reason, self.approver)
    }
}

/// A recorded waiver of some rules for one model and/or one device.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Exception {
    #[serde(default)]
    pub aaguid: Option<String>,
    #[serde(default)]
    pub serial: Option<u64>,
    pub waive: Vec<Rule>,
    pub reason: String,
    pub approver: String,
    /// RFC 3339; an expired exception waives nothing.
    #[serde(default)]
    pub expires: Option<String>,
}

/// One failed rule.
#[derive(Debug, Clone, Serialize)]
pub struct Violation {
    pub rule: Rule,
    pub detail: String,
    /// The exception that waived it, if any.
    pub waived_by: Option<Waiver>,
}

/// The decision.
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    pub accepted: bool,
    pub violations: Vec<Violation>,
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.accepted {
            "accepted"
        } else {
            "rejected"
        })?;
        for v in &self.violations {
            let w = v.waived_by.as_ref().map(|w| format!(" (waived: {w})"));
            write!(f, "; {:?}: {}{}", v.rule, v.detail, w.unwrap_or_default())?;
        }
        Ok(())
    }
}

/// The two attestations of one physical key disagree on its serial.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "FIDO enterprise attestation serial {fido} differs from PIV attestation serial {piv}: these are two different keys"
)]
pub struct SerialMismatch {
    pub fido: u64,
    pub piv: u64,
}

impl AttestationPolicy {
    /// Decide on a FIDO attestation at `at` (exception expiry).
    pub fn decide_fido(&self, f: &FidoFacts, at: SystemTime) -> Verdict {
        let mut v = Vec::new();
        if let Err(e) = &f.trust
            && f.attestation_type == AttestationType::Basic
        {
            v.push((Rule::Untrusted, e.to_string()));
        }
        if f.attestation_type != AttestationType::Basic {
            v.push((
                Rule::NoAttestation,
                format!("{:?} attestation", f.attestation_type),
            ));
        }
        if !self.allowed_aaguids.is_empty() {
            if !f.attested(Fact::Aaguid) {
                v.push((
                    Rule::Aaguid,
                    format!(
                        "AAGUID {} is only claimed: no trusted signature covers it ({} {:?} attestation)",
                        f.aaguid, f.format, f.attestation_type
                    ),
                ));
            } else if !self
                .allowed_aaguids
                .iter()
                .any(|a| a.eq_ignore_ascii_case(&f.aaguid))
            {
                v.push((Rule::Aaguid, format!("AAGUID {} is not allowed", f.aaguid)));
            }
        }
        // An MDS entry found through a claimed AAGUID can still reject the
        // key (its status reports), never vouch for its model.
        let attested_mds = f.mds.as_ref().filter(|_| f.attested(Fact::Mds));
        let description = attested_mds.and_then(|m| m.description.clone());
        self.check_model(description.as_deref(), &mut v);
        if let Some(s) = f.mds.as_ref().and_then(|m| m.rejected_by.as_ref()) {
            v.push((Rule::MdsRejected, format!("MDS status report {s}")));
        }
        let needs_mds = self.require_mds_entry
            || self.required_certification.is_some()
            || !self.accepted_statuses.is_empty();
        match attested_mds {
            None if needs_mds => {
                let why = if f.mds.is_some() {
                    "the authenticator's MDS entry is only claimed: no trusted signature names it"
                } else {
                    "the authenticator is not listed in the MDS BLOB"
                };
                v.push((Rule::MdsEntry, why.into()));
            }
            None => {}
            Some(m) => {
                if let Some(req) = &self.required_certification {
                    let have = m
                        .certification_level
                        .as_deref()
                        .unwrap_or("NOT_FIDO_CERTIFIED");
                    if certification_rank(have) < certification_rank(req) {
                        v.push((Rule::Certification, format!("{have} is below {req}")));
                    }
                }
                self.check_status(m, &mut v);
            }
        }
        if self.require_enterprise_attestation && !(f.serial.is_some() && f.attested(Fact::Serial))
        {
            let why = if f.serial.is_some() {
                "the enterprise attestation serial is only claimed"
            } else {
                "no enterprise attestation serial"
            };
            v.push((Rule::EnterpriseAttestation, why.into()));
        }
        // An exception names a device by its attested serial only.
        let serial = f.serial.filter(|_| f.attested(Fact::Serial));
        self.finish(v, Some(&f.aaguid), serial, at)
    }

    /// Decide on a PIV attestation at `at`.
    pub fn decide_piv(&self, p: &PivFacts, at: SystemTime) -> Verdict {
        let mut v = Vec::new();
        if let Err(e) = &p.trust {
            v.push((Rule::Untrusted, e.to_string()));
        }
        // Untrusted: every PIV fact is only claimed and meets no rule.
        let firmware = p.firmware.as_deref().filter(|_| p.attested(Fact::Firmware));
        let pin_policy = p.pin_policy.filter(|_| p.attested(Fact::PinPolicy));
        let touch_policy = p.touch_policy.filter(|_| p.attested(Fact::TouchPolicy));
        if let Some(min) = &self.min_firmware {
            match (firmware, parse_version(min)) {
                (Some(fw), Some(min_v)) if parse_version(fw).is_some_and(|f| f >= min_v) => {}
                (Some(fw), _) => v.push((Rule::Firmware, format!("firmware {fw} is below {min}"))),
                (None, _) => v.push((
                    Rule::Firmware,
                    format!(
                        "firmware {} is not attested",
                        p.firmware.as_deref().unwrap_or("unknown")
                    ),
                )),
            }
        }
        if !self.allowed_pin_policies.is_empty()
            && !pin_policy.is_some_and(|x| self.allowed_pin_policies.contains(&x))
        {
            v.push((
                Rule::PinPolicy,
                format!("PIN policy {:?} is not allowed", p.pin_policy),
            ));
        }
        if !self.allowed_touch_policies.is_empty()
            && !touch_policy.is_some_and(|x| self.allowed_touch_policies.contains(&x))
        {
            v.push((
                Rule::TouchPolicy,
                format!("touch policy {:?} is not allowed", p.touch_policy),
            ));
        }
        self.finish(v, None, p.serial.filter(|_| p.attested(Fact::Serial)), at)
    }

    /// The latest status report must be one the profile accepts.
    fn check_status(&self, m: &EntryStatus, v: &mut Vec<(Rule, String)>) {
        if self.accepted_statuses.is_empty() {
            return;
        }
        let latest = m.latest.as_deref().unwrap_or("(no status report)");
        if !self.accepted_statuses.iter().any(|a| a == latest) {
            v.push((
                Rule::MdsStatus,
                format!(
                    "latest MDS status {latest} is not one the profile accepts ({})",
                    self.accepted_statuses.join(", ")
                ),
            ));
        }
    }

    /// Check the values of the attestation rules (called when profiles
    /// load): AAGUIDs, certification level and statuses must be ones MDS3
    /// defines, so that a typo never silently admits or refuses every key.
    pub fn validate(&self) -> Result<(), String> {
        for a in self
            .allowed_aaguids
            .iter()
            .chain(self.exceptions.iter().filter_map(|e| e.aaguid.as_ref()))
        {
            if crate::attest::mds::parse_aaguid(a).is_none() {
                return Err(format!(
                    "attestation: AAGUID {a:?} is not 32 hex digits (MDS3 form: 6b657977-6172-642d-7665-6e646f722d62)"
                ));
            }
        }
        if let Some(c) = &self.required_certification
            && certification_rank(c) == 0
        {
            return Err(format!(
                "attestation.required_certification {c:?} is not a FIDO certification level (FIDO_CERTIFIED_L1, FIDO_CERTIFIED_L1plus, ... FIDO_CERTIFIED_L3plus)"
            ));
        }
        for (i, e) in self.exceptions.iter().enumerate() {
            if e.waive.contains(&Rule::MdsRejected) {
                return Err(format!(
                    "attestation.exceptions[{i}]: mds-rejected cannot be waived: a model the MDS reports REVOKED or compromised is never enrolled"
                ));
            }
        }
        for st in &self.accepted_statuses {
            if !AUTHENTICATOR_STATUSES.contains(&st.as_str()) {
                return Err(format!(
                    "attestation.accepted_statuses: {st:?} is not an MDS3 AuthenticatorStatus (e.g. FIDO_CERTIFIED_L1, UPDATE_AVAILABLE)"
                ));
            }
            if REJECTING_STATUSES.contains(&st.as_str()) {
                return Err(format!(
                    "attestation.accepted_statuses: {st} always refuses a key (docs/policy.md); remove it"
                ));
            }
        }
        Ok(())
    }

    fn check_model(&self, description: Option<&str>, v: &mut Vec<(Rule, String)>) {
        if self.allowed_models.is_empty() {
            return;
        }
        let ok = description.is_some_and(|d| {
            self.allowed_models
                .iter()
                .any(|m| m.eq_ignore_ascii_case(d))
        });
        if !ok {
            v.push((
                Rule::Model,
                format!(
                    "model {:?} is not allowed",
                    description.unwrap_or("unknown")
                ),
            ));
        }
    }

    fn finish(
        &self,
        found: Vec<(Rule, String)>,
        aaguid: Option<&str>,
        serial: Option<u64>,
        at: SystemTime,
    ) -> Verdict {
        let violations: Vec<Violation> = found
            .into_iter()
            .map(|(rule, detail)| Violation {
                rule,
                // MDS3 §3.1.4: a REVOKED or compromised model is never
                // enrolled, whatever an exception says.
                waived_by: (rule != Rule::MdsRejected)
                    .then(|| {
                        self.exceptions
                            .iter()
                            .enumerate()
                            .find(|(_, e)| e.applies(rule, aaguid, serial, at))
                    })
                    .flatten()
                    .map(|(i, e)| e.waiver(i, rule)),
                detail,
            })
            .collect();
        Verdict {
            accepted: violations.iter().all(|v| v.waived_by.is_some()),
            violations,
        }
    }
}

impl Exception {
    /// This exception (number `index` of the policy) waiving `rule`.
    fn waiver(&self, index: usize, rule: Rule) -> Waiver {
        Waiver {
            id: format!("exceptions[{index}]"),
            rule,
            scope: WaiverScope {
                aaguid: self.aaguid.clone(),
                serial: self.serial,
            },
            reason: self.reason.clone(),
            approver: self.approver.clone(),
            expires: Expiry(
                self.expires
                    .as_deref()
                    .and_then(|e| crate::time::parse_rfc3339(e).ok()),
            ),
        }
    }

    fn applies(
        &self,
        rule: Rule,
        aaguid: Option<&str>,
        serial: Option<u64>,
        at: SystemTime,
    ) -> bool {
        if !self.waive.contains(&rule) {
            return false;
        }
        if self.aaguid.is_none() && self.serial.is_none() {
            return false; // an exception must name what it covers
        }
        let aaguid_ok = self
            .aaguid
            .as_deref()
            .is_none_or(|a| aaguid.is_some_and(|x| x.eq_ignore_ascii_case(a)));
        let serial_ok = self.serial.is_none_or(|s| serial == Some(s));
        let live = match &self.expires {
            None => true,
            Some(e) => crate::time::parse_rfc3339(e).is_ok_and(|exp| at < exp),
        };
        aaguid_ok && serial_ok && live
    }
}

/// DESIGN.md "Cross-protocol check": the FIDO enterprise attestation and
/// the PIV attestation of one key must agree on its serial. Passes when
/// either side carries no serial (nothing to compare).
pub fn cross_check(fido: &FidoFacts, piv: &PivFacts) -> Result<(), SerialMismatch> {
    match (fido.serial, piv.serial) {
        (Some(f), Some(p)) if f != p => Err(SerialMismatch { fido: f, piv: p }),
        _ => Ok(()),
    }
}

fn parse_version(s: &str) -> Option<(u32, u32, u32)> {
    let mut it = s.split('.').map(|p| p.parse::<u32>().ok());
    Some((
        it.next()??,
        it.next().flatten().unwrap_or(0),
        it.next().flatten().unwrap_or(0),
    ))
}

pub mod profile;

#[cfg(test)]
mod tests;
