//! FIDO Metadata Service v3 BLOBs (FIDO Metadata Service v3.0, §3 "Metadata
//! BLOB" and §3.2 "Metadata BLOB object processing rules"), loaded offline
//! from a file.
//!
//! [`MdsBlob::verify`] checks the JWS: its x5c chain to the configured MDS
//! root (GlobalSign Root CA - R3 in production) and its RS256/ES256
//! signature; it reports staleness against `nextUpdate` and indexes the
//! entries by AAGUID and by attestation certificate key identifier.
//! Rollback protection (`no` strictly increasing at import, never
//! decreasing at load) is in [`state`].

pub mod state;

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD as B64, URL_SAFE_NO_PAD as B64URL};
use serde::{Deserialize, Serialize};

use super::anchors::TrustStore;
use super::cert::{Cert, CertError, rfc3339};
use super::path::{self, PathError, PathOptions};
use super::sig::{EcdsaEncoding, PublicKey, SigAlg, SigError};

/// BLOBs larger than this are refused before decoding (production BLOBs are
/// about 4 MiB in 2024).
pub const MAX_BLOB: usize = 32 * 1024 * 1024;

/// Status reports that make an authenticator unacceptable (MDS3 §3.1.4
/// AuthenticatorStatus).
pub const REJECTING_STATUSES: &[&str] = &[
    "REVOKED",
    "ATTESTATION_KEY_COMPROMISE",
    "USER_VERIFICATION_BYPASS",
    "USER_KEY_REMOTE_COMPROMISE",
    "USER_KEY_PHYSICAL_COMPROMISE",
];

/// Every AuthenticatorStatus value (FIDO Metadata Service v3.0 §3.1.4).
pub const AUTHENTICATOR_STATUSES: &[&str] = &[
    "NOT_FIDO_CERTIFIED",
    "FIDO_CERTIFIED",
    "USER_VERIFICATION_BYPASS",
    "ATTESTATION_KEY_COMPROMISE",
    "USER_KEY_REMOTE_COMPROMISE",
    "USER_KEY_PHYSICAL_COMPROMISE",
    "UPDATE_AVAILABLE",
    "REVOKED",
    "SELF_ASSERTION_SUBMITTED",
    "FIDO_CERTIFIED_L1",
    "FIDO_CERTIFIED_L1plus",
    "FIDO_CERTIFIED_L2",
    "FIDO_CERTIFIED_L2plus",
    "FIDO_CERTIFIED_L3",
    "FIDO_CERTIFIED_L3plus",
];

/// A BLOB that is malformed or whose signature does not hold.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MdsError {
    #[error("BLOB is {len} bytes, over the {max}-byte limit")]
    TooLarge { len: usize, max: usize },
    #[error("BLOB is not a compact JWS (three base64url parts)")]
    NotJws,
    #[error("BLOB {part} is not valid: {reason}")]
    Malformed { part: &'static str, reason: String },
    #[error("BLOB header has no x5c (x5u is not fetched: keyward works offline)")]
    NoX5c,
    #[error("BLOB x5c certificate {index}")]
    Cert {
        index: usize,
        #[source]
        source: CertError,
    },
    #[error("BLOB signing chain is not trusted: {0}")]
    Chain(#[source] PathError),
    #[error("BLOB signature: {0}")]
    Signature(#[source] SigError),
    #[error(
        "BLOB number {no} is not greater than {last}, the last one accepted: refusing a rollback"
    )]
    Rollback { no: u64, last: u64 },
    #[error(
        "BLOB number {no} is stale since {next_update} (now {time}); download a current BLOB from mds3.fidoalliance.org"
    )]
    Stale {
        no: u64,
        next_update: String,
        time: String,
    },
    #[error("MDS state file {path}")]
    State {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("MDS state file {path} is corrupt: {reason}; restore it or delete it knowingly")]
    StateCorrupt { path: String, reason: String },
    #[error(
        "no MDS rollback state at {path}: the BLOB beside it was not imported with `keyward mds import`"
    )]
    NoState { path: String },
}

/// One status report (MDS3 §3.1.3 StatusReport).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusReport {
    pub status: String,
    #[serde(default)]
    pub effective_date: Option<String>,
    #[serde(default)]
    pub authenticator_version: Option<u64>,
    #[serde(default)]
    pub certification_descriptor: Option<String>,
    #[serde(default)]
    pub certificate_number: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Statement {
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    attestation_root_certificates: Vec<String>,
    #[serde(default)]
    authenticator_version: Option<u64>,
}

/// One metadata BLOB payload entry (MDS3 §3.1.1), keeping what keyward uses.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MdsEntry {
    #[serde(default)]
    pub aaguid: Option<String>,
    #[serde(default)]
    pub attestation_certificate_key_identifiers: Vec<String>,
    #[serde(default)]
    metadata_statement: Option<Statement>,
    #[serde(default)]
    pub status_reports: Vec<StatusReport>,
    #[serde(default)]
    pub time_of_last_status_change: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Payload {
    no: u64,
    next_update: String,
    #[serde(default)]
    entries: Vec<MdsEntry>,
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    x5c: Vec<String>,
}

