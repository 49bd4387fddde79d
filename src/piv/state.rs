//! The card's state as facts: `keyward piv info` and the drift check read
//! this. Nothing in it needs the PIN or the management key.
//!
//! Sources: GET METADATA (`00 F7 00 slot`, Yubico "PIV extensions",
//! firmware 5.3+) for PIN/PUK retries and default-ness, the management key's
//! algorithm and default-ness, and each key slot's algorithm, policies,
//! origin and public key; GET DATA for certificates, CHUID (`5FC102`), CCC
//! (`5FC107`) and the pivman admin data (`5FFF00`).

use serde::Serialize;
use sha2::{Digest, Sha256};
use yubikey::piv::{self, ManagementSlotId, SlotAlgorithmId, SlotId};

use super::card::PivCard;
use super::error::{PivError, Reference};
use super::objects::{self, Ccc, Chuid, MgmtStorage};
use super::types::{FirmwareVersion, MgmtAlgorithm, PinPolicy, Slot, TouchPolicy, algorithm_name};

/// Everything `keyward piv info` reports. Serialised as the
/// `keyward piv info --json` document (docs/piv.md).
#[derive(Debug, Clone, Serialize)]
pub struct DeviceState {
    /// Version of this JSON document's layout.
    pub schema_version: u32,
    /// The reader the card is in.
    pub reader: String,
    /// Device serial.
    pub serial: u32,
    /// PIV applet (firmware) version, "5.7.1".
    pub version: FirmwareVersion,
    /// PIN tries left.
    pub pin_retries: u8,
    /// PIN tries allowed (from metadata; null before firmware 5.3).
    pub pin_retries_total: Option<u8>,
    /// Whether the PIN is the factory `123456` (null when unknown).
    pub pin_is_default: Option<bool>,
    /// PUK tries left (null when unknown).
    pub puk_retries: Option<u8>,
    /// PUK tries allowed.
    pub puk_retries_total: Option<u8>,
    /// Whether the PUK is the factory `12345678`.
    pub puk_is_default: Option<bool>,
    /// The management key's algorithm.
    pub management_key_algorithm: MgmtAlgorithm,
    /// Whether the management key is the factory one.
    pub management_key_is_default: Option<bool>,
    /// Whether using the management key needs a touch.
    pub management_key_touch: Option<bool>,
    /// How the management key is kept, per the pivman data.
    pub management_key_storage: MgmtStorage,
    /// The four standard slots always, retired slots when in use.
    pub slots: Vec<SlotState>,
    /// The Card Holder Unique Identifier, if written.
    pub chuid: Option<Chuid>,
    /// The Card Capability Container, if written.
    pub ccc: Option<Ccc>,
}

/// One key slot.
#[derive(Debug, Clone, Serialize)]
pub struct SlotState {
    /// "9a".
    pub slot: Slot,
    /// "PIV Authentication".
    pub purpose: &'static str,
    /// The key, if the slot holds one.
    pub key: Option<KeyState>,
    /// The certificate, if one is stored.
    pub certificate: Option<CertState>,
}

impl SlotState {
    /// Whether the slot holds a key or a certificate.
    pub fn in_use(&self) -> bool {
        self.key.is_some() || self.certificate.is_some()
    }
}

/// A key as GET METADATA describes it.
#[derive(Debug, Clone, Serialize)]
pub struct KeyState {
    /// "p256", "rsa2048", …
    pub algorithm: &'static str,
    /// "generated" on the card or "imported".
    pub origin: Option<&'static str>,
    /// PIN policy.
    pub pin_policy: Option<PinPolicy>,
    /// Touch policy.
    pub touch_policy: Option<TouchPolicy>,
    /// SHA-256 of the DER SubjectPublicKeyInfo, hex.
    pub public_key_sha256: Option<String>,
}

/// A stored certificate.
#[derive(Debug, Clone, Serialize)]
pub struct CertState {
    /// Subject DN (RFC 4514).
    pub subject: String,
    /// Issuer DN.
    pub issuer: String,
    /// Serial number, hex.
    pub serial: String,
    /// notAfter, RFC 3339.
    pub not_after: String,
    /// SHA-256 of the DER certificate, hex.
    pub sha256: String,
    /// Whether its public key is the slot's key (null when the slot has
    /// no key or metadata is missing).
    pub matches_key: Option<bool>,
}

const RETIRED: std::ops::RangeInclusive<u8> = 0x82..=0x95;

