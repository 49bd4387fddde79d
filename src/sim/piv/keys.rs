//! Slot private keys: generation, public-key encoding, signing and ECDH.
//!
//! Algorithm identifiers are those of NIST SP 800-78-4 Table 6-2 (`06`
//! RSA-1024, `07` RSA-2048, `11` P-256, `14` P-384) plus Yubico's (firmware
//! 5.7+, Yubico PIV docs "Supported algorithms"; yubikit `KEY_TYPE`): `05`
//! RSA-3072, `16` RSA-4096, `E0` Ed25519, `E1` X25519. An RSA key's
//! identifier follows from its modulus size.

use p256::pkcs8::{DecodePrivateKey, EncodePrivateKey, EncodePublicKey};
use spki::SubjectPublicKeyInfoOwned;
use zeroize::Zeroizing;

use super::tlv;
use crate::sim::apdu::sw;

pub const ALG_RSA1024: u8 = 0x06;
pub const ALG_RSA2048: u8 = 0x07;
pub const ALG_RSA3072: u8 = 0x05;
pub const ALG_RSA4096: u8 = 0x16;
pub const ALG_P256: u8 = 0x11;
pub const ALG_P384: u8 = 0x14;
pub const ALG_ED25519: u8 = 0xE0;
pub const ALG_X25519: u8 = 0xE1;

/// The modulus size in bits of an RSA algorithm identifier.
pub fn rsa_bits(alg: u8) -> Option<usize> {
    match alg {
        ALG_RSA1024 => Some(1024),
        ALG_RSA2048 => Some(2048),
        ALG_RSA3072 => Some(3072),
        ALG_RSA4096 => Some(4096),
        _ => None,
    }
}

/// The RFC 8410 PKCS#8 prefix of an X25519 private key (OID 1.3.101.110,
/// privateKey `04 20 <32 bytes>`); the key follows.
const X25519_PKCS8_PREFIX: [u8; 16] = [
    0x30, 0x2E, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2B, 0x65, 0x6E, 0x04, 0x22, 0x04, 0x20,
];

/// id-X25519 (RFC 8410 §3).
const OID_X25519: der::asn1::ObjectIdentifier =
    der::asn1::ObjectIdentifier::new_unwrap("1.3.101.110");

/// A private key in a slot.
pub enum PrivateKey {
    P256(p256::ecdsa::SigningKey),
    P384(p384::ecdsa::SigningKey),
    Ed25519(ed25519_dalek::SigningKey),
    /// Key agreement only: a YubiKey never signs with it.
    X25519(x25519_dalek::StaticSecret),
    Rsa(Box<rsa::RsaPrivateKey>),
}

impl std::fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PrivateKey({:02X}, <redacted>)", self.alg())
    }
}

/// Why a key operation failed, as a status word.
pub type Sw = u16;

impl PrivateKey {
    /// Generate a fresh key; `None` for an unknown algorithm.
    pub fn generate(alg: u8) -> Option<PrivateKey> {
        let mut rng = crate::sim::rng();
        Some(match alg {
            ALG_P256 => PrivateKey::P256(
                <p256::ecdsa::SigningKey as p256::elliptic_curve::Generate>::generate_from_rng(
                    &mut rng,
                ),
            ),
            ALG_P384 => PrivateKey::P384(
                <p384::ecdsa::SigningKey as p384::elliptic_curve::Generate>::generate_from_rng(
                    &mut rng,
                ),
            ),
            ALG_ED25519 => {
                let mut seed = Zeroizing::new([0u8; 32]);
                crate::sim::random_bytes(&mut seed[..]);
                PrivateKey::Ed25519(ed25519_dalek::SigningKey::from_bytes(&seed))
            }
            ALG_X25519 => {
                let mut raw = Zeroizing::new([0u8; 32]);
                crate::sim::random_bytes(&mut raw[..]);
                PrivateKey::X25519(x25519_dalek::StaticSecret::from(*raw))
            }
            _ => {
                let bits = rsa_bits(alg)?;
                PrivateKey::Rsa(Box::new(rsa::RsaPrivateKey::new(&mut rng, bits).ok()?))
            }
        })
    }

