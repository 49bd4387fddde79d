//! WebAuthn attestation statements (WebAuthn Level 3 §8): `packed` (§8.2,
//! full and self attestation), `fido-u2f` (§8.6) and `none` (§8.7).
//!
//! This module proves what the statement says: the signature over
//! authenticatorData ‖ clientDataHash (packed) or over the U2F registration
//! fields (fido-u2f, which leaves the AAGUID, flags and sign count
//! unsigned), the attestation certificate requirements (§8.2.1) and the
//! AAGUID extension. Whether the certificate
//! chains to a trusted root is decided by [`super::verify_fido`], and
//! whether the result is acceptable by `crate::policy`.

use ciborium::Value;
use serde::Serialize;

use super::authdata::{AuthData, AuthDataError, CBOR_DEPTH};
use super::cert::{Cert, CertError};
use super::sig::{EcdsaEncoding, SigAlg, SigError};

/// Attestation objects larger than this are refused before decoding.
pub const MAX_ATTESTATION_OBJECT: usize = 64 * 1024;
/// Most certificates accepted in an x5c.
pub const MAX_X5C: usize = 5;
/// id-fido-gen-ce-aaguid (WebAuthn §8.2.1, FIDO Metadata Statement §3.1).
pub const OID_FIDO_AAGUID: &str = "1.3.6.1.4.1.45724.1.1.4";
/// Yubico's enterprise attestation serial number extension (DER INTEGER).
pub const OID_YUBICO_FIDO_SERIAL: &str = "1.3.6.1.4.1.41482.13.1";

/// An attestation object that is malformed or whose statement does not hold.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FidoError {
    #[error("attestation object is {len} bytes, over the {max}-byte limit")]
    TooLarge { len: usize, max: usize },
    #[error("attestation object is not valid CBOR")]
    Cbor,
    #[error("attestation object lacks {0}")]
    Missing(&'static str),
    #[error("attestation field {field} is malformed: {reason}")]
    BadField { field: &'static str, reason: String },
    #[error("attestation format {0:?} is not supported (packed, fido-u2f and none are)")]
    UnsupportedFormat(String),
    #[error("authenticator data: {0}")]
    AuthData(#[from] AuthDataError),
    #[error("attestation certificate {index} of x5c")]
    Cert {
        index: usize,
        #[source]
        source: CertError,
    },
    #[error("attestation signature: {0}")]
    Signature(#[source] SigError),
    #[error("attestation certificate {subject:?} violates WebAuthn §8.2.1: {requirement}")]
    CertRequirement {
        subject: String,
        requirement: &'static str,
    },
    #[error("AAGUID extension {cert} differs from authenticator data AAGUID {auth_data}")]
    AaguidMismatch { cert: String, auth_data: String },
    #[error("self attestation alg {stmt} differs from the credential key alg {key:?}")]
    SelfAlgMismatch { stmt: i64, key: Option<i64> },
    #[error("fido-u2f needs a P-256 {what}")]
    U2fNotP256 { what: &'static str },
    #[error(
        "fido-u2f authenticator data carries AAGUID {aaguid}, but must carry all zeros (WebAuthn §8.6): the U2F signature does not cover it, so it was set outside the key"
    )]
    U2fAaguid { aaguid: String },
}

/// Attestation statement format (IANA WebAuthn registry).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    Packed,
    FidoU2f,
    None,
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Format::Packed => "packed",
            Format::FidoU2f => "fido-u2f",
            Format::None => "none",
        })
    }
}

/// Attestation type (WebAuthn §6.5.4). Basic and AttCA cannot be told apart
/// from the statement; both are reported as `Basic`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AttestationType {
    Basic,
    #[serde(rename = "self")]
    SelfAttestation,
    None,
}

/// What a verified statement proves.
#[derive(Debug, Clone)]
pub struct Statement {
    pub format: Format,
    pub attestation_type: AttestationType,
    pub auth_data: AuthData,
    /// x5c, leaf first (empty for self and none).
    pub x5c: Vec<Cert>,
    /// `epAtt` of the attestation object (CTAP 2.1 §6.1 member 0x04).
    pub ep_att: bool,
    /// Serial from the leaf's Yubico serial extension, if any.
    pub serial: Option<u64>,
}

