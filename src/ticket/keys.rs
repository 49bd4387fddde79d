//! Issuer keys: public keys from PEM (SPKI, RFC 5280 §4.1.2.7) or JWK
//! (RFC 7517; OKP keys RFC 8037 §2), signing keys from PKCS#8 PEM, and the
//! JWK thumbprint (RFC 7638) used as the default `kid`.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{DecodingKey, EncodingKey};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use thiserror::Error;
use zeroize::Zeroizing;

use super::TicketAlg;

/// A key that could not be read.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum KeyError {
    /// Neither a PEM public key nor a JWK.
    #[error("not a PEM public key or a JWK: {reason}; give an Ed25519 or P-256 public key")]
    Unrecognised { reason: String },
    /// A key type other than Ed25519 or P-256.
    #[error(
        "key type {what} is not accepted; tickets are signed with Ed25519 (EdDSA) or P-256 (ES256) keys"
    )]
    Unsupported { what: String },
    /// A JWK that holds a private key where a public key belongs.
    #[error(
        "the JWK holds a private key (\"d\"); give the issuer's public JWK, never its private key"
    )]
    PrivateInTrustStore,
    /// A signing key file that cannot be used.
    #[error(
        "cannot read the signing key: {reason}; give a PKCS#8 PEM file as written by `keyward ticket keygen`"
    )]
    BadSigningKey { reason: String },
    /// A key generation seed that is not a valid scalar (astronomically rare).
    #[error("seed is not a valid P-256 scalar; draw a new one")]
    BadSeed,
}

/// A trusted public key: its algorithm is its type (no algorithm confusion).
#[non_exhaustive]
#[derive(Clone, PartialEq, Eq)]
pub enum PublicKey {
    /// Ed25519 (RFC 8037), used with EdDSA.
    Ed25519([u8; 32]),
    /// P-256 uncompressed SEC1 point, used with ES256.
    P256(Box<[u8; 65]>),
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PublicKey({} {})", self.alg().name(), self.thumbprint())
    }
}

impl PublicKey {
    /// The one algorithm this key verifies.
    pub fn alg(&self) -> TicketAlg {
        match self {
            PublicKey::Ed25519(_) => TicketAlg::EdDsa,
            PublicKey::P256(_) => TicketAlg::Es256,
        }
    }

