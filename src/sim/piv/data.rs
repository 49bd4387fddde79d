//! GET DATA (SP 800-73-4 Part 2 §3.1.2) and PUT DATA (§3.3.1) for the PIV
//! data objects (Part 1 Table 3: certificates `5FC1xx`, CHUID `5FC102`,
//! CCC `5FC107`, Printed Information `5FC109`, Discovery `7E`), the
//! YubiKey objects (`5FFF00` pivman data, `5FFF01` attestation certificate)
//! and any other tag in `5F0000`-`5FFFFF`, as a YubiKey allows.

use super::PivApplet;
use super::tlv;
use crate::sim::apdu::{Command, Response, sw};

const TAG_OBJ_ID: u16 = 0x5C;
const TAG_OBJ_DATA: u16 = 0x53;
const OBJ_DISCOVERY: u32 = 0x7E;
/// Objects readable only after PIN verification (SP 800-73-4 Part 1
/// Table 3 access rule "PIN"; Yubico SDK "PIV data objects" Table 1A):
/// Fingerprints, Facial Image, Printed Information (where ykman keeps its
/// PIN-protected data), Iris Images.
fn pin_protected(id: u32) -> bool {
    matches!(id, 0x5F_C103 | 0x5F_C108 | 0x5F_C109 | 0x5F_C121)
}
/// Largest object content a YubiKey stores: its 3072-byte APDU buffer less
/// the `5C`/`53` framing (yubico-piv-tool `ykpiv.h`: `CB_OBJ_MAX =
/// CB_BUF_MAX - 9`).
pub const MAX_OBJECT: usize = 3063;

/// Whether the card has a place for object `id`: on a YubiKey any tag from
/// `5F0000` to `5FFFFF` (Yubico SDK "PIV data objects"); `7E` is read-only.
fn known_object(id: u32) -> bool {
    (0x5F_0000..=0x5F_FFFF).contains(&id)
}

/// The Discovery object (Part 1 §3.3.2): the PIV AID and PIN usage policy
/// `4000` (PIV PIN only), as a YubiKey answers it.
fn discovery() -> Vec<u8> {
    let mut v = tlv::encode(0x4F, &super::PIV_AID);
    v.extend(tlv::encode(0x5F2F, &[0x40, 0x00]));
    tlv::encode(0x7E, &v)
}

/// The object ID in a `5C` tag: one byte (`7E`) or three.
fn object_id(tlv: &tlv::Tlv<'_>) -> Option<u32> {
    if tlv.tag != TAG_OBJ_ID || !matches!(tlv.value.len(), 1 | 3) {
        return None;
    }
    Some(tlv.value.iter().fold(0u32, |a, &b| (a << 8) | u32::from(b)))
}

impl PivApplet {
    /// `00 CB 3F FF 5C <len> <id>` → `53 <len> <content>`.
    pub(super) fn get_data(&self, cmd: &Command) -> Result<Response, u16> {
        if (cmd.p1, cmd.p2) != (0x3F, 0xFF) {
            return Err(sw::INCORRECT_P1P2);
        }
        let id = match tlv::parse_one(&cmd.data) {
            Some((t, [])) => object_id(&t).ok_or(sw::WRONG_DATA)?,
            _ => return Err(sw::WRONG_DATA),
        };
        if id == OBJ_DISCOVERY {
            return Ok(Response::ok(discovery()));
        }
        if !known_object(id) {
            return Err(sw::FILE_NOT_FOUND);
        }
        if pin_protected(id) && !self.sess.pin_verified {
            return Err(sw::SECURITY_STATUS_NOT_SATISFIED);
        }
        let v = self.st.objects.get(&id).ok_or(sw::FILE_NOT_FOUND)?;
        Ok(Response::ok(tlv::encode(TAG_OBJ_DATA, v)))
    }

    /// `00 DB 3F FF 5C <len> <id> 53 <len> <content>`; empty content
    /// deletes the object. Needs the management key.
    pub(super) fn put_data(&mut self, cmd: &Command) -> Result<Response, u16> {
        if (cmd.p1, cmd.p2) != (0x3F, 0xFF) {
            return Err(sw::INCORRECT_P1P2);
        }
        self.require_mgmt()?;
        let tlvs = tlv::parse(&cmd.data).ok_or(sw::WRONG_DATA)?;
        let (id, content) = match tlvs.as_slice() {
            [id, data] if data.tag == TAG_OBJ_DATA => {
                (object_id(id).ok_or(sw::WRONG_DATA)?, data.value)
            }
            _ => return Err(sw::WRONG_DATA),
        };
        if !known_object(id) {
            return Err(sw::FILE_NOT_FOUND);
        }
        if content.len() > MAX_OBJECT {
            return Err(sw::NOT_ENOUGH_MEMORY);
        }
        if content.is_empty() {
            self.st.objects.remove(&id);
        } else {
            self.st.objects.insert(id, content.to_vec());
        }
        Ok(Response::status(sw::OK))
    }
}

