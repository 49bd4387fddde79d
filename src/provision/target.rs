//! Opening a [`KeyTarget`] through the device boundary
//! ([`super::KeyDevice`]): its FIDO2 transport and its PIV card (PC/SC
//! only: the `yubikey` crate owns its `pcsc::Card`).

use std::time::Duration;

use super::{KeyDevice, KeyTarget, ProvisionError, Reason, Step, errors};
use crate::piv::PivCard;
use crate::transport::Transport;

/// Open the FIDO2 interface of `target`.
pub fn open_fido(
    target: &KeyTarget,
    timeout: Duration,
) -> Result<Box<dyn Transport>, ProvisionError> {
    match target.open_fido(timeout) {
        Ok(Some(t)) => Ok(t),
        Ok(None) => Err(ProvisionError::new(
            Reason::DeviceUnsupported,
            Some(Step::Identify),
            format!("{} has no FIDO2 application", target.describe()),
        )),
        Err(e) => Err(errors::fido_open(&target.describe(), e)),
    }
}

/// Open the PIV application of `target` (PC/SC readers only).
pub fn open_piv(target: &KeyTarget) -> Result<PivCard, ProvisionError> {
    let Some(name) = target.piv_reader() else {
        return Err(ProvisionError::new(
            Reason::DeviceUnsupported,
            Some(Step::Identify),
            format!(
                "the ticket asks for PIV, which needs the key's PC/SC (CCID) reader; {} has none — give the reader with --device",
                target.describe()
            ),
        ));
    };
    PivCard::open(Some(name)).map_err(|e| errors::piv_open(name, e))
}
