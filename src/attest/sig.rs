//! Signature verification for the algorithms attestation uses: ECDSA P-256 /
//! P-384 with SHA-256/384/512, RSA PKCS#1 v1.5 with SHA-256/384/512 (2048 bits
//! or more) and Ed25519 (RFC 5280 §4.1.1.2, RFC 5758 §3.2, RFC 4055 §5,
//! RFC 8410; COSE algorithms from RFC 9053 / WebAuthn §5.8.5).
//! Anything else — SHA-1, DSA, RSA-PSS, short RSA keys — is refused as
//! unsupported rather than guessed at.

use const_oid::ObjectIdentifier;
use p256::ecdsa::signature::hazmat::PrehashVerifier;
use sha2::{Digest, Sha256, Sha384, Sha512};
use spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};

/// The digest of an RSA signature, for the `rsa` crate cross-check.
enum Digest_<'a> {
    Sha256(&'a [u8]),
    Sha384(&'a [u8]),
    Sha512(&'a [u8]),
}

const EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const P256_CURVE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const P384_CURVE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");
const RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");

/// Smallest RSA modulus accepted (NIST SP 800-131A).
pub const MIN_RSA_BITS: usize = 2048;

/// Why a signature did not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SigError {
    #[error("unsupported signature algorithm {0}")]
    UnsupportedAlgorithm(String),
    #[error("unsupported public key ({0})")]
    UnsupportedKey(String),
    #[error("RSA key of {bits} bits is below the {min}-bit minimum")]
    WeakRsaKey { bits: usize, min: usize },
    #[error("malformed public key")]
    BadKey,
    #[error("malformed signature")]
    BadSignatureEncoding,
    #[error("signature algorithm {alg:?} does not fit a {key} key")]
    AlgorithmKeyMismatch { alg: SigAlg, key: &'static str },
    #[error("signature does not verify")]
    Invalid,
}

/// A signature algorithm, independent of how it was named (X.509 OID, COSE
/// number or JWS name).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub enum SigAlg {
    EcdsaSha256,
    EcdsaSha384,
    EcdsaSha512,
    RsaPkcs1Sha256,
    RsaPkcs1Sha384,
    RsaPkcs1Sha512,
    Ed25519,
}

/// How an ECDSA signature is encoded: X.509 and WebAuthn use a DER
/// `Ecdsa-Sig-Value`; JWS (RFC 7518 §3.4) uses fixed-size r‖s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EcdsaEncoding {
    Der,
    Fixed,
}

impl SigAlg {
    /// From an X.509 AlgorithmIdentifier.
    pub fn from_x509(alg: &AlgorithmIdentifierOwned) -> Result<SigAlg, SigError> {
        const TABLE: &[(ObjectIdentifier, SigAlg)] = &[
            (
                ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2"),
                SigAlg::EcdsaSha256,
            ),
            (
                ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.3"),
                SigAlg::EcdsaSha384,
            ),
            (
                ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.4"),
                SigAlg::EcdsaSha512,
            ),
            (
                ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.11"),
                SigAlg::RsaPkcs1Sha256,
            ),
            (
                ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.12"),
                SigAlg::RsaPkcs1Sha384,
            ),
            (
                ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.13"),
                SigAlg::RsaPkcs1Sha512,
            ),
            (ED25519, SigAlg::Ed25519),
        ];
        TABLE
            .iter()
            .find(|(oid, _)| oid.as_bytes() == alg.oid.as_bytes())
            .map(|(_, a)| *a)
            .ok_or_else(|| SigError::UnsupportedAlgorithm(oid_name(&alg.oid.to_string())))
    }

    /// From a COSE algorithm number (IANA COSE registry).
    pub fn from_cose(alg: i64) -> Result<SigAlg, SigError> {
        Ok(match alg {
            -7 => SigAlg::EcdsaSha256,
            -35 => SigAlg::EcdsaSha384,
            -36 => SigAlg::EcdsaSha512,
            -257 => SigAlg::RsaPkcs1Sha256,
            -258 => SigAlg::RsaPkcs1Sha384,
            -259 => SigAlg::RsaPkcs1Sha512,
            -8 => SigAlg::Ed25519,
            other => return Err(SigError::UnsupportedAlgorithm(format!("COSE {other}"))),
        })
    }

