//! CTAPHID over Linux hidraw, and the enumeration of FIDO hidraw nodes.
//!
//! A hidraw node is a character device read and written in whole reports:
//! each `write` is one output report prefixed by its report ID (0 for FIDO
//! devices, which number none), each `read` returns one input report.
//! [`HidrawReports`] does exactly that on a plain file descriptor, with
//! `poll` for the read deadline — no ioctl, so the same code drives a real
//! node and a test fixture (a pty served by the simulator). The framing on
//! top is [`super::ctaphid`], shared with the in-memory pipe.
//!
//! Enumeration reads sysfs: a node is FIDO when the report descriptor of its
//! HID device (`<sysfs>/class/hidraw/<node>/device/report_descriptor`)
//! declares the usage page 0xF1D0 (CTAP 2.1 §11.2.8.1). The sysfs and /dev
//! roots are parameters, so tests point them at a folder they fill. The
//! HID monitor of `detect` and [`list`] share [`scan`].
//!
//! hidapi is not used: its `open_path` insists on the hidraw ioctls (so no
//! fixture can stand in for a node) and its enumeration duplicated this
//! sysfs walk; what remains is `open`, `poll`, `read` and `write`.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::ctaphid::{CtapHid, REPORT_LEN, Report, ReportIo};
use super::report_descriptor::{MAX_DESCRIPTOR, is_fido};
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
    /// `HID_NAME` of the HID device (the USB product string).
    pub product: Option<String>,
    /// `HID_UNIQ` of the HID device (the USB serial string, when the key
    /// exposes one).
    pub serial: Option<String>,
}

/// What sysfs says about one hidraw node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    /// A FIDO interface that can be opened.
    Fido(NodeInfo),
    /// Not a FIDO interface (keyboards, mice, other HID).
    Other,
    /// The node exists but could not be examined or opened.
    Unreadable(String),
}

/// A FIDO hidraw node and its HID device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInfo {
    /// `<dev>/<node>`.
    pub path: PathBuf,
    pub vendor_id: Option<u16>,
    pub product_id: Option<u16>,
    pub name: Option<String>,
    pub uniq: Option<String>,
    /// The USB device the interface belongs to (canonical sysfs path). Its
    /// CCID interface shares it, which links the FIDO and PIV views of one
    /// YubiKey.
    pub usb_parent: Option<PathBuf>,
}

/// Examine every hidraw node under `<sysfs>/class/hidraw`, by node name.
pub fn scan(sysfs: &Path, dev: &Path) -> BTreeMap<String, Node> {
    let class = sysfs.join("class/hidraw");
    let Ok(entries) = fs::read_dir(&class) else {
        return BTreeMap::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .map(|name| {
            let node = examine(sysfs, dev, &name);
            (name, node)
        })
        .collect()
}

fn examine(sysfs: &Path, dev: &Path, name: &str) -> Node {
    let dir = sysfs.join("class/hidraw").join(name).join("device");
    let desc = match read_limited(&dir.join("report_descriptor")) {
        Ok(d) => d,
        Err(e) => {
            return Node::Unreadable(format!("cannot read the report descriptor of {name}: {e}"));
        }
    };
    if !is_fido(&desc) {
        return Node::Other;
    }
    let path = dev.join(name);
    if let Err(e) = fs::OpenOptions::new().read(true).write(true).open(&path) {
        return Node::Unreadable(format!(
            "FIDO device {} cannot be opened ({e}); install keyward's udev rules or add the user to the keyward group",
            path.display()
        ));
    }
    let u = read_uevent(&dir.join("uevent"));
    let usb_parent = fs::canonicalize(&dir).ok().and_then(|p| usb_parent(&p));
    Node::Fido(NodeInfo {
        path,
        vendor_id: u.vendor_id,
        product_id: u.product_id,
        name: u.name,
        uniq: u.uniq,
        usb_parent,
    })
}

/// The FIDO HID interfaces present now (`/sys`, `/dev`).
pub fn list() -> Result<Vec<HidDeviceInfo>, TransportError> {
    Ok(list_in(Path::new("/sys"), Path::new("/dev")))
}

/// [`list`] under other sysfs and /dev roots.
pub fn list_in(sysfs: &Path, dev: &Path) -> Vec<HidDeviceInfo> {
    scan(sysfs, dev)
        .into_values()
        .filter_map(|n| match n {
            Node::Fido(i) => Some(HidDeviceInfo {
                path: i.path.to_string_lossy().into_owned(),
                vendor_id: i.vendor_id.unwrap_or(0),
                product_id: i.product_id.unwrap_or(0),
                product: i.name,
                serial: i.uniq.filter(|s| !s.is_empty()),
            }),
            _ => None,
        })
        .collect()
}

fn read_limited(path: &Path) -> std::io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    File::open(path)?
        .take(MAX_DESCRIPTOR as u64 + 1)
        .read_to_end(&mut buf)?;
    if buf.len() > MAX_DESCRIPTOR {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "report descriptor over 4096 bytes",
        ));
    }
    Ok(buf)
}

