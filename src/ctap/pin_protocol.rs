//! PIN/UV auth protocols one and two, platform side (CTAP 2.1 §6.5.6,
//! §6.5.7): key agreement with the authenticator's COSE key, kdf, AES-256-CBC
//! encrypt/decrypt and HMAC-SHA-256 authenticate. Checked against vectors
//! that python-fido2's `PinProtocolV1`/`PinProtocolV2` produced
//! (tests/data/ctap/gen_pin_vectors.py).

use aes::Aes256;
use aes::cipher::block_padding::NoPadding;
use aes::cipher::{BlockModeDecrypt, BlockModeEncrypt, KeyInit, KeyIvInit};
use ciborium::Value;
use hmac::{Hmac, Mac};
use p256::elliptic_curve::sec1::ToSec1Point;
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, Zeroizing};

use super::cbor::{self, DecodeError, Fields};

/// Which PIN/UV auth protocol (the `pinUvAuthProtocol` number).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PinProtocol {
    V1,
    V2,
}

/// Why a PIN protocol operation failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PinProtocolError {
    #[error("the key's key agreement key is not a P-256 point")]
    BadPeerKey,
    #[error("ciphertext is not a whole number of AES blocks")]
    BadCiphertext,
    #[error("decoding the key agreement key")]
    Decode(#[from] DecodeError),
}

/// The shared secret of one key agreement: 32 bytes (V1) or 64 (V2:
/// HMAC key ‖ AES key).
#[derive(Clone)]
pub struct SharedSecret(Zeroizing<Vec<u8>>);

impl SharedSecret {
    /// The secret bytes (tests and vectors).
    pub fn expose_secret(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for SharedSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SharedSecret([redacted])")
    }
}

impl PinProtocol {
    /// The `pinUvAuthProtocol` number.
    pub fn number(self) -> u8 {
        match self {
            PinProtocol::V1 => 1,
            PinProtocol::V2 => 2,
        }
    }

    pub fn from_number(n: u64) -> Option<PinProtocol> {
        match n {
            1 => Some(PinProtocol::V1),
            2 => Some(PinProtocol::V2),
            _ => None,
        }
    }

    /// kdf(Z): SHA-256 (§6.5.6) or HKDF-SHA-256 with a zero salt into the
    /// HMAC key and the AES key (§6.5.7).
    pub fn kdf(self, z: &[u8]) -> SharedSecret {
        SharedSecret(match self {
            PinProtocol::V1 => Zeroizing::new(Sha256::digest(z).to_vec()),
            PinProtocol::V2 => {
                let hk = hkdf::Hkdf::<Sha256>::new(Some(&[0u8; 32]), z);
                let mut out = Zeroizing::new(vec![0u8; 64]);
                // 32-byte outputs are far below HKDF's limit.
                let _ = hk.expand(b"CTAP2 HMAC key", &mut out[..32]);
                let _ = hk.expand(b"CTAP2 AES key", &mut out[32..]);
                out
            }
        })
    }

    /// encapsulate(peerCoseKey) with a fresh platform key: returns the
    /// platform's COSE key for the request and the shared secret.
    pub fn encapsulate(self, peer: &Value) -> Result<(Value, SharedSecret), PinProtocolError> {
        let mut d = Zeroizing::new([0u8; 32]);
        loop {
            crate::random::fill(&mut d[..]);
            if let Ok(sk) = p256::SecretKey::from_slice(&d[..]) {
                return self.encapsulate_with(peer, &sk);
            }
        }
    }

    /// encapsulate with a given platform key (vectors).
    pub fn encapsulate_with(
        self,
        peer: &Value,
        platform: &p256::SecretKey,
    ) -> Result<(Value, SharedSecret), PinProtocolError> {
        let f = Fields::of(peer, "keyAgreement")?;
        let x = cbor::bytes_max(f.require(-2, "keyAgreement x")?, "keyAgreement x", 32)?;
        let y = cbor::bytes_max(f.require(-3, "keyAgreement y")?, "keyAgreement y", 32)?;
        let kty = cbor::as_int(f.require(1, "keyAgreement kty")?, "keyAgreement kty")?;
        let crv = cbor::as_int(f.require(-1, "keyAgreement crv")?, "keyAgreement crv")?;
        if kty != 2 || crv != 1 || x.len() != 32 || y.len() != 32 {
            return Err(PinProtocolError::BadPeerKey);
        }
        let sec1 = [&[0x04][..], x, y].concat();
        let pk =
            p256::PublicKey::from_sec1_bytes(&sec1).map_err(|_| PinProtocolError::BadPeerKey)?;
        let z = p256::elliptic_curve::ecdh::diffie_hellman(
            platform.to_nonzero_scalar(),
            pk.as_affine(),
        );
        let shared = self.kdf(z.raw_secret_bytes());
        let point = platform.public_key().to_sec1_point(false);
        let b = point.as_bytes();
        let cose = cbor::int_map(vec![
            (1, 2.into()),
            (3, (-25).into()),
            (-1, 1.into()),
            (-2, cbor::bytes(&b[1..33])),
            (-3, cbor::bytes(&b[33..65])),
        ]);
        Ok((cose, shared))
    }