    /// From a JWS `alg` (RFC 7518 §3.1); only RS256 and ES256 as FIDO MDS3
    /// §3.1.7 allows, plus their 384-bit siblings.
    pub fn from_jws(alg: &str) -> Result<SigAlg, SigError> {
        Ok(match alg {
            "ES256" => SigAlg::EcdsaSha256,
            "ES384" => SigAlg::EcdsaSha384,
            "RS256" => SigAlg::RsaPkcs1Sha256,
            "RS384" => SigAlg::RsaPkcs1Sha384,
            other => return Err(SigError::UnsupportedAlgorithm(format!("JWS {other}"))),
        })
    }
}

fn oid_name(oid: &str) -> String {
    let name = match oid {
        "1.2.840.113549.1.1.5" => " (sha1WithRSAEncryption)",
        "1.2.840.113549.1.1.4" => " (md5WithRSAEncryption)",
        "1.2.840.113549.1.1.10" => " (RSASSA-PSS)",
        "1.2.840.10045.4.1" => " (ecdsa-with-SHA1)",
        _ => "",
    };
    format!("{oid}{name}")
}

/// A public key ready to verify.
#[derive(Clone)]
#[non_exhaustive]
pub enum PublicKey {
    P256(p256::ecdsa::VerifyingKey),
    P384(p384::ecdsa::VerifyingKey),
    Rsa(Box<RsaKey>),
    Ed25519(ed25519_dalek::VerifyingKey),
}

/// An RSA public key, with the fast path of [`super::rsa_fast`] when it
/// covers the key.
#[derive(Clone)]
pub struct RsaKey {
    n: Vec<u8>,
    e: Vec<u8>,
    /// DER RSAPublicKey, as aws-lc-rs takes it.
    pkcs1: Vec<u8>,
}

/// PKCS#1 RSAPublicKey (RFC 8017 §A.1.1).
#[derive(der::Sequence)]
struct Pkcs1<'a> {
    n: der::asn1::UintRef<'a>,
    e: der::asn1::UintRef<'a>,
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.kind())
    }
}

impl PublicKey {
    /// From a SubjectPublicKeyInfo (RFC 5280 §4.1.2.7).
    pub fn from_spki(spki: &SubjectPublicKeyInfoOwned) -> Result<PublicKey, SigError> {
        let bits = spki.subject_public_key.raw_bytes();
        let alg = &spki.algorithm;
        if alg.oid == EC_PUBLIC_KEY {
            let curve = alg
                .parameters
                .as_ref()
                .and_then(|p| p.decode_as::<ObjectIdentifier>().ok())
                .ok_or(SigError::BadKey)?;
            if curve == P256_CURVE {
                return PublicKey::p256_sec1(bits);
            }
            if curve == P384_CURVE {
                return PublicKey::p384_sec1(bits);
            }
            return Err(SigError::UnsupportedKey(format!("EC curve {curve}")));
        }
        if alg.oid == RSA_ENCRYPTION {
            use der::Decode;
            let k = Pkcs1::from_der(bits).map_err(|_| SigError::BadKey)?;
            return PublicKey::rsa(k.n.as_bytes(), k.e.as_bytes());
        }
        if alg.oid == ED25519 {
            return PublicKey::ed25519(bits);
        }
        Err(SigError::UnsupportedKey(alg.oid.to_string()))
    }

