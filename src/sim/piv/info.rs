//! GET METADATA (`F7`, YubiKey 5.3+; Yubico SDK "Get metadata" Table 1): key
//! type, policies, origin, public key, default flag and retry counters of
//! PIN (`80`), PUK (`81`), management key (`9B`) and key slots.
//! GET VERSION (`FD`) and GET SERIAL (`F8`) are answered in [`super`].

use super::secrets::RefData;
use super::tlv;
use super::{KEY_MGMT, KEY_PIN, KEY_PUK, PivApplet, SLOT_ATTESTATION, is_key_slot};
use crate::sim::apdu::{Command, Response, sw};

const TAG_ALGO: u16 = 0x01;
const TAG_POLICY: u16 = 0x02;
const TAG_ORIGIN: u16 = 0x03;
const TAG_PUBLIC_KEY: u16 = 0x04;
const TAG_IS_DEFAULT: u16 = 0x05;
const TAG_RETRIES: u16 = 0x06;

/// Origin values: generated on the card or imported.
const ORIGIN_GENERATED: u8 = 0x01;
const ORIGIN_IMPORTED: u8 = 0x02;

fn pin_metadata(r: &RefData) -> Vec<u8> {
    // Algorithm `FF` for PIN/PUK; no policy, origin or public key (Yubico
    // SDK "Get metadata" Table 1).
    let mut v = tlv::encode(TAG_ALGO, &[0xFF]);
    v.extend(tlv::encode(TAG_IS_DEFAULT, &[u8::from(r.is_default)]));
    v.extend(tlv::encode(TAG_RETRIES, &[r.total, r.remaining]));
    v
}

impl PivApplet {
    /// `00 F7 00 <key reference>`; `6A88` for an empty slot or a key
    /// reference the card does not have (e.g. `96`, biometrics).
    pub(super) fn get_metadata(&self, cmd: &Command) -> Result<Response, u16> {
        if self.firmware < crate::sim::Firmware(5, 3, 0) {
            return Err(sw::INS_NOT_SUPPORTED);
        }
        if cmd.p1 != 0x00 {
            return Err(sw::INCORRECT_P1P2);
        }
        let out = match cmd.p2 {
            KEY_PIN => pin_metadata(&self.st.pin),
            KEY_PUK => pin_metadata(&self.st.puk),
            KEY_MGMT => {
                let m = &self.st.mgmt;
                let mut v = tlv::encode(TAG_ALGO, &[m.alg.byte()]);
                v.extend(tlv::encode(
                    TAG_POLICY,
                    &[0x00, if m.touch { 0x02 } else { 0x01 }],
                ));
                v.extend(tlv::encode(TAG_IS_DEFAULT, &[u8::from(m.is_default)]));
                v
            }
            SLOT_ATTESTATION => {
                let (k, _) = self.f9.as_ref().ok_or(sw::REFERENCE_NOT_FOUND)?;
                let point = k.verifying_key().to_sec1_point(false);
                let mut v = tlv::encode(TAG_ALGO, &[super::keys::ALG_P256]);
                v.extend(tlv::encode(TAG_POLICY, &[0x01, 0x01]));
                v.extend(tlv::encode(TAG_ORIGIN, &[ORIGIN_IMPORTED]));
                v.extend(tlv::encode(
                    TAG_PUBLIC_KEY,
                    &tlv::encode(0x86, point.as_bytes()),
                ));
                v
            }
            slot if is_key_slot(slot) => {
                let s = self.st.slots.get(&slot).ok_or(sw::REFERENCE_NOT_FOUND)?;
                let origin = if s.generated {
                    ORIGIN_GENERATED
                } else {
                    ORIGIN_IMPORTED
                };
                let mut v = tlv::encode(TAG_ALGO, &[s.key.alg()]);
                v.extend(tlv::encode(TAG_POLICY, &[s.pin_policy, s.touch_policy]));
                v.extend(tlv::encode(TAG_ORIGIN, &[origin]));
                v.extend(tlv::encode(TAG_PUBLIC_KEY, &s.key.public_tlvs()));
                v
            }
            _ => return Err(sw::REFERENCE_NOT_FOUND),
        };
        Ok(Response::ok(out))
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
    fn metadata_of_defaults() {
        let mut c = Card::new(V571);
        // PIN: default, 3/3.
        assert_eq!(
            hex::encode(c.ok("00F7008000")),
            "0101ff 050101 06020303".replace(' ', "")
        );
        assert_eq!(hex::encode(c.ok("00F7008100")), "0101ff05010106020303");
        // Management key: AES-192 default on 5.7, no touch.
        assert_eq!(
            hex::encode(c.ok("00F7009B00")),
            "01010a020200010501 01".replace(' ', "")
        );
        let mut c = Card::new(V543);
        assert_eq!(
            hex::encode(c.ok("00F7009B00")),
            "0101030202000105010 1".replace(' ', "")
        );
        // Empty slot, bio slot: reference data not found.
        assert_eq!(c.sw("00F7009A00"), 0x6A88);
        assert_eq!(c.sw("00F7009600"), 0x6A88);
        assert_eq!(c.sw("00F7019A00"), 0x6A86);
        // F9: the device attestation key.
        assert_eq!(c.ok("00F700F900")[..3], [0x01, 0x01, 0x11]);
    }
}