/// The status of an entry, as reported.
#[derive(Debug, Clone, Serialize)]
pub struct EntryStatus {
    pub description: Option<String>,
    /// The most recent status report's status.
    pub latest: Option<String>,
    /// Highest FIDO_CERTIFIED_* level among the reports.
    pub certification_level: Option<String>,
    /// The first report whose status rejects the authenticator.
    pub rejected_by: Option<String>,
}

impl MdsEntry {
    pub fn description(&self) -> Option<&str> {
        self.metadata_statement.as_ref()?.description.as_deref()
    }

    pub fn authenticator_version(&self) -> Option<u64> {
        self.metadata_statement.as_ref()?.authenticator_version
    }

    /// The maker, as the organisation (O) of the first attestation root
    /// that names one: MDS3 has no vendor field, and a root names its
    /// issuer ("Yubico", "Feitian Technologies").
    pub fn vendor(&self) -> Option<String> {
        self.anchors()
            .anchors()
            .find_map(|a| a.cert.subject_attr("2.5.4.10").into_iter().next())
    }

    /// Its attestationRootCertificates as anchors (entries that do not
    /// parse are skipped: they cannot be chained to).
    pub fn anchors(&self) -> TrustStore {
        let mut s = TrustStore::new();
        let source = format!(
            "MDS entry {}",
            self.aaguid.as_deref().or(self.description()).unwrap_or("?")
        );
        for b64 in self
            .metadata_statement
            .iter()
            .flat_map(|m| &m.attestation_root_certificates)
        {
            if let Ok(der) = B64.decode(b64.trim())
                && let Ok(c) = Cert::from_der(&der)
            {
                s.add_anchor(c, source.clone());
            }
        }
        s
    }

    /// Certification level and whether any status report rejects it.
    pub fn status(&self) -> EntryStatus {
        let latest = self
            .status_reports
            .iter()
            .max_by(|a, b| a.effective_date.cmp(&b.effective_date))
            .map(|r| r.status.clone());
        let certification_level = self
            .status_reports
            .iter()
            .filter(|r| r.status.starts_with("FIDO_CERTIFIED"))
            .map(|r| r.status.clone())
            .max_by_key(|s| certification_rank(s));
        let rejected_by = self
            .status_reports
            .iter()
            .find(|r| REJECTING_STATUSES.contains(&r.status.as_str()))
            .map(|r| r.status.clone());
        EntryStatus {
            description: self.description().map(str::to_string),
            latest,
            certification_level,
            rejected_by,
        }
    }
}

/// Order of FIDO certification levels, for "at least" comparisons.
pub fn certification_rank(status: &str) -> u8 {
    match status {
        "FIDO_CERTIFIED" | "FIDO_CERTIFIED_L1" => 1,
        "FIDO_CERTIFIED_L1plus" => 2,
        "FIDO_CERTIFIED_L2" => 3,
        "FIDO_CERTIFIED_L2plus" => 4,
        "FIDO_CERTIFIED_L3" => 5,
        "FIDO_CERTIFIED_L3plus" => 6,
        _ => 0,
    }
}

/// A verified BLOB.
#[derive(Debug, Clone)]
pub struct MdsBlob {
    pub no: u64,
    /// `nextUpdate` as given (YYYY-MM-DD) and as an instant (its midnight UTC).
    pub next_update: String,
    pub next_update_at: SystemTime,
    /// Whether it was stale at the instant of verification.
    pub stale: bool,
    /// Subjects of the signing chain, leaf first.
    pub signer_chain: Vec<String>,
    entries: Vec<MdsEntry>,
    by_aaguid: HashMap<[u8; 16], usize>,
    by_key_id: HashMap<String, usize>,
}

/// Options of BLOB verification.
#[derive(Debug, Clone, Copy, Default)]
pub struct MdsOptions {
    /// How long after `nextUpdate` a BLOB is still fresh.
    pub grace: Duration,
}

