//! GENERATE ASYMMETRIC KEY PAIR (SP 800-73-4 Part 2 §3.3.2) with the
//! YubiKey PIN (`AA`) and touch (`AB`) policy tags, and the YubiKey 5.7
//! MOVE/DELETE KEY (`F6`) (Yubico PIV docs, "PIV extensions").

use super::keys::{
    ALG_ED25519, ALG_P256, ALG_P384, ALG_RSA1024, ALG_RSA2048, ALG_RSA3072, ALG_RSA4096,
    ALG_X25519, PrivateKey,
};
use super::state::Slot;
use super::tlv;
use super::{PivApplet, SLOT_ATTESTATION, is_key_slot};
use crate::sim::Firmware;
use crate::sim::apdu::{Command, Response, sw};

/// Control reference template tags (SP 800-73-4 Part 2 Table 10, Yubico).
const TAG_CRT: u16 = 0xAC;
const TAG_ALG: u16 = 0x80;
const TAG_PIN_POLICY: u16 = 0xAA;
const TAG_TOUCH_POLICY: u16 = 0xAB;

/// The PIN policy a slot gets when the host asks for the default: 9C
/// "always", 9E "never", the others "once" (Yubico PIV docs, "PIN policy").
pub fn default_pin_policy(slot: u8) -> u8 {
    match slot {
        0x9C => 0x03,
        0x9E => 0x01,
        _ => 0x02,
    }
}

/// Resolve the requested policies; `None` for values the key does not know.
pub fn resolve_policies(slot: u8, pin: Option<&[u8]>, touch: Option<&[u8]>) -> Option<(u8, u8)> {
    let one = |v: Option<&[u8]>| match v {
        None => Some(0),
        Some([b]) if *b <= 3 => Some(*b),
        Some(_) => None,
    };
    let (pin, touch) = (one(pin)?, one(touch)?);
    let pin = if pin == 0 {
        default_pin_policy(slot)
    } else {
        pin
    };
    let touch = if touch == 0 { 0x01 } else { touch };
    Some((pin, touch))
}

/// Whether the firmware generates and imports keys of `alg`: RSA-1024/2048
/// and P-256/P-384 on every YubiKey 5, RSA-3072/4096, Ed25519 and X25519
/// from 5.7.0 (Yubico "YubiKey 5.7 firmware specifics"; yubikit
/// `_do_check_key_support`). Earlier firmware does not know the
/// identifiers: GENERATE answers `6A80` (bad data in the `AC` template)
/// and IMPORT `6A86` (bad P1), as for any unknown algorithm.
pub fn supports(fw: Firmware, alg: u8) -> bool {
    match alg {
        ALG_P256 | ALG_P384 | ALG_RSA1024 | ALG_RSA2048 => true,
        ALG_RSA3072 | ALG_RSA4096 | ALG_ED25519 | ALG_X25519 => fw >= Firmware(5, 7, 0),
        _ => false,
    }
}

impl PivApplet {
    /// `00 47 00 <slot> AC { 80 alg [AA pin] [AB touch] }` → `7F49 { 86 point }`
    /// or `7F49 { 81 n 82 e }`. Needs the management key.
    pub(super) fn generate(&mut self, cmd: &Command) -> Result<Response, u16> {
        self.require_mgmt()?;
        if cmd.p1 != 0x00 || !is_key_slot(cmd.p2) {
            return Err(sw::INCORRECT_P1P2);
        }
        let crt = match tlv::parse_one(&cmd.data) {
            Some((t, [])) if t.tag == TAG_CRT => tlv::parse(t.value).ok_or(sw::WRONG_DATA)?,
            _ => return Err(sw::WRONG_DATA),
        };
        let alg = match tlv::find(&crt, TAG_ALG) {
            Some([a]) if supports(self.firmware, *a) => *a,
            _ => return Err(sw::WRONG_DATA),
        };
        let (pin_policy, touch_policy) = resolve_policies(
            cmd.p2,
            tlv::find(&crt, TAG_PIN_POLICY),
            tlv::find(&crt, TAG_TOUCH_POLICY),
        )
        .ok_or(sw::WRONG_DATA)?;
        if !self.keygen_delay.is_zero() {
            std::thread::sleep(self.keygen_delay);
        }
        let key = PrivateKey::generate(alg).ok_or(sw::NO_PRECISE_DIAGNOSIS)?;
        let public = tlv::encode(0x7F49, &key.public_tlvs());
        let slot = Slot {
            key,
            pin_policy,
            touch_policy,
            generated: true,
        };
        self.st.slots.insert(cmd.p2, slot);
        Ok(Response::ok(public))
    }

