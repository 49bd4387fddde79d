//! HID monitor: FIDO authenticators among the hidraw nodes.
//!
//! A node is FIDO when its report descriptor
//! (`<sysfs>/class/hidraw/<node>/device/report_descriptor`) declares usage
//! page 0xF1D0. The sysfs and /dev roots are parameters, so tests point them
//! at a folder they fill and change. Hotplug comes from a udev monitor on the
//! `hidraw` subsystem; where udev is unavailable (containers, tests) a
//! periodic rescan finds the same changes a little later.

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::report_descriptor::{MAX_DESCRIPTOR, is_fido};
use super::{DeviceEvent, DeviceId, EventSink, Location, StopFlag};

/// What a scan found for one hidraw node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    Fido(Location),
    /// Not a FIDO interface (keyboards, mice, other HID).
    Other,
    /// The node exists but could not be examined.
    Unreadable(String),
}

pub fn device_id(node: &str) -> DeviceId {
    DeviceId(format!("hidraw:{node}"))
}

/// The HID side of detection.
pub struct HidMonitor {
    pub sysfs: PathBuf,
    pub dev: PathBuf,
    /// Rescan interval when no udev event arrives.
    pub interval: Duration,
    stop: StopFlag,
}

impl HidMonitor {
    /// Watch the real system (`/sys`, `/dev`).
    pub fn system() -> HidMonitor {
        HidMonitor::new("/sys".into(), "/dev".into(), Duration::from_millis(500))
    }

    pub fn new(sysfs: PathBuf, dev: PathBuf, interval: Duration) -> HidMonitor {
        HidMonitor {
            sysfs,
            dev,
            interval,
            stop: StopFlag::default(),
        }
    }

    pub fn stopper(&self) -> StopFlag {
        self.stop.clone()
    }

    /// Examine every hidraw node now.
    pub fn scan(&self) -> BTreeMap<String, Node> {
        let class = self.sysfs.join("class/hidraw");
        let Ok(entries) = fs::read_dir(&class) else {
            return BTreeMap::new();
        };
        entries
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .map(|name| (name.clone(), self.examine(&name)))
            .collect()
    }

    fn examine(&self, name: &str) -> Node {
        let dir = self.sysfs.join("class/hidraw").join(name).join("device");
        let desc = match read_limited(&dir.join("report_descriptor")) {
            Ok(d) => d,
            Err(e) => {
                return Node::Unreadable(format!(
                    "cannot read the report descriptor of {name}: {e}"
                ));
            }
        };
        if !is_fido(&desc) {
            return Node::Other;
        }
        let path = self.dev.join(name);
        if let Err(e) = fs::OpenOptions::new().read(true).write(true).open(&path) {
            return Node::Unreadable(format!(
                "FIDO device {} cannot be opened ({e}); install keyward's udev rules or add the user to the keyward group",
                path.display()
            ));
        }
        let (vendor_id, product_id, hid_name) = read_uevent(&dir.join("uevent"));
        let usb_parent = fs::canonicalize(&dir)
            .ok()
            .and_then(|p| usb_parent(&p))
            .map(|p| p.to_string_lossy().into_owned());
        Node::Fido(Location::Hidraw {
            path: path.to_string_lossy().into_owned(),
            vendor_id,
            product_id,
            name: hid_name,
            usb_parent,
        })
    }

    /// Run until stopped: report the nodes present, then every change.
    pub fn run(&self, sink: &EventSink) {
        let mut known: BTreeMap<String, Node> = BTreeMap::new();
        let udev = udev::MonitorBuilder::new()
            .and_then(|b| b.match_subsystem("hidraw"))
            .and_then(|b| b.listen())
            .ok();
        if udev.is_none() {
            tracing::info!(
                "udev monitor unavailable; rescanning hidraw every {:?}",
                self.interval
            );
        }
        while !self.stop.stopped() {
            let now = self.scan();
            if diff(&known, &now, sink).is_err() {
                return;
            }
            known = now;
            match &udev {
                Some(socket) => {
                    if wait_readable(socket.as_raw_fd(), self.interval) {
                        // Drain; the rescan above works out what changed.
                        for _ in socket.iter() {}
                    }
                }
                None => std::thread::sleep(self.interval),
            }
        }
        for (name, node) in known {
            if matches!(node, Node::Fido(_))
                && sink
                    .send(DeviceEvent::Removed {
                        id: device_id(&name),
                    })
                    .is_err()
            {
                return;
            }
        }
    }
}

/// Send the events that turn `before` into `after`.
fn diff(
    before: &BTreeMap<String, Node>,
    after: &BTreeMap<String, Node>,
    sink: &EventSink,
) -> Result<(), ()> {
    for (name, node) in before {
        if matches!(node, Node::Fido(_)) && !matches!(after.get(name), Some(Node::Fido(_))) {
            sink.send(DeviceEvent::Removed {
                id: device_id(name),
            })
            .map_err(|_| ())?;
        }
    }
    for (name, node) in after {
        if before.get(name) == Some(node) {
            continue;
        }
        let ev = match node {
            Node::Fido(location) => DeviceEvent::Arrived {
                id: device_id(name),
                location: location.clone(),
            },
            Node::Unreadable(message) => DeviceEvent::Error {
                id: Some(device_id(name)),
                message: message.clone(),
            },
            Node::Other => continue,
        };
        sink.send(ev).map_err(|_| ())?;
    }
    Ok(())
}

fn read_limited(path: &Path) -> std::io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    fs::File::open(path)?
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

/// `HID_ID=0003:00001050:00000407` and `HID_NAME=...` from a uevent file.
fn read_uevent(path: &Path) -> (Option<u16>, Option<u16>, Option<String>) {
    let Ok(text) = fs::read_to_string(path) else {
        return (None, None, None);
    };
    let (mut vid, mut pid, mut name) = (None, None, None);
    for line in text.lines() {
        if let Some(id) = line.strip_prefix("HID_ID=") {
            let parts: Vec<&str> = id.split(':').collect();
            if let [_, v, p] = parts.as_slice() {
                vid = u32::from_str_radix(v, 16)
                    .ok()
                    .and_then(|v| u16::try_from(v).ok());
                pid = u32::from_str_radix(p, 16)
                    .ok()
                    .and_then(|p| u16::try_from(p).ok());
            }
        } else if let Some(n) = line.strip_prefix("HID_NAME=") {
            name = Some(n.to_string());
        }
    }
    (vid, pid, name)
}

/// The USB device a HID interface belongs to: the nearest ancestor with an
/// `idVendor` file. Its CCID interface shares it, which links the FIDO and
/// PIV views of one YubiKey.
fn usb_parent(p: &Path) -> Option<PathBuf> {
    p.ancestors()
        .find(|a| a.join("idVendor").is_file() && a.join("idProduct").is_file())
        .map(Path::to_path_buf)
}

fn wait_readable(fd: i32, timeout: Duration) -> bool {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
    // SAFETY: one valid pollfd for the duration of the call.
    unsafe { libc::poll(&mut pfd, 1, ms) > 0 }
}
