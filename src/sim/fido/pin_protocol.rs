//! PIN/UV auth protocols one and two (CTAP 2.1 §6.5.6, §6.5.7): the
//! authenticator's key agreement key, the shared secret, encryption and
//! message authentication.

use aes::Aes256;
use aes::cipher::block_padding::NoPadding;
use aes::cipher::{BlockModeDecrypt, BlockModeEncrypt, KeyInit, KeyIvInit};
use ciborium::Value;
use hmac::{Hmac, Mac};
use p256::ecdsa::SigningKey;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, Zeroizing};

use super::cbor::{self, Req};
use super::status::CtapError;

/// A shared secret from [`KeyAgreement::shared_secret`]: 32 bytes for
/// protocol one, 64 (HMAC key ‖ AES key) for protocol two.
pub type SharedSecret = Zeroizing<Vec<u8>>;

/// Which PIN/UV auth protocol a request names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PinProtocol {
    One,
    Two,
}

impl PinProtocol {
    /// From the `pinUvAuthProtocol` parameter: unknown numbers are
    /// `CTAP1_ERR_INVALID_PARAMETER` (§6.5.5.4).
    pub fn from_param(p: i128) -> Result<PinProtocol, CtapError> {
        match p {
            1 => Ok(PinProtocol::One),
            2 => Ok(PinProtocol::Two),
            _ => Err(CtapError::InvalidParameter),
        }
    }

    /// kdf(Z) (§6.5.6: SHA-256(Z); §6.5.7: HKDF-SHA-256 with a zero salt,
    /// "CTAP2 HMAC key" ‖ "CTAP2 AES key").
    fn kdf(self, z: &[u8]) -> SharedSecret {
        match self {
            PinProtocol::One => Zeroizing::new(Sha256::digest(z).to_vec()),
            PinProtocol::Two => {
                let hk = hkdf::Hkdf::<Sha256>::new(Some(&[0u8; 32]), z);
                let mut out = Zeroizing::new(vec![0u8; 64]);
                // 32-byte outputs are far below the HKDF limit.
                let _ = hk.expand(b"CTAP2 HMAC key", &mut out[..32]);
                let _ = hk.expand(b"CTAP2 AES key", &mut out[32..]);
                out
            }
        }
    }

    fn aes_key(self, shared: &[u8]) -> &[u8] {
        match self {
            PinProtocol::One => shared,
            PinProtocol::Two => &shared[32..],
        }
    }

    fn hmac_key(self, shared: &[u8]) -> &[u8] {
        match self {
            PinProtocol::One => shared,
            PinProtocol::Two => &shared[..32],
        }
    }

    /// encrypt(key, demPlaintext): AES-256-CBC without padding; IV all zero
    /// (one) or random and prepended (two).
    pub fn encrypt(self, shared: &[u8], plain: &[u8]) -> Vec<u8> {
        let mut iv = [0u8; 16];
        if self == PinProtocol::Two {
            crate::sim::random_bytes(&mut iv);
        }
        let body = cbc_encrypt(self.aes_key(shared), &iv, plain);
        match self {
            PinProtocol::One => body,
            PinProtocol::Two => [&iv[..], &body].concat(),
        }
    }

    /// decrypt(key, demCiphertext); a length that is not whole blocks is
    /// `CTAP1_ERR_INVALID_PARAMETER`.
    pub fn decrypt(self, shared: &[u8], ct: &[u8]) -> Result<Zeroizing<Vec<u8>>, CtapError> {
        let (iv, body) = match self {
            PinProtocol::One => ([0u8; 16], ct),
            PinProtocol::Two => {
                let (iv, body) = ct.split_at_checked(16).ok_or(CtapError::InvalidParameter)?;
                let mut a = [0u8; 16];
                a.copy_from_slice(iv);
                (a, body)
            }
        };
        if body.is_empty() || body.len() % 16 != 0 {
            return Err(CtapError::InvalidParameter);
        }
        Ok(cbc_decrypt(self.aes_key(shared), &iv, body))
    }

    /// authenticate(key, message): HMAC-SHA-256, the first 16 bytes for
    /// protocol one, all 32 for two. `key` is a shared secret or a
    /// pinUvAuthToken.
    pub fn authenticate(self, key: &[u8], msg: &[u8]) -> Vec<u8> {
        let k = if key.len() == 64 {
            self.hmac_key(key)
        } else {
            key
        };
        let mac = match <Hmac<Sha256> as KeyInit>::new_from_slice(k) {
            Ok(mut m) => {
                m.update(msg);
                m.finalize().into_bytes().to_vec()
            }
            Err(_) => return Vec::new(),
        };
        match self {
            PinProtocol::One => mac[..16].to_vec(),
            PinProtocol::Two => mac,
        }
    }

    /// verify(key, message, signature) in constant time.
    pub fn verify(self, key: &[u8], msg: &[u8], sig: &[u8]) -> bool {
        let want = self.authenticate(key, msg);
        !want.is_empty() && want.len() == sig.len() && bool::from(want.ct_eq(sig))
    }
}

/// AES-256-CBC (the `cbc` crate), no padding; `plain` is whole blocks.
fn cbc_encrypt(key: &[u8], iv: &[u8; 16], plain: &[u8]) -> Vec<u8> {
    let Ok(c) = cbc::Encryptor::<Aes256>::new_from_slices(key, iv) else {
        return Vec::new();
    };
    c.encrypt_padded_vec::<NoPadding>(&plain[..plain.len() / 16 * 16])
}

