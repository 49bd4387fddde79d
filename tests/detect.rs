//! Device detection: the HID monitor on a sysfs fixture, and the PC/SC
//! monitor with simulators coming and going through a real pcscd.

#![cfg(feature = "sim")]

mod common;
mod detect_support;

use std::fs;
use std::path::Path;
use std::sync::Mutex;
use std::sync::mpsc::Receiver;
use std::time::Duration;

use keyward::detect::hid::HidMonitor;
use keyward::detect::{Detector, DeviceEvent, DeviceId, Location};

/// A YubiKey 5 FIDO interface descriptor, and a keyboard's.
const FIDO_DESC: [u8; 34] = [
    0x06, 0xD0, 0xF1, 0x09, 0x01, 0xA1, 0x01, 0x09, 0x20, 0x15, 0x00, 0x26, 0xFF, 0x00, 0x75, 0x08,
    0x95, 0x40, 0x81, 0x02, 0x09, 0x21, 0x15, 0x00, 0x26, 0xFF, 0x00, 0x75, 0x08, 0x95, 0x40, 0x91,
    0x02, 0xC0,
];
const KEYBOARD_DESC: [u8; 8] = [0x05, 0x01, 0x09, 0x06, 0xA1, 0x01, 0xC0, 0x00];

/// Tests that watch all readers run one at a time.
static RIG: Mutex<()> = Mutex::new(());

fn add_node(root: &Path, name: &str, desc: &[u8], with_dev: bool) {
    let usb = root.join(format!("sys/devices/usb1/1-{name}"));
    let dev = usb.join(format!("1-{name}:1.0/0003:1050:0407.0001"));
    fs::create_dir_all(&dev).unwrap();
    fs::write(usb.join("idVendor"), "1050\n").unwrap();
    fs::write(usb.join("idProduct"), "0407\n").unwrap();
    fs::write(dev.join("report_descriptor"), desc).unwrap();
    fs::write(
        dev.join("uevent"),
        "HID_ID=0003:00001050:00000407\nHID_NAME=Yubico YubiKey OTP+FIDO+CCID\n",
    )
    .unwrap();
    let class = root.join("sys/class/hidraw").join(name);
    fs::create_dir_all(&class).unwrap();
    std::os::unix::fs::symlink(&dev, class.join("device")).unwrap();
    if with_dev {
        fs::create_dir_all(root.join("dev")).unwrap();
        fs::write(root.join("dev").join(name), b"").unwrap();
    }
}

fn next(rx: &Receiver<DeviceEvent>) -> DeviceEvent {
    rx.recv_timeout(Duration::from_secs(20))
        .expect("an event within 20 s")
}

fn id(s: &str) -> DeviceId {
    DeviceId(s.to_string())
}

#[test]
fn hid_monitor_reports_fido_nodes_arriving_leaving_and_unreadable() {
    let root = common::tempdir();
    let r = root.path();
    fs::create_dir_all(r.join("dev")).unwrap();
    add_node(r, "hidraw0", &FIDO_DESC, true);
    add_node(r, "hidraw1", &KEYBOARD_DESC, true);
    // A FIDO interface whose /dev node cannot be opened.
    add_node(r, "hidraw2", &FIDO_DESC, false);
    // A node whose report descriptor cannot be read.
    fs::create_dir_all(r.join("sys/class/hidraw/hidraw3/device/report_descriptor")).unwrap();

    // Plain files stand in for the nodes: enumeration only, no probe (the
    // probe has its own tests in detect_hid.rs).
    let mon = HidMonitor::new(r.join("sys"), r.join("dev"), Duration::from_millis(20))
        .without_identification();
    let stop = mon.stopper();
    let (tx, rx) = std::sync::mpsc::channel();
    let t = std::thread::spawn(move || mon.run(&tx));

    match next(&rx) {
        DeviceEvent::Arrived {
            id: i,
            location:
                Location::Hidraw {
                    path,
                    vendor_id,
                    product_id,
                    usb_parent,
                    ..
                },
        } => {
            assert_eq!(i, id("hidraw:hidraw0"));
            assert!(path.ends_with("dev/hidraw0"));
            assert_eq!((vendor_id, product_id), (Some(0x1050), Some(0x0407)));
            assert!(usb_parent.unwrap().ends_with("usb1/1-hidraw0"));
        }
        other => panic!("expected hidraw0 to arrive, got {other:?}"),
    }
    match next(&rx) {
        DeviceEvent::Error {
            id: Some(i),
            message,
        } => {
            assert_eq!(i, id("hidraw:hidraw2"));
            assert!(
                message.contains("cannot be opened") && message.contains("udev rules"),
                "{message}"
            );
        }
        other => panic!("expected an error for hidraw2, got {other:?}"),
    }
    match next(&rx) {
        DeviceEvent::Error {
            id: Some(i),
            message,
        } => {
            assert_eq!(i, id("hidraw:hidraw3"));
            assert!(message.contains("report descriptor"), "{message}");
        }
        other => panic!("expected an error for hidraw3, got {other:?}"),
    }

    add_node(r, "hidraw4", &FIDO_DESC, true);
    assert!(matches!(next(&rx), DeviceEvent::Arrived { id: i, .. } if i == id("hidraw:hidraw4")));
    fs::remove_dir_all(r.join("sys/class/hidraw/hidraw0")).unwrap();
    fs::remove_file(r.join("dev/hidraw0")).unwrap();
    assert_eq!(
        next(&rx),
        DeviceEvent::Removed {
            id: id("hidraw:hidraw0")
        }
    );
    stop.stop();
    t.join().unwrap();
    assert_eq!(
        next(&rx),
        DeviceEvent::Removed {
            id: id("hidraw:hidraw4")
        }
    );
    assert!(
        rx.recv_timeout(Duration::from_millis(100)).is_err(),
        "nothing for the keyboard"
    );
}