/// Decode an attestation object and verify its statement over
/// `client_data_hash`.
pub fn verify_statement(att_obj: &[u8], client_data_hash: &[u8]) -> Result<Statement, FidoError> {
    if att_obj.len() > MAX_ATTESTATION_OBJECT {
        return Err(FidoError::TooLarge {
            len: att_obj.len(),
            max: MAX_ATTESTATION_OBJECT,
        });
    }
    let mut cursor = std::io::Cursor::new(att_obj);
    let v: Value = ciborium::de::from_reader_with_recursion_limit(&mut cursor, CBOR_DEPTH)
        .map_err(|_| FidoError::Cbor)?;
    if cursor.position() != att_obj.len() as u64 {
        return Err(FidoError::BadField {
            field: "attestationObject",
            reason: "trailing bytes".into(),
        });
    }
    let map = v.as_map().ok_or(FidoError::Cbor)?;
    // WebAuthn names its members; a CTAP 2.1 response numbers them.
    let get = |name: &str, num: i64| {
        map.iter()
            .find(|(k, _)| {
                k.as_text() == Some(name)
                    || k.as_integer().and_then(|i| i64::try_from(i).ok()) == Some(num)
            })
            .map(|(_, v)| v)
    };
    let fmt = get("fmt", 1)
        .ok_or(FidoError::Missing("fmt"))?
        .as_text()
        .ok_or(FidoError::Missing("fmt as text"))?;
    let raw_auth = get("authData", 2)
        .ok_or(FidoError::Missing("authData"))?
        .as_bytes()
        .ok_or(FidoError::Missing("authData as bytes"))?;
    let stmt = get("attStmt", 3)
        .ok_or(FidoError::Missing("attStmt"))?
        .as_map()
        .ok_or(FidoError::Missing("attStmt as map"))?;
    let ep_att = get("epAtt", 4).and_then(Value::as_bool).unwrap_or(false);
    let auth_data = AuthData::parse(raw_auth)?;
    let signed = [raw_auth.as_slice(), client_data_hash].concat();
    let field = |name: &str| {
        stmt.iter()
            .find(|(k, _)| k.as_text() == Some(name))
            .map(|(_, v)| v)
    };
    let x5c = parse_x5c(field("x5c"))?;
    let (format, attestation_type) = match fmt {
        "packed" => {
            let alg = field("alg")
                .and_then(|a| a.as_integer())
                .and_then(|i| i64::try_from(i).ok())
                .ok_or(FidoError::Missing("attStmt.alg"))?;
            let sig = bytes(field("sig"), "attStmt.sig")?;
            if field("ecdaaKeyId").is_some() {
                return Err(FidoError::UnsupportedFormat("packed with ECDAA".into()));
            }
            let sig_alg = SigAlg::from_cose(alg).map_err(FidoError::Signature)?;
            if let Some(leaf) = x5c.first() {
                let key =
                    super::sig::PublicKey::from_spki(leaf.spki()).map_err(FidoError::Signature)?;
                key.verify(sig_alg, &signed, sig, EcdsaEncoding::Der)
                    .map_err(FidoError::Signature)?;
                check_packed_cert(leaf, &auth_data.aaguid)?;
                (Format::Packed, AttestationType::Basic)
            } else {
                // §8.2 step 3: self attestation signs with the credential key.
                let ck = &auth_data.credential_key;
                if ck.alg != Some(alg) {
                    return Err(FidoError::SelfAlgMismatch {
                        stmt: alg,
                        key: ck.alg,
                    });
                }
                ck.key
                    .verify(sig_alg, &signed, sig, EcdsaEncoding::Der)
                    .map_err(FidoError::Signature)?;
                (Format::Packed, AttestationType::SelfAttestation)
            }
        }
        "fido-u2f" => {
            verify_u2f(
                &auth_data,
                client_data_hash,
                &x5c,
                bytes(field("sig"), "attStmt.sig")?,
            )?;
            (Format::FidoU2f, AttestationType::Basic)
        }
        "none" => {
            if !stmt.is_empty() {
                return Err(FidoError::BadField {
                    field: "attStmt",
                    reason: "must be empty for fmt none (WebAuthn §8.7)".into(),
                });
            }
            (Format::None, AttestationType::None)
        }
        other => return Err(FidoError::UnsupportedFormat(other.into())),
    };
    let serial = x5c.first().and_then(enterprise_serial);
    Ok(Statement {
        format,
        attestation_type,
        auth_data,
        x5c,
        ep_att,
        serial,
    })
}

fn bytes<'a>(v: Option<&'a Value>, name: &'static str) -> Result<&'a [u8], FidoError> {
    v.and_then(Value::as_bytes)
        .map(Vec::as_slice)
        .ok_or(FidoError::Missing(name))
}

