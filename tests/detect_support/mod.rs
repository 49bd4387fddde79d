//! Fixtures for detection tests: a sysfs tree with hidraw nodes under USB
//! devices, and a FIDO HID node without USB — a pty whose master end the
//! simulator's CTAPHID engine serves, speaking 64-byte reports exactly as a
//! hidraw node does (65-byte writes with report ID 0, 64-byte reads).
#![allow(dead_code)]

use std::fs::{self, File};
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use keyward::sim::ca::SimCa;
use keyward::sim::device::{SimDevice, SimOptions};
use keyward::sim::{DeviceProfile, Firmware};

/// A YubiKey 5 FIDO interface descriptor, and a keyboard's.
pub const FIDO_DESC: [u8; 34] = [
    0x06, 0xD0, 0xF1, 0x09, 0x01, 0xA1, 0x01, 0x09, 0x20, 0x15, 0x00, 0x26, 0xFF, 0x00, 0x75, 0x08,
    0x95, 0x40, 0x81, 0x02, 0x09, 0x21, 0x15, 0x00, 0x26, 0xFF, 0x00, 0x75, 0x08, 0x95, 0x40, 0x91,
    0x02, 0xC0,
];
pub const KEYBOARD_DESC: [u8; 8] = [0x05, 0x01, 0x09, 0x06, 0xA1, 0x01, 0xC0, 0x00];

/// The simulator's AAGUID as getInfo reports it.
pub const SIM_AAGUID: &str = "6b657977-6172-642d-7369-6d2d6669646f";

/// `root/sys/devices/usb1/<usb>`: a USB device directory with its ids.
pub fn usb_device(root: &Path, usb: &str) -> PathBuf {
    usb_device_of(root, usb, 0x1050, 0x0407)
}

/// The same with another vendor's and product's ids.
pub fn usb_device_of(root: &Path, usb: &str, vendor: u16, product: u16) -> PathBuf {
    let dir = root.join("sys/devices/usb1").join(usb);
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("idVendor"), format!("{vendor:04x}\n")).unwrap();
    fs::write(dir.join("idProduct"), format!("{product:04x}\n")).unwrap();
    dir
}

/// A hidraw node `name` under the USB device `usb`, with report descriptor
/// `desc`; `/dev/<name>` is created as a link to `dev_target` when given.
pub fn add_node(root: &Path, name: &str, usb: &str, desc: &[u8], dev_target: Option<&Path>) {
    add_node_of(
        root,
        name,
        usb,
        desc,
        dev_target,
        (0x1050, 0x0407, "Yubico YubiKey OTP+FIDO+CCID"),
    );
}

/// [`add_node`] for a key of another vendor: (vendor, product, HID name).
pub fn add_node_of(
    root: &Path,
    name: &str,
    usb: &str,
    desc: &[u8],
    dev_target: Option<&Path>,
    (vendor, product, hid_name): (u16, u16, &str),
) {
    let usb_dir = usb_device_of(root, usb, vendor, product);
    let dev = usb_dir.join(format!("{usb}:1.0/0003:{vendor:04X}:{product:04X}.{name}"));
    fs::create_dir_all(&dev).unwrap();
    fs::write(dev.join("report_descriptor"), desc).unwrap();
    fs::write(
        dev.join("uevent"),
        format!("HID_ID=0003:{vendor:08X}:{product:08X}\nHID_NAME={hid_name}\nHID_UNIQ=\n"),
    )
    .unwrap();
    let class = root.join("sys/class/hidraw").join(name);
    fs::create_dir_all(&class).unwrap();
    std::os::unix::fs::symlink(&dev, class.join("device")).unwrap();
    fs::create_dir_all(root.join("dev")).unwrap();
    if let Some(t) = dev_target {
        std::os::unix::fs::symlink(t, root.join("dev").join(name)).unwrap();
    }
}

/// A simulated YubiKey (FIDO2 + PIV) with this serial, firmware 5.7.1.
pub fn sim_device(serial: u32) -> SimDevice {
    let ca = Arc::new(SimCa::from_seed(SimCa::DEFAULT_SEED).unwrap());
    SimDevice::new(&SimOptions::new(
        DeviceProfile::new(serial, Firmware(5, 7, 1)),
        ca,
    ))
}

/// The persistent state of every applet (keys, PINs, retry counters,
/// credentials), as `keyward sim --state` would store it.
pub fn snapshot(dev: &SimDevice) -> String {
    let m: serde_json::Map<String, serde_json::Value> = dev
        .card
        .applets()
        .filter_map(|a| a.save().map(|v| (a.state_name().to_string(), v)))
        .collect();
    serde_json::to_string(&m).unwrap()
}

