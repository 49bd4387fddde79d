//! The management key: finding it (factory, PIN-protected on the card, or
//! given by the caller), and rotating it to a random AES key stored
//! PIN-protected the way ykman stores it (see `objects`), so that
//! `ykman piv` keeps working with only the PIN.

use yubikey::MgmKey;
use yubikey::piv::{ManagementSlotId, SlotAlgorithmId, SlotId};

use super::card::{PivCard, to_mgm};
use super::error::{PivError, Reference};
use super::objects::{self, MgmtStorage, OBJ_PIVMAN_PROTECTED};
use super::secret::{ManagementKey, Pin};
use super::types::MgmtAlgorithm;

/// Where the management key for an operation comes from.
#[derive(Debug)]
#[non_exhaustive]
pub enum MgmtSource<'a> {
    /// The caller holds it.
    Given(&'a ManagementKey),
    /// Whatever the card says: the factory key if metadata says it is
    /// still the default, else the PIN-protected copy (the PIN is then
    /// verified).
    Card {
        /// The PIN, for a PIN-protected key.
        pin: Option<&'a Pin>,
    },
}

impl PivCard {
    /// The algorithm of the card's management key (GET METADATA on `9B`;
    /// 3DES on firmware without metadata).
    pub fn management_algorithm(&mut self) -> Result<MgmtAlgorithm, PivError> {
        Ok(
            match self
                .metadata(SlotId::Management(ManagementSlotId::Management))?
                .map(|m| m.algorithm)
            {
                Some(SlotAlgorithmId::Management(a)) => MgmtAlgorithm::from_yk(a),
                _ => MgmtAlgorithm::TripleDes,
            },
        )
    }

    /// Whether finding the management key on the card will need the PIN
    /// (it is not the factory key and is stored PIN-protected).
    pub fn management_key_needs_pin(&mut self) -> Result<bool, PivError> {
        let is_default = self
            .metadata(SlotId::Management(ManagementSlotId::Management))?
            .and_then(|m| m.default);
        Ok(is_default != Some(true) && objects::mgmt_storage(self)? == MgmtStorage::PinProtected)
    }

    /// Authenticate with the management key from `source`.
    pub fn authenticate_with(&mut self, source: MgmtSource<'_>) -> Result<(), PivError> {
        let key = self.find_management_key(source)?;
        self.authenticate(&key)
    }

    /// Resolve `source` to a key (not yet used).
    pub fn find_management_key(
        &mut self,
        source: MgmtSource<'_>,
    ) -> Result<ManagementKey, PivError> {
        let pin = match source {
            MgmtSource::Given(k) => return Ok(k.clone()),
            MgmtSource::Card { pin } => pin,
        };
        let alg = self.management_algorithm()?;
        let is_default = self
            .metadata(SlotId::Management(ManagementSlotId::Management))?
            .and_then(|m| m.default);
        if is_default == Some(true) {
            return Ok(ManagementKey::factory_default(alg));
        }
        match objects::mgmt_storage(self)? {
            MgmtStorage::PinProtected => {
                let pin = pin.ok_or(PivError::SecurityStatus {
                    operation: "reading the PIN-protected management key",
                    needs: "the PIN (--pin-fd N, or at the prompt)",
                })?;
                self.verify_pin(pin)?;
                objects::protected_key(self, alg)
            }
            // Firmware without metadata: try the factory key.
            _ if is_default.is_none() => Ok(ManagementKey::factory_default(alg)),
            _ => Err(PivError::ManagementKeyUnknown),
        }
    }

    /// Replace the management key with a fresh random `algorithm` key and
    /// store it PIN-protected on the card (ykman `pivman_set_mgm_key` with
    /// `store_on_device`). The caller has authenticated with the current
    /// key and verified `pin`. The new key is checked by authenticating
    /// with the copy read back from the card.
    pub fn rotate_management_key_pin_protected(
        &mut self,
        algorithm: MgmtAlgorithm,
        pin: &Pin,
    ) -> Result<(), PivError> {
        if !algorithm.is_aes() {
            return Err(PivError::Invalid(
                "keyward rotates to AES management keys only (aes128, aes192, aes256)".into(),
            ));
        }
        if self.version()
            < (super::types::FirmwareVersion {
                major: 5,
                minor: 4,
                patch: 0,
            })
        {
            return Err(PivError::NotSupported {
                what: "AES management keys (firmware 5.4 or later)".into(),
            });
        }
        // As ykman: make sure the protected object is readable (PIN
        // verified) before the key changes, so the new key cannot be lost.
        self.verify_pin(pin)?;
        self.read_object(OBJ_PIVMAN_PROTECTED, "reading pivman protected data")?;
        let new = ManagementKey::generate(algorithm);
        let mgm: MgmKey = to_mgm(&new)?;
        // SET MANAGEMENT KEY (`00 FF FF FF`), then protected data `88{89 key}`
        // and the pivman flag `02`, salt removed: the crate does all three.
        mgm.set_protected(&mut self.yk)
            .map_err(|e| self.yk_err("setting the management key", Reference::None, e))?;
        self.verify_pin(pin)?;
        let stored = objects::protected_key(self, algorithm)?;
        if objects::mgmt_storage(self)? != MgmtStorage::PinProtected || !stored.same_as(&new) {
            return Err(PivError::ProtectedKeyDamaged);
        }
        self.authenticate(&stored)
    }
}
