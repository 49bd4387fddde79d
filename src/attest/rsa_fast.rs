//! RSASSA-PKCS1-v1_5 verification (RFC 8017 §8.2.2) for the common case —
//! public exponent 65537 and a 2048, 3072 or 4096-bit modulus — on
//! crypto-bigint's fixed-size Montgomery arithmetic.
//!
//! Why not only the `rsa` crate: its heap-allocated `BoxedUint` path costs
//! about 70 µs per 2048-bit verification here, five times OpenSSL, and
//! YubiKey PIV chains are two RSA signatures. This module does the one
//! public-key operation (s^65537 mod n: 16 squarings and a multiplication),
//! then compares the result with the expected encoding built from the
//! digest (RFC 8017 §9.2, the "encode and compare" method, so no padding is
//! parsed). Only public data is handled, so variable time is fine. The `rsa`
//! crate still parses keys and verifies every other shape.

use crypto_bigint::modular::{FixedMontyForm, FixedMontyParams};
use crypto_bigint::{Odd, Uint};

/// A modulus with precomputed Montgomery parameters.
#[derive(Clone, Debug)]
pub enum FastRsa {
    R2048(Box<FixedMontyParams<32>>),
    R3072(Box<FixedMontyParams<48>>),
    R4096(Box<FixedMontyParams<64>>),
}

/// DER DigestInfo prefixes (RFC 8017 §9.2 note 1).
const SHA256_PREFIX: &[u8] = &[
    0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05,
    0x00, 0x04, 0x20,
];
const SHA384_PREFIX: &[u8] = &[
    0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02, 0x05,
    0x00, 0x04, 0x30,
];
const SHA512_PREFIX: &[u8] = &[
    0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03, 0x05,
    0x00, 0x04, 0x40,
];

/// The digest of a PKCS#1 v1.5 signature.
pub enum Digest<'a> {
    Sha256(&'a [u8]),
    Sha384(&'a [u8]),
    Sha512(&'a [u8]),
}

impl FastRsa {
    /// From the big-endian modulus and exponent; `None` when this module
    /// does not cover the key (the caller falls back to the `rsa` crate).
    pub fn new(n: &[u8], e: &[u8]) -> Option<FastRsa> {
        let e = strip(e);
        let n = strip(n);
        if e != [0x01, 0x00, 0x01] {
            return None;
        }
        Some(match n.len() {
            256 => FastRsa::R2048(Box::new(params::<32>(n)?)),
            384 => FastRsa::R3072(Box::new(params::<48>(n)?)),
            512 => FastRsa::R4096(Box::new(params::<64>(n)?)),
            _ => return None,
        })
    }

    /// Whether `sig` is a valid signature of `digest`.
    pub fn verify(&self, digest: Digest<'_>, sig: &[u8]) -> bool {
        let (prefix, hash) = match digest {
            Digest::Sha256(h) => (SHA256_PREFIX, h),
            Digest::Sha384(h) => (SHA384_PREFIX, h),
            Digest::Sha512(h) => (SHA512_PREFIX, h),
        };
        let em = match self {
            FastRsa::R2048(p) => public_op::<32>(p, sig),
            FastRsa::R3072(p) => public_op::<48>(p, sig),
            FastRsa::R4096(p) => public_op::<64>(p, sig),
        };
        let Some(em) = em else { return false };
        // EM = 0x00 0x01 PS(0xFF, >= 8) 0x00 DigestInfo
        let t_len = prefix.len() + hash.len();
        if em.len() < t_len + 11 {
            return false;
        }
        let ps_end = em.len() - t_len - 1;
        em[0] == 0x00
            && em[1] == 0x01
            && em[2..ps_end].iter().all(|&b| b == 0xFF)
            && em[ps_end] == 0x00
            && &em[ps_end + 1..ps_end + 1 + prefix.len()] == prefix
            && &em[ps_end + 1 + prefix.len()..] == hash
    }
}

fn strip(b: &[u8]) -> &[u8] {
    let i = b.iter().position(|&x| x != 0).unwrap_or(b.len());
    &b[i..]
}

fn params<const L: usize>(n: &[u8]) -> Option<FixedMontyParams<L>> {
    let n = Uint::<L>::from_be_slice(n);
    let odd = Odd::new(n).into_option()?;
    Some(FixedMontyParams::new_vartime(odd))
}

/// s^65537 mod n as k big-endian bytes; `None` if `sig` is not k bytes or
/// not below n (RFC 8017 §8.2.2 step 1 and §5.2.2 step 1).
fn public_op<const L: usize>(p: &FixedMontyParams<L>, sig: &[u8]) -> Option<Vec<u8>> {
    if sig.len() != L * 8 {
        return None;
    }
    let s = Uint::<L>::from_be_slice(sig);
    if s >= *p.modulus().as_ref() {
        return None;
    }
    let x = FixedMontyForm::new(&s, p);
    let m = x.square_repeat_vartime(16).mul(&x).retrieve();
    Some(m.to_be_bytes().as_ref().to_vec())
}