    fn aes_key(self, s: &SharedSecret) -> &[u8] {
        match self {
            PinProtocol::V1 => &s.0,
            PinProtocol::V2 => &s.0[32..],
        }
    }

    /// encrypt(key, plaintext): V1 with a zero IV, V2 with a random IV
    /// prepended. `plaintext` is whole blocks (padded PIN, PIN hash).
    pub fn encrypt(self, s: &SharedSecret, plain: &[u8]) -> Vec<u8> {
        let mut iv = [0u8; 16];
        if self == PinProtocol::V2 {
            crate::random::fill(&mut iv);
        }
        self.encrypt_with_iv(s, plain, iv)
    }

    /// encrypt with a given IV (ignored by V1; vectors).
    pub fn encrypt_with_iv(self, s: &SharedSecret, plain: &[u8], iv: [u8; 16]) -> Vec<u8> {
        match self {
            PinProtocol::V1 => cbc(self.aes_key(s), [0; 16], plain, true).to_vec(),
            PinProtocol::V2 => [&iv[..], &cbc(self.aes_key(s), iv, plain, true)].concat(),
        }
    }

    /// decrypt(key, ciphertext).
    pub fn decrypt(
        self,
        s: &SharedSecret,
        ct: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, PinProtocolError> {
        let (iv, body) = match self {
            PinProtocol::V1 => ([0u8; 16], ct),
            PinProtocol::V2 => {
                let (iv, body) = ct
                    .split_at_checked(16)
                    .ok_or(PinProtocolError::BadCiphertext)?;
                let mut a = [0u8; 16];
                a.copy_from_slice(iv);
                (a, body)
            }
        };
        if body.is_empty() || body.len() % 16 != 0 {
            return Err(PinProtocolError::BadCiphertext);
        }
        Ok(cbc(self.aes_key(s), iv, body, false))
    }

    /// authenticate(key, message) with a shared secret (V2: its HMAC key).
    pub fn authenticate(self, s: &SharedSecret, msg: &[u8]) -> Vec<u8> {
        let key = match self {
            PinProtocol::V1 => &s.0[..],
            PinProtocol::V2 => &s.0[..32],
        };
        self.authenticate_raw(key, msg)
    }

    /// authenticate(key, message) with a raw key (a pinUvAuthToken): the
    /// first 16 bytes of HMAC-SHA-256 (V1) or all 32 (V2).
    pub fn authenticate_raw(self, key: &[u8], msg: &[u8]) -> Vec<u8> {
        let Ok(mut m) = <Hmac<Sha256> as KeyInit>::new_from_slice(key) else {
            return Vec::new();
        };
        m.update(msg);
        let mac = m.finalize().into_bytes();
        match self {
            PinProtocol::V1 => mac[..16].to_vec(),
            PinProtocol::V2 => mac.to_vec(),
        }
    }
}

/// AES-256-CBC (the `cbc` crate) over whole blocks, no padding (a short
/// last block is zero-filled; callers pass whole blocks). The work buffer
/// is wiped: it holds a PIN, a PIN hash or a token.
fn cbc(key: &[u8], iv: [u8; 16], data: &[u8], encrypt: bool) -> Zeroizing<Vec<u8>> {
    let mut buf = Zeroizing::new(vec![0u8; data.len().div_ceil(16) * 16]);
    buf[..data.len()].copy_from_slice(data);
    let n = buf.len();
    let done = if encrypt {
        cbc::Encryptor::<Aes256>::new_from_slices(key, &iv)
            .is_ok_and(|c| c.encrypt_padded::<NoPadding>(&mut buf, n).is_ok())
    } else {
        cbc::Decryptor::<Aes256>::new_from_slices(key, &iv)
            .is_ok_and(|c| c.decrypt_padded::<NoPadding>(&mut buf).is_ok())
    };
    if !done {
        buf.zeroize();
        buf.clear();
    }
    buf
}