/// The inverse, whole blocks only; the result (a PIN, a token) is wiped.
fn cbc_decrypt(key: &[u8], iv: &[u8; 16], ct: &[u8]) -> Zeroizing<Vec<u8>> {
    let mut buf = Zeroizing::new(ct[..ct.len() / 16 * 16].to_vec());
    let ok = cbc::Decryptor::<Aes256>::new_from_slices(key, iv)
        .is_ok_and(|c| c.decrypt_padded::<NoPadding>(&mut buf).is_ok());
    if !ok {
        buf.zeroize();
        buf.clear();
    }
    buf
}

/// The authenticator's key agreement key (§6.5.6 initialize / regenerate).
pub struct KeyAgreement {
    key: SigningKey,
}

impl std::fmt::Debug for KeyAgreement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyAgreement(..)")
    }
}

impl KeyAgreement {
    pub fn generate() -> KeyAgreement {
        KeyAgreement {
            key: <SigningKey as p256::elliptic_curve::Generate>::generate_from_rng(
                &mut crate::sim::rng(),
            ),
        }
    }

    /// getPublicKey(): the COSE_Key with alg -25 (ECDH-ES+HKDF-256), as
    /// §6.5.6 says for both protocols.
    pub fn cose_public(&self) -> Value {
        let point = self.key.verifying_key().to_sec1_point(false);
        let b = point.as_bytes();
        cbor::int_map(vec![
            (1, cbor::int(2)),
            (3, cbor::int(-25)),
            (-1, cbor::int(1)),
            (-2, cbor::bytes(&b[1..33])),
            (-3, cbor::bytes(&b[33..65])),
        ])
    }

    /// decapsulate(peerCoseKey): ECDH with the platform's key, then kdf.
    /// A malformed key or a point off the curve is
    /// `CTAP1_ERR_INVALID_PARAMETER`.
    pub fn shared_secret(&self, proto: PinProtocol, peer: &Req) -> Result<SharedSecret, CtapError> {
        let kty = peer.int(1)?.ok_or(CtapError::MissingParameter)?;
        let crv = peer.int(-1)?.ok_or(CtapError::MissingParameter)?;
        let x = peer.bytes(-2)?.ok_or(CtapError::MissingParameter)?;
        let y = peer.bytes(-3)?.ok_or(CtapError::MissingParameter)?;
        if kty != 2 || crv != 1 || x.len() != 32 || y.len() != 32 {
            return Err(CtapError::InvalidParameter);
        }
        let sec1 = [&[0x04][..], x, y].concat();
        let pk =
            p256::PublicKey::from_sec1_bytes(&sec1).map_err(|_| CtapError::InvalidParameter)?;
        let z = p256::elliptic_curve::ecdh::diffie_hellman(
            self.key.as_nonzero_scalar(),
            pk.as_affine(),
        );
        Ok(proto.kdf(z.raw_secret_bytes()))
    }
}

#[cfg(test)]
pub mod tests {
    use super::*;

    /// The platform side of key agreement, for tests.
    pub fn platform(auth_ka: &Value, proto: PinProtocol) -> (Value, SharedSecret) {
        let me = KeyAgreement::generate();
        let peer = Req::from_value(auth_ka).unwrap();
        let shared = me.shared_secret(proto, &peer).unwrap();
        (me.cose_public(), shared)
    }

    #[test]
    fn both_sides_agree_and_round_trip() {
        for proto in [PinProtocol::One, PinProtocol::Two] {
            let a = KeyAgreement::generate();
            let (pk, s1) = platform(&a.cose_public(), proto);
            let s2 = a
                .shared_secret(proto, &Req::from_value(&pk).unwrap())
                .unwrap();
            assert_eq!(*s1, *s2);
            let ct = proto.encrypt(&s1, &[7u8; 64]);
            assert_eq!(ct.len(), if proto == PinProtocol::One { 64 } else { 80 });
            assert_eq!(*proto.decrypt(&s2, &ct).unwrap(), vec![7u8; 64]);
            let tag = proto.authenticate(&s1, b"msg");
            assert!(proto.verify(&s2, b"msg", &tag));
            assert!(!proto.verify(&s2, b"msh", &tag));
            assert!(proto.decrypt(&s2, &[0u8; 15]).is_err());
        }
    }

    #[test]
    fn protocol_one_is_aes_cbc_zero_iv() {
        // FIPS-197 C.3 AES-256 vector: with a zero IV, one CBC block is ECB.
        let key: Vec<u8> = (0u8..32).collect();
        let pt = hex::decode("00112233445566778899aabbccddeeff").unwrap();
        let ct = PinProtocol::One.encrypt(&key, &pt);
        assert_eq!(hex::encode(ct), "8ea2b7ca516745bfeafc49904b496089");
    }

    #[test]
    fn rejects_bad_peer_keys() {
        let a = KeyAgreement::generate();
        let bad = Req(vec![(cbor::int(1), cbor::int(2))]);
        assert_eq!(
            a.shared_secret(PinProtocol::Two, &bad).unwrap_err(),
            CtapError::MissingParameter
        );
        let off_curve = Req::from_value(&cbor::int_map(vec![
            (1, cbor::int(2)),
            (3, cbor::int(-25)),
            (-1, cbor::int(1)),
            (-2, cbor::bytes(&[1u8; 32])),
            (-3, cbor::bytes(&[2u8; 32])),
        ]))
        .unwrap();
        assert_eq!(
            a.shared_secret(PinProtocol::One, &off_curve).unwrap_err(),
            CtapError::InvalidParameter
        );
    }
}
