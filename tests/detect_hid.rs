//! HID identification without USB: a pty served by the simulator's CTAPHID
//! engine stands in for `/dev/hidrawN` (the same open/poll/read/write code
//! path a real node takes), in a sysfs fixture the HID monitor scans.

#![cfg(feature = "sim")]

mod common;
mod detect_support;

use std::path::Path;
use std::sync::mpsc::Receiver;
use std::time::Duration;

use detect_support::{FIDO_DESC, HidNode, SIM_AAGUID, add_node, pty, sim_device, snapshot};
use keyward::ctap::client::Ctap2;
use keyward::ctap::pin_protocol::PinProtocol;
use keyward::ctap::secret::Pin;
use keyward::detect::hid::HidMonitor;
use keyward::detect::identify_hid::{HidProbeError, probe_hid};
use keyward::detect::{DeviceEvent, DeviceId, Location};
use keyward::transport::TransportError;

const T: Duration = Duration::from_secs(2);

#[test]
fn hid_probe_reads_aaguid_versions_firmware_and_serial_and_changes_nothing() {
    let dev = sim_device(6001);
    let node = HidNode::serve(&dev);
    // Give the key state worth keeping: a FIDO2 PIN, set over the same node.
    let mut ctap =
        Ctap2::new(keyward::transport::hidraw::open(node.path.to_str().unwrap(), T).unwrap());
    ctap.set_pin(PinProtocol::V2, &Pin::new("246813".to_string().into()))
        .unwrap();
    drop(ctap);
    let before = snapshot(&dev);
    assert!(before.contains("fido"), "the snapshot holds the FIDO state");

    for _ in 0..3 {
        let id = probe_hid(&node.path, Some(0x1050), T).unwrap();
        assert_eq!(id.serial, Some(6001));
        assert_eq!(id.firmware.as_deref(), Some("5.7.1"));
        assert_eq!(id.form_factor, Some(0x01));
        let f = id.fido2.expect("getInfo answered");
        assert_eq!(f.aaguid.as_deref(), Some(SIM_AAGUID));
        assert!(
            f.versions.contains(&"FIDO_2_1".to_string()),
            "{:?}",
            f.versions
        );
        assert_eq!(f.options.get("clientPin"), Some(&true));
        assert_eq!(f.firmware_version, Some(0x050701));
        assert!(id.piv.is_none(), "PIV is not reachable over HID");
    }
    assert_eq!(snapshot(&dev), before, "a probe changed the key's state");
    // And the PIN still has all its tries.
    let mut ctap =
        Ctap2::new(keyward::transport::hidraw::open(node.path.to_str().unwrap(), T).unwrap());
    assert_eq!(ctap.pin_retries().unwrap().retries, 8);
}

#[test]
fn other_vendors_get_no_yubikey_vendor_command() {
    let dev = sim_device(6002);
    let node = HidNode::serve(&dev);
    let id = probe_hid(&node.path, Some(0x20A0), T).unwrap();
    // The serial only comes from the vendor command: it was not sent.
    assert_eq!(id.serial, None);
    assert_eq!(
        id.firmware.as_deref(),
        Some("5.7.1"),
        "CTAPHID INIT version"
    );
    assert_eq!(
        id.fido2.unwrap().aaguid.as_deref(),
        Some(SIM_AAGUID),
        "getInfo still answered"
    );
    let id = probe_hid(&node.path, None, T).unwrap();
    assert_eq!(id.serial, None);
}

#[test]
fn silent_missing_and_non_device_nodes_fail_clearly() {
    // A node nobody answers: INIT times out.
    let silent = pty();
    let t0 = std::time::Instant::now();
    let e = probe_hid(&silent.path, Some(0x1050), Duration::from_millis(300)).unwrap_err();
    assert!(
        t0.elapsed() < Duration::from_secs(2),
        "bounded by the deadline"
    );
    assert!(
        matches!(
            &e,
            HidProbeError::Init {
                source: TransportError::Timeout,
                ..
            }
        ),
        "{e:?}"
    );
    let msg = keyward::detect::error_chain(&e);
    assert!(
        msg.contains(&silent.path.display().to_string()) && msg.contains("re-plug"),
        "{msg}"
    );
    assert!(!e.is_removal());

    let dir = common::tempdir();
    let e = probe_hid(&dir.path().join("hidraw9"), None, T).unwrap_err();
    assert!(matches!(e, HidProbeError::Open { .. }), "{e:?}");
    assert!(keyward::detect::error_chain(&e).contains("hidraw9"), "{e}");
    // A regular file reads as end of file: the device is gone.
    let file = dir.path().join("plain");
    std::fs::write(&file, b"").unwrap();
    let e = probe_hid(&file, None, T).unwrap_err();
    assert!(e.is_removal(), "{e:?}");
}