    pub fn alg(&self) -> u8 {
        use rsa::traits::PublicKeyParts;
        match self {
            PrivateKey::P256(_) => ALG_P256,
            PrivateKey::P384(_) => ALG_P384,
            PrivateKey::Ed25519(_) => ALG_ED25519,
            PrivateKey::X25519(_) => ALG_X25519,
            PrivateKey::Rsa(k) => match k.size() {
                128 => ALG_RSA1024,
                384 => ALG_RSA3072,
                512 => ALG_RSA4096,
                _ => ALG_RSA2048,
            },
        }
    }

    /// The public key as the card returns it inside `7F49` (SP 800-73-4
    /// Part 2 §3.3.2 Table 10: `81` modulus and `82` exponent for RSA, `86`
    /// point for EC; Yubico uses `86` for the raw Ed25519 and X25519 keys
    /// too, yubikit `_parse_device_public_key`).
    pub fn public_tlvs(&self) -> Vec<u8> {
        use rsa::traits::PublicKeyParts;
        match self {
            PrivateKey::P256(k) => {
                tlv::encode(0x86, k.verifying_key().to_sec1_point(false).as_bytes())
            }
            PrivateKey::P384(k) => {
                tlv::encode(0x86, k.verifying_key().to_sec1_point(false).as_bytes())
            }
            PrivateKey::Ed25519(k) => tlv::encode(0x86, k.verifying_key().as_bytes()),
            PrivateKey::X25519(k) => tlv::encode(0x86, x25519_dalek::PublicKey::from(k).as_bytes()),
            PrivateKey::Rsa(k) => {
                let mut v = tlv::encode(0x81, &k.n_bytes());
                v.extend(tlv::encode(0x82, &k.e_bytes()));
                v
            }
        }
    }

    /// SubjectPublicKeyInfo, for attestation certificates.
    pub fn spki(&self) -> Option<SubjectPublicKeyInfoOwned> {
        use der::Decode;
        let doc = match self {
            PrivateKey::P256(k) => k.verifying_key().to_public_key_der().ok()?,
            PrivateKey::P384(k) => k.verifying_key().to_public_key_der().ok()?,
            PrivateKey::Ed25519(k) => k.verifying_key().to_public_key_der().ok()?,
            PrivateKey::X25519(k) => {
                return Some(SubjectPublicKeyInfoOwned {
                    algorithm: spki::AlgorithmIdentifierOwned {
                        oid: OID_X25519,
                        parameters: None,
                    },
                    subject_public_key: der::asn1::BitString::from_bytes(
                        x25519_dalek::PublicKey::from(k).as_bytes(),
                    )
                    .ok()?,
                });
            }
            PrivateKey::Rsa(k) => k.to_public_key().to_public_key_der().ok()?,
        };
        SubjectPublicKeyInfoOwned::from_der(doc.as_bytes()).ok()
    }

    /// The private operation of GENERAL AUTHENTICATE with a `81` challenge
    /// (SP 800-73-4 Part 2 §3.2.4, Yubico PIV docs "Sign"): ECDSA over the
    /// host's digest (DER signature), Ed25519 over the message, raw RSA
    /// (the host pads). An X25519 key cannot sign: `6A80`, the answer the
    /// simulator gives for every key/operation mismatch (no device trace of
    /// this refusal is public; docs/simulator.md).
    pub fn sign(&self, input: &[u8]) -> Result<Vec<u8>, Sw> {
        use p256::ecdsa::signature::hazmat::PrehashSigner;
        match self {
            PrivateKey::P256(k) => {
                let h = fit_digest(input, 32)?;
                let s: p256::ecdsa::Signature = k.sign_prehash(&h).map_err(|_| sw::WRONG_DATA)?;
                Ok(s.to_der().as_bytes().to_vec())
            }
            PrivateKey::P384(k) => {
                let h = fit_digest(input, 48)?;
                let s: p384::ecdsa::Signature = k.sign_prehash(&h).map_err(|_| sw::WRONG_DATA)?;
                Ok(s.to_der().as_bytes().to_vec())
            }
            PrivateKey::Ed25519(k) => {
                use ed25519_dalek::Signer;
                Ok(k.sign(input).to_bytes().to_vec())
            }
            PrivateKey::X25519(_) => Err(sw::WRONG_DATA),
            PrivateKey::Rsa(k) => rsa_raw(k, input),
        }
    }