    /// Read a PEM SPKI public key or a single JWK.
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        let t = text.trim_start();
        if t.starts_with('{') {
            let jwk: JwkFields = serde_json::from_str(t).map_err(|e| KeyError::Unrecognised {
                reason: e.to_string(),
            })?;
            Ok(Self::from_jwk(&jwk)?.0)
        } else {
            Self::from_pem(t)
        }
    }

    /// Read a `-----BEGIN PUBLIC KEY-----` PEM.
    pub fn from_pem(pem: &str) -> Result<Self, KeyError> {
        use ed25519_dalek::pkcs8::DecodePublicKey;
        if let Ok(k) = ed25519_dalek::VerifyingKey::from_public_key_pem(pem) {
            return Ok(PublicKey::Ed25519(k.to_bytes()));
        }
        if let Ok(k) = p256::PublicKey::from_public_key_pem(pem) {
            return Self::p256(&k);
        }
        if p384::PublicKey::from_public_key_pem(pem).is_ok() {
            return Err(KeyError::Unsupported {
                what: "P-384".into(),
            });
        }
        Err(KeyError::Unrecognised {
            reason: "no Ed25519 or P-256 SubjectPublicKeyInfo PEM found".into(),
        })
    }

    fn p256(k: &p256::PublicKey) -> Result<Self, KeyError> {
        let sec1 = k.to_sec1_bytes();
        let point: [u8; 65] = sec1
            .as_ref()
            .try_into()
            .map_err(|_| KeyError::Unrecognised {
                reason: "P-256 point is not uncompressed".into(),
            })?;
        Ok(PublicKey::P256(Box::new(point)))
    }

    /// A public key from JWK members, with the `kid` if the JWK has one.
    pub(crate) fn from_jwk(jwk: &JwkFields) -> Result<(Self, Option<String>), KeyError> {
        if jwk.d.is_some() {
            return Err(KeyError::PrivateInTrustStore);
        }
        let field = |v: &Option<String>, name: &str| -> Result<Vec<u8>, KeyError> {
            let s = v.as_deref().ok_or_else(|| KeyError::Unrecognised {
                reason: format!("JWK has no {name:?}"),
            })?;
            URL_SAFE_NO_PAD
                .decode(s)
                .map_err(|_| KeyError::Unrecognised {
                    reason: format!("JWK {name:?} is not base64url"),
                })
        };
        let key = match (jwk.kty.as_str(), jwk.crv.as_deref()) {
            ("OKP", Some("Ed25519")) => {
                let x: [u8; 32] =
                    field(&jwk.x, "x")?
                        .try_into()
                        .map_err(|_| KeyError::Unrecognised {
                            reason: "Ed25519 x is not 32 bytes".into(),
                        })?;
                ed25519_dalek::VerifyingKey::from_bytes(&x).map_err(|_| {
                    KeyError::Unrecognised {
                        reason: "Ed25519 x is not a curve point".into(),
                    }
                })?;
                PublicKey::Ed25519(x)
            }
            ("EC", Some("P-256")) => {
                let (x, y) = (field(&jwk.x, "x")?, field(&jwk.y, "y")?);
                if x.len() != 32 || y.len() != 32 {
                    return Err(KeyError::Unrecognised {
                        reason: "P-256 x and y must be 32 bytes".into(),
                    });
                }
                let mut sec1 = vec![4u8];
                sec1.extend_from_slice(&x);
                sec1.extend_from_slice(&y);
                let k = p256::PublicKey::from_sec1_bytes(&sec1).map_err(|_| {
                    KeyError::Unrecognised {
                        reason: "P-256 x,y is not a curve point".into(),
                    }
                })?;
                Self::p256(&k)?
            }
            (kty, crv) => {
                return Err(KeyError::Unsupported {
                    what: format!("kty {kty} crv {}", crv.unwrap_or("-")),
                });
            }
        };
        if let Some(alg) = &jwk.alg
            && alg != key.alg().name()
        {
            return Err(KeyError::Unsupported {
                what: format!("JWK alg {alg} for a {} key", key.alg().name()),
            });
        }
        Ok((key, jwk.kid.clone()))
    }

    /// The key for jsonwebtoken's verifier.
    pub(crate) fn decoding_key(&self) -> DecodingKey {
        match self {
            PublicKey::Ed25519(x) => DecodingKey::from_ed_der(x),
            PublicKey::P256(p) => DecodingKey::from_ec_der(p.as_ref()),
        }
    }

    /// The public JWK (RFC 7517 §4) with `kid`, `alg` and `use`.
    pub fn to_jwk(&self, kid: &str) -> serde_json::Value {
        let mut v = self.required_members();
        let obj = v
            .as_object_mut()
            .expect("required_members returns an object");
        obj.insert("kid".into(), kid.into());
        obj.insert("alg".into(), self.alg().name().into());
        obj.insert("use".into(), "sig".into());
        v
    }

    fn required_members(&self) -> serde_json::Value {
        match self {
            PublicKey::Ed25519(x) => {
                serde_json::json!({"crv": "Ed25519", "kty": "OKP", "x": URL_SAFE_NO_PAD.encode(x)})
            }
            PublicKey::P256(p) => serde_json::json!({
                "crv": "P-256", "kty": "EC",
                "x": URL_SAFE_NO_PAD.encode(&p[1..33]), "y": URL_SAFE_NO_PAD.encode(&p[33..]),
            }),
        }
    }

    /// The RFC 7638 JWK thumbprint (SHA-256, base64url): the required
    /// members in lexicographic order without whitespace. serde_json's map
    /// is ordered (no `preserve_order`), which gives exactly that order.
    pub fn thumbprint(&self) -> String {
        let canonical = self.required_members().to_string();
        URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
    }
}

/// The JWK members keyward reads; others (x5c, key_ops, ...) are ignored.
#[derive(Debug, Deserialize)]
pub(crate) struct JwkFields {
    pub kty: String,
    pub crv: Option<String>,
    pub x: Option<String>,
    pub y: Option<String>,
    pub d: Option<String>,
    pub kid: Option<String>,
    pub alg: Option<String>,
}

/// A private key for signing tickets. Holds no Debug output of the secret.
pub struct SigningKey {
    encoding: EncodingKey,
    public: PublicKey,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningKey({:?}, secret redacted)", self.public)
    }
}

