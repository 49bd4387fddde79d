//! Attestation verification (DESIGN.md "Attestation"): FIDO2 / WebAuthn
//! attestation statements, YubiKey PIV attestation, FIDO MDS3 BLOBs, and
//! certification path validation to caller-supplied trust anchors at a
//! caller-supplied instant.
//!
//! Mechanism only: every function returns the facts it proved (chain,
//! AAGUID, serial, attestation type, MDS status). Whether those facts are
//! acceptable is for [`crate::policy`] to decide. Nothing here reads the
//! clock, the environment or a global trust store.

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

/// What a FIDO attestation proves.
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
}

impl FidoFacts {
    /// Whether the attestation chained to a trust anchor.
    pub fn trusted(&self) -> bool {
        self.trust.is_ok()
    }
}

/// Verify a FIDO attestation object over `client_data_hash`, then its
/// certificate path to `store` plus, when `mds` lists the authenticator,
/// that entry's attestationRootCertificates.
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
    let entry = mds.and_then(|m| {
        m.by_aaguid(&aaguid)
            .filter(|_| aaguid != [0; 16])
            .or_else(|| key_id.as_deref().and_then(|k| m.by_key_identifier(k)))
    });
    let trust = match st.x5c.split_first() {
        None => Err(PathError::Malformed {
            subject: "(no certificate)".into(),
            reason: format!(
                "{:?} attestation has no certificate chain",
                st.attestation_type
            ),
        }),
        Some((leaf, rest)) => {
            let mds_store = entry.map(mds::MdsEntry::anchors).unwrap_or_default();
            path::validate(
                leaf,
                rest,
                &[store, &mds_store],
                at,
                path::PathOptions {
                    yubikey_f9: false,
                    leaf_known_critical: &[],
                },
            )
        }
    };
    let (chain, trust, _) = piv::split_path(trust);
    let flags = st.auth_data.flags;
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
    })
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

#[cfg(test)]
mod tests;