/// A pty in raw mode; the slave path is what tests link as `/dev/hidrawN`.
pub struct Pty {
    pub master: File,
    /// Held open so the master never sees a hang-up between clients.
    _slave: File,
    pub path: PathBuf,
}

pub fn pty() -> Pty {
    // SAFETY: plain libc calls on descriptors we own; ptsname_r writes into
    // our buffer within its length.
    unsafe {
        let m = libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY);
        assert!(m >= 0, "posix_openpt");
        assert_eq!(libc::grantpt(m), 0);
        assert_eq!(libc::unlockpt(m), 0);
        let mut buf = [0 as libc::c_char; 128];
        assert_eq!(libc::ptsname_r(m, buf.as_mut_ptr(), buf.len()), 0);
        let path = PathBuf::from(
            std::ffi::CStr::from_ptr(buf.as_ptr())
                .to_string_lossy()
                .into_owned(),
        );
        let master = File::from_raw_fd(m);
        let slave = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NOCTTY)
            .open(&path)
            .unwrap();
        let mut t: libc::termios = std::mem::zeroed();
        assert_eq!(libc::tcgetattr(slave.as_raw_fd(), &mut t), 0);
        libc::cfmakeraw(&mut t);
        assert_eq!(libc::tcsetattr(slave.as_raw_fd(), libc::TCSANOW, &t), 0);
        Pty {
            master,
            _slave: slave,
            path,
        }
    }
}

use std::os::unix::fs::OpenOptionsExt;

/// A FIDO HID node served by a simulated key's CTAPHID engine.
pub struct HidNode {
    pub path: PathBuf,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    _pty: Arc<Pty>,
}

impl HidNode {
    /// Plug `dev` in (its CTAPHID pipe) behind a fresh pty.
    pub fn serve(dev: &SimDevice) -> HidNode {
        let pipe = dev.hid().expect("the device carries FIDO2");
        let pty = Arc::new(pty());
        let stop = Arc::new(AtomicBool::new(false));
        let (p, s, w) = (pty.clone(), stop.clone(), pipe.writer());
        // Host -> device: 65-byte writes (report ID 0 + report).
        let to_dev = std::thread::spawn(move || {
            let mut m = &p.master;
            let mut buf = [0u8; 65];
            let mut got = 0;
            while !s.load(Ordering::SeqCst) {
                if !readable(m.as_raw_fd(), 50) {
                    continue;
                }
                match m.read(&mut buf[got..]) {
                    Ok(0) | Err(_) => std::thread::sleep(Duration::from_millis(10)),
                    Ok(n) => got += n,
                }
                if got == 65 {
                    got = 0;
                    assert_eq!(buf[0], 0, "hidraw writes carry report ID 0");
                    let mut r = [0u8; 64];
                    r.copy_from_slice(&buf[1..]);
                    if w.write_report(&r).is_err() {
                        return;
                    }
                }
            }
        });
        let (p, s) = (pty.clone(), stop.clone());
        // Device -> host: 64-byte input reports.
        let to_host = std::thread::spawn(move || {
            let mut m = &p.master;
            while !s.load(Ordering::SeqCst) {
                if let Ok(r) = pipe.read_report(Duration::from_millis(50)) {
                    let _ = m.write_all(&r);
                }
            }
        });
        HidNode {
            path: pty.path.clone(),
            stop,
            threads: vec![to_dev, to_host],
            _pty: pty,
        }
    }
}

impl Drop for HidNode {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

fn readable(fd: i32, ms: i32) -> bool {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd for the duration of the call.
    unsafe { libc::poll(&mut pfd, 1, ms) > 0 && pfd.revents & libc::POLLIN != 0 }
}

/// A leased vpcd reader with no card in it. A leased reader can still hold
/// the card of a simulator that outlived its test; such readers are skipped
/// (kept leased until the search ends, so the next lease moves on).
pub fn empty_reader() -> crate::common::Reader {
    let mut skipped = Vec::new();
    loop {
        let r = crate::common::lease_reader();
        if crate::common::wait_card(r.name, false, Duration::from_secs(3)) {
            return r;
        }
        eprintln!(
            "{} holds a card nobody leased; trying another reader",
            r.name
        );
        skipped.push(r);
        assert!(
            skipped.len() < crate::common::READERS.len(),
            "every vpcd reader holds a card"
        );
    }
}
