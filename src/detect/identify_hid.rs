//! Read-only identification of a FIDO hidraw node over CTAPHID.
//!
//! The probe allocates a channel (CTAPHID_INIT: the device version, which a
//! YubiKey sets to its firmware), asks authenticatorGetInfo (AAGUID,
//! versions, options, firmware) and, on a Yubico key only, reads the
//! Management device info with the vendor command ykman uses over FIDO HID
//! (serial, form factor, firmware). Vendor commands mean different things
//! to other vendors' keys, so they are never sent elsewhere. Nothing is
//! verified, authenticated or written; a test shows the simulator's stored
//! state is byte-identical after a probe.

use std::path::Path;
use std::time::Duration;

use super::identify::{apply_device_info, uuid_text};
use super::{FidoIdentity, Identity};
use crate::ctap::client::Ctap2;
use crate::transport::ctaphid::{CtapHid, ReportIo};
use crate::transport::hidraw::HidrawReports;
use crate::transport::{Call, TransportError, TransportKind};

/// Yubico's USB vendor id.
pub const YUBICO_VID: u16 = 0x1050;
/// YubiKey vendor command READ CONFIG (yubikit `management.py`,
/// `CTAP_VENDOR_FIRST + 2`); data = page number.
pub const YK_READ_CONFIG: u8 = 0x42;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HidProbeError {
    #[error("cannot open the FIDO device {path}")]
    Open {
        path: String,
        #[source]
        source: TransportError,
    },
    #[error("the FIDO device {path} did not complete CTAPHID INIT; re-plug it and retry")]
    Init {
        path: String,
        #[source]
        source: TransportError,
    },
    #[error("the FIDO device {path} did not answer authenticatorGetInfo")]
    GetInfo {
        path: String,
        #[source]
        source: crate::ctap::client::Error,
    },
}

impl HidProbeError {
    /// The device went away while it was probed (its removal follows).
    pub fn is_removal(&self) -> bool {
        let t = match self {
            HidProbeError::Open { source, .. } | HidProbeError::Init { source, .. } => source,
            HidProbeError::GetInfo {
                source: crate::ctap::client::Error::Transport(t),
                ..
            } => t,
            HidProbeError::GetInfo { .. } => return false,
        };
        matches!(t, TransportError::Disconnected)
    }
}

/// Probe the hidraw node `path`; `vendor_id` (from sysfs) decides whether
/// the YubiKey vendor command may be sent. Each step gets `timeout`.
pub fn probe_hid(
    path: &Path,
    vendor_id: Option<u16>,
    timeout: Duration,
) -> Result<Identity, HidProbeError> {
    let name = path.to_string_lossy().into_owned();
    let io = HidrawReports::open(path).map_err(|source| HidProbeError::Open {
        path: name.clone(),
        source,
    })?;
    probe_reports(io, &name, vendor_id, timeout)
}

/// [`probe_hid`] over any report I/O.
pub fn probe_reports<R: ReportIo>(
    io: R,
    name: &str,
    vendor_id: Option<u16>,
    timeout: Duration,
) -> Result<Identity, HidProbeError> {
    let mut hid =
        CtapHid::open(io, name.to_string(), TransportKind::Hid, timeout).map_err(|source| {
            HidProbeError::Init {
                path: name.to_string(),
                source,
            }
        })?;
    let v = hid.info().version;
    let mut id = Identity {
        firmware: Some(format!("{}.{}.{}", v[0], v[1], v[2])),
        ..Identity::default()
    };
    if vendor_id == Some(YUBICO_VID) {
        match hid.transact(YK_READ_CONFIG, &[0x00], &mut Call::new(timeout)) {
            Ok(data) => apply_device_info(&mut id, &data),
            // Keys before firmware 5 answer ERR_INVALID_CMD: no serial here.
            Err(TransportError::HidError(e)) => {
                tracing::debug!(device = name, code = e, "no device info over CTAPHID")
            }
            Err(source) => {
                return Err(HidProbeError::Init {
                    path: name.to_string(),
                    source,
                });
            }
        }
    }
    let mut ctap = Ctap2::new(hid);
    ctap.set_timeout(timeout);
    let info = ctap.get_info().map_err(|source| HidProbeError::GetInfo {
        path: name.to_string(),
        source,
    })?;
    id.fido2 = Some(FidoIdentity {
        aaguid: Some(uuid_text(&info.aaguid)),
        versions: info.versions,
        firmware_version: info.firmware_version.map(u64::from),
        options: info.options,
    });
    Ok(id)
}