impl SigningKey {
    /// Read a PKCS#8 PEM private key (Ed25519 or P-256).
    pub fn from_pkcs8_pem(pem: &str) -> Result<Self, KeyError> {
        use ed25519_dalek::pkcs8::DecodePrivateKey;
        let bad = |e: jsonwebtoken::errors::Error| KeyError::BadSigningKey {
            reason: e.to_string(),
        };
        if let Ok(k) = ed25519_dalek::SigningKey::from_pkcs8_pem(pem) {
            let encoding = EncodingKey::from_ed_pem(pem.as_bytes()).map_err(bad)?;
            return Ok(Self {
                encoding,
                public: PublicKey::Ed25519(k.verifying_key().to_bytes()),
            });
        }
        if let Ok(k) = p256::SecretKey::from_pkcs8_pem(pem) {
            let encoding = EncodingKey::from_ec_pem(pem.as_bytes()).map_err(bad)?;
            return Ok(Self {
                encoding,
                public: PublicKey::p256(&k.public_key())?,
            });
        }
        Err(KeyError::BadSigningKey {
            reason: "not an Ed25519 or P-256 PKCS#8 private key".into(),
        })
    }

    /// Derive a new key from 32 random bytes, returning it and its PKCS#8
    /// PEM. The caller supplies the randomness (the CLI reads the OS RNG).
    pub fn generate(
        alg: TicketAlg,
        seed: &Zeroizing<[u8; 32]>,
    ) -> Result<(Self, Zeroizing<String>), KeyError> {
        use ed25519_dalek::pkcs8::EncodePrivateKey;
        let lf = der::pem::LineEnding::LF;
        let enc = |e: ed25519_dalek::pkcs8::Error| KeyError::BadSigningKey {
            reason: e.to_string(),
        };
        let pem = match alg {
            // PKCS#8 v1 (no public key member): OpenSSL 3.0 and Python's
            // cryptography refuse the v2 form ed25519-dalek writes by default.
            TicketAlg::EdDsa => ed25519_dalek::pkcs8::KeypairBytes {
                secret_key: **seed,
                public_key: None,
            }
            .to_pkcs8_pem(lf)
            .map_err(enc)?,
            TicketAlg::Es256 => {
                let sk =
                    p256::SecretKey::from_slice(seed.as_ref()).map_err(|_| KeyError::BadSeed)?;
                sk.to_pkcs8_pem(lf).map_err(enc)?
            }
        };
        let key = Self::from_pkcs8_pem(&pem)?;
        Ok((key, pem))
    }

    /// The matching public key.
    pub fn public(&self) -> &PublicKey {
        &self.public
    }

    /// The algorithm this key signs with.
    pub fn alg(&self) -> TicketAlg {
        self.public.alg()
    }

    /// Sign a JWS Signing Input (RFC 7515 §5.1), returning the base64url
    /// signature (ES256 as R || S, RFC 7518 §3.4). Signs any bytes: tests use
    /// it to build malformed tickets.
    pub fn sign(&self, message: &[u8]) -> Result<String, KeyError> {
        let sig =
            jsonwebtoken::crypto::sign(message, &self.encoding, self.alg().jwt()).map_err(|e| {
                KeyError::BadSigningKey {
                    reason: e.to_string(),
                }
            })?;
        Ok(match self.alg() {
            TicketAlg::Es256 => es256_normalise_s(&sig),
            TicketAlg::EdDsa => sig,
        })
    }
}

/// Half the order of the P-256 group, big-endian (SEC 2 §2.4.2: n =
/// FFFFFFFF 00000000 FFFFFFFF FFFFFFFF BCE6FAAD A7179E84 F3B9CAC2 FC632551).
const P256_HALF_N: [u8; 32] = [
    0x7f, 0xff, 0xff, 0xff, 0x80, 0x00, 0x00, 0x00, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xde, 0x73, 0x7d, 0x56, 0xd3, 0x8b, 0xcf, 0x42, 0x79, 0xdc, 0xe5, 0x61, 0x7e, 0x31, 0x92, 0xa8,
];

/// Whether a base64url ES256 signature (R || S, RFC 7518 §3.4) has S ≤ n/2.
/// ECDSA accepts (R, S) and (R, n − S) alike; refusing the high twin keeps
/// one signed ticket to one encoding. Malformed input answers `true` and is
/// left to the signature check.
pub(crate) fn es256_low_s(signature_b64: &str) -> bool {
    match URL_SAFE_NO_PAD.decode(signature_b64) {
        // Big-endian byte strings of equal length compare as numbers.
        Ok(sig) if sig.len() == 64 => sig[32..] <= P256_HALF_N[..],
        _ => true,
    }
}

/// Replace S by n − S when S is high, so keyward's own tickets are low-S.
fn es256_normalise_s(signature_b64: &str) -> String {
    let normalised = URL_SAFE_NO_PAD
        .decode(signature_b64)
        .ok()
        .and_then(|b| p256::ecdsa::Signature::from_slice(&b).ok())
        .map(|sig| URL_SAFE_NO_PAD.encode(sig.normalize_s().to_bytes()));
    normalised.unwrap_or_else(|| signature_b64.to_owned())
}
