//! The device boundary: which key a workflow provisions, and how it is
//! reached. [`KeyDevice`] is what a workflow asks of a key — a description,
//! its FIDO2 CTAP link, the PC/SC reader of its PIV application — and
//! both the real keys ([`KeyTarget::Reader`], [`KeyTarget::Hid`],
//! [`KeyTarget::Usb`]) and any other key (the in-process simulator, in
//! `crate::sim`, behind [`KeyTarget::Device`]) answer it the same way.
//! No production type here names the simulator.

use std::path::PathBuf;
use std::time::Duration;

use crate::transport::pcsc::PcscTransport;
use crate::transport::{Transport, TransportError, hidraw};

/// A key as a workflow sees it.
pub trait KeyDevice: Send {
    /// A short description for messages and events.
    fn describe(&self) -> String;

    /// Open the key's FIDO2 application (a CTAP link with `timeout` per
    /// exchange); `Ok(None)` when the key has none.
    fn open_fido(&self, timeout: Duration) -> Result<Option<Box<dyn Transport>>, TransportError>;

    /// The PC/SC reader that carries the key's PIV application, if the
    /// key is reached through one.
    fn piv_reader(&self) -> Option<&str> {
        None
    }
}

/// Which key to provision.
pub enum KeyTarget {
    /// A PC/SC reader by name: FIDO2 over the NFC mapping (NFCCTAP) and PIV.
    Reader(String),
    /// A hidraw node: FIDO2 over CTAPHID only.
    Hid(PathBuf),
    /// One USB YubiKey seen through both its interfaces: FIDO2 over the
    /// hidraw node, PIV over the CCID reader (USB keys do not offer FIDO2
    /// over CCID).
    Usb { reader: String, hid: PathBuf },
    /// Any other key behind the device boundary (the in-process simulator:
    /// FIDO2 over its in-memory CTAPHID pipe, no PIV reader, so a PIV op
    /// on it fails with `device-unsupported`).
    Device(Box<dyn KeyDevice>),
}

impl KeyTarget {
    /// A target for any [`KeyDevice`].
    pub fn device(d: impl KeyDevice + 'static) -> Self {
        KeyTarget::Device(Box::new(d))
    }

    /// A short description for messages and events.
    pub fn describe(&self) -> String {
        KeyDevice::describe(self)
    }

    /// Whether the target can carry PIV (a PC/SC reader).
    pub fn has_piv_interface(&self) -> bool {
        self.piv_reader().is_some()
    }
}

impl std::fmt::Debug for KeyTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyTarget::Reader(r) => f.debug_tuple("Reader").field(r).finish(),
            KeyTarget::Hid(p) => f.debug_tuple("Hid").field(p).finish(),
            KeyTarget::Usb { reader, hid } => f
                .debug_struct("Usb")
                .field("reader", reader)
                .field("hid", hid)
                .finish(),
            KeyTarget::Device(d) => f.debug_tuple("Device").field(&d.describe()).finish(),
        }
    }
}

fn open_hidraw(
    path: &std::path::Path,
    timeout: Duration,
) -> Result<Box<dyn Transport>, TransportError> {
    match path.to_str() {
        Some(p) => hidraw::open(p, timeout).map(|t| Box::new(t) as Box<dyn Transport>),
        None => Err(TransportError::HidIo("path is not UTF-8".into())),
    }
}

impl KeyDevice for KeyTarget {
    fn describe(&self) -> String {
        match self {
            KeyTarget::Reader(r) => format!("reader {r:?}"),
            KeyTarget::Hid(p) => format!("hidraw {}", p.display()),
            KeyTarget::Usb { reader, hid } => {
                format!("USB key (reader {reader:?}, hidraw {})", hid.display())
            }
            KeyTarget::Device(d) => d.describe(),
        }
    }

    fn open_fido(&self, timeout: Duration) -> Result<Option<Box<dyn Transport>>, TransportError> {
        match self {
            KeyTarget::Reader(name) => PcscTransport::open(name, None, timeout)
                .map(|t| Some(Box::new(t) as Box<dyn Transport>)),
            KeyTarget::Hid(path) | KeyTarget::Usb { hid: path, .. } => {
                open_hidraw(path, timeout).map(Some)
            }
            KeyTarget::Device(d) => d.open_fido(timeout),
        }
    }

    fn piv_reader(&self) -> Option<&str> {
        match self {
            KeyTarget::Reader(r) | KeyTarget::Usb { reader: r, .. } => Some(r),
            KeyTarget::Hid(_) => None,
            KeyTarget::Device(d) => d.piv_reader(),
        }
    }
}