impl PivCard {
    /// Read the card's state.
    pub fn state(&mut self) -> Result<DeviceState, PivError> {
        let pin = self.metadata(SlotId::Management(ManagementSlotId::Pin))?;
        let puk = self.metadata(SlotId::Management(ManagementSlotId::Puk))?;
        let mgm = self.metadata(SlotId::Management(ManagementSlotId::Management))?;
        let pin_retries = match pin.as_ref().and_then(|m| m.retries.as_ref()) {
            Some(r) => r.remaining_count,
            None => self
                .yk
                .get_pin_retries()
                .map_err(|e| self.yk_err("reading PIN retries", Reference::None, e))?,
        };
        let management_key_algorithm = match mgm.as_ref().map(|m| m.algorithm) {
            Some(SlotAlgorithmId::Management(a)) => MgmtAlgorithm::from_yk(a),
            // Before GET METADATA (5.3) only 3DES existed.
            _ => MgmtAlgorithm::TripleDes,
        };
        let mut slots = Vec::new();
        for slot in Slot::PROVISIONABLE
            .into_iter()
            .chain(RETIRED.map(Slot::Retired))
        {
            let s = self.slot_state(slot)?;
            if s.in_use() || !matches!(slot, Slot::Retired(_)) {
                slots.push(s);
            }
        }
        let storage = objects::mgmt_storage(self)?;
        let chuid = objects::read_chuid(self)?;
        let ccc = objects::read_ccc(self)?;
        Ok(DeviceState {
            schema_version: 1,
            reader: self.reader().to_string(),
            serial: self.serial(),
            version: self.version(),
            pin_retries,
            pin_retries_total: retries(&pin).map(|r| r.retry_count),
            pin_is_default: pin.as_ref().and_then(|m| m.default),
            puk_retries: retries(&puk).map(|r| r.remaining_count),
            puk_retries_total: retries(&puk).map(|r| r.retry_count),
            puk_is_default: puk.as_ref().and_then(|m| m.default),
            management_key_algorithm,
            management_key_is_default: mgm.as_ref().and_then(|m| m.default),
            management_key_touch: mgm
                .as_ref()
                .and_then(|m| m.policy)
                .map(|(_, t)| t == yubikey::TouchPolicy::Always),
            management_key_storage: storage,
            slots,
            chuid,
            ccc,
        })
    }

    /// GET METADATA for one slot; `None` when the slot is empty or the
    /// firmware predates the command.
    pub(crate) fn metadata(&mut self, slot: SlotId) -> Result<Option<piv::SlotMetadata>, PivError> {
        match piv::metadata(&mut self.yk, slot) {
            Ok(m) => Ok(Some(m)),
            Err(yubikey::Error::NotFound) | Err(yubikey::Error::NotSupported) => Ok(None),
            Err(e) => Err(self.yk_err("reading metadata", Reference::None, e)),
        }
    }

    /// The slot's key and certificate.
    pub fn slot_state(&mut self, slot: Slot) -> Result<SlotState, PivError> {
        let yk_slot = slot
            .to_yk()
            .ok_or_else(|| PivError::Invalid(format!("{slot} is not a key slot")))?;
        let meta = self.metadata(yk_slot)?;
        let spki = meta.as_ref().and_then(|m| m.public.as_ref()).and_then(|p| {
            use der::Encode;
            p.to_der().ok()
        });
        let key = meta.as_ref().map(|m| KeyState {
            algorithm: match m.algorithm {
                SlotAlgorithmId::Asymmetric(a) => algorithm_name(a),
                _ => "unknown",
            },
            origin: m.origin.map(|o| match o {
                piv::Origin::Generated => "generated",
                piv::Origin::Imported => "imported",
            }),
            pin_policy: m.policy.map(|(p, _)| PinPolicy::from_yk(p)),
            touch_policy: m.policy.map(|(_, t)| TouchPolicy::from_yk(t)),
            public_key_sha256: spki.as_ref().map(|d| hex::encode(Sha256::digest(d))),
        });
        let certificate = self
            .certificate(slot)?
            .map(|c| cert_state(&c, spki.as_deref()));
        Ok(SlotState {
            slot,
            purpose: slot.purpose(),
            key,
            certificate,
        })
    }
}

fn retries(m: &Option<piv::SlotMetadata>) -> Option<&piv::Retries> {
    m.as_ref().and_then(|m| m.retries.as_ref())
}

fn cert_state(c: &x509_cert::Certificate, spki: Option<&[u8]>) -> CertState {
    use der::Encode;
    let tbs = c.tbs_certificate();
    let cert_spki = tbs.subject_public_key_info().to_der().ok();
    CertState {
        subject: tbs.subject().to_string(),
        issuer: tbs.issuer().to_string(),
        serial: hex::encode(tbs.serial_number().as_bytes()),
        not_after: tbs.validity().not_after.to_string(),
        sha256: c
            .to_der()
            .map(|d| hex::encode(Sha256::digest(d)))
            .unwrap_or_default(),
        matches_key: spki.map(|k| cert_spki.as_deref() == Some(k)),
    }
}
