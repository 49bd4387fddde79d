//! Data objects: CHUID and CCC (SP 800-73-4 Part 1 §3.1.2 and §3.1.1), and
//! the "pivman" objects ykman keeps beside them (yubikit `ykman/piv.py`:
//! `PivmanData` in `5FFF00`, tag `80` holding flags `81` — bit `02` "the
//! management key is stored PIN-protected" — salt `82`, timestamp `83`;
//! `PivmanProtectedData` in `5FC109`, tag `88` holding the key in `89`).

use serde::Serialize;

use super::card::PivCard;
use super::error::PivError;
use super::secret::ManagementKey;
use super::tlv;
use super::types::MgmtAlgorithm;

/// CHUID object id.
pub const OBJ_CHUID: u32 = 0x5F_C102;
/// CCC object id.
pub const OBJ_CCC: u32 = 0x5F_C107;
/// pivman admin data (readable without PIN).
pub const OBJ_PIVMAN_DATA: u32 = 0x5F_FF00;
/// pivman protected data ("Printed Information" object; read needs PIN).
pub const OBJ_PIVMAN_PROTECTED: u32 = 0x5F_C109;

/// pivman flag: management key stored in protected data.
const FLAG_MGM_KEY_PROTECTED: u8 = 0x02;

/// The Non-Federal Issuer FASC-N ykman writes ("9999-9999-999999-0-1-
/// 0000000000300001"), so cards set up by either tool look alike.
const FASC_N: [u8; 25] = [
    0xD4, 0xE7, 0x39, 0xDA, 0x73, 0x9C, 0xED, 0x39, 0xCE, 0x73, 0x9D, 0x83, 0x68, 0x58, 0x21, 0x08,
    0x42, 0x10, 0x84, 0x21, 0xC8, 0x42, 0x10, 0xC3, 0xEB,
];

/// How the management key is kept (pivman data).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum MgmtStorage {
    /// Held by whoever set it (or the factory default).
    Manual,
    /// Stored on the card, readable after VERIFY PIN (ykman "protected").
    PinProtected,
    /// Derived from the PIN with PBKDF2 (deprecated by Yubico).
    PinDerived,
}

/// The CHUID fields keyward reports.
#[derive(Debug, Clone, Serialize)]
pub struct Chuid {
    /// The card's GUID (tag `34`), hex.
    pub guid: Option<String>,
    /// Expiration date (tag `35`), YYYYMMDD.
    pub expiration: Option<String>,
}

/// The CCC fields keyward reports.
#[derive(Debug, Clone, Serialize)]
pub struct Ccc {
    /// Card Identifier (tag `F0`), hex.
    pub card_identifier: Option<String>,
}

/// Read the pivman flags.
pub(crate) fn mgmt_storage(card: &mut PivCard) -> Result<MgmtStorage, PivError> {
    let Some(raw) = card.read_object(OBJ_PIVMAN_DATA, "reading pivman data")? else {
        return Ok(MgmtStorage::Manual);
    };
    let inner = tlv::find(&raw, 0x80).unwrap_or_default();
    let flags = tlv::find(inner, 0x81).and_then(|f| f.first().copied());
    if flags.is_some_and(|f| f & FLAG_MGM_KEY_PROTECTED != 0) {
        Ok(MgmtStorage::PinProtected)
    } else if tlv::find(inner, 0x82).is_some() {
        Ok(MgmtStorage::PinDerived)
    } else {
        Ok(MgmtStorage::Manual)
    }
}

/// The PIN-protected management key (PIN must be verified).
pub(crate) fn protected_key(
    card: &mut PivCard,
    alg: MgmtAlgorithm,
) -> Result<ManagementKey, PivError> {
    let raw = card
        .read_object(
            OBJ_PIVMAN_PROTECTED,
            "reading the PIN-protected management key",
        )?
        .ok_or(PivError::ProtectedKeyDamaged)?;
    let key = tlv::find(&raw, 0x88)
        .and_then(|inner| tlv::find(inner, 0x89))
        .ok_or(PivError::ProtectedKeyDamaged)?;
    ManagementKey::new(alg, zeroize::Zeroizing::new(key.to_vec()))
        .map_err(|_| PivError::ProtectedKeyDamaged)
}

pub(crate) fn read_chuid(card: &mut PivCard) -> Result<Option<Chuid>, PivError> {
    Ok(card
        .read_object(OBJ_CHUID, "reading the CHUID")?
        .map(|raw| Chuid {
            guid: tlv::find(&raw, 0x34).map(hex::encode),
            expiration: tlv::find(&raw, 0x35).map(|d| String::from_utf8_lossy(d).into_owned()),
        }))
}

