//! Opening a PIV card by reader name, and the access-control commands:
//! VERIFY, CHANGE REFERENCE DATA, RESET RETRY COUNTER (SP 800-73-4 Part 2
//! §3.2), management-key mutual authentication (GENERAL AUTHENTICATE,
//! witness/challenge, Part 2 §3.2.4) and the YubiKey extensions SET PIN
//! RETRIES (`FA`) and RESET (`FB`) (Yubico, "PIV extensions").

use yubikey::reader::Context;
use yubikey::{MgmKey, YubiKey};

use super::error::{PivError, Reference, from_yk};
use super::secret::{ManagementKey, Pin, Puk};
use super::types::FirmwareVersion;

/// An open session with one PIV card. Dropping it resets the card's
/// security state (PIN and management-key authentication), as ykman does.
pub struct PivCard {
    pub(crate) yk: YubiKey,
}

impl std::fmt::Debug for PivCard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PivCard")
            .field("reader", &self.reader())
            .field("serial", &self.serial())
            .finish_non_exhaustive()
    }
}

/// The readers pcscd knows, by name.
pub fn readers() -> Result<Vec<String>, PivError> {
    let mut ctx = context()?;
    let names = match ctx.iter() {
        Ok(it) => it.map(|r| r.name().into_owned()).collect(),
        Err(yubikey::Error::PcscError {
            inner: Some(pcsc::Error::NoReadersAvailable),
        }) => Vec::new(),
        Err(e) => return Err(from_yk("listing readers", Reference::None, e)),
    };
    Ok(names)
}

fn context() -> Result<Context, PivError> {
    Context::open().map_err(|e| from_yk("connecting to pcscd", Reference::None, e))
}

impl PivCard {
    /// Open the PIV card in `reader`, or, with `None`, the only PIV card
    /// present in any reader.
    pub fn open(reader: Option<&str>) -> Result<Self, PivError> {
        let mut ctx = context()?;
        let listed: Vec<_> = match ctx.iter() {
            Ok(it) => it.collect(),
            Err(yubikey::Error::PcscError {
                inner: Some(pcsc::Error::NoReadersAvailable),
            }) => Vec::new(),
            Err(e) => return Err(from_yk("listing readers", Reference::None, e)),
        };
        if let Some(want) = reader {
            let r =
                listed
                    .iter()
                    .find(|r| r.name() == want)
                    .ok_or_else(|| PivError::NoSuchReader {
                        reader: want.to_string(),
                        available: listed.iter().map(|r| r.name().into_owned()).collect(),
                    })?;
            return r.open().map(Self::opened).map_err(|_| PivError::NotPiv {
                reader: want.to_string(),
            });
        }
        let mut found: Vec<YubiKey> = listed.iter().filter_map(|r| r.open().ok()).collect();
        match found.len() {
            0 => Err(PivError::NoCard),
            1 => Ok(Self::opened(found.remove(0))),
            _ => {
                let readers = found.iter().map(|y| y.name().to_string()).collect();
                // Leave the others' security state alone (the crate's Drop
                // would reset them).
                for y in found {
                    let _ = y.disconnect(pcsc::Disposition::LeaveCard);
                }
                Err(PivError::SeveralCards { readers })
            }
        }
    }

    fn opened(yk: YubiKey) -> Self {
        let card = Self { yk };
        tracing::debug!(
            reader = card.reader(),
            serial = card.serial(),
            version = %card.version(),
            "opened PIV card"
        );
        card
    }

    /// The reader the card is in.
    pub fn reader(&self) -> &str {
        self.yk.name()
    }

    /// The device serial (YubiKey GET SERIAL, `00 F8`).
    pub fn serial(&self) -> u32 {
        self.yk.serial().0
    }

    /// The PIV applet version (`00 FD`).
    pub fn version(&self) -> FirmwareVersion {
        let v = self.yk.version();
        FirmwareVersion {
            major: v.major,
            minor: v.minor,
            patch: v.patch,
        }
    }

    /// VERIFY the PIN (Part 2 §3.2.1). A wrong PIN reports the tries left.
    pub fn verify_pin(&mut self, pin: &Pin) -> Result<(), PivError> {
        self.yk
            .verify_pin(super::pin_bytes(pin)?)
            .map_err(|e| self.yk_err("PIN verification", Reference::Pin, e))
    }

