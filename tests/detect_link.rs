//! One YubiKey, two interfaces: a FIDO hidraw node (a pty served by an
//! in-process simulator) and a PC/SC reader (a `keyward sim --vpcd` card),
//! under one USB device of a sysfs fixture. They are linked when their
//! Management serials agree, and only then.

#![cfg(feature = "sim")]

mod common;
mod detect_support;

use std::path::PathBuf;
use std::time::Duration;

use detect_support::{FIDO_DESC, HidNode, SIM_AAGUID, add_node, add_node_of, sim_device};
use keyward::detect::hid::HidMonitor;
use keyward::detect::link::{Device, Kind, link};
use keyward::detect::{DeviceId, enumerate};

/// The fixture: a HID node served by a simulator with `hid_serial` under
/// USB device `1-7`; returns the tempdir, the node and the USB device path.
fn fixture(hid_serial: u32) -> (tempfile::TempDir, HidNode, PathBuf) {
    let root = common::tempdir();
    let dev = sim_device(hid_serial);
    let node = HidNode::serve(&dev);
    add_node(root.path(), "hidraw0", "1-7", &FIDO_DESC, Some(&node.path));
    let usb = root.path().join("sys/devices/usb1/1-7");
    (root, node, usb)
}

fn ours<'a>(devs: &'a [Device], reader: &str) -> Vec<&'a Device> {
    devs.iter()
        .filter(|d| {
            d.interfaces
                .iter()
                .any(|p| p.id == DeviceId(format!("pcsc:{reader}")) || p.id.0 == "hidraw:hidraw0")
        })
        .collect()
}