pub(crate) fn read_ccc(card: &mut PivCard) -> Result<Option<Ccc>, PivError> {
    Ok(card
        .read_object(OBJ_CCC, "reading the CCC")?
        .map(|raw| Ccc {
            card_identifier: tlv::find(&raw, 0xF0).map(hex::encode),
        }))
}

/// A CHUID as ykman's `generate_chuid` builds it: the Non-Federal FASC-N,
/// a random GUID, expiry 2030-01-01, an empty issuer signature and LRC.
pub fn build_chuid(guid: [u8; 16]) -> Vec<u8> {
    let mut v = tlv::encode(0x30, &FASC_N);
    v.extend(tlv::encode(0x34, &guid));
    v.extend(tlv::encode(0x35, b"20300101"));
    v.extend(tlv::encode(0x3E, &[]));
    v.extend(tlv::encode(0xFE, &[]));
    v
}

/// A CCC as ykman's `generate_ccc` builds it (Part 1 §3.1.1 Table 8).
pub fn build_ccc(card_id: [u8; 14]) -> Vec<u8> {
    let mut id = vec![0xA0, 0x00, 0x00, 0x01, 0x16, 0xFF, 0x02];
    id.extend_from_slice(&card_id);
    let mut v = tlv::encode(0xF0, &id);
    for (tag, val) in [
        (0xF1, &[0x21][..]),
        (0xF2, &[0x21]),
        (0xF3, &[]),
        (0xF4, &[0x00]),
        (0xF5, &[0x10]),
        (0xF6, &[]),
        (0xF7, &[]),
        (0xFA, &[]),
        (0xFB, &[]),
        (0xFC, &[]),
        (0xFD, &[]),
        (0xFE, &[]),
    ] {
        v.extend(tlv::encode(tag, val));
    }
    v
}

impl PivCard {
    /// Write a fresh CHUID and CCC (management key needed), with a random
    /// GUID and card identifier. Returns what was written.
    pub fn write_chuid_and_ccc(&mut self) -> Result<(Chuid, Ccc), PivError> {
        let mut guid = [0u8; 16];
        crate::random::fill(&mut guid);
        // RFC 4122 version 4 layout, as uuid4() gives ykman.
        guid[6] = (guid[6] & 0x0F) | 0x40;
        guid[8] = (guid[8] & 0x3F) | 0x80;
        let mut card_id = [0u8; 14];
        crate::random::fill(&mut card_id);
        self.write_object(OBJ_CHUID, &mut build_chuid(guid), "writing the CHUID")?;
        self.write_object(OBJ_CCC, &mut build_ccc(card_id), "writing the CCC")?;
        let chuid =
            read_chuid(self)?.ok_or_else(|| PivError::Invalid("CHUID did not stick".into()))?;
        let ccc = read_ccc(self)?.ok_or_else(|| PivError::Invalid("CCC did not stick".into()))?;
        Ok((chuid, ccc))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zeroize::Zeroizing;

    /// Protected data holding `key`, as ykman writes it (the crate's
    /// `set_protected` writes the same bytes; ykman reads them back in
    /// tests/piv_interop.rs).
    fn protected_data_bytes(key: &ManagementKey) -> Zeroizing<Vec<u8>> {
        Zeroizing::new(tlv::encode(0x88, &tlv::encode(0x89, key.expose_secret())))
    }

    #[test]
    fn chuid_matches_ykman_layout() {
        // Bytes of ykman 5.9.2 `generate_chuid()` with the GUID fixed.
        let c = build_chuid([0x11; 16]);
        assert_eq!(
            hex::encode_upper(&c),
            "3019D4E739DA739CED39CE739D836858210842108421C84210C3EB\
             341011111111111111111111111111111111\
             35083230333030313031\
             3E00FE00"
        );
    }

    #[test]
    fn ccc_matches_ykman_layout() {
        let c = build_ccc([0x22; 14]);
        assert_eq!(
            hex::encode_upper(&c),
            "F015A000000116FF022222222222222222222222222222\
             F10121F20121F300F40100F50110F600F700FA00FB00FC00FD00FE00"
        );
    }

    #[test]
    fn protected_data_layout() {
        let k = ManagementKey::new(MgmtAlgorithm::Aes128, Zeroizing::new(vec![0xAB; 16])).unwrap();
        assert_eq!(
            hex::encode_upper(protected_data_bytes(&k).as_slice()),
            format!("88128910{}", "AB".repeat(16))
        );
    }
}
