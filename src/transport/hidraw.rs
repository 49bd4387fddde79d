//! CTAPHID over Linux hidraw through hidapi (feature `linux-static-hidraw`).
//! FIDO devices are the HID interfaces with usage page 0xF1D0 (§11.2.8.1);
//! the framing is [`super::ctaphid`], shared with the in-memory pipe.

use std::ffi::CString;
use std::time::Duration;

use hidapi::{HidApi, HidDevice};

use super::ctaphid::{CtapHid, REPORT_LEN, Report, ReportIo};
use super::{TransportError, TransportKind};

/// The FIDO Alliance HID usage page (§11.2.8.1).
pub const FIDO_USAGE_PAGE: u16 = 0xF1D0;

/// One FIDO HID interface found by enumeration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HidDeviceInfo {
    /// The hidraw node, e.g. `/dev/hidraw3`.
    pub path: String,
    pub vendor_id: u16,
    pub product_id: u16,
    pub product: Option<String>,
    pub serial: Option<String>,
}

/// The FIDO HID interfaces present now.
pub fn list() -> Result<Vec<HidDeviceInfo>, TransportError> {
    let api = HidApi::new().map_err(hid_err)?;
    Ok(api
        .device_list()
        .filter(|d| d.usage_page() == FIDO_USAGE_PAGE)
        .map(|d| HidDeviceInfo {
            path: d.path().to_string_lossy().into_owned(),
            vendor_id: d.vendor_id(),
            product_id: d.product_id(),
            product: d.product_string().map(str::to_string),
            serial: d.serial_number().map(str::to_string),
        })
        .collect())
}

fn hid_err(e: hidapi::HidError) -> TransportError {
    TransportError::HidIo(e.to_string())
}

/// Reports through a hidapi device handle.
pub struct HidrawReports(HidDevice);

/// The buffer hidapi writes: report ID 0 (FIDO devices use none), then
/// the 64-byte report.
pub fn output_report(report: &Report) -> [u8; REPORT_LEN + 1] {
    let mut buf = [0u8; REPORT_LEN + 1];
    buf[1..].copy_from_slice(report);
    buf
}

impl ReportIo for HidrawReports {
    fn write_report(&mut self, report: &Report) -> Result<(), TransportError> {
        let buf = output_report(report);
        match self.0.write(&buf) {
            Ok(n) if n == buf.len() => Ok(()),
            Ok(_) => Err(TransportError::HidIo(
                "short write to the hidraw node".into(),
            )),
            Err(_) => Err(TransportError::Disconnected),
        }
    }

    fn read_report(&mut self, timeout: Duration) -> Result<Option<Report>, TransportError> {
        let mut buf = [0u8; REPORT_LEN];
        let ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
        match self.0.read_timeout(&mut buf, ms) {
            Ok(0) => Ok(None),
            Ok(_) => Ok(Some(buf)),
            Err(_) => Err(TransportError::Disconnected),
        }
    }
}

/// Open the hidraw node `path` and allocate a CTAPHID channel.
pub fn open(path: &str, timeout: Duration) -> Result<CtapHid<HidrawReports>, TransportError> {
    let api = HidApi::new().map_err(hid_err)?;
    let c = CString::new(path).map_err(|_| TransportError::HidIo("path contains NUL".into()))?;
    let dev = api.open_path(&c).map_err(hid_err)?;
    CtapHid::open(
        HidrawReports(dev),
        path.to_string(),
        TransportKind::Hid,
        timeout,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_reports_carry_report_id_zero() {
        let mut r = [0u8; REPORT_LEN];
        r[0] = 0xFF;
        r[63] = 0x11;
        let b = output_report(&r);
        assert_eq!(b.len(), 65);
        assert_eq!((b[0], b[1], b[64]), (0x00, 0xFF, 0x11));
    }
}