    /// MOVE KEY `00 F6 <to> <from>`; DELETE KEY is `00 F6 FF <slot>`
    /// (firmware 5.7+). Needs the management key.
    pub(super) fn move_key(&mut self, cmd: &Command) -> Result<Response, u16> {
        if self.firmware < Firmware(5, 7, 0) {
            return Err(sw::INS_NOT_SUPPORTED);
        }
        self.require_mgmt()?;
        let (to, from) = (cmd.p1, cmd.p2);
        if !is_key_slot(from) || !(is_key_slot(to) || to == 0xFF) || to == SLOT_ATTESTATION {
            return Err(sw::INCORRECT_P1P2);
        }
        if to != 0xFF && self.st.slots.contains_key(&to) {
            return Err(sw::CONDITIONS_NOT_SATISFIED);
        }
        let slot = self.st.slots.remove(&from).ok_or(sw::REFERENCE_NOT_FOUND)?;
        if to != 0xFF {
            self.st.slots.insert(to, slot);
        }
        Ok(Response::status(sw::OK))
    }
}

#[cfg(test)]
mod apdu_tests {
    //! Byte-exact APDUs as ykman 5.9 (`yubikit/piv.py`) and yubico-piv-tool
    //! send them.
    use crate::sim::Firmware;
    use crate::sim::piv::testutil::Card;

    const V543: Firmware = Firmware::V5_4_3;
    const V571: Firmware = Firmware::V5_7_1;

    #[test]
    fn generate_rejects_bad_input() {
        let mut c = Card::new(V543);
        c.auth_default(V543);
        assert_eq!(c.sw("0047009A05AC038001E0"), 0x6A80); // Ed25519 needs 5.7
        assert_eq!(c.sw("0047009A05AC03800199"), 0x6A80);
        assert_eq!(c.sw("0047009A08AC06800111AA0109"), 0x6A80);
        assert_eq!(c.sw("004700F905AC03800111"), 0x6A86);
        assert_eq!(c.sw("0047019A05AC03800111"), 0x6A86);
        assert_eq!(c.sw("0047009A03AC0380"), 0x6A80);
        assert_eq!(c.sw("0047009A00"), 0x6A80);
    }

    #[test]
    fn ed25519_signs_messages_on_5_7() {
        let mut c = Card::new(V571);
        c.auth_default(V571);
        let r = c.ok("0047009E05AC038001E0");
        assert_eq!(r[..5], [0x7F, 0x49, 0x22, 0x86, 0x20]);
        let vk = ed25519_dalek::VerifyingKey::from_bytes(&r[5..37].try_into().unwrap()).unwrap();
        // 9E: PIN policy never.
        let r = c.ok("008 7E09E0B7C098200 8105 68656C6C6F"
            .replace(' ', "")
            .as_str());
        let sig = ed25519_dalek::Signature::from_slice(&r[4..68]).unwrap();
        vk.verify_strict(b"hello", &sig).unwrap();
    }

    #[test]
    fn move_and_delete_keys_on_5_7() {
        let mut c = Card::new(V571);
        c.auth_default(V571);
        c.ok("0047009A05AC03800111");
        c.ok("00F6829A");
        assert_eq!(c.sw("00F7009A00"), 0x6A88);
        c.ok("00F7008200");
        c.ok("00F6FF82");
        assert_eq!(c.sw("00F7008200"), 0x6A88);
        assert_eq!(c.sw("00F6FF82"), 0x6A88);
        let mut c = Card::new(V543);
        assert_eq!(c.sw("00F6FF82"), 0x6D00);
    }
}
