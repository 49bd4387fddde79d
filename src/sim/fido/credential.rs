//! Credentials the authenticator holds: their keys (ES256, EdDSA), COSE
//! public keys (RFC 9053 §2.1, §7.1; CTAP 2.1 §6.1 "credentialPublicKey")
//! and the secret-bytes type that keeps key material zeroized and out of
//! logs.

use ciborium::Value;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::cbor;
use super::status::CtapError;

/// COSE algorithm identifiers the authenticator supports (CTAP 2.1 §6.4
/// "algorithms", in order of preference).
pub const ES256: i64 = -7;
pub const EDDSA: i64 = -8;
pub const ALGORITHMS: [i64; 2] = [ES256, EDDSA];

/// Secret bytes: zeroized on drop, `Debug` redacted, hex in saved state.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SecretBytes(Zeroizing<Vec<u8>>);

impl SecretBytes {
    pub fn new(b: Vec<u8>) -> SecretBytes {
        SecretBytes(Zeroizing::new(b))
    }
    /// The one accessor for the secret itself.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretBytes({} bytes, redacted)", self.0.len())
    }
}

impl Serialize for SecretBytes {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let h = Zeroizing::new(hex::encode(&*self.0));
        s.serialize_str(&h)
    }
}

impl<'de> Deserialize<'de> for SecretBytes {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = Zeroizing::new(String::deserialize(d)?);
        hex::decode(&*s)
            .map(SecretBytes::new)
            .map_err(serde::de::Error::custom)
    }
}

/// Public bytes as hex in saved state.
mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};
    pub fn serialize<S: Serializer>(b: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(b))
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        hex::decode(String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// One credential, discoverable or not (non-discoverable ones are stored
/// too; CTAP 2.1 §6.1.2 leaves the choice to the authenticator).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Credential {
    #[serde(with = "hex_bytes")]
    pub id: Vec<u8>,
    pub rp_id: String,
    pub rp_name: Option<String>,
    #[serde(with = "hex_bytes")]
    pub user_id: Vec<u8>,
    pub user_name: Option<String>,
    pub display_name: Option<String>,
    pub alg: i64,
    pub key: SecretBytes,
    pub discoverable: bool,
    /// credProtect level 1, 2 or 3 (CTAP 2.1 §12.1).
    pub cred_protect: u8,
    pub sign_count: u32,
    /// Creation order, newest highest (getAssertion returns newest first).
    pub created: u64,
    /// What the extensions of makeCredential left with the credential.
    #[serde(default)]
    pub ext: CredExtensions,
}

/// Per-credential extension state (CTAP 2.1 §12).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct CredExtensions {
    /// Made with `hmac-secret: true` (§12.5): getAssertion answers the
    /// extension for this credential only.
    #[serde(default)]
    pub hmac_secret: bool,
    /// The credBlob stored at creation (§12.2), at most
    /// [`MAX_CRED_BLOB_LENGTH`] bytes; discoverable credentials only.
    #[serde(default)]
    pub cred_blob: Option<SecretBytes>,
    /// The largeBlobKey (§12.3), 32 bytes; discoverable credentials only.
    #[serde(default)]
    pub large_blob_key: Option<SecretBytes>,
}

/// maxCredBlobLength (§6.4 0x0F) of a YubiKey 5.7: 32 bytes.
pub const MAX_CRED_BLOB_LENGTH: usize = 32;

impl Credential {
    /// A fresh private key for `alg`.
    pub fn generate_key(alg: i64) -> Result<SecretBytes, CtapError> {
        match alg {
            ES256 => {
                let k =
                    <p256::ecdsa::SigningKey as p256::elliptic_curve::Generate>::generate_from_rng(
                        &mut crate::sim::rng(),
                    );
                Ok(SecretBytes::new(k.to_bytes().to_vec()))
            }
            EDDSA => {
                let mut b = vec![0u8; 32];
                crate::sim::random_bytes(&mut b);
                Ok(SecretBytes::new(b))
            }
            _ => Err(CtapError::UnsupportedAlgorithm),
        }
    }

    /// The COSE_Key of the public key: EC2 P-256 for ES256, OKP Ed25519 for
    /// EdDSA.
    pub fn cose_public(&self) -> Result<Value, CtapError> {
        match self.alg {
            ES256 => {
                let k = self.p256_key()?;
                let p = k.verifying_key().to_sec1_point(false);
                let b = p.as_bytes();
                Ok(cbor::int_map(vec![
                    (1, cbor::int(2)),
                    (3, cbor::int(ES256)),
                    (-1, cbor::int(1)),
                    (-2, cbor::bytes(&b[1..33])),
                    (-3, cbor::bytes(&b[33..65])),
                ]))
            }
            EDDSA => {
                let k = self.ed_key()?;
                Ok(cbor::int_map(vec![
                    (1, cbor::int(1)),
                    (3, cbor::int(EDDSA)),
                    (-1, cbor::int(6)),
                    (-2, cbor::bytes(k.verifying_key().as_bytes())),
                ]))
            }
            _ => Err(CtapError::UnsupportedAlgorithm),
        }
    }