    /// ECDH with the host's uncompressed point (`85`, SP 800-73-4 Part 2
    /// §3.2.4): the shared secret's x-coordinate. For X25519 the host sends
    /// its raw 32-byte u-coordinate and gets the RFC 7748 shared secret
    /// (yubikit `calculate_secret`); an all-zero result (a low-order peer
    /// point, RFC 7748 §6.1) is refused.
    pub fn ecdh(&self, point: &[u8]) -> Result<Vec<u8>, Sw> {
        use p256::elliptic_curve::ecdh::diffie_hellman;
        match self {
            PrivateKey::P256(k) => {
                let pk = p256::PublicKey::from_sec1_bytes(point).map_err(|_| sw::WRONG_DATA)?;
                let s = diffie_hellman(k.as_nonzero_scalar(), pk.as_affine());
                Ok(s.raw_secret_bytes().to_vec())
            }
            PrivateKey::P384(k) => {
                let pk = p384::PublicKey::from_sec1_bytes(point).map_err(|_| sw::WRONG_DATA)?;
                let s = diffie_hellman(k.as_nonzero_scalar(), pk.as_affine());
                Ok(s.raw_secret_bytes().to_vec())
            }
            PrivateKey::X25519(k) => {
                let peer: [u8; 32] = point.try_into().map_err(|_| sw::WRONG_DATA)?;
                let s = k.diffie_hellman(&x25519_dalek::PublicKey::from(peer));
                if !s.was_contributory() {
                    return Err(sw::WRONG_DATA);
                }
                Ok(s.as_bytes().to_vec())
            }
            _ => Err(sw::WRONG_DATA),
        }
    }

    /// PKCS#8 DER, for `--state` persistence only.
    pub fn to_pkcs8(&self) -> Option<Zeroizing<Vec<u8>>> {
        let doc = match self {
            PrivateKey::P256(k) => k.to_pkcs8_der().ok()?,
            PrivateKey::P384(k) => k.to_pkcs8_der().ok()?,
            PrivateKey::Ed25519(k) => k.to_pkcs8_der().ok()?,
            PrivateKey::X25519(k) => {
                let mut v = Zeroizing::new(X25519_PKCS8_PREFIX.to_vec());
                v.extend_from_slice(k.as_bytes());
                return Some(v);
            }
            PrivateKey::Rsa(k) => k.to_pkcs8_der().ok()?,
        };
        Some(Zeroizing::new(doc.as_bytes().to_vec()))
    }

    pub fn from_pkcs8(alg: u8, der: &[u8]) -> Option<PrivateKey> {
        Some(match alg {
            ALG_P256 => PrivateKey::P256(p256::ecdsa::SigningKey::from_pkcs8_der(der).ok()?),
            ALG_P384 => PrivateKey::P384(p384::ecdsa::SigningKey::from_pkcs8_der(der).ok()?),
            ALG_ED25519 => {
                PrivateKey::Ed25519(ed25519_dalek::SigningKey::from_pkcs8_der(der).ok()?)
            }
            ALG_X25519 => {
                let raw = der.strip_prefix(&X25519_PKCS8_PREFIX[..])?;
                let raw: Zeroizing<[u8; 32]> = Zeroizing::new(raw.try_into().ok()?);
                PrivateKey::X25519(x25519_dalek::StaticSecret::from(*raw))
            }
            _ => {
                let k = rsa::RsaPrivateKey::from_pkcs8_der(der).ok()?;
                let k = PrivateKey::Rsa(Box::new(k));
                (k.alg() == alg).then_some(k)?
            }
        })
    }
}

/// The digest as an ECDSA field element input: shorter digests are
/// left-padded, longer ones keep their leftmost bytes (SEC 1 §4.1.3 step 5).
fn fit_digest(input: &[u8], len: usize) -> Result<Vec<u8>, Sw> {
    if input.is_empty() || input.len() > 64 {
        return Err(sw::WRONG_DATA);
    }
    if input.len() >= len {
        return Ok(input[..len].to_vec());
    }
    let mut v = vec![0u8; len - input.len()];
    v.extend_from_slice(input);
    Ok(v)
}