#[derive(Default)]
struct Uevent {
    vendor_id: Option<u16>,
    product_id: Option<u16>,
    name: Option<String>,
    uniq: Option<String>,
}

/// `HID_ID=0003:00001050:00000407`, `HID_NAME=...`, `HID_UNIQ=...` from a
/// HID device's uevent file.
fn read_uevent(path: &Path) -> Uevent {
    let mut u = Uevent::default();
    let Ok(text) = fs::read_to_string(path) else {
        return u;
    };
    let hex16 = |s: &str| {
        u32::from_str_radix(s, 16)
            .ok()
            .and_then(|v| u16::try_from(v).ok())
    };
    for line in text.lines() {
        if let Some(id) = line.strip_prefix("HID_ID=") {
            if let [_, v, p] = id.split(':').collect::<Vec<_>>().as_slice() {
                u.vendor_id = hex16(v);
                u.product_id = hex16(p);
            }
        } else if let Some(n) = line.strip_prefix("HID_NAME=") {
            u.name = Some(n.to_string());
        } else if let Some(s) = line.strip_prefix("HID_UNIQ=") {
            u.uniq = Some(s.to_string());
        }
    }
    u
}

/// The USB device a HID interface belongs to: the nearest ancestor with
/// `idVendor` and `idProduct` files.
fn usb_parent(p: &Path) -> Option<PathBuf> {
    p.ancestors()
        .find(|a| a.join("idVendor").is_file() && a.join("idProduct").is_file())
        .map(Path::to_path_buf)
}

/// Reports through an open hidraw node (or anything that, like it, reads
/// and writes one report per call).
pub struct HidrawReports(File);

impl HidrawReports {
    /// Open `path` for reading and writing.
    pub fn open(path: &Path) -> Result<HidrawReports, TransportError> {
        fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map(HidrawReports)
            .map_err(|e| TransportError::HidIo(format!("cannot open {}: {e}", path.display())))
    }
}

/// The buffer written to hidraw: report ID 0 (FIDO devices use none), then
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
            // The kernel answers the full length, or the report without its
            // ID byte on some drivers.
            Ok(n) if n >= REPORT_LEN => Ok(()),
            Ok(_) => Err(TransportError::HidIo(
                "short write to the hidraw node".into(),
            )),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => self.write_report(report),
            Err(_) => Err(TransportError::Disconnected),
        }
    }

    fn read_report(&mut self, timeout: Duration) -> Result<Option<Report>, TransportError> {
        let mut buf = [0u8; REPORT_LEN];
        let mut got = 0;
        let deadline = std::time::Instant::now() + timeout;
        // hidraw hands over one whole report per read; a stream stand-in
        // (a pty) may split it, so keep reading until 64 bytes are here.
        while got < REPORT_LEN {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if !readable(
                self.0.as_raw_fd(),
                if got == 0 { left } else { left.max(PART) },
            )? {
                if got == 0 {
                    return Ok(None);
                }
                return Err(TransportError::HidIo(format!(
                    "input report cut short: {got} of {REPORT_LEN} bytes"
                )));
            }
            match self.0.read(&mut buf[got..]) {
                Ok(0) => return Err(TransportError::Disconnected),
                Ok(n) => got += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => return Err(TransportError::Disconnected),
            }
        }
        Ok(Some(buf))
    }
}

/// How long the rest of a split report may take.
const PART: Duration = Duration::from_millis(100);

/// Wait until `fd` is readable; false on timeout. A hang-up or error counts
/// as readable, so the read that follows reports it.
fn readable(fd: i32, timeout: Duration) -> Result<bool, TransportError> {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
    loop {
        // SAFETY: one valid pollfd for the duration of the call.
        let r = unsafe { libc::poll(&mut pfd, 1, ms) };
        if r >= 0 {
            return Ok(r > 0);
        }
        if std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            return Err(TransportError::Disconnected);
        }
    }
}