#[test]
#[ignore = "needs the test rig: pcscd + vpcd (scripts/test runs it)"]
fn same_usb_device_and_serial_make_one_device_of_kind_both() {
    common::require_rig();
    let sim = common::start_sim_on(detect_support::empty_reader(), &["--serial", "7001"]);
    let (root, _node, usb) = fixture(7001);
    let hid = HidMonitor::new(
        root.path().join("sys"),
        root.path().join("dev"),
        Duration::from_secs(1),
    );
    let reader = sim.reader.name;
    let locate = |r: &str| (r == reader).then(|| usb.clone());
    let devs = link(enumerate(&hid), &locate);
    let mine = ours(&devs, reader);
    assert_eq!(mine.len(), 1, "{mine:#?}");
    let d = mine[0];
    assert_eq!(d.id, DeviceId("usb:1-7".into()));
    assert_eq!(d.kind, Kind::Both);
    assert_eq!(d.transport, "pcsc+hidraw");
    assert_eq!(d.reader_or_path, reader);
    assert_eq!(d.serial, Some(7001));
    assert_eq!(d.aaguid.as_deref(), Some(SIM_AAGUID));
    assert_eq!(d.version.as_deref(), Some("5.7.1"));
    assert!(d.notes.is_empty(), "{:?}", d.notes);
    let ids: Vec<&str> = d.interfaces.iter().map(|p| p.id.0.as_str()).collect();
    assert_eq!(ids, [format!("pcsc:{reader}").as_str(), "hidraw:hidraw0"]);

    // The CLI shows the same: one device with both interfaces.
    let out = common::run_ok(
        common::keyward()
            .args(["--json", "devices", "--sysfs"])
            .arg(root.path().join("sys"))
            .arg("--dev-root")
            .arg(root.path().join("dev"))
            .arg("--reader-usb")
            .arg(format!("{reader}={}", usb.display())),
    );
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    let d = doc["devices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["id"] == "usb:1-7")
        .unwrap_or_else(|| panic!("no linked device in {doc:#}"));
    assert_eq!(d["kind"], "both");
    assert_eq!(d["serial"], 7001);
    assert_eq!(d["interfaces"].as_array().unwrap().len(), 2);
    assert_eq!(d["interfaces"][0]["location"]["transport"], "pcsc");
    assert_eq!(d["interfaces"][1]["location"]["transport"], "hidraw");
    // And in text: one headline, then each interface.
    let text = common::run_ok(
        common::keyward()
            .args(["devices", "--sysfs"])
            .arg(root.path().join("sys"))
            .arg("--dev-root")
            .arg(root.path().join("dev"))
            .arg("--reader-usb")
            .arg(format!("{reader}={}", usb.display())),
    );
    let head = text
        .lines()
        .position(|l| l.starts_with("usb:1-7"))
        .unwrap_or_else(|| panic!("no linked device in {text}"));
    let lines: Vec<&str> = text.lines().skip(head).take(3).collect();
    assert!(
        lines[0].contains("FIDO2+PIV") && lines[0].contains("serial 7001"),
        "{lines:?}"
    );
    assert!(lines[1].trim_start().starts_with(&format!("pcsc:{reader}")));
    assert!(lines[2].trim_start().starts_with("hidraw:hidraw0"));
    assert!(
        !doc["devices"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["id"] == format!("pcsc:{reader}") || x["id"] == "hidraw:hidraw0"),
        "a linked interface is not listed again on its own"
    );
}

#[test]
#[ignore = "needs the test rig: pcscd + vpcd (scripts/test runs it)"]
fn same_usb_device_with_another_serial_is_not_linked_and_says_why() {
    common::require_rig();
    let sim = common::start_sim_on(detect_support::empty_reader(), &["--serial", "7002"]);
    let (root, _node, usb) = fixture(7003);
    let hid = HidMonitor::new(
        root.path().join("sys"),
        root.path().join("dev"),
        Duration::from_secs(1),
    );
    let reader = sim.reader.name;
    let locate = |r: &str| (r == reader).then(|| usb.clone());
    let devs = link(enumerate(&hid), &locate);
    let mine = ours(&devs, reader);
    assert_eq!(mine.len(), 2, "{mine:#?}");
    let card = mine
        .iter()
        .find(|d| d.transport == "pcsc")
        .expect("the card stands alone");
    let node = mine
        .iter()
        .find(|d| d.transport == "hidraw")
        .expect("the node stands alone");
    assert_eq!((card.kind, card.serial), (Kind::Both, Some(7002)));
    assert_eq!((node.kind, node.serial), (Kind::Fido2, Some(7003)));
    for (d, mine, theirs) in [(card, "7002", "7003"), (node, "7003", "7002")] {
        assert_eq!(d.notes.len(), 1, "{:?}", d.notes);
        let n = &d.notes[0];
        assert!(
            n.contains("not linked")
                && n.contains(&format!("serial {mine}"))
                && n.contains(&format!("serial {theirs}"))
                && n.contains("1-7"),
            "{n}"
        );
    }

    // Without the reader mapping nothing is linked and nothing is said.
    let devs = link(enumerate(&hid), &|_| None);
    assert!(ours(&devs, reader).iter().all(|d| d.notes.is_empty()));
}

/// Another vendor's key (here Feitian's USB vendor id 0x096E): no
/// Management applet on the CCID side (`--quirks no-management`), so no
/// serial on either side. One USB device and equal AAGUIDs link the two;
/// the same card with another AAGUID does not, and the notes name both.
#[test]
#[ignore = "needs the test rig: pcscd + vpcd (scripts/test runs it)"]
fn another_vendors_key_links_by_usb_device_and_aaguid() {
    common::require_rig();
    let root = common::tempdir();
    let dev = sim_device(7101);
    let node = HidNode::serve(&dev);
    let other = (0x096E, 0x0858, "FT ePass FIDO");
    add_node_of(
        root.path(),
        "hidraw0",
        "1-7",
        &FIDO_DESC,
        Some(&node.path),
        other,
    );
    let usb = root.path().join("sys/devices/usb1/1-7");
    let hid = HidMonitor::new(
        root.path().join("sys"),
        root.path().join("dev"),
        Duration::from_secs(1),
    );
    let no_mgmt = ["--fido2", "--quirks", "no-management", "--serial", "7101"];
    let sim = common::start_sim_on(detect_support::empty_reader(), &no_mgmt);
    let reader = sim.reader.name;
    let locate = |r: &str| (r == reader).then(|| usb.clone());
    let devs = link(enumerate(&hid), &locate);
    let mine = ours(&devs, reader);
    assert_eq!(mine.len(), 1, "{mine:#?}");
    let d = mine[0];
    assert_eq!(
        (d.id.0.as_str(), d.kind, d.serial, d.aaguid.as_deref()),
        ("usb:1-7", Kind::Fido2, None, Some(SIM_AAGUID))
    );
    assert!(d.notes.is_empty(), "{:?}", d.notes);
    drop(sim);

    // The same, but the card is another authenticator model.
    let other_model = "00000000000000000000000000000bad";
    let mut args = no_mgmt.to_vec();
    args.extend(["--aaguid", other_model]);
    let sim = common::start_sim_on(detect_support::empty_reader(), &args);
    let reader = sim.reader.name;
    let locate = |r: &str| (r == reader).then(|| usb.clone());
    let devs = link(enumerate(&hid), &locate);
    let mine = ours(&devs, reader);
    assert_eq!(mine.len(), 2, "{mine:#?}");
    for d in &mine {
        assert_eq!(d.notes.len(), 1, "{:?}", d.notes);
        let n = &d.notes[0];
        assert!(
            n.contains("not linked") && n.contains(SIM_AAGUID) && n.contains("0bad"),
            "{n}"
        );
    }
    drop(sim);

    // A YubiKey (Management answers a serial) in a reader of that USB
    // device: the card is not this key.
    let sim = common::start_sim_on(detect_support::empty_reader(), &["--serial", "7102"]);
    let reader = sim.reader.name;
    let locate = |r: &str| (r == reader).then(|| usb.clone());
    assert_eq!(ours(&link(enumerate(&hid), &locate), reader).len(), 2);
}
