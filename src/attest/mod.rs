//! Attestation verification (DESIGN.md "Attestation"): FIDO2 / WebAuthn
//! attestation statements, YubiKey PIV attestation, FIDO MDS3 BLOBs, and
//! certification path validation to caller-supplied trust anchors at a
//! caller-supplied instant.
//!
//! Mechanism only: every function returns the facts it found (chain,
//! AAGUID, serial, attestation type, MDS status) and, in [`Provenance`],
//! which of them a signature that chains to a trust anchor covers
//! (attested) and which rest on the authenticator's word (claimed): a
//! fido-u2f signature does not cover the AAGUID, flags or sign count, self
//! and none attestation vouch for nothing, `epAtt` is outside every
//! signature. Whether the facts are acceptable is for [`crate::policy`] to
//! decide, from attested facts only. Nothing here reads the clock, the
//! environment or a global trust store.

pub mod anchors;
pub mod authdata;
pub mod cert;
pub mod fido;
pub mod mds;
pub mod path;
pub mod piv;
pub mod sig;

use std::time::SystemTime;

use serde::Serialize;

pub use anchors::TrustStore;
pub use cert::Cert;
pub use fido::{AttestationType, FidoError, Format};
pub use mds::{EntryStatus, MdsBlob};
pub use path::PathError;
pub use piv::{PivError, PivFacts, verify_piv};

/// A reported attestation fact, named as its field in the facts document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Fact {
    Aaguid,
    CredentialId,
    CredentialPublicKey,
    SignCount,
    UserPresent,
    UserVerified,
    Enterprise,
    Serial,
    Mds,
    Slot,
    Firmware,
    PinPolicy,
    TouchPolicy,
    FormFactor,
    Fips,
    Cspn,
    PublicKey,
}

impl std::fmt::Display for Fact {
    /// The facts document's name (`user_verified`).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match serde_json::to_value(self) {
            Ok(serde_json::Value::String(s)) => f.write_str(&s),
            _ => write!(f, "{self:?}"),
        }
    }
}

/// Which facts are attested (covered by a signature whose key chains to a
/// trust anchor) and which are only claimed. A fact without a value (no
/// serial, no MDS entry) is in neither list.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Provenance {
    pub attested: Vec<Fact>,
    pub claimed: Vec<Fact>,
}

impl Provenance {
    pub(crate) fn push(&mut self, fact: Fact, attested: bool) {
        if attested {
            self.attested.push(fact);
        } else {
            self.claimed.push(fact);
        }
    }

    /// Whether `fact` is attested.
    pub fn attested(&self, fact: Fact) -> bool {
        self.attested.contains(&fact)
    }
}

/// What a FIDO attestation reports; [`FidoFacts::provenance`] says which
/// facts it proves.
#[derive(Debug, Clone, Serialize)]
pub struct FidoFacts {
    pub format: Format,
    pub attestation_type: AttestationType,
    /// AAGUID from the authenticator data, MDS3 formatted.
    pub aaguid: String,
    #[serde(with = "hex_bytes")]
    pub credential_id: Vec<u8>,
    pub sign_count: u32,
    pub user_present: bool,
    pub user_verified: bool,
    /// Enterprise attestation: `epAtt` set, or a serial in the certificate.
    pub enterprise: bool,
    pub serial: Option<u64>,
    /// Subjects of x5c as given, leaf first.
    pub certificates: Vec<String>,
    /// Subjects leaf → anchor of the validated path.
    pub chain: Vec<String>,
    /// The anchor's subject and source, or why no path was found
    /// (`NoChain` for self and none attestation).
    #[serde(serialize_with = "ser_trust")]
    pub trust: Result<(String, String), PathError>,
    /// The MDS3 entry's status, when a BLOB was given and lists the model.
    pub mds: Option<EntryStatus>,
    /// Key identifier of the attestation certificate, hex (MDS3 lookups).
    pub attestation_key_id: Option<String>,
    /// Which of the facts above are attested and which only claimed.
    #[serde(flatten)]
    pub provenance: Provenance,
}

impl FidoFacts {
    /// Whether the attestation chained to a trust anchor.
    pub fn trusted(&self) -> bool {
        self.trust.is_ok()
    }

    /// Whether `fact` is attested.
    pub fn attested(&self, fact: Fact) -> bool {
        self.provenance.attested(fact)
    }
}

