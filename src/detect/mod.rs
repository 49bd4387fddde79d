//! Device detection: which security keys are present, what they are, and
//! when they leave — as a stream of [`DeviceEvent`]s.
//!
//! Two monitors feed one channel: [`pcsc::PcscMonitor`] (readers and cards
//! through pcscd's status-change API, surviving pcscd restarts) and
//! [`hid::HidMonitor`] (hidraw nodes whose report descriptor carries the FIDO
//! usage page 0xF1D0, from sysfs, with udev hotplug or a periodic rescan).
//! Each arrival is identified by a read-only probe ([`identify`] over PC/SC,
//! [`identify_hid`] over CTAPHID); a probe never changes a device.
//! [`link`] groups the interfaces of one USB key (its hidraw node and its
//! CCID reader) into one device for `keyward devices`.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::Serialize;

pub mod hid;
pub mod identify;
pub mod identify_hid;
pub mod link;
pub mod pcsc;
pub use crate::transport::report_descriptor;

/// A device as the host sees it, stable while it stays plugged in:
/// `pcsc:<reader name>` or `hidraw:<node name>`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct DeviceId(pub String);

impl fmt::Display for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// How the host reaches the device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(tag = "transport", rename_all = "lowercase")]
pub enum Location {
    /// A card in a PC/SC reader (USB CCID or NFC).
    Pcsc { reader: String, atr: String },
    /// A FIDO HID interface.
    Hidraw {
        path: String,
        vendor_id: Option<u16>,
        product_id: Option<u16>,
        name: Option<String>,
        usb_parent: Option<String>,
    },
}

/// What a read-only probe learned.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Identity {
    /// The manufacturer serial, when the device tells it (links the FIDO and
    /// PIV views of one YubiKey).
    pub serial: Option<u32>,
    pub firmware: Option<String>,
    pub form_factor: Option<u8>,
    /// FIDO2: present, with what getInfo said.
    pub fido2: Option<FidoIdentity>,
    /// PIV: present, with its version.
    pub piv: Option<PivIdentity>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct FidoIdentity {
    pub aaguid: Option<String>,
    pub versions: Vec<String>,
    pub firmware_version: Option<u64>,
    pub options: std::collections::BTreeMap<String, bool>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct PivIdentity {
    pub version: Option<String>,
    pub serial: Option<u32>,
}

/// One thing that happened to a device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "lowercase")]
pub enum DeviceEvent {
    Arrived {
        id: DeviceId,
        location: Location,
    },
    Identified {
        id: DeviceId,
        identity: Identity,
    },
    Removed {
        id: DeviceId,
    },
    /// Something went wrong for a device (or, without an id, for a monitor).
    Error {
        id: Option<DeviceId>,
        message: String,
    },
}

impl DeviceEvent {
    pub fn id(&self) -> Option<&DeviceId> {
        match self {
            DeviceEvent::Arrived { id, .. }
            | DeviceEvent::Identified { id, .. }
            | DeviceEvent::Removed { id } => Some(id),
            DeviceEvent::Error { id, .. } => id.as_ref(),
        }
    }
}

/// An error and its sources as one line, for an event message.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// Where monitors send their events.
pub type EventSink = std::sync::mpsc::Sender<DeviceEvent>;

/// A flag that stops a monitor; monitors also get a way to wake a blocking
/// wait (see [`pcsc::PcscMonitor::stopper`]).
#[derive(Clone, Default)]
pub struct StopFlag(Arc<AtomicBool>);

impl StopFlag {
    pub fn stop(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
    pub fn stopped(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// Both monitors running in their own threads.
pub struct Detector {
    pcsc: pcsc::PcscStopper,
    hid: StopFlag,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Detector {
    /// Start the PC/SC monitor and the HID monitor (with its roots); events
    /// go to the returned receiver.
    pub fn start(
        hid: hid::HidMonitor,
        debounce: std::time::Duration,
    ) -> (Detector, std::sync::mpsc::Receiver<DeviceEvent>) {
        let (tx, rx) = std::sync::mpsc::channel();
        let pcsc = pcsc::PcscMonitor::new(debounce, true);
        let stoppers = (pcsc.stopper(), hid.stopper());
        let tx2 = tx.clone();
        let threads = vec![
            std::thread::spawn(move || pcsc.run(&tx)),
            std::thread::spawn(move || hid.run(&tx2)),
        ];
        (
            Detector {
                pcsc: stoppers.0,
                hid: stoppers.1,
                threads,
            },
            rx,
        )
    }

    /// Stop both monitors and wait for them.
    pub fn stop(mut self) {
        self.pcsc.stop();
        self.hid.stop();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// A device present now, with what identification found.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Present {
    pub id: DeviceId,
    pub location: Location,
    pub identity: Option<Identity>,
    pub error: Option<String>,
}

/// Everything present now: each card in a PC/SC reader (identified) and each
/// FIDO hidraw node. Does not wait for hotplug.
pub fn enumerate(hid: &hid::HidMonitor) -> Vec<Present> {
    let mut out = Vec::new();
    if let Ok(ctx) = ::pcsc::Context::establish(::pcsc::Scope::System) {
        let readers = ctx.list_readers_owned().unwrap_or_default();
        let mut states: Vec<::pcsc::ReaderState> = readers
            .into_iter()
            .map(|r| ::pcsc::ReaderState::new(r, ::pcsc::State::UNAWARE))
            .collect();
        if !states.is_empty()
            && ctx
                .get_status_change(std::time::Duration::from_millis(500), &mut states)
                .is_ok()
        {
            for rs in states
                .iter()
                .filter(|s| s.event_state().contains(::pcsc::State::PRESENT))
            {
                let reader = rs.name().to_string_lossy().into_owned();
                let (identity, error) = match identify::probe_reader_settled(&ctx, &reader) {
                    Ok(i) => (Some(i), None),
                    Err(e) => (None, Some(error_chain(&e))),
                };
                let location = Location::Pcsc {
                    reader: reader.clone(),
                    atr: hex::encode_upper(rs.atr()),
                };
                out.push(Present {
                    id: pcsc::device_id(&reader),
                    location,
                    identity,
                    error,
                });
            }
        }
    }
    for (name, node) in hid.scan() {
        match node {
            hid::Node::Fido(info) => {
                let (identity, error) = if hid.identify {
                    match identify_hid::probe_hid(&info.path, info.vendor_id, hid::PROBE_TIMEOUT) {
                        Ok(i) => (Some(i), None),
                        Err(e) => (None, Some(error_chain(&e))),
                    }
                } else {
                    (None, None)
                };
                out.push(Present {
                    id: hid::device_id(&name),
                    location: hid::location(&info),
                    identity,
                    error,
                })
            }
            hid::Node::Unreadable(e) => {
                let location = Location::Hidraw {
                    path: hid.dev.join(&name).to_string_lossy().into_owned(),
                    vendor_id: None,
                    product_id: None,
                    name: None,
                    usb_parent: None,
                };
                out.push(Present {
                    id: hid::device_id(&name),
                    location,
                    identity: None,
                    error: Some(e),
                });
            }
            hid::Node::Other => {}
        }
    }
    out
}
