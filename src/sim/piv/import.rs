//! IMPORT ASYMMETRIC KEY (`FE`, Yubico PIV docs "PIV extensions"):
//! `00 FE <alg> <slot>` with the private key as TLVs (`01`-`05` RSA p, q,
//! dP, dQ, qInv, each half the modulus size; `06` EC scalar; `07` Ed25519
//! seed; `08` X25519 scalar) and optional `AA` / `AB` policies (yubikit
//! `put_key`). The public exponent must be 65537. Imported keys are never
//! attested.

use zeroize::Zeroizing;

use super::generate::{resolve_policies, supports};
use super::keys::{ALG_ED25519, ALG_P256, ALG_P384, ALG_X25519, PrivateKey, rsa_bits};
use super::state::Slot;
use super::tlv;
use super::{PivApplet, is_key_slot};
use crate::sim::apdu::{Command, Response, sw};

/// The key from its TLVs; `None` if they do not make a valid key of `alg`.
fn parse_key(alg: u8, tlvs: &[tlv::Tlv<'_>]) -> Option<PrivateKey> {
    let get = |t| tlv::find(tlvs, t);
    match alg {
        ALG_P256 => p256::ecdsa::SigningKey::from_slice(get(0x06)?)
            .ok()
            .map(PrivateKey::P256),
        ALG_P384 => p384::ecdsa::SigningKey::from_slice(get(0x06)?)
            .ok()
            .map(PrivateKey::P384),
        ALG_ED25519 => {
            let seed: Zeroizing<[u8; 32]> = Zeroizing::new(get(0x07)?.try_into().ok()?);
            Some(PrivateKey::Ed25519(ed25519_dalek::SigningKey::from_bytes(
                &seed,
            )))
        }
        ALG_X25519 => {
            let raw: Zeroizing<[u8; 32]> = Zeroizing::new(get(0x08)?.try_into().ok()?);
            Some(PrivateKey::X25519(x25519_dalek::StaticSecret::from(*raw)))
        }
        _ => {
            use rsa::BoxedUint;
            use rsa::traits::PublicKeyParts;
            let bits = rsa_bits(alg)?;
            let half = bits / 16;
            let (p, q) = (get(0x01)?, get(0x02)?);
            if p.len() != half || q.len() != half {
                return None;
            }
            let p = BoxedUint::from_be_slice(p, bits as u32 / 2).ok()?;
            let q = BoxedUint::from_be_slice(q, bits as u32 / 2).ok()?;
            let e = BoxedUint::from_be_slice(&[0x01, 0x00, 0x01], 64).ok()?;
            let k = rsa::RsaPrivateKey::from_p_q(p, q, e).ok()?;
            (k.size() == bits / 8).then(|| PrivateKey::Rsa(Box::new(k)))
        }
    }
}

impl PivApplet {
    /// Needs the management key; replaces whatever the slot held.
    pub(super) fn import_key(&mut self, cmd: &Command) -> Result<Response, u16> {
        self.require_mgmt()?;
        if !is_key_slot(cmd.p2) {
            return Err(sw::INCORRECT_P1P2);
        }
        if !supports(self.firmware, cmd.p1) {
            return Err(sw::INCORRECT_P1P2);
        }
        let tlvs = tlv::parse(&cmd.data).ok_or(sw::WRONG_DATA)?;
        let key = parse_key(cmd.p1, &tlvs).ok_or(sw::WRONG_DATA)?;
        let (pin_policy, touch_policy) =
            resolve_policies(cmd.p2, tlv::find(&tlvs, 0xAA), tlv::find(&tlvs, 0xAB))
                .ok_or(sw::WRONG_DATA)?;
        let slot = Slot {
            key,
            pin_policy,
            touch_policy,
            generated: false,
        };
        self.st.slots.insert(cmd.p2, slot);
        Ok(Response::status(sw::OK))
    }
}

#[cfg(test)]
mod apdu_tests {
    //! Byte-exact APDUs as ykman 5.9 (`yubikit/piv.py`) and yubico-piv-tool
    //! send them.
    use crate::sim::Firmware;
    use crate::sim::piv::testutil::Card;

    const V571: Firmware = Firmware::V5_7_1;

    #[test]
    fn import_key_is_used_but_never_attested() {
        let mut c = Card::new(V571);
        assert_eq!(
            c.sw("00FE119A2206200101010101010101010101010101010101010101010101010101010101010101"),
            0x6982
        );
        c.auth_default(V571);
        // ykman put_key P-256: 06 <32-byte scalar>, PIN policy never.
        let scalar = "01".repeat(32);
        c.ok(&format!("00FE119A25 0620{scalar} AA0101").replace(' ', ""));
        let md = c.ok("00F7009A00");
        assert_eq!(
            md[..9],
            [0x01, 0x01, 0x11, 0x02, 0x02, 0x01, 0x01, 0x03, 0x01]
        );
        assert_eq!(md[9], 0x02, "origin imported");
        assert_eq!(c.sw("00F99A00"), 0x6A80);
        c.ok(&format!("0087119A267C2482008120{}", "11".repeat(32)));
        // Ed25519 seed, wrong lengths, zero scalar, unknown algorithm.
        c.ok(&format!("00FEE09D220720{}", "07".repeat(32)));
        assert_eq!(c.sw(&format!("00FEE09D210720{}", "07".repeat(31))), 0x6A80);
        assert_eq!(c.sw(&format!("00FE119A220620{}", "00".repeat(32))), 0x6A80);
        assert_eq!(c.sw(&format!("00FE999A220620{}", "01".repeat(32))), 0x6A86);
        assert_eq!(c.sw(&format!("00FE11F9220620{}", "01".repeat(32))), 0x6A86);
        assert_eq!(c.sw("00FE119A00"), 0x6A80);
    }
}
