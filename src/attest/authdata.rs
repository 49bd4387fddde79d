//! Authenticator data (WebAuthn §6.1) and the COSE_Key credential public key
//! inside it (WebAuthn §6.5.1.1, RFC 9052 §7, RFC 9053 §7).

use ciborium::Value;

use super::sig::{PublicKey, SigAlg};

/// Flag bits (WebAuthn §6.1 table "flags").
pub const FLAG_UP: u8 = 0x01;
pub const FLAG_UV: u8 = 0x04;
pub const FLAG_AT: u8 = 0x40;
pub const FLAG_ED: u8 = 0x80;

/// Deepest CBOR nesting accepted anywhere in an attestation.
pub const CBOR_DEPTH: usize = 16;

/// Malformed authenticator data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthDataError {
    #[error("authenticator data is {0} bytes, shorter than the 37-byte header")]
    Short(usize),
    #[error("authenticator data has no attested credential data (AT flag clear)")]
    NoAttestedCredential,
    #[error("attested credential data is truncated")]
    Truncated,
    #[error("credential public key is not valid CBOR")]
    Cbor,
    #[error("credential public key: {0}")]
    CoseKey(String),
    #[error("{0} bytes left over after authenticator data")]
    TrailingBytes(usize),
}

/// Parsed authenticator data of a registration.
#[derive(Debug, Clone)]
pub struct AuthData {
    pub rp_id_hash: [u8; 32],
    pub flags: u8,
    pub sign_count: u32,
    pub aaguid: [u8; 16],
    pub credential_id: Vec<u8>,
    pub credential_key: CoseKey,
}

/// A COSE_Key credential public key.
#[derive(Debug, Clone)]
pub struct CoseKey {
    /// `alg` (label 3), if present.
    pub alg: Option<i64>,
    pub key: PublicKey,
    /// For EC2 P-256 keys, the uncompressed point 04‖x‖y (fido-u2f needs it).
    pub ec_p256_point: Option<Vec<u8>>,
}

impl AuthData {
    /// Parse registration authenticator data: the AT flag must be set.
    pub fn parse(b: &[u8]) -> Result<AuthData, AuthDataError> {
        if b.len() < 37 {
            return Err(AuthDataError::Short(b.len()));
        }
        let mut rp_id_hash = [0u8; 32];
        rp_id_hash.copy_from_slice(&b[..32]);
        let flags = b[32];
        let sign_count = u32::from_be_bytes([b[33], b[34], b[35], b[36]]);
        if flags & FLAG_AT == 0 {
            return Err(AuthDataError::NoAttestedCredential);
        }
        let rest = &b[37..];
        let aaguid: [u8; 16] = rest
            .get(..16)
            .and_then(|s| s.try_into().ok())
            .ok_or(AuthDataError::Truncated)?;
        let id_len = rest
            .get(16..18)
            .map(|l| usize::from(u16::from_be_bytes([l[0], l[1]])))
            .ok_or(AuthDataError::Truncated)?;
        let credential_id = rest
            .get(18..18 + id_len)
            .ok_or(AuthDataError::Truncated)?
            .to_vec();
        let key_bytes = &rest[18 + id_len..];
        let mut cursor = std::io::Cursor::new(key_bytes);
        let value: Value = ciborium::de::from_reader_with_recursion_limit(&mut cursor, CBOR_DEPTH)
            .map_err(|_| AuthDataError::Cbor)?;
        let used = usize::try_from(cursor.position()).map_err(|_| AuthDataError::Truncated)?;
        let credential_key = CoseKey::from_value(&value).map_err(AuthDataError::CoseKey)?;
        let after = &key_bytes[used..];
        if flags & FLAG_ED != 0 {
            // Extensions: one CBOR map; decoded only to find its end.
            let mut c = std::io::Cursor::new(after);
            let _: Value = ciborium::de::from_reader_with_recursion_limit(&mut c, CBOR_DEPTH)
                .map_err(|_| AuthDataError::Cbor)?;
            let used = usize::try_from(c.position()).map_err(|_| AuthDataError::Truncated)?;
            if used != after.len() {
                return Err(AuthDataError::TrailingBytes(after.len() - used));
            }
        } else if !after.is_empty() {
            return Err(AuthDataError::TrailingBytes(after.len()));
        }
        Ok(AuthData {
            rp_id_hash,
            flags,
            sign_count,
            aaguid,
            credential_id,
            credential_key,
        })
    }
}

fn int_key(map: &[(Value, Value)], label: i64) -> Option<&Value> {
    map.iter()
        .find(|(k, _)| k.as_integer().and_then(|i| i64::try_from(i).ok()) == Some(label))
        .map(|(_, v)| v)
}

fn int_of(v: Option<&Value>) -> Option<i64> {
    v?.as_integer().and_then(|i| i64::try_from(i).ok())
}

fn bytes_of(v: Option<&Value>) -> Option<&[u8]> {
    v?.as_bytes().map(Vec::as_slice)
}

impl CoseKey {
    /// From a decoded COSE_Key map: EC2 P-256/P-384, OKP Ed25519, RSA.
    pub fn from_value(v: &Value) -> Result<CoseKey, String> {
        let map = v.as_map().ok_or("not a CBOR map")?;
        let kty = int_of(int_key(map, 1)).ok_or("no kty")?;
        let alg = int_of(int_key(map, 3));
        let (key, point) = match kty {
            2 => {
                let crv = int_of(int_key(map, -1)).ok_or("EC2 key without crv")?;
                let x = bytes_of(int_key(map, -2)).ok_or("EC2 key without x")?;
                let y = bytes_of(int_key(map, -3))
                    .ok_or("EC2 key without y (compressed points are not used by WebAuthn)")?;
                let point = [&[0x04], x, y].concat();
                match (crv, x.len(), y.len()) {
                    (1, 32, 32) => (PublicKey::p256_sec1(&point), Some(point)),
                    (2, 48, 48) => (PublicKey::p384_sec1(&point), None),
                    _ => return Err(format!("unsupported EC2 curve {crv} or coordinate size")),
                }
            }
            1 => {
                let crv = int_of(int_key(map, -1)).ok_or("OKP key without crv")?;
                if crv != 6 {
                    return Err(format!("unsupported OKP curve {crv}"));
                }
                let x = bytes_of(int_key(map, -2)).ok_or("OKP key without x")?;
                (PublicKey::ed25519(x), None)
            }
            3 => {
                let n = bytes_of(int_key(map, -1)).ok_or("RSA key without n")?;
                let e = bytes_of(int_key(map, -2)).ok_or("RSA key without e")?;
                (PublicKey::rsa(n, e), None)
            }
            other => return Err(format!("unsupported kty {other}")),
        };
        let key = key.map_err(|e| e.to_string())?;
        if let Some(a) = alg {
            // The alg must be one keyward verifies and fit the key type.
            SigAlg::from_cose(a).map_err(|e| e.to_string())?;
        }
        Ok(CoseKey {
            alg,
            key,
            ec_p256_point: point,
        })
    }
}