    /// Mutual authentication with the management key.
    pub fn authenticate(&mut self, key: &ManagementKey) -> Result<(), PivError> {
        let mgm = to_mgm(key)?;
        let yk = &mut self.yk;
        guard("management-key authentication", || yk.authenticate(&mgm))?.map_err(|e| match e {
            yubikey::Error::AuthenticationError | yubikey::Error::SizeError => {
                PivError::WrongManagementKey
            }
            e => self.yk_err("management-key authentication", Reference::None, e),
        })
    }

    /// CHANGE REFERENCE DATA for the PIN (`00 24 00 80`).
    ///
    /// Refused on a card whose management key is derived from the PIN
    /// (the deprecated pivman PBKDF2 scheme): a new PIN would silently
    /// change the management key.
    pub fn change_pin(&mut self, old: &Pin, new: &Pin) -> Result<(), PivError> {
        self.refuse_pin_derived()?;
        self.yk
            .change_pin(super::pin_bytes(old)?, super::pin_bytes(new)?)
            .map_err(|e| self.yk_err("PIN change", Reference::Pin, e))
    }

    /// CHANGE REFERENCE DATA for the PUK (`00 24 00 81`).
    pub fn change_puk(&mut self, old: &Puk, new: &Puk) -> Result<(), PivError> {
        self.yk
            .change_puk(super::puk_bytes(old)?, super::puk_bytes(new)?)
            .map_err(|e| self.yk_err("PUK change", Reference::Puk, e))
    }

    /// RESET RETRY COUNTER (`00 2C 00 80`): a new PIN, bought with the PUK.
    pub fn unblock_pin(&mut self, puk: &Puk, new: &Pin) -> Result<(), PivError> {
        self.refuse_pin_derived()?;
        self.yk
            .unblock_pin(super::puk_bytes(puk)?, super::pin_bytes(new)?)
            .map_err(|e| self.yk_err("PIN unblock", Reference::Puk, e))
    }

    fn refuse_pin_derived(&mut self) -> Result<(), PivError> {
        if super::objects::mgmt_storage(self)? == super::objects::MgmtStorage::PinDerived {
            return Err(PivError::NotSupported {
                what: "changing the PIN while the management key is derived from it \
                       (deprecated); rotate the management key with ykman first"
                    .into(),
            });
        }
        Ok(())
    }

    /// SET PIN RETRIES (`00 FA pin puk`). Needs the management key and the
    /// PIN; the card then resets the PIN and PUK to their factory values
    /// (Yubico, "PIV extensions"), so callers set them again afterwards.
    pub fn set_pin_retries(&mut self, pin_tries: u8, puk_tries: u8) -> Result<(), PivError> {
        if pin_tries == 0 || puk_tries == 0 {
            return Err(PivError::Invalid(
                "retry counts must be 1 to 255".to_string(),
            ));
        }
        self.yk
            .set_pin_retries(pin_tries, puk_tries)
            .map_err(|e| match e {
                yubikey::Error::AuthenticationError => PivError::SecurityStatus {
                    operation: "setting PIN retries",
                    needs: "the management key and the PIN",
                },
                e => self.yk_err("setting PIN retries", Reference::None, e),
            })
    }

    /// Reset the PIV application to factory state. The card allows it only
    /// once the PIN and the PUK are both blocked, so this blocks them first
    /// with values that can never match (`FF`-padding only), as
    /// `ykman piv reset` does. Destroys every key and certificate.
    pub fn danger_reset(&mut self) -> Result<(), PivError> {
        const NEVER: [u8; 8] = [0xFF; 8];
        for _ in 0..256 {
            match self.yk.verify_pin(&NEVER) {
                Err(yubikey::Error::WrongPin { tries: 0 }) | Err(yubikey::Error::PinLocked) => {
                    break;
                }
                Err(yubikey::Error::WrongPin { .. }) => {}
                Ok(()) => return Err(PivError::ResetRefused),
                Err(e) => return Err(self.yk_err("blocking the PIN", Reference::Pin, e)),
            }
        }
        // Not the crate's `block_puk`: it retries forever on any error other
        // than "blocked", so a card pulled mid-loop would hang keyward.
        for _ in 0..256 {
            match self.yk.change_puk(&NEVER, &NEVER) {
                Err(yubikey::Error::WrongPin { tries: 0 }) | Err(yubikey::Error::PinLocked) => {
                    break;
                }
                Err(yubikey::Error::WrongPin { .. }) => {}
                Ok(()) => return Err(PivError::ResetRefused),
                Err(e) => return Err(self.yk_err("blocking the PUK", Reference::Puk, e)),
            }
        }
        self.yk.reset_device().map_err(|e| match e {
            yubikey::Error::GenericError => PivError::ResetRefused,
            e => self.yk_err("reset", Reference::None, e),
        })
    }

