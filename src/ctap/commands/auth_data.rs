//! authenticatorData (WebAuthn §6.1), parsed strictly from the bytes that
//! makeCredential and getAssertion return.

use ciborium::Value;

use crate::ctap::cbor::DecodeError;

/// authData flags.
pub mod flag {
    pub const UP: u8 = 0x01;
    pub const UV: u8 = 0x04;
    pub const AT: u8 = 0x40;
    pub const ED: u8 = 0x80;
}

/// The longest credential ID accepted (CTAP 2.1 allows up to 1023).
pub const MAX_CREDENTIAL_ID: usize = 1023;

/// attestedCredentialData.
#[derive(Clone, Debug, PartialEq)]
pub struct AttestedCredential {
    pub aaguid: [u8; 16],
    pub credential_id: Vec<u8>,
    /// The COSE_Key, decoded.
    pub public_key: Value,
}

/// Parsed authenticatorData.
#[derive(Clone, Debug, PartialEq)]
pub struct AuthData {
    pub rp_id_hash: [u8; 32],
    pub flags: u8,
    pub sign_count: u32,
    pub attested: Option<AttestedCredential>,
    pub extensions: Option<Value>,
}

/// Decode one CBOR item from the front of `b`; returns it and the rest.
fn item<'a>(b: &'a [u8], name: &'static str) -> Result<(Value, &'a [u8]), DecodeError> {
    let mut rest = b;
    let v = ciborium::de::from_reader_with_recursion_limit(&mut rest, 8)
        .map_err(|_| DecodeError::Invalid(name))?;
    Ok((v, rest))
}

impl AuthData {
    pub fn parse(b: &[u8]) -> Result<AuthData, DecodeError> {
        if b.len() < 37 {
            return Err(DecodeError::Invalid("authData"));
        }
        let mut rp_id_hash = [0u8; 32];
        rp_id_hash.copy_from_slice(&b[..32]);
        let flags = b[32];
        let sign_count = u32::from_be_bytes([b[33], b[34], b[35], b[36]]);
        let mut rest = &b[37..];
        let mut attested = None;
        if flags & flag::AT != 0 {
            if rest.len() < 18 {
                return Err(DecodeError::Invalid("attestedCredentialData"));
            }
            let mut aaguid = [0u8; 16];
            aaguid.copy_from_slice(&rest[..16]);
            let len = usize::from(u16::from_be_bytes([rest[16], rest[17]]));
            if len > MAX_CREDENTIAL_ID || rest.len() < 18 + len {
                return Err(DecodeError::Invalid("credentialId"));
            }
            let credential_id = rest[18..18 + len].to_vec();
            let (public_key, r) = item(&rest[18 + len..], "credentialPublicKey")?;
            rest = r;
            attested = Some(AttestedCredential {
                aaguid,
                credential_id,
                public_key,
            });
        }
        let mut extensions = None;
        if flags & flag::ED != 0 {
            let (e, r) = item(rest, "extensions")?;
            extensions = Some(e);
            rest = r;
        }
        if !rest.is_empty() {
            return Err(DecodeError::Trailing(rest.len()));
        }
        Ok(AuthData {
            rp_id_hash,
            flags,
            sign_count,
            attested,
            extensions,
        })
    }

    pub fn user_present(&self) -> bool {
        self.flags & flag::UP != 0
    }

    pub fn user_verified(&self) -> bool {
        self.flags & flag::UV != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_attested_and_rejects_short() {
        let mut b = vec![0xAA; 32];
        b.push(flag::UP | flag::AT);
        b.extend_from_slice(&7u32.to_be_bytes());
        b.extend_from_slice(&[0x11; 16]);
        b.extend_from_slice(&[0, 2, 0xC1, 0xC2]);
        b.extend_from_slice(&[0xA1, 0x01, 0x02]);
        let a = AuthData::parse(&b).unwrap();
        assert_eq!(a.sign_count, 7);
        assert_eq!(a.attested.as_ref().unwrap().credential_id, vec![0xC1, 0xC2]);
        assert!(AuthData::parse(&b[..40]).is_err());
        b.push(0);
        assert_eq!(AuthData::parse(&b), Err(DecodeError::Trailing(1)));
    }
}
