//! Opening a [`KeyTarget`]: the FIDO2 transport (PC/SC NFC mapping,
//! hidraw CTAPHID, or the in-process simulator's CTAPHID pipe) and the PIV
//! card (PC/SC only: the `yubikey` crate owns its `pcsc::Card`).

use std::time::Duration;

use super::{KeyTarget, ProvisionError, Reason, Step, errors};
use crate::piv::PivCard;
use crate::sim::device::SimDevice;
use crate::sim::fido::ctaphid::{HidError, HidPipe};
use crate::transport::ctaphid::ReportIo;
use crate::transport::mem::{self, FnReports};
use crate::transport::pcsc::PcscTransport;
use crate::transport::{Transport, TransportError, hidraw};

/// The simulator's HID pipe as in-memory report I/O; a closed pipe reads
/// as a removed key.
fn pipe_io(pipe: HidPipe) -> impl ReportIo {
    let w = pipe.writer();
    FnReports::new(
        move |r: &[u8; 64]| w.write_report(r).map_err(|_| TransportError::Disconnected),
        move |t: Duration| match pipe.read_report(t) {
            Ok(r) => Ok(Some(r)),
            Err(HidError::Timeout) => Ok(None),
            Err(_) => Err(TransportError::Disconnected),
        },
    )
}

/// Plug a simulated key in (its CTAPHID pipe) and allocate a channel.
pub fn sim_transport(
    dev: &SimDevice,
    timeout: Duration,
) -> Result<Box<dyn Transport>, TransportError> {
    pipe_transport(dev.hid().ok_or(TransportError::Disconnected)?, timeout)
}

/// A CTAP transport over one simulator HID pipe.
pub fn pipe_transport(
    pipe: HidPipe,
    timeout: Duration,
) -> Result<Box<dyn Transport>, TransportError> {
    Ok(Box::new(mem::open(pipe_io(pipe), timeout)?))
}

/// Open the FIDO2 interface of `target`.
pub fn open_fido(
    target: &KeyTarget,
    timeout: Duration,
) -> Result<Box<dyn Transport>, ProvisionError> {
    let r: Result<Box<dyn Transport>, TransportError> = match target {
        KeyTarget::Reader(name) => {
            PcscTransport::open(name, None, timeout).map(|t| Box::new(t) as Box<dyn Transport>)
        }
        KeyTarget::Hid(path) | KeyTarget::Usb { hid: path, .. } => match path.to_str() {
            Some(p) => hidraw::open(p, timeout).map(|t| Box::new(t) as Box<dyn Transport>),
            None => Err(TransportError::HidIo("path is not UTF-8".into())),
        },
        KeyTarget::Sim(dev) => {
            if dev.hid().is_none() {
                return Err(ProvisionError::new(
                    Reason::DeviceUnsupported,
                    Some(Step::Identify),
                    "the simulated key has no FIDO2 application",
                ));
            }
            sim_transport(dev, timeout)
        }
    };
    r.map_err(|e| errors::fido_open(&target.describe(), e))
}

/// Open the PIV application of `target` (PC/SC readers only).
pub fn open_piv(target: &KeyTarget) -> Result<PivCard, ProvisionError> {
    let (KeyTarget::Reader(name) | KeyTarget::Usb { reader: name, .. }) = target else {
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