    pub fn p256_sec1(bytes: &[u8]) -> Result<PublicKey, SigError> {
        p256::ecdsa::VerifyingKey::from_sec1_bytes(bytes)
            .map(PublicKey::P256)
            .map_err(|_| SigError::BadKey)
    }
    pub fn p384_sec1(bytes: &[u8]) -> Result<PublicKey, SigError> {
        p384::ecdsa::VerifyingKey::from_sec1_bytes(bytes)
            .map(PublicKey::P384)
            .map_err(|_| SigError::BadKey)
    }
    pub fn ed25519(bytes: &[u8]) -> Result<PublicKey, SigError> {
        let b: [u8; 32] = bytes.try_into().map_err(|_| SigError::BadKey)?;
        ed25519_dalek::VerifyingKey::from_bytes(&b)
            .map(PublicKey::Ed25519)
            .map_err(|_| SigError::BadKey)
    }
    /// From the big-endian modulus and public exponent.
    pub fn rsa(n: &[u8], e: &[u8]) -> Result<PublicKey, SigError> {
        let n = strip_zeros(n);
        let e = strip_zeros(e);
        let bits = n.len() * 8 - n.first().map_or(8, |b| b.leading_zeros() as usize);
        if bits < MIN_RSA_BITS {
            return Err(SigError::WeakRsaKey {
                bits,
                min: MIN_RSA_BITS,
            });
        }
        if e.is_empty() || n.last().is_none_or(|b| b & 1 == 0) {
            return Err(SigError::BadKey);
        }
        use der::Encode;
        let pkcs1 = Pkcs1 {
            n: der::asn1::UintRef::new(n).map_err(|_| SigError::BadKey)?,
            e: der::asn1::UintRef::new(e).map_err(|_| SigError::BadKey)?,
        }
        .to_der()
        .map_err(|_| SigError::BadKey)?;
        Ok(PublicKey::Rsa(Box::new(RsaKey {
            n: n.to_vec(),
            e: e.to_vec(),
            pkcs1,
        })))
    }

    /// A short name of the key type, for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            PublicKey::P256(_) => "P-256",
            PublicKey::P384(_) => "P-384",
            PublicKey::Rsa(..) => "RSA",
            PublicKey::Ed25519(_) => "Ed25519",
        }
    }

    /// Verify `sig` over `msg` with `alg`.
    pub fn verify(
        &self,
        alg: SigAlg,
        msg: &[u8],
        sig: &[u8],
        enc: EcdsaEncoding,
    ) -> Result<(), SigError> {
        let mismatch = || SigError::AlgorithmKeyMismatch {
            alg,
            key: self.kind(),
        };
        match self {
            PublicKey::P256(vk) => {
                if let Some(a) = aws_ecdsa(false, alg, enc) {
                    return aws_verify(a, vk.to_sec1_point(false).as_bytes(), msg, sig);
                }
                let digest = ecdsa_digest(alg, msg).ok_or_else(mismatch)?;
                let sig = match enc {
                    EcdsaEncoding::Der => p256::ecdsa::Signature::from_der(sig),
                    EcdsaEncoding::Fixed => p256::ecdsa::Signature::from_slice(sig),
                }
                .map_err(|_| SigError::BadSignatureEncoding)?;
                vk.verify_prehash(&digest, &sig)
                    .map_err(|_| SigError::Invalid)
            }
            PublicKey::P384(vk) => {
                if let Some(a) = aws_ecdsa(true, alg, enc) {
                    return aws_verify(a, vk.to_sec1_point(false).as_bytes(), msg, sig);
                }
                let digest = ecdsa_digest(alg, msg).ok_or_else(mismatch)?;
                let sig = match enc {
                    EcdsaEncoding::Der => p384::ecdsa::Signature::from_der(sig),
                    EcdsaEncoding::Fixed => p384::ecdsa::Signature::from_slice(sig),
                }
                .map_err(|_| SigError::BadSignatureEncoding)?;
                vk.verify_prehash(&digest, &sig)
                    .map_err(|_| SigError::Invalid)
            }
            PublicKey::Rsa(k) => {
                use aws_lc_rs::signature as lc;
                let a: &'static dyn lc::VerificationAlgorithm = match alg {
                    SigAlg::RsaPkcs1Sha256 => &lc::RSA_PKCS1_2048_8192_SHA256,
                    SigAlg::RsaPkcs1Sha384 => &lc::RSA_PKCS1_2048_8192_SHA384,
                    SigAlg::RsaPkcs1Sha512 => &lc::RSA_PKCS1_2048_8192_SHA512,
                    _ => return Err(mismatch()),
                };
                aws_verify(a, &k.pkcs1, msg, sig)
            }
            PublicKey::Ed25519(vk) => {
                if alg != SigAlg::Ed25519 {
                    return Err(mismatch());
                }
                let sig = ed25519_dalek::Signature::from_slice(sig)
                    .map_err(|_| SigError::BadSignatureEncoding)?;
                vk.verify_strict(msg, &sig).map_err(|_| SigError::Invalid)
            }
        }
    }
}