fn parse_x5c(v: Option<&Value>) -> Result<Vec<Cert>, FidoError> {
    let Some(v) = v else { return Ok(Vec::new()) };
    let arr = v.as_array().ok_or(FidoError::BadField {
        field: "attStmt.x5c",
        reason: "not an array".into(),
    })?;
    if arr.is_empty() || arr.len() > MAX_X5C {
        return Err(FidoError::BadField {
            field: "attStmt.x5c",
            reason: format!("{} certificates (1 to {MAX_X5C} allowed)", arr.len()),
        });
    }
    arr.iter()
        .enumerate()
        .map(|(index, c)| {
            let der = c.as_bytes().ok_or(FidoError::BadField {
                field: "attStmt.x5c",
                reason: "entry is not a byte string".into(),
            })?;
            Cert::from_der(der).map_err(|source| FidoError::Cert { index, source })
        })
        .collect()
}

/// WebAuthn §8.2.1 packed attestation certificate requirements, and the
/// AAGUID extension check of §8.2 step 2.
pub fn check_packed_cert(leaf: &Cert, aaguid: &[u8; 16]) -> Result<(), FidoError> {
    let fail = |requirement| FidoError::CertRequirement {
        subject: leaf.subject().into(),
        requirement,
    };
    if !leaf.version3() {
        return Err(fail("version must be 3"));
    }
    let c = leaf.subject_attr("2.5.4.6");
    if c.len() != 1 || c[0].len() != 2 {
        return Err(fail("subject C must be a two-letter ISO 3166 code"));
    }
    if leaf.subject_attr("2.5.4.10").is_empty() {
        return Err(fail("subject O (vendor) is required"));
    }
    if leaf.subject_attr("2.5.4.11") != ["Authenticator Attestation"] {
        return Err(fail("subject OU must be \"Authenticator Attestation\""));
    }
    if leaf.subject_attr("2.5.4.3").is_empty() {
        return Err(fail("subject CN is required"));
    }
    match leaf.basic_constraints() {
        Ok(Some(bc)) if bc.ca => return Err(fail("must not be a CA (basicConstraints CA false)")),
        Ok(_) => {}
        Err(_) => return Err(fail("basicConstraints is malformed")),
    }
    if let Some(ext) = leaf.extension(OID_FIDO_AAGUID) {
        if ext.critical {
            return Err(fail("the AAGUID extension must not be critical"));
        }
        let inner = <der::asn1::OctetString as der::Decode>::from_der(ext.extn_value.as_bytes())
            .map_err(|_| fail("the AAGUID extension is not an OCTET STRING"))?;
        if inner.as_bytes() != aaguid {
            return Err(FidoError::AaguidMismatch {
                cert: hex::encode(inner.as_bytes()),
                auth_data: hex::encode(aaguid),
            });
        }
    }
    Ok(())
}

/// WebAuthn §8.6: one P-256 certificate; the signature covers
/// 0x00 ‖ rpIdHash ‖ clientDataHash ‖ credentialId ‖ publicKeyU2F, and
/// nothing else of the authenticator data: the AAGUID (which a client
/// converting a U2F response sets to zero) must be zero, and the flags and
/// sign count are only claimed.
fn verify_u2f(auth: &AuthData, cdh: &[u8], x5c: &[Cert], sig: &[u8]) -> Result<(), FidoError> {
    if auth.aaguid != [0; 16] {
        return Err(FidoError::U2fAaguid {
            aaguid: super::mds::format_aaguid(&auth.aaguid),
        });
    }
    if x5c.len() != 1 {
        return Err(FidoError::BadField {
            field: "attStmt.x5c",
            reason: format!("fido-u2f needs exactly one certificate, got {}", x5c.len()),
        });
    }
    let key = super::sig::PublicKey::from_spki(x5c[0].spki()).map_err(FidoError::Signature)?;
    if !matches!(key, super::sig::PublicKey::P256(_)) {
        return Err(FidoError::U2fNotP256 {
            what: "attestation certificate key",
        });
    }
    let point = auth
        .credential_key
        .ec_p256_point
        .as_ref()
        .ok_or(FidoError::U2fNotP256 {
            what: "credential public key",
        })?;
    let data = [
        &[0u8][..],
        &auth.rp_id_hash,
        cdh,
        &auth.credential_id,
        point,
    ]
    .concat();
    key.verify(SigAlg::EcdsaSha256, &data, sig, EcdsaEncoding::Der)
        .map_err(FidoError::Signature)
}

/// The device serial of an enterprise attestation certificate: Yubico's
/// extension 1.3.6.1.4.1.41482.13.1, else the subject serialNumber.
pub fn enterprise_serial(leaf: &Cert) -> Option<u64> {
    if let Some(e) = leaf.extension(OID_YUBICO_FIDO_SERIAL) {
        return super::piv::der_uint(e.extn_value.as_bytes());
    }
    leaf.subject_attr("2.5.4.5").first()?.parse().ok()
}