fn next(rx: &Receiver<DeviceEvent>) -> DeviceEvent {
    rx.recv_timeout(Duration::from_secs(20))
        .expect("an event within 20 s")
}

#[test]
fn hid_monitor_identifies_a_fido_node_when_it_arrives() {
    let root = common::tempdir();
    let r = root.path();
    let dev = sim_device(6003);
    let node = HidNode::serve(&dev);
    let silent = pty();
    std::fs::create_dir_all(r.join("sys/class/hidraw")).unwrap();
    let mon = HidMonitor::new(r.join("sys"), r.join("dev"), Duration::from_millis(20));
    let stop = mon.stopper();
    let (tx, rx) = std::sync::mpsc::channel();
    let t = std::thread::spawn(move || mon.run(&tx));

    add_node(r, "hidraw0", "1-4", &FIDO_DESC, Some(&node.path));
    match next(&rx) {
        DeviceEvent::Arrived {
            id,
            location: Location::Hidraw {
                path, usb_parent, ..
            },
        } => {
            assert_eq!(id, DeviceId("hidraw:hidraw0".into()));
            assert!(path.ends_with("dev/hidraw0"));
            assert!(usb_parent.unwrap().ends_with("usb1/1-4"));
        }
        other => panic!("expected hidraw0 to arrive, got {other:?}"),
    }
    match next(&rx) {
        DeviceEvent::Identified { id, identity } => {
            assert_eq!(id, DeviceId("hidraw:hidraw0".into()));
            assert_eq!(identity.serial, Some(6003));
            assert_eq!(identity.fido2.unwrap().aaguid.as_deref(), Some(SIM_AAGUID));
        }
        other => panic!("expected hidraw0 identified, got {other:?}"),
    }
    // A FIDO node that never answers: arrived, then an error naming it.
    add_node(r, "hidraw1", "1-5", &FIDO_DESC, Some(&silent.path));
    assert!(matches!(next(&rx), DeviceEvent::Arrived { id, .. } if id.0 == "hidraw:hidraw1"));
    match next(&rx) {
        DeviceEvent::Error {
            id: Some(id),
            message,
        } => {
            assert_eq!(id.0, "hidraw:hidraw1");
            assert!(message.contains("CTAPHID INIT"), "{message}");
        }
        other => panic!("expected an error for hidraw1, got {other:?}"),
    }
    std::fs::remove_dir_all(r.join("sys/class/hidraw/hidraw0")).unwrap();
    assert_eq!(
        next(&rx),
        DeviceEvent::Removed {
            id: DeviceId("hidraw:hidraw0".into())
        }
    );
    stop.stop();
    t.join().unwrap();
    drop(node);
}

#[test]
fn devices_cli_lists_an_identified_hid_key() {
    let root = common::tempdir();
    let r = root.path();
    let dev = sim_device(6004);
    let node = HidNode::serve(&dev);
    add_node(r, "hidraw0", "1-6", &FIDO_DESC, Some(&node.path));
    let out = common::run_ok(
        common::keyward()
            .args(["--json", "devices", "--sysfs"])
            .arg(r.join("sys"))
            .arg("--dev-root")
            .arg(r.join("dev")),
    );
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(doc["version"], 2);
    assert_eq!(doc["ok"], true);
    let d = doc["devices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["id"] == "hidraw:hidraw0")
        .expect("the HID key is listed");
    assert_eq!(d["kind"], "fido2");
    assert_eq!(d["transport"], "hidraw");
    assert!(Path::new(d["reader_or_path"].as_str().unwrap()).ends_with("dev/hidraw0"));
    assert_eq!(d["serial"], 6004);
    assert_eq!(d["aaguid"], SIM_AAGUID);
    assert_eq!(d["version"], "5.7.1");
    assert!(
        d["interfaces"][0]["identity"]["fido2"]["versions"]
            .as_array()
            .is_some_and(|v| v.iter().any(|v| v == "FIDO_2_1")),
        "{d}"
    );
}
