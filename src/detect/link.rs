//! One physical key seen through two interfaces.
//!
//! On USB a YubiKey shows a hidraw node (FIDO) and a CCID reader (PIV and
//! Management). The two are one device when they hang off the same USB
//! device in sysfs **and** both report the same serial through the
//! Management application (over CCID, and over CTAPHID with the vendor
//! command ykman uses). A shared USB parent with different or unknown
//! serials links nothing and says so: a workflow must never be pointed at
//! the wrong key.
//!
//! Where a PC/SC reader sits in sysfs is a parameter (`locate`): pcsc-lite's
//! CCID driver tells the USB bus and address of a reader through
//! `SCARD_ATTR_CHANNEL_ID` ([`channel_usb_device`]); virtual readers (vpcd)
//! have none, so tests pass their own mapping.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::{DeviceId, Identity, Location, Present};

/// Which applications a device carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Fido2,
    Piv,
    Both,
    /// Not identified (yet), or neither application answered.
    Unknown,
}

impl Kind {
    fn of(fido2: bool, piv: bool) -> Kind {
        match (fido2, piv) {
            (true, true) => Kind::Both,
            (true, false) => Kind::Fido2,
            (false, true) => Kind::Piv,
            (false, false) => Kind::Unknown,
        }
    }
}

/// One physical device: a single interface, or the linked FIDO and PC/SC
/// interfaces of one USB key (`keyward devices --json`, docs/devices.md).
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Device {
    /// The interface's id, or `usb:<sysfs name>` for linked interfaces.
    pub id: DeviceId,
    pub kind: Kind,
    /// `pcsc`, `hidraw`, or `pcsc+hidraw` for linked interfaces.
    pub transport: String,
    /// The reader name or node path (for linked interfaces, the reader:
    /// PIV and Management are reached there).
    pub reader_or_path: String,
    pub serial: Option<u32>,
    pub aaguid: Option<String>,
    /// Firmware version (`5.7.1`).
    pub version: Option<String>,
    /// The USB device in sysfs, where known.
    pub usb_parent: Option<String>,
    /// Each interface with what its probe found.
    pub interfaces: Vec<Present>,
    /// Why interfaces sharing a USB device were not linked.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// Group interfaces into devices. `locate` maps a reader name to its USB
/// device in sysfs; it is asked only when a FIDO node has a USB parent.
pub fn link(present: Vec<Present>, locate: &dyn Fn(&str) -> Option<PathBuf>) -> Vec<Device> {
    let (hids, cards): (Vec<Present>, Vec<Present>) = present
        .into_iter()
        .partition(|p| matches!(p.location, Location::Hidraw { .. }));
    let hid_parents: Vec<Option<PathBuf>> = hids.iter().map(hid_parent).collect();
    let any_parent = hid_parents.iter().any(Option::is_some);
    let card_parents: Vec<Option<PathBuf>> = cards
        .iter()
        .map(|p| match &p.location {
            Location::Pcsc { reader, .. } if any_parent => locate(reader).map(canonical),
            _ => None,
        })
        .collect();

    let mut hid_taken = vec![false; hids.len()];
    let mut hid_notes: Vec<Vec<String>> = vec![Vec::new(); hids.len()];
    let mut out = Vec::new();
    for (card, parent) in cards.into_iter().zip(card_parents) {
        let partner = parent.as_ref().and_then(|p| {
            (0..hids.len()).find(|&i| !hid_taken[i] && hid_parents[i].as_ref() == Some(p))
        });
        let Some(i) = partner else {
            out.push(single(card, parent, Vec::new()));
            continue;
        };
        let (a, b) = (serial(&card), serial(&hids[i]));
        if (a.is_some() && a == b) || other_vendor_agrees(&card, &hids[i]) {
            hid_taken[i] = true;
            out.push(linked(card, hids[i].clone(), parent));
        } else {
            let usb = parent.as_deref().map(Path::display);
            let (fa, fb) = (aaguid(&card), aaguid(&hids[i]));
            let aaguids_differ = a.is_none() && b.is_none() && fa.is_some() && fb.is_some();
            let show_aaguid =
                |s: &Option<String>| format!("AAGUID {}", s.as_deref().unwrap_or("-"));
            let shown = |s: Option<u32>, f: &Option<String>| {
                if aaguids_differ {
                    show_aaguid(f)
                } else {
                    s.map_or("no serial".to_string(), |s| format!("serial {s}"))
                }
            };
            let note = |other: &DeviceId, mine: String, theirs: String| {
                format!(
                    "shares USB device {} with {other}, but answers {mine} where {other} answers {theirs}: not linked",
                    usb.as_ref().map_or(String::new(), ToString::to_string),
                )
            };
            hid_notes[i].push(note(&card.id, shown(b, &fb), shown(a, &fa)));
            let card_note = note(&hids[i].id, shown(a, &fa), shown(b, &fb));
            out.push(single(card, parent, vec![card_note]));
        }
    }
    for ((hid, taken), (parent, notes)) in hids
        .into_iter()
        .zip(hid_taken)
        .zip(hid_parents.into_iter().zip(hid_notes))
    {
        if !taken {
            out.push(single(hid, parent, notes));
        }
    }
    out.sort_by(|a, b| a.id.cmp(&b.id));
    out
}

/// A key of another vendor than Yubico has no Management application, so
/// neither side can report a serial; its two interfaces are one key when
/// they are interfaces of the same USB device (the caller checked) and
/// nothing they report disagrees: neither side answers with a serial (a
/// serial on the card means a YubiKey's Management answered there, so the
/// card is not this key), and where both answer getInfo, the AAGUIDs are
/// equal. A Yubico key must still confirm with equal serials.
fn other_vendor_agrees(card: &Present, hid: &Present) -> bool {
    let vendor = match &hid.location {
        Location::Hidraw { vendor_id, .. } => *vendor_id,
        Location::Pcsc { .. } => return false,
    };
    if vendor.is_none() || vendor == Some(super::identify_hid::YUBICO_VID) {
        return false;
    }
    if serial(card).is_some() || serial(hid).is_some() {
        return false;
    }
    match (aaguid(card), aaguid(hid)) {
        (Some(x), Some(y)) => x.eq_ignore_ascii_case(&y),
        _ => true,
    }
}

fn aaguid(p: &Present) -> Option<String> {
    p.identity
        .as_ref()
        .and_then(|i| i.fido2.as_ref())
        .and_then(|f| f.aaguid.clone())
}

fn canonical(p: PathBuf) -> PathBuf {
    std::fs::canonicalize(&p).unwrap_or(p)
}

fn hid_parent(p: &Present) -> Option<PathBuf> {
    match &p.location {
        Location::Hidraw {
            usb_parent: Some(u),
            ..
        } => Some(canonical(PathBuf::from(u))),
        _ => None,
    }
}

fn serial(p: &Present) -> Option<u32> {
    p.identity.as_ref().and_then(|i| i.serial)
}

fn transport_and_place(p: &Present) -> (&'static str, String) {
    match &p.location {
        Location::Pcsc { reader, .. } => ("pcsc", reader.clone()),
        Location::Hidraw { path, .. } => ("hidraw", path.clone()),
    }
}

fn version(i: &Identity) -> Option<String> {
    i.firmware
        .clone()
        .or_else(|| i.piv.as_ref().and_then(|p| p.version.clone()))
}

fn single(p: Present, parent: Option<PathBuf>, notes: Vec<String>) -> Device {
    let (transport, reader_or_path) = transport_and_place(&p);
    let i = p.identity.clone().unwrap_or_default();
    Device {
        id: p.id.clone(),
        kind: if p.identity.is_some() {
            Kind::of(i.fido2.is_some(), i.piv.is_some())
        } else {
            Kind::Unknown
        },
        transport: transport.to_string(),
        reader_or_path,
        serial: i.serial,
        aaguid: i.fido2.as_ref().and_then(|f| f.aaguid.clone()),
        version: version(&i),
        usb_parent: parent.map(|p| p.to_string_lossy().into_owned()),
        interfaces: vec![p],
        notes,
    }
}

fn linked(card: Present, hid: Present, parent: Option<PathBuf>) -> Device {
    let (_, reader) = transport_and_place(&card);
    let (ci, hi) = (
        card.identity.clone().unwrap_or_default(),
        hid.identity.clone().unwrap_or_default(),
    );
    let fido = hi.fido2.as_ref().or(ci.fido2.as_ref());
    let name = parent
        .as_ref()
        .and_then(|p| p.file_name())
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    Device {
        id: DeviceId(format!("usb:{name}")),
        kind: Kind::of(fido.is_some(), ci.piv.is_some() || hi.piv.is_some()),
        transport: "pcsc+hidraw".into(),
        reader_or_path: reader,
        serial: ci.serial,
        aaguid: fido.and_then(|f| f.aaguid.clone()),
        version: version(&ci).or_else(|| version(&hi)),
        usb_parent: parent.map(|p| p.to_string_lossy().into_owned()),
        interfaces: vec![card, hid],
        notes: Vec::new(),
    }
}

/// Everything present now, grouped into devices: [`super::enumerate`] then
/// [`link`], with readers located through pcscd ([`pcsc_reader_usb`])
/// except those named in `readers` (reader name, sysfs USB device).
pub fn devices(hid: &super::hid::HidMonitor, readers: &[(String, PathBuf)]) -> Vec<Device> {
    let locate = |reader: &str| {
        readers
            .iter()
            .find(|(r, _)| r == reader)
            .map(|(_, d)| d.clone())
            .or_else(|| pcsc_reader_usb(&hid.sysfs, reader))
    };
    link(super::enumerate(hid), &locate)
}

/// The USB device (bus, address) in a reader's `SCARD_ATTR_CHANNEL_ID`:
/// `0xDDDDCCCC` with channel type `DDDD` = 0x0020 for USB and `CCCC` = bus
/// number << 8 | device address, as pcsc-lite's CCID driver fills it (PC/SC
/// part 3, channel types). Any other channel type is not USB.
pub fn channel_usb_device(attr: &[u8]) -> Option<(u8, u8)> {
    let v = u32::from_ne_bytes(attr.get(..4)?.try_into().ok()?);
    (v >> 16 == 0x0020).then_some((((v >> 8) & 0xFF) as u8, (v & 0xFF) as u8))
}

/// The USB device with this bus number and address under
/// `<sysfs>/bus/usb/devices` (canonical path).
pub fn usb_device_at(sysfs: &Path, bus: u8, address: u8) -> Option<PathBuf> {
    let read = |p: PathBuf| -> Option<u8> { std::fs::read_to_string(p).ok()?.trim().parse().ok() };
    std::fs::read_dir(sysfs.join("bus/usb/devices"))
        .ok()?
        .flatten()
        .map(|e| e.path())
        .find(|d| read(d.join("busnum")) == Some(bus) && read(d.join("devnum")) == Some(address))
        .map(canonical)
}

/// Where the reader `reader` sits in sysfs, asked of pcscd: the USB device
/// its driver reports through `SCARD_ATTR_CHANNEL_ID`. `None` for readers
/// that are not USB (virtual, serial, or a driver that does not tell).
pub fn pcsc_reader_usb(sysfs: &Path, reader: &str) -> Option<PathBuf> {
    let ctx = pcsc::Context::establish(pcsc::Scope::System).ok()?;
    let name = std::ffi::CString::new(reader).ok()?;
    let card = ctx
        .connect(&name, pcsc::ShareMode::Shared, pcsc::Protocols::ANY)
        .ok()?;
    let attr = card.get_attribute_owned(pcsc::Attribute::ChannelId).ok()?;
    let _ = card.disconnect(pcsc::Disposition::LeaveCard);
    let (bus, address) = channel_usb_device(&attr)?;
    usb_device_at(sysfs, bus, address)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::{FidoIdentity, PivIdentity};

    #[test]
    fn channel_id_decodes_usb_only() {
        let usb = (0x0020_0000u32 | (3 << 8) | 17).to_ne_bytes();
        assert_eq!(channel_usb_device(&usb), Some((3, 17)));
        let serial = (0x0001_0000u32 | 2).to_ne_bytes();
        assert_eq!(channel_usb_device(&serial), None);
        assert_eq!(channel_usb_device(&[0x20]), None);
    }

    #[test]
    fn usb_device_is_found_by_bus_and_address() {
        let root = tempfile::tempdir().unwrap();
        let devs = root.path().join("bus/usb/devices");
        std::fs::create_dir_all(&devs).unwrap();
        for (name, bus, dev) in [("usb1", "1", "1"), ("1-2", "1", "5"), ("2-1", "2", "5")] {
            let d = root.path().join("devices").join(name);
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("busnum"), format!("{bus}\n")).unwrap();
            std::fs::write(d.join("devnum"), format!("{dev}\n")).unwrap();
            std::os::unix::fs::symlink(&d, devs.join(name)).unwrap();
        }
        let found = usb_device_at(root.path(), 1, 5).unwrap();
        assert!(found.ends_with("devices/1-2"), "{}", found.display());
        assert!(usb_device_at(root.path(), 3, 1).is_none());
        assert!(usb_device_at(&root.path().join("nowhere"), 1, 5).is_none());
    }

    fn card(reader: &str, serial: u32) -> Present {
        Present {
            id: DeviceId(format!("pcsc:{reader}")),
            location: Location::Pcsc {
                reader: reader.into(),
                atr: String::new(),
            },
            identity: Some(Identity {
                serial: Some(serial),
                firmware: Some("5.7.1".into()),
                piv: Some(PivIdentity {
                    version: Some("5.7.1".into()),
                    serial: Some(serial),
                }),
                ..Identity::default()
            }),
            error: None,
        }
    }

    fn hid(node: &str, parent: &str, serial: Option<u32>) -> Present {
        hid_of(0x1050, node, parent, serial, "aaguid")
    }

    fn hid_of(vendor: u16, node: &str, parent: &str, serial: Option<u32>, aaguid: &str) -> Present {
        Present {
            id: DeviceId(format!("hidraw:{node}")),
            location: Location::Hidraw {
                path: format!("/dev/{node}"),
                vendor_id: Some(vendor),
                product_id: Some(0x0407),
                name: None,
                usb_parent: Some(parent.into()),
            },
            identity: Some(Identity {
                serial,
                fido2: Some(FidoIdentity {
                    aaguid: Some(aaguid.into()),
                    ..FidoIdentity::default()
                }),
                ..Identity::default()
            }),
            error: None,
        }
    }

    /// The CCID side of another vendor's key: no Management serial; a FIDO
    /// applet over CCID when `aaguid` is given.
    fn other_card(reader: &str, aaguid: Option<&str>) -> Present {
        Present {
            id: DeviceId(format!("pcsc:{reader}")),
            location: Location::Pcsc {
                reader: reader.into(),
                atr: String::new(),
            },
            identity: Some(Identity {
                piv: Some(PivIdentity::default()),
                fido2: aaguid.map(|a| FidoIdentity {
                    aaguid: Some(a.into()),
                    ..FidoIdentity::default()
                }),
                ..Identity::default()
            }),
            error: None,
        }
    }

    #[test]
    fn another_vendors_key_links_on_its_usb_device_unless_something_disagrees() {
        let at = |r: &str| match r {
            "A" | "B" => Some(PathBuf::from("/nonexistent/usb1/1-2")),
            _ => Some(PathBuf::from("/nonexistent/usb1/1-3")),
        };
        let feitian = 0x096e;
        let node = |aaguid: &str| hid_of(feitian, "hidraw1", "/nonexistent/usb1/1-2", None, aaguid);
        // No serial anywhere, FIDO only on HID: one key.
        let devs = link(vec![other_card("A", None), node("aa11")], &at);
        assert_eq!(devs.len(), 1, "{devs:?}");
        assert_eq!(
            (devs[0].kind, devs[0].id.0.as_str()),
            (Kind::Both, "usb:1-2")
        );
        assert_eq!(devs[0].aaguid.as_deref(), Some("aa11"));
        // FIDO over CCID too, same AAGUID (case aside): one key.
        let devs = link(vec![other_card("A", Some("AA11")), node("aa11")], &at);
        assert_eq!(devs.len(), 1);
        // Different AAGUIDs: two authenticators, not linked.
        let devs = link(vec![other_card("A", Some("bb22")), node("aa11")], &at);
        assert_eq!(devs.len(), 2);
        assert!(devs.iter().all(|d| d.notes.len() == 1), "{devs:?}");
        assert!(
            devs[0].notes[0].contains("AAGUID bb22"),
            "{:?}",
            devs[0].notes
        );
        // A card answering with a YubiKey serial behind another vendor's
        // HID node (a YubiKey on a reader that has a FIDO interface): no.
        let devs = link(vec![card("B", 7), node("aa11")], &at);
        assert_eq!(devs.len(), 2);
        // Another USB device: nothing links, nothing to say.
        let devs = link(vec![other_card("C", None), node("aa11")], &at);
        assert_eq!(devs.len(), 2);
        assert!(devs.iter().all(|d| d.notes.is_empty()));
        // A Yubico node without a serial still does not link (it could
        // have confirmed one and did not).
        let yk = hid_of(0x1050, "hidraw2", "/nonexistent/usb1/1-2", None, "aa11");
        assert_eq!(link(vec![other_card("A", None), yk], &at).len(), 2);
    }

    #[test]
    fn same_parent_and_serial_link_anything_else_does_not() {
        let at = |r: &str| match r {
            "A" | "B" => Some(PathBuf::from("/nonexistent/usb1/1-2")),
            "C" => Some(PathBuf::from("/nonexistent/usb1/1-3")),
            _ => None,
        };
        let devs = link(
            vec![
                card("A", 7),
                hid("hidraw0", "/nonexistent/usb1/1-2", Some(7)),
            ],
            &at,
        );
        assert_eq!(devs.len(), 1);
        let d = &devs[0];
        assert_eq!(
            (d.id.0.as_str(), d.kind, d.transport.as_str(), d.serial),
            ("usb:1-2", Kind::Both, "pcsc+hidraw", Some(7))
        );
        assert_eq!(d.aaguid.as_deref(), Some("aaguid"));
        assert_eq!(d.interfaces.len(), 2);

        let devs = link(
            vec![
                card("B", 7),
                hid("hidraw0", "/nonexistent/usb1/1-2", Some(8)),
            ],
            &at,
        );
        assert_eq!(devs.len(), 2);
        assert!(devs.iter().all(|d| d.notes.len() == 1));
        assert!(devs[0].notes[0].contains("serial 8"), "{:?}", devs[0].notes);
        assert_eq!((devs[0].kind, devs[1].kind), (Kind::Fido2, Kind::Piv));

        // Unknown serial on the FIDO side: not confirmed, not linked.
        let devs = link(
            vec![card("A", 7), hid("hidraw0", "/nonexistent/usb1/1-2", None)],
            &at,
        );
        assert_eq!(devs.len(), 2);
        assert!(
            devs[0].notes[0].contains("no serial"),
            "{:?}",
            devs[0].notes
        );
        // Another USB device, or a reader with no USB parent: nothing to say.
        let devs = link(
            vec![
                card("C", 7),
                card("D", 7),
                hid("hidraw0", "/nonexistent/usb1/1-2", Some(7)),
            ],
            &at,
        );
        assert_eq!(devs.len(), 3);
        assert!(devs.iter().all(|d| d.notes.is_empty()));
    }
}