    /// Sign `msg`: ES256 gives a DER ECDSA signature, EdDSA the 64 raw bytes
    /// (WebAuthn §6.5.5).
    pub fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, CtapError> {
        match self.alg {
            ES256 => {
                use p256::ecdsa::signature::Signer;
                let sig: p256::ecdsa::Signature = self.p256_key()?.sign(msg);
                Ok(sig.to_der().as_bytes().to_vec())
            }
            EDDSA => {
                use ed25519_dalek::Signer;
                Ok(self.ed_key()?.sign(msg).to_bytes().to_vec())
            }
            _ => Err(CtapError::UnsupportedAlgorithm),
        }
    }

    fn p256_key(&self) -> Result<p256::ecdsa::SigningKey, CtapError> {
        p256::ecdsa::SigningKey::from_slice(self.key.expose()).map_err(|_| CtapError::Other)
    }

    fn ed_key(&self) -> Result<ed25519_dalek::SigningKey, CtapError> {
        let b: [u8; 32] = self.key.expose().try_into().map_err(|_| CtapError::Other)?;
        let b = Zeroizing::new(b);
        Ok(ed25519_dalek::SigningKey::from_bytes(&b))
    }

    /// PublicKeyCredentialDescriptor {id, type} (WebAuthn §5.10.3).
    pub fn descriptor(&self) -> Value {
        cbor::text_map(vec![
            ("id", cbor::bytes(&self.id)),
            ("type", cbor::text("public-key")),
        ])
    }

    /// PublicKeyCredentialUserEntity; with `full` false only the id (CTAP
    /// 2.1 §6.2.2: name and displayName only after user verification).
    pub fn user(&self, full: bool) -> Value {
        let mut m = vec![("id", cbor::bytes(&self.user_id))];
        if full {
            if let Some(n) = &self.user_name {
                m.push(("name", cbor::text(n)));
            }
            if let Some(n) = &self.display_name {
                m.push(("displayName", cbor::text(n)));
            }
        }
        cbor::text_map(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cred(alg: i64) -> Credential {
        Credential {
            id: vec![1; 16],
            rp_id: "example.com".into(),
            rp_name: None,
            user_id: vec![2],
            user_name: Some("u".into()),
            display_name: None,
            alg,
            key: Credential::generate_key(alg).unwrap(),
            discoverable: true,
            cred_protect: 1,
            sign_count: 0,
            created: 0,
            ext: CredExtensions::default(),
        }
    }

    #[test]
    fn signatures_verify_with_the_cose_key() {
        let c = cred(ES256);
        let pk = cbor::Req::from_value(&c.cose_public().unwrap()).unwrap();
        let sec1 = [
            &[4u8][..],
            pk.bytes(-2).unwrap().unwrap(),
            pk.bytes(-3).unwrap().unwrap(),
        ]
        .concat();
        let vk = p256::ecdsa::VerifyingKey::from_sec1_bytes(&sec1).unwrap();
        let sig = p256::ecdsa::DerSignature::from_bytes(&c.sign(b"hi").unwrap()).unwrap();
        use p256::ecdsa::signature::Verifier;
        vk.verify(b"hi", &sig).unwrap();

        let c = cred(EDDSA);
        let pk = cbor::Req::from_value(&c.cose_public().unwrap()).unwrap();
        let raw: [u8; 32] = pk.bytes(-2).unwrap().unwrap().try_into().unwrap();
        let vk = ed25519_dalek::VerifyingKey::from_bytes(&raw).unwrap();
        let sig = ed25519_dalek::Signature::from_slice(&c.sign(b"hi").unwrap()).unwrap();
        vk.verify_strict(b"hi", &sig).unwrap();
    }

    #[test]
    fn debug_and_json_keep_keys_hidden_from_logs() {
        let c = cred(ES256);
        let dbg = format!("{c:?}");
        assert!(!dbg.contains(&hex::encode(c.key.expose())), "{dbg}");
        let json = serde_json::to_string(&c).unwrap();
        let back: Credential = serde_json::from_str(&json).unwrap();
        assert_eq!(back.key, c.key);
        assert_eq!(
            Credential::generate_key(-257).unwrap_err(),
            CtapError::UnsupportedAlgorithm
        );
    }
}