    /// Read a data object (GET DATA, Part 2 §3.1.2); `None` if absent.
    pub(crate) fn read_object(
        &mut self,
        id: u32,
        operation: &'static str,
    ) -> Result<Option<zeroize::Zeroizing<Vec<u8>>>, PivError> {
        match self.yk.fetch_object(id) {
            Ok(b) => Ok(Some(b)),
            Err(yubikey::Error::NotFound) => Ok(None),
            // `6982` and a lost card both come back as a generic error.
            Err(yubikey::Error::GenericError) if card_present(self.reader()) => {
                Err(PivError::SecurityStatus {
                    operation,
                    needs: "the PIN",
                })
            }
            Err(e) => Err(self.yk_err(operation, Reference::None, e)),
        }
    }

    /// Write a data object (PUT DATA, Part 2 §3.3.2); empty deletes it.
    pub(crate) fn write_object(
        &mut self,
        id: u32,
        data: &mut [u8],
        operation: &'static str,
    ) -> Result<(), PivError> {
        self.yk.save_object(id, data).map_err(|e| match e {
            yubikey::Error::AuthenticationError => PivError::SecurityStatus {
                operation,
                needs: "the management key",
            },
            e => self.yk_err(operation, Reference::None, e),
        })
    }
}

impl PivCard {
    /// Translate a crate error; a failure the crate could not explain
    /// (it turns a lost card's empty response into "generic error") is
    /// reported as a removal when the reader no longer holds a card.
    pub(crate) fn yk_err(
        &self,
        operation: &'static str,
        r: Reference,
        e: yubikey::Error,
    ) -> PivError {
        let mapped = from_yk(operation, r, e);
        if matches!(mapped, PivError::Device { .. }) && !card_present(self.reader()) {
            return PivError::CardRemoved { operation };
        }
        mapped
    }
}

/// Whether pcscd still sees a card in `reader`. Asked after a failure the
/// crate could not explain: pcscd learns of a removal from its reader
/// driver a moment after the transmit that failed, so a card still shown
/// present is watched for up to a second before it is believed.
fn card_present(reader: &str) -> bool {
    let Ok(ctx) = pcsc::Context::establish(pcsc::Scope::System) else {
        return false;
    };
    let Ok(name) = std::ffi::CString::new(reader) else {
        return false;
    };
    let mut rs = [pcsc::ReaderState::new(
        name.as_c_str(),
        pcsc::State::UNAWARE,
    )];
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
    let mut timeout = std::time::Duration::ZERO;
    loop {
        match ctx.get_status_change(timeout, &mut rs) {
            Ok(()) => {}
            Err(pcsc::Error::Timeout) => return true,
            Err(_) => return false,
        }
        if !rs[0].event_state().contains(pcsc::State::PRESENT) {
            return false;
        }
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return true;
        }
        rs[0].sync_current_state();
        timeout = left;
    }
}

/// Run a crate call that indexes device responses without checking their
/// length (`authenticate` slices `data()[4..]`, `piv::attest` reads
/// `data()[0]`): a short answer from a faulty card becomes an error, not a
/// crash of keyward.
pub(crate) fn guard<T>(operation: &'static str, f: impl FnOnce() -> T) -> Result<T, PivError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).map_err(|_| PivError::Device {
        operation,
        source: "the card's answer was too short (the yubikey crate panicked on it)".into(),
    })
}

/// The crate's key type, built only at the moment of use.
pub(crate) fn to_mgm(key: &ManagementKey) -> Result<MgmKey, PivError> {
    MgmKey::from_bytes(key.expose_secret(), Some(key.algorithm().to_yk())).map_err(|_| {
        PivError::BadSecretFormat {
            what: "management key",
            rule: "the length its algorithm needs",
        }
    })
}