/// Verify a FIDO attestation object over `client_data_hash`, then its
/// certificate path: to the attestationRootCertificates of the entry when
/// `mds` lists the authenticator, else to `store` ([`validate_chain`]).
pub fn verify_fido(
    attestation_object: &[u8],
    client_data_hash: &[u8],
    store: &TrustStore,
    mds: Option<&MdsBlob>,
    at: SystemTime,
) -> Result<FidoFacts, FidoError> {
    let st = fido::verify_statement(attestation_object, client_data_hash)?;
    let aaguid = st.auth_data.aaguid;
    let key_id = st.x5c.first().map(Cert::key_identifier);
    // A fido-u2f signature does not cover the AAGUID: such a key is looked
    // up by its attestation certificate only (MDS3 §3.1.1).
    let entry = mds.and_then(|m| {
        let by_aaguid = match st.format {
            Format::FidoU2f => None,
            _ => m.by_aaguid(&aaguid).filter(|_| aaguid != [0; 16]),
        };
        by_aaguid.or_else(|| key_id.as_deref().and_then(|k| m.by_key_identifier(k)))
    });
    let trust = match st.x5c.split_first() {
        None => Err(PathError::Malformed {
            subject: "(no certificate)".into(),
            reason: format!(
                "{:?} attestation has no certificate chain",
                st.attestation_type
            ),
        }),
        Some((leaf, rest)) => validate_chain(leaf, rest, store, entry, at),
    };
    let (chain, trust, _) = piv::split_path(trust);
    let flags = st.auth_data.flags;
    let provenance = fido_provenance(&st, trust.is_ok(), entry.is_some());
    Ok(FidoFacts {
        format: st.format,
        attestation_type: st.attestation_type,
        aaguid: mds::format_aaguid(&aaguid),
        credential_id: st.auth_data.credential_id.clone(),
        sign_count: st.auth_data.sign_count,
        user_present: flags & authdata::FLAG_UP != 0,
        user_verified: flags & authdata::FLAG_UV != 0,
        enterprise: st.ep_att || st.serial.is_some(),
        serial: st.serial,
        certificates: st.x5c.iter().map(|c| c.subject().to_string()).collect(),
        chain,
        trust,
        mds: entry.map(mds::MdsEntry::status),
        attestation_key_id: key_id.map(hex::encode),
        provenance,
    })
}

/// The attestation path of `leaf`. A model the MDS BLOB lists is vouched
/// for by its entry's `attestationRootCertificates` alone (FIDO Metadata
/// Statement v3.0 §4: they are the trust anchors for that model; MDS3
/// §3.2): the path must end at one of them, with the store's
/// intermediates as candidates, never at another root the station trusts.
/// Otherwise a key of any trusted vendor (one whose attestation key
/// leaked, say) could name this model's AAGUID and borrow its trust,
/// model and certification. A model the BLOB does not list (or whose entry
/// lists no root) chains to the station's own roots.
fn validate_chain(
    leaf: &Cert,
    rest: &[Cert],
    store: &TrustStore,
    entry: Option<&mds::MdsEntry>,
    at: SystemTime,
) -> Result<path::ValidPath, PathError> {
    let opts = path::PathOptions::default();
    let Some((e, mut roots)) = entry
        .map(|e| (e, e.anchors()))
        .filter(|(_, r)| !r.is_empty())
    else {
        return path::validate(leaf, rest, &[store], at, opts);
    };
    for c in store.intermediates() {
        roots.add_intermediate(c.clone());
    }
    let err = match path::validate(leaf, rest, &[&roots], at, opts) {
        Ok(p) => return Ok(p),
        Err(err) => err,
    };
    // Say so when the chain is good but ends at another vendor's root.
    match path::validate(leaf, rest, &[store], at, opts) {
        Ok(other) => Err(PathError::OutsideMdsEntry {
            model: match (e.aaguid.as_deref(), e.description()) {
                (Some(a), Some(d)) => format!("{a} ({d})"),
                (a, d) => a.or(d).unwrap_or("this model").to_string(),
            },
            anchor: other.anchor,
        }),
        Err(_) => Err(err),
    }
}

/// What the statement's signature covers, when its key chains to an
/// anchor: packed signs the whole authenticator data; fido-u2f only the
/// rpIdHash, credential id and key (WebAuthn §8.6); the serial is in the
/// certificate; `epAtt` is outside every signature. Self and none
/// attestation, and an untrusted chain, vouch for nothing.
fn fido_provenance(st: &fido::Statement, trusted: bool, mds: bool) -> Provenance {
    let vouched = trusted && st.attestation_type == AttestationType::Basic;
    let whole_auth_data = vouched && st.format == Format::Packed;
    let mut p = Provenance::default();
    p.push(Fact::Aaguid, whole_auth_data);
    p.push(Fact::CredentialId, vouched);
    p.push(Fact::CredentialPublicKey, vouched);
    p.push(Fact::SignCount, whole_auth_data);
    p.push(Fact::UserPresent, whole_auth_data);
    p.push(Fact::UserVerified, whole_auth_data);
    let serial = vouched && st.serial.is_some();
    if st.ep_att || st.serial.is_some() {
        p.push(Fact::Enterprise, serial);
    }
    if st.serial.is_some() {
        p.push(Fact::Serial, serial);
    }
    if mds {
        // Found by an attested AAGUID or attestation key, or by a claim.
        p.push(Fact::Mds, vouched);
    }
    p
}

pub(crate) fn ser_trust<S: serde::Serializer>(
    t: &Result<(String, String), PathError>,
    s: S,
) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut m = s.serialize_map(Some(2))?;
    match t {
        Ok((anchor, source)) => {
            m.serialize_entry("anchor", anchor)?;
            m.serialize_entry("source", source)?;
        }
        Err(e) => {
            m.serialize_entry("anchor", &Option::<String>::None)?;
            m.serialize_entry("error", &e.to_string())?;
        }
    }
    m.end()
}

mod hex_bytes {
    pub fn serialize<S: serde::Serializer>(b: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(b))
    }
}

// The tests build their attestations on the simulator's CA.
#[cfg(all(test, feature = "sim"))]
mod tests;