/// Events for one reader, skipping other readers' and monitor errors.
fn next_for(rx: &Receiver<DeviceEvent>, reader: &str) -> DeviceEvent {
    let want = id(&format!("pcsc:{reader}"));
    loop {
        let ev = next(rx);
        if ev.id() == Some(&want) {
            return ev;
        }
    }
}

fn expect_arrival(rx: &Receiver<DeviceEvent>, reader: &str, serial: u32) {
    assert!(matches!(next_for(rx, reader), DeviceEvent::Arrived { .. }));
    match next_for(rx, reader) {
        DeviceEvent::Identified { identity, .. } => {
            assert_eq!(identity.serial, Some(serial));
            assert_eq!(identity.firmware.as_deref(), Some("5.7.1"));
            assert_eq!(identity.piv.as_ref().and_then(|p| p.serial), Some(serial));
            let fido = identity.fido2.expect("FIDO2 identified");
            assert_eq!(
                fido.aaguid.as_deref(),
                Some("6b657977-6172-642d-7369-6d2d6669646f")
            );
            assert!(fido.versions.contains(&"FIDO_2_1".to_string()));
        }
        other => panic!("expected identification of {reader}, got {other:?}"),
    }
}

/// A leased reader with no card in it.
fn free_reader() -> common::Reader {
    detect_support::empty_reader()
}

/// A detector with no HID devices (an empty sysfs).
fn detector() -> (Detector, Receiver<DeviceEvent>, tempfile::TempDir) {
    let empty = common::tempdir();
    let hid = HidMonitor::new(
        empty.path().into(),
        empty.path().into(),
        Duration::from_secs(1),
    );
    let (det, rx) = Detector::start(hid, Duration::from_millis(150));
    (det, rx, empty)
}

#[test]
#[ignore = "needs the test rig: pcscd + vpcd (scripts/test runs it)"]
fn pcsc_monitor_sees_simulators_arrive_identified_and_leave_on_two_readers() {
    common::require_rig();
    let _rig = RIG.lock().unwrap_or_else(|e| e.into_inner());
    // Lease both readers and let any card of an earlier test leave them
    // before the monitor starts: it must see ours arrive, not theirs go.
    let (ra, rb) = (free_reader(), free_reader());
    let (det, rx, _empty) = detector();
    let mut a = common::start_sim_on(ra, &["--serial", "1001"]);
    let mut b = common::start_sim_on(rb, &["--serial", "1002"]);
    expect_arrival(&rx, a.reader.name, 1001);
    expect_arrival(&rx, b.reader.name, 1002);
    a.stop();
    assert_eq!(
        next_for(&rx, a.reader.name),
        DeviceEvent::Removed {
            id: id(&format!("pcsc:{}", a.reader.name))
        }
    );
    b.stop();
    assert_eq!(
        next_for(&rx, b.reader.name),
        DeviceEvent::Removed {
            id: id(&format!("pcsc:{}", b.reader.name))
        }
    );
    det.stop();
}

#[test]
#[ignore = "needs the test rig: pcscd + vpcd (scripts/test runs it)"]
fn pcsc_monitor_survives_a_pcscd_restart() {
    // The pcscd this test stops and starts is its own (a child process of
    // this binary talks to it), so the shared pcscd and the other tests'
    // readers are untouched.
    let Some((mut pcscd, reader)) = common::PrivatePcscd::inside() else {
        common::rerun_with_private_pcscd("pcsc_monitor_survives_a_pcscd_restart");
        return;
    };
    let (det, rx, _empty) = detector();
    let sim = common::start_sim_on(reader, &["--serial", "2001"]);
    expect_arrival(&rx, sim.reader.name, 2001);
    pcscd.stop();
    assert_eq!(
        next_for(&rx, sim.reader.name),
        DeviceEvent::Removed {
            id: id(&format!("pcsc:{}", sim.reader.name))
        }
    );
    std::thread::sleep(Duration::from_millis(300));
    pcscd.start();
    // The simulator re-inserts itself; the monitor reconnects and sees it.
    expect_arrival(&rx, sim.reader.name, 2001);
    det.stop();
}