impl MdsBlob {
    /// Verify a BLOB against `root` at `at`. A stale BLOB (past
    /// `nextUpdate` + grace) is verified with its chain checked at
    /// `nextUpdate` and returned with `stale` set, so the caller can report
    /// it; [`MdsBlob::require_fresh`] turns that into a refusal.
    pub fn verify(
        jwt: &[u8],
        root: &TrustStore,
        at: SystemTime,
        opts: MdsOptions,
    ) -> Result<MdsBlob, MdsError> {
        if jwt.len() > MAX_BLOB {
            return Err(MdsError::TooLarge {
                len: jwt.len(),
                max: MAX_BLOB,
            });
        }
        let text = std::str::from_utf8(jwt)
            .map_err(|_| MdsError::NotJws)?
            .trim();
        let mut parts = text.split('.');
        let (Some(h64), Some(p64), Some(s64), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(MdsError::NotJws);
        };
        let malformed = |part, reason: String| MdsError::Malformed { part, reason };
        let header_json = B64URL
            .decode(h64)
            .map_err(|e| malformed("header", e.to_string()))?;
        let header: Header =
            serde_json::from_slice(&header_json).map_err(|e| malformed("header", e.to_string()))?;
        let sig = B64URL
            .decode(s64)
            .map_err(|e| malformed("signature", e.to_string()))?;
        let alg = SigAlg::from_jws(&header.alg).map_err(MdsError::Signature)?;
        if header.x5c.is_empty() {
            return Err(MdsError::NoX5c);
        }
        let x5c = header
            .x5c
            .iter()
            .take(super::fido::MAX_X5C + 1)
            .enumerate()
            .map(|(index, b64)| {
                let der = B64.decode(b64).map_err(|_| MdsError::Cert {
                    index,
                    source: CertError::NoPem,
                })?;
                Cert::from_der(&der).map_err(|source| MdsError::Cert { index, source })
            })
            .collect::<Result<Vec<_>, _>>()?;
        // The signature by the x5c leaf is checked before the payload is
        // parsed; the leaf itself is checked against the root below, at an
        // instant that depends on the (then authenticated) nextUpdate.
        let leaf = &x5c[0];
        let key = PublicKey::from_spki(leaf.spki()).map_err(MdsError::Signature)?;
        let signed_len = h64.len() + 1 + p64.len();
        key.verify(
            alg,
            &text.as_bytes()[..signed_len],
            &sig,
            EcdsaEncoding::Fixed,
        )
        .map_err(MdsError::Signature)?;
        let payload_json = B64URL
            .decode(p64)
            .map_err(|e| malformed("payload", e.to_string()))?;
        let payload: Payload = serde_json::from_slice(&payload_json)
            .map_err(|e| malformed("payload", e.to_string()))?;
        let next_update_at = parse_date(&payload.next_update)
            .ok_or_else(|| malformed("payload", format!("nextUpdate {:?}", payload.next_update)))?;
        let stale = at > next_update_at + opts.grace;
        let check_at = if stale { next_update_at } else { at };
        let chain = path::validate(leaf, &x5c[1..], &[root], check_at, PathOptions::default())
            .map_err(MdsError::Chain)?;
        Ok(MdsBlob::index(
            payload,
            next_update_at,
            stale,
            chain.subjects,
        ))
    }

    fn index(p: Payload, next_update_at: SystemTime, stale: bool, chain: Vec<String>) -> MdsBlob {
        let mut by_aaguid = HashMap::new();
        let mut by_key_id = HashMap::new();
        for (i, e) in p.entries.iter().enumerate() {
            if let Some(a) = e.aaguid.as_deref().and_then(parse_aaguid) {
                by_aaguid.insert(a, i);
            }
            for k in &e.attestation_certificate_key_identifiers {
                by_key_id.insert(k.to_ascii_lowercase(), i);
            }
        }
        MdsBlob {
            no: p.no,
            next_update: p.next_update,
            next_update_at,
            stale,
            signer_chain: chain,
            entries: p.entries,
            by_aaguid,
            by_key_id,
        }
    }

    /// Refuse a stale BLOB.
    pub fn require_fresh(&self, at: SystemTime) -> Result<(), MdsError> {
        if self.stale {
            return Err(MdsError::Stale {
                no: self.no,
                next_update: self.next_update.clone(),
                time: rfc3339(at),
            });
        }
        Ok(())
    }

    pub fn entries(&self) -> &[MdsEntry] {
        &self.entries
    }

    pub fn by_aaguid(&self, aaguid: &[u8; 16]) -> Option<&MdsEntry> {
        self.by_aaguid.get(aaguid).map(|&i| &self.entries[i])
    }

    /// By attestation certificate key identifier (fido-u2f and other
    /// authenticators without an AAGUID).
    pub fn by_key_identifier(&self, key_id: &[u8]) -> Option<&MdsEntry> {
        self.by_key_id
            .get(&hex::encode(key_id))
            .map(|&i| &self.entries[i])
    }
}

/// "cb69481e-8ff7-4039-93ec-0a2729a154a8" (or without dashes) → 16 bytes.
pub fn parse_aaguid(s: &str) -> Option<[u8; 16]> {
    let h: String = s.chars().filter(|c| *c != '-').collect();
    hex::decode(h).ok()?.try_into().ok()
}

/// Format an AAGUID the way MDS3 writes it.
pub fn format_aaguid(a: &[u8; 16]) -> String {
    let h = hex::encode(a);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// "YYYY-MM-DD" → midnight UTC of that day.
fn parse_date(s: &str) -> Option<SystemTime> {
    if s.len() != 10 {
        return None;
    }
    crate::time::parse_rfc3339(&format!("{s}T00:00:00Z")).ok()
}