/// Raw RSA private operation on a modulus-sized block.
fn rsa_raw(k: &rsa::RsaPrivateKey, input: &[u8]) -> Result<Vec<u8>, Sw> {
    use rsa::BoxedUint;
    use rsa::traits::{PrivateKeyParts, PublicKeyParts};
    let size = k.size();
    if input.len() != size {
        return Err(sw::WRONG_DATA);
    }
    let c = BoxedUint::from_be_slice(input, k.n_bits_precision()).map_err(|_| sw::WRONG_DATA)?;
    if c >= *k.n().as_ref() {
        return Err(sw::WRONG_DATA);
    }
    // The rsa crate's raw primitive sits behind its `hazmat` feature, which
    // this crate does not enable; the simulator computes c^d mod n itself.
    let m = c.pow_mod(k.d(), k.n_params().modulus());
    let bytes = m.to_be_bytes();
    // Left-pad (or trim the precision's leading zeros) to the modulus size.
    let mut out = vec![0u8; size];
    let src = if bytes.len() > size {
        &bytes[bytes.len() - size..]
    } else {
        &bytes[..]
    };
    out[size - src.len()..].copy_from_slice(src);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::ecdsa::signature::hazmat::PrehashVerifier;

    #[test]
    fn p256_signs_digest_and_round_trips_pkcs8() {
        let k = PrivateKey::generate(ALG_P256).unwrap();
        let digest = [0x11u8; 32];
        let sig = k.sign(&digest).unwrap();
        let PrivateKey::P256(sk) = &k else { panic!() };
        let s = p256::ecdsa::Signature::from_der(&sig).unwrap();
        sk.verifying_key().verify_prehash(&digest, &s).unwrap();
        let back = PrivateKey::from_pkcs8(ALG_P256, &k.to_pkcs8().unwrap()).unwrap();
        assert_eq!(back.public_tlvs(), k.public_tlvs());
        assert_eq!(k.public_tlvs()[..2], [0x86, 65]);
    }

    #[test]
    fn ed25519_and_p384_encode_and_reject_bad_input() {
        let e = PrivateKey::generate(ALG_ED25519).unwrap();
        assert_eq!(e.public_tlvs()[..2], [0x86, 32]);
        assert_eq!(e.sign(b"msg").unwrap().len(), 64);
        assert_eq!(e.ecdh(&[4; 65]), Err(sw::WRONG_DATA));
        let p = PrivateKey::generate(ALG_P384).unwrap();
        assert_eq!(p.public_tlvs()[..2], [0x86, 97]);
        assert_eq!(p.sign(&[]), Err(sw::WRONG_DATA));
        assert_eq!(p.ecdh(&[4; 97]), Err(sw::WRONG_DATA));
        assert!(PrivateKey::generate(0x42).is_none());
        assert!(PrivateKey::from_pkcs8(ALG_P256, b"junk").is_none());
    }

    #[test]
    fn ecdh_agrees_with_host() {
        let k = PrivateKey::generate(ALG_P256).unwrap();
        let host = PrivateKey::generate(ALG_P256).unwrap();
        let (PrivateKey::P256(ks), PrivateKey::P256(hs)) = (&k, &host) else {
            panic!()
        };
        let a = k
            .ecdh(hs.verifying_key().to_sec1_point(false).as_bytes())
            .unwrap();
        let b = host
            .ecdh(ks.verifying_key().to_sec1_point(false).as_bytes())
            .unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn rsa_raw_signature_verifies_as_pkcs1v15() {
        use rsa::signature::Verifier;
        use sha2::Digest;
        let k = PrivateKey::generate(ALG_RSA2048).unwrap();
        let PrivateKey::Rsa(sk) = &k else { panic!() };
        let tlvs = k.public_tlvs();
        assert_eq!(tlvs[..4], [0x81, 0x82, 0x01, 0x00]);
        // EMSA-PKCS1-v1_5 (RFC 8017 §9.2) of SHA-256("hello"), built by the host.
        let prefix = hex::decode("3031300d060960864801650304020105000420").unwrap();
        let mut em = vec![0x00, 0x01];
        em.resize(256 - prefix.len() - 32 - 1, 0xFF);
        em.push(0x00);
        em.extend(prefix);
        em.extend(sha2::Sha256::digest(b"hello"));
        let sig = k.sign(&em).unwrap();
        let vk = rsa::pkcs1v15::VerifyingKey::<sha2::Sha256>::new(sk.to_public_key());
        let sig = rsa::pkcs1v15::Signature::try_from(&sig[..]).unwrap();
        vk.verify(b"hello", &sig).unwrap();
        assert_eq!(k.sign(&em[1..]), Err(sw::WRONG_DATA));
        assert_eq!(k.sign(&[0xFF; 256]), Err(sw::WRONG_DATA));
    }
}