impl RsaKey {
    /// The `rsa` crate's verification, for keys the fast path does not cover.
    fn verify_slow(&self, digest: Digest_<'_>, sig: &[u8]) -> Result<(), SigError> {
        use rsa::pkcs1v15::VerifyingKey;
        let sig =
            rsa::pkcs1v15::Signature::try_from(sig).map_err(|_| SigError::BadSignatureEncoding)?;
        let k = rsa::RsaPublicKey::new(
            rsa::BoxedUint::from_be_slice_vartime(&self.n),
            rsa::BoxedUint::from_be_slice_vartime(&self.e),
        )
        .map_err(|_| SigError::BadKey)?;
        match digest {
            Digest_::Sha256(d) => VerifyingKey::<Sha256>::new(k).verify_prehash(d, &sig),
            Digest_::Sha384(d) => VerifyingKey::<Sha384>::new(k).verify_prehash(d, &sig),
            Digest_::Sha512(d) => VerifyingKey::<Sha512>::new(k).verify_prehash(d, &sig),
        }
        .map_err(|_| SigError::Invalid)
    }

    /// Verify with the `rsa` crate only (tests compare both paths).
    #[doc(hidden)]
    pub fn danger_verify_slow_only(
        &self,
        alg: SigAlg,
        msg: &[u8],
        sig: &[u8],
    ) -> Result<(), SigError> {
        let (a, b, c) = (
            Sha256::digest(msg),
            Sha384::digest(msg),
            Sha512::digest(msg),
        );
        let d = match alg {
            SigAlg::RsaPkcs1Sha256 => Digest_::Sha256(&a),
            SigAlg::RsaPkcs1Sha384 => Digest_::Sha384(&b),
            SigAlg::RsaPkcs1Sha512 => Digest_::Sha512(&c),
            _ => return Err(SigError::Invalid),
        };
        self.verify_slow(d, sig)
    }
}

/// aws-lc-rs's ECDSA algorithm for a curve, digest and encoding, where it
/// has one (JWS fixed-size only for ES256/ES384).
fn aws_ecdsa(
    p384: bool,
    alg: SigAlg,
    enc: EcdsaEncoding,
) -> Option<&'static dyn aws_lc_rs::signature::VerificationAlgorithm> {
    use aws_lc_rs::signature as lc;
    Some(match (p384, alg, enc) {
        (false, SigAlg::EcdsaSha256, EcdsaEncoding::Der) => &lc::ECDSA_P256_SHA256_ASN1,
        (false, SigAlg::EcdsaSha384, EcdsaEncoding::Der) => &lc::ECDSA_P256_SHA384_ASN1,
        (false, SigAlg::EcdsaSha512, EcdsaEncoding::Der) => &lc::ECDSA_P256_SHA512_ASN1,
        (false, SigAlg::EcdsaSha256, EcdsaEncoding::Fixed) => &lc::ECDSA_P256_SHA256_FIXED,
        (true, SigAlg::EcdsaSha256, EcdsaEncoding::Der) => &lc::ECDSA_P384_SHA256_ASN1,
        (true, SigAlg::EcdsaSha384, EcdsaEncoding::Der) => &lc::ECDSA_P384_SHA384_ASN1,
        (true, SigAlg::EcdsaSha512, EcdsaEncoding::Der) => &lc::ECDSA_P384_SHA512_ASN1,
        (true, SigAlg::EcdsaSha384, EcdsaEncoding::Fixed) => &lc::ECDSA_P384_SHA384_FIXED,
        _ => return None,
    })
}

fn aws_verify(
    alg: &'static dyn aws_lc_rs::signature::VerificationAlgorithm,
    key: &[u8],
    msg: &[u8],
    sig: &[u8],
) -> Result<(), SigError> {
    aws_lc_rs::signature::UnparsedPublicKey::new(alg, key)
        .verify(msg, sig)
        .map_err(|_| SigError::Invalid)
}

fn strip_zeros(b: &[u8]) -> &[u8] {
    &b[b.iter().position(|&x| x != 0).unwrap_or(b.len())..]
}

fn ecdsa_digest(alg: SigAlg, msg: &[u8]) -> Option<Vec<u8>> {
    Some(match alg {
        SigAlg::EcdsaSha256 => Sha256::digest(msg).to_vec(),
        SigAlg::EcdsaSha384 => Sha384::digest(msg).to_vec(),
        SigAlg::EcdsaSha512 => Sha512::digest(msg).to_vec(),
        _ => return None,
    })
}