#[test]
#[ignore = "needs the test rig: pcscd + vpcd (scripts/test runs it)"]
fn identification_does_not_change_the_key() {
    common::require_rig();
    let _rig = RIG.lock().unwrap_or_else(|e| e.into_inner());
    let state = common::tempdir();
    let sim = common::start_sim_on(
        free_reader(),
        &[
            "--serial",
            "3001",
            "--state",
            state.path().to_str().unwrap(),
        ],
    );
    // Give the key state worth keeping: a PIV PIN change through ykman.
    common::ykman(
        &sim,
        &[
            "piv",
            "access",
            "change-pin",
            "--pin",
            "123456",
            "--new-pin",
            "24682468",
        ],
    );
    let before = fs::read(state.path().join("state.json")).unwrap();
    let ctx = pcsc::Context::establish(pcsc::Scope::System).unwrap();
    for _ in 0..3 {
        let identity = keyward::detect::identify::probe_reader(&ctx, sim.reader.name).unwrap();
        assert_eq!(identity.serial, Some(3001));
    }
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        fs::read(state.path().join("state.json")).unwrap(),
        before,
        "a probe changed the simulator's stored state"
    );
    let info = common::ykman(&sim, &["piv", "info"]);
    let info = info.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(info.contains("PIN tries remaining: 3/3"), "{info}");
}

#[test]
#[ignore = "needs the test rig: pcscd + vpcd (scripts/test runs it)"]
fn devices_cli_lists_the_simulator_as_json() {
    common::require_rig();
    let _rig = RIG.lock().unwrap_or_else(|e| e.into_inner());
    let sim = common::start_sim_on(free_reader(), &["--serial", "4001"]);
    let empty = common::tempdir();
    let out = common::run_ok(
        common::keyward()
            .args(["--json", "devices", "--sysfs"])
            .arg(empty.path())
            .arg("--dev-root")
            .arg(empty.path()),
    );
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    let devs = doc["devices"].as_array().unwrap();
    let ours = devs
        .iter()
        .find(|d| d["id"] == format!("pcsc:{}", sim.reader.name))
        .expect("our simulator is listed");
    // The fields docs/devices.md promises for every device.
    assert_eq!(ours["kind"], "both");
    assert_eq!(ours["transport"], "pcsc");
    assert_eq!(ours["reader_or_path"], sim.reader.name);
    assert_eq!(ours["serial"], 4001);
    assert_eq!(ours["aaguid"], "6b657977-6172-642d-7369-6d2d6669646f");
    assert_eq!(ours["version"], "5.7.1");
    let iface = &ours["interfaces"][0];
    assert_eq!(iface["identity"]["piv"]["serial"], 4001);
    assert_eq!(iface["location"]["transport"], "pcsc");
    assert_eq!(
        iface["location"]["atr"],
        "3B8F8001804F0CA0000003060300030000000068"
    );
}

#[test]
#[ignore = "needs the test rig: pcscd + vpcd (scripts/test runs it)"]
fn devices_watch_prints_one_json_event_per_line() {
    common::require_rig();
    let _rig = RIG.lock().unwrap_or_else(|e| e.into_inner());
    use std::io::BufRead;
    let empty = common::tempdir();
    let reader = free_reader();
    let mut watch = common::keyward()
        .args(["--json", "devices", "watch", "--sysfs"])
        .arg(empty.path())
        .arg("--dev-root")
        .arg(empty.path())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = watch.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut sim = common::start_sim_on(reader, &["--piv", "--serial", "5001"]);
    let want = format!("pcsc:{}", sim.reader.name);
    let mine = |rx: &Receiver<String>| loop {
        let line = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("a line within 20 s");
        let v: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON: {line:?}: {e}"));
        if v["id"] == want {
            return v;
        }
    };
    let first = mine(&rx);
    assert_eq!(first["event"], "arrived", "{first}");
    let ident = mine(&rx);
    assert_eq!(ident["event"], "identified", "{ident}");
    assert_eq!(ident["identity"]["serial"], 5001);
    assert!(
        ident["identity"]["fido2"].is_null(),
        "a PIV-only card has no FIDO2"
    );
    sim.stop();
    assert_eq!(mine(&rx)["event"], "removed");
    watch.kill().unwrap();
    watch.wait().unwrap();
}
