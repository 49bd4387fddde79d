//! GET DATA (SP 800-73-4 Part 2 §3.1.2) and PUT DATA (§3.3.1) for the PIV
//! data objects (Part 1 Table 3: certificates `5FC1xx`, CHUID `5FC102`,
//! CCC `5FC107`, Printed Information `5FC109`, Discovery `7E`) and the
//! YubiKey objects `5FFF00`-`5FFF15` (pivman data, attestation certificate
//! `5FFF01`).

use super::PivApplet;
use super::tlv;
use crate::sim::apdu::{Command, Response, sw};

const TAG_OBJ_ID: u16 = 0x5C;
const TAG_OBJ_DATA: u16 = 0x53;
const OBJ_DISCOVERY: u32 = 0x7E;
/// Printed Information: readable only after PIN verification (Part 1
/// Table 3, access rule "PIN"); ykman keeps its PIN-protected data here.
const OBJ_PRINTED: u32 = 0x5F_C109;
/// Largest object a YubiKey 5 stores (Yubico PIV docs, "Data objects":
/// 3052 bytes).
pub const MAX_OBJECT: usize = 3052;

/// Whether the card has a place for object `id`.
fn known_object(id: u32) -> bool {
    matches!(id, 0x5F_C101..=0x5F_C123 | 0x5F_FF00..=0x5F_FF15)
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
        if id == OBJ_PRINTED && !self.sess.pin_verified {
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
