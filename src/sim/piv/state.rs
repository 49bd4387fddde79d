//! What the PIV applet keeps across power cycles: PIN, PUK, management key,
//! slot keys with their policies, and data objects; saved as JSON for
//! `--state DIR`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::keys::PrivateKey;
use super::secrets::{
    DEFAULT_PIN, DEFAULT_PUK, DEFAULT_RETRIES, ManagementKey, MgmtAlg, REF_LEN, RefData,
};
use super::tlv;
use crate::sim::Firmware;

/// Object ID of the attestation certificate (Yubico PIV docs,
/// "Attestation": slot F9's certificate is object `5FFF01`).
pub const OBJ_ATTESTATION: u32 = 0x5F_FF01;

/// Why saved PIV state could not be restored. Messages never carry the
/// secret values themselves.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    #[error("PIV state is not the expected JSON document: {0}")]
    Json(#[from] serde_json::Error),
    #[error("PIV state format version {0} is not supported (this keyward reads 1)")]
    Version(u32),
    #[error("PIV state field {0:?} is malformed; delete the state directory to start afresh")]
    Field(&'static str),
    #[error("PIV state: the key of slot {0:02X} does not parse")]
    Slot(u8),
}

/// A private key in a slot with its policies.
#[derive(Debug)]
pub struct Slot {
    pub key: PrivateKey,
    /// Resolved PIN policy: `01` never, `02` once, `03` always.
    pub pin_policy: u8,
    /// Resolved touch policy: `01` never, `02` always, `03` cached.
    pub touch_policy: u8,
    /// Generated on the card (attestable) rather than imported.
    pub generated: bool,
}

/// The persistent state of the PIV application.
#[derive(Debug)]
pub struct PivState {
    pub pin: RefData,
    pub puk: RefData,
    pub mgmt: ManagementKey,
    pub slots: BTreeMap<u8, Slot>,
    /// Data objects by ID; the value is the content of tag `53`.
    pub objects: BTreeMap<u32, Vec<u8>>,
}

impl PivState {
    /// The state of a new (or reset) YubiKey: default PIN, PUK and
    /// management key, no keys, only the attestation certificate object.
    pub fn factory(fw: Firmware, f9_cert: Option<&[u8]>) -> PivState {
        let mut objects = BTreeMap::new();
        if let Some(cert) = f9_cert {
            objects.insert(OBJ_ATTESTATION, cert_object(cert));
        }
        PivState {
            pin: RefData::new(DEFAULT_PIN, DEFAULT_RETRIES, true),
            puk: RefData::new(DEFAULT_PUK, DEFAULT_RETRIES, true),
            mgmt: ManagementKey::factory(fw),
            slots: BTreeMap::new(),
            objects,
        }
    }

    pub fn save(&self) -> Option<serde_json::Value> {
        let slots = self
            .slots
            .iter()
            .map(|(&slot, s)| {
                Some(SavedSlot {
                    slot,
                    alg: s.key.alg(),
                    pin_policy: s.pin_policy,
                    touch_policy: s.touch_policy,
                    generated: s.generated,
                    pkcs8: hex::encode(&s.key.to_pkcs8()?[..]),
                })
            })
            .collect::<Option<Vec<_>>>()?;
        let saved = Saved {
            version: 1,
            pin: SavedRef::of(&self.pin),
            puk: SavedRef::of(&self.puk),
            mgmt_alg: self.mgmt.alg.byte(),
            mgmt_key: hex::encode(self.mgmt.expose()),
            mgmt_touch: self.mgmt.touch,
            mgmt_default: self.mgmt.is_default,
            slots,
            objects: self
                .objects
                .iter()
                .map(|(id, v)| (format!("{id:06X}"), hex::encode(v)))
                .collect(),
        };
        serde_json::to_value(&saved).ok()
    }

    pub fn load(value: serde_json::Value) -> Result<PivState, StateError> {
        let s: Saved = serde_json::from_value(value)?;
        if s.version != 1 {
            return Err(StateError::Version(s.version));
        }
        let alg = MgmtAlg::from_byte(s.mgmt_alg).ok_or(StateError::Field("mgmt_alg"))?;
        let key =
            Zeroizing::new(hex::decode(&s.mgmt_key).map_err(|_| StateError::Field("mgmt_key"))?);
        let mgmt = ManagementKey::new(alg, &key, s.mgmt_touch, s.mgmt_default)
            .ok_or(StateError::Field("mgmt_key"))?;
        let mut slots = BTreeMap::new();
        for sl in &s.slots {
            let der =
                Zeroizing::new(hex::decode(&sl.pkcs8).map_err(|_| StateError::Slot(sl.slot))?);
            let key = PrivateKey::from_pkcs8(sl.alg, &der).ok_or(StateError::Slot(sl.slot))?;
            let slot = Slot {
                key,
                pin_policy: sl.pin_policy,
                touch_policy: sl.touch_policy,
                generated: sl.generated,
            };
            slots.insert(sl.slot, slot);
        }
        let mut objects = BTreeMap::new();
        for (id, v) in &s.objects {
            let id = u32::from_str_radix(id, 16).map_err(|_| StateError::Field("objects"))?;
            objects.insert(
                id,
                hex::decode(v).map_err(|_| StateError::Field("objects"))?,
            );
        }
        Ok(PivState {
            pin: s.pin.restore("pin")?,
            puk: s.puk.restore("puk")?,
            mgmt,
            slots,
            objects,
        })
    }
}

/// A certificate data object (SP 800-73-4 Part 1 Table 15): `70` the
/// certificate, `71` CertInfo (uncompressed), `FE` error detection code.
pub fn cert_object(cert: &[u8]) -> Vec<u8> {
    let mut v = tlv::encode(0x70, cert);
    v.extend(tlv::encode(0x71, &[0x00]));
    v.extend(tlv::encode(0xFE, &[]));
    v
}

#[derive(Serialize, Deserialize)]
struct Saved {
    version: u32,
    pin: SavedRef,
    puk: SavedRef,
    mgmt_alg: u8,
    mgmt_key: String,
    mgmt_touch: bool,
    mgmt_default: bool,
    slots: Vec<SavedSlot>,
    objects: BTreeMap<String, String>,
}

impl Drop for Saved {
    fn drop(&mut self) {
        use zeroize::Zeroize;
        self.mgmt_key.zeroize();
        for s in &mut self.slots {
            s.pkcs8.zeroize();
        }
    }
}

#[derive(Serialize, Deserialize)]
struct SavedRef {
    value: String,
    total: u8,
    remaining: u8,
    default: bool,
}

impl Drop for SavedRef {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.value);
    }
}

impl SavedRef {
    fn of(r: &RefData) -> SavedRef {
        SavedRef {
            value: hex::encode(r.expose_padded()),
            total: r.total,
            remaining: r.remaining,
            default: r.is_default,
        }
    }
    fn restore(&self, name: &'static str) -> Result<RefData, StateError> {
        let mut padded = [0u8; REF_LEN];
        hex::decode_to_slice(&self.value, &mut padded).map_err(|_| StateError::Field(name))?;
        if self.total == 0 || self.total > 15 {
            return Err(StateError::Field(name));
        }
        Ok(RefData::from_padded(
            padded,
            self.total,
            self.remaining,
            self.default,
        ))
    }
}

#[derive(Serialize, Deserialize)]
struct SavedSlot {
    slot: u8,
    alg: u8,
    pin_policy: u8,
    touch_policy: u8,
    generated: bool,
    pkcs8: String,
}