/// Open the hidraw node `path` and allocate a CTAPHID channel.
pub fn open(path: &str, timeout: Duration) -> Result<CtapHid<HidrawReports>, TransportError> {
    CtapHid::open(
        HidrawReports::open(Path::new(path))?,
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

    #[test]
    fn uevent_fields_are_read_and_garbage_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("uevent");
        fs::write(
            &p,
            "DRIVER=hid-generic\nHID_ID=0003:00001050:00000407\nHID_NAME=Yubico YubiKey OTP+FIDO+CCID\nHID_UNIQ=\n",
        )
        .unwrap();
        let u = read_uevent(&p);
        assert_eq!((u.vendor_id, u.product_id), (Some(0x1050), Some(0x0407)));
        assert_eq!(u.name.as_deref(), Some("Yubico YubiKey OTP+FIDO+CCID"));
        assert_eq!(u.uniq.as_deref(), Some(""));
        fs::write(&p, "HID_ID=zz:1:2:3\nHID_ID=0003:1FFFFF:0407\n").unwrap();
        let u = read_uevent(&p);
        assert_eq!((u.vendor_id, u.product_id), (None, Some(0x0407)));
        assert!(read_uevent(&dir.path().join("missing")).name.is_none());
    }

    /// `list()` and the HID monitor share `scan`: FIDO nodes only, with
    /// the ids, name and serial string from uevent.
    #[test]
    fn list_reports_fido_nodes_only() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        let fido = [0x06, 0xD0, 0xF1, 0x09, 0x01, 0xA1, 0x01, 0xC0];
        let keyboard = [0x05, 0x01, 0x09, 0x06, 0xA1, 0x01, 0xC0];
        for (name, desc, uniq) in [
            ("hidraw0", &fido[..], "cccc"),
            ("hidraw1", &keyboard[..], ""),
        ] {
            let usb = r.join("sys/devices/usb1/1-1");
            let dev = usb.join(format!("1-1:1.0/{name}"));
            fs::create_dir_all(&dev).unwrap();
            fs::write(usb.join("idVendor"), "1050").unwrap();
            fs::write(usb.join("idProduct"), "0407").unwrap();
            fs::write(dev.join("report_descriptor"), desc).unwrap();
            fs::write(
                dev.join("uevent"),
                format!("HID_ID=0003:00001050:00000407\nHID_NAME=Key\nHID_UNIQ={uniq}\n"),
            )
            .unwrap();
            let class = r.join("sys/class/hidraw").join(name);
            fs::create_dir_all(&class).unwrap();
            std::os::unix::fs::symlink(&dev, class.join("device")).unwrap();
            fs::create_dir_all(r.join("dev")).unwrap();
            fs::write(r.join("dev").join(name), b"").unwrap();
        }
        let found = list_in(&r.join("sys"), &r.join("dev"));
        assert_eq!(found.len(), 1, "{found:?}");
        let h = &found[0];
        assert!(h.path.ends_with("dev/hidraw0"));
        assert_eq!((h.vendor_id, h.product_id), (0x1050, 0x0407));
        assert_eq!(h.product.as_deref(), Some("Key"));
        assert_eq!(h.serial.as_deref(), Some("cccc"));
        let nodes = scan(&r.join("sys"), &r.join("dev"));
        assert_eq!(nodes.get("hidraw1"), Some(&Node::Other));
        match nodes.get("hidraw0") {
            Some(Node::Fido(i)) => assert!(i.usb_parent.as_ref().unwrap().ends_with("usb1/1-1")),
            other => panic!("{other:?}"),
        }
        assert!(list_in(&r.join("nowhere"), &r.join("dev")).is_empty());
    }

    #[test]
    fn a_silent_node_times_out_and_a_closed_one_is_disconnected() {
        // A pipe stands in for a node that never answers, then hangs up.
        let mut fds = [0; 2];
        // SAFETY: pipe() fills two descriptors we then own.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        // SAFETY: both descriptors are fresh and owned by these Files only.
        let (r, w) = unsafe {
            use std::os::fd::FromRawFd;
            (File::from_raw_fd(fds[0]), File::from_raw_fd(fds[1]))
        };
        let mut io = HidrawReports(r);
        assert!(matches!(
            io.read_report(Duration::from_millis(30)),
            Ok(None)
        ));
        let mut w = w;
        w.write_all(&[7u8; 10]).unwrap();
        assert!(matches!(
            io.read_report(Duration::from_millis(30)),
            Err(TransportError::HidIo(m)) if m.contains("10 of 64")
        ));
        drop(w);
        assert!(matches!(
            io.read_report(Duration::from_millis(30)),
            Err(TransportError::Disconnected)
        ));
    }
}