#[cfg(test)]
mod apdu_tests {
    //! Byte-exact APDUs as ykman 5.9 (`yubikit/piv.py`) and yubico-piv-tool
    //! send them.
    use super::MAX_OBJECT;
    use crate::sim::Firmware;
    use crate::sim::piv::testutil::Card;

    const V571: Firmware = Firmware::V5_7_1;

    #[test]
    fn objects_get_put_delete_and_protection() {
        let mut c = Card::new(V571);
        // Discovery object.
        assert_eq!(
            hex::encode(c.ok("00CB3FFF035C017E")),
            "7e124f0ba0000003080000100001005f2f024000"
        );
        assert_eq!(c.sw("00CB3FFF055C035FC102"), 0x6A82);
        assert_eq!(c.sw("00DB3FFF0A5C035FC1025303010203"), 0x6982);
        c.auth_default(V571);
        c.ok("00DB3FFF0A5C035FC1025303010203");
        assert_eq!(c.ok("00CB3FFF055C035FC102"), [0x53, 0x03, 1, 2, 3]);
        c.ok("00DB3FFF075C035FC1025300");
        assert_eq!(c.sw("00CB3FFF055C035FC102"), 0x6A82);
        // Printed information needs the PIN to read.
        c.ok("00DB3FFF085C035FC109530188");
        assert_eq!(c.sw("00CB3FFF055C035FC109"), 0x6982);
        c.verify_default_pin();
        assert_eq!(c.ok("00CB3FFF055C035FC109"), [0x53, 0x01, 0x88]);
        // Unknown objects, bad P1P2, malformed data.
        assert_eq!(c.sw("00CB3FFF055C03123456"), 0x6A82);
        assert_eq!(c.sw("00DB3FFF085C031234565301AA"), 0x6A82);
        assert_eq!(c.sw("00DB3FFF065C017E5301AA"), 0x6A82);
        c.ok("00DB3FFF085C035F00015301AA");
        assert_eq!(c.ok("00CB3FFF055C035F0001"), [0x53, 0x01, 0xAA]);
        assert_eq!(c.sw("00CB3FFE055C035FC102"), 0x6A86);
        assert_eq!(c.sw("00CB3FFF045C035FC1"), 0x6A80);
        assert_eq!(c.sw("00CB3FFF025C00"), 0x6A80);
        assert_eq!(c.sw("00DB3FFF055C035FC102"), 0x6A80);
        // Largest accepted, then one byte too many (extended APDUs).
        let put = |n: usize| {
            let mut hdr = hex::decode("5C035FC1055382").unwrap();
            hdr.extend_from_slice(&(n as u16).to_be_bytes());
            let body = [hdr, vec![0u8; n]].concat();
            let mut apdu = vec![0x00, 0xDB, 0x3F, 0xFF, 0x00];
            apdu.extend_from_slice(&(body.len() as u16).to_be_bytes());
            apdu.extend(body);
            apdu
        };
        assert_eq!(c.send_bytes(&put(MAX_OBJECT)), [0x90, 0x00]);
        assert_eq!(c.send_bytes(&put(MAX_OBJECT + 1)), [0x6A, 0x84]);
    }

    #[test]
    fn attestation_certificate_object_and_long_response_chaining() {
        let mut c = Card::new(V571);
        let mut r = c.send_bytes(&hex::decode("00CB3FFF055C035FFF01").unwrap());
        let mut all = Vec::new();
        loop {
            let sw = r.split_off(r.len() - 2);
            all.extend(r);
            match sw[..] {
                [0x90, 0x00] => break,
                [0x61, _] => r = c.send_bytes(&[0, 0xC0, 0, 0, 0]),
                _ => panic!("{sw:02X?}"),
            }
        }
        assert_eq!(all[0], 0x53);
        let (obj, rest) = crate::sim::piv::tlv::parse_one(&all).unwrap();
        assert!(rest.is_empty());
        let tlvs = crate::sim::piv::tlv::parse(obj.value).unwrap();
        let cert = crate::sim::piv::tlv::find(&tlvs, 0x70).unwrap();
        assert_eq!(
            cert,
            crate::sim::piv::testutil::ca()
                .piv_device_f9(12_345_678)
                .unwrap()
                .1
        );
    }
}
