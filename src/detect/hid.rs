//! HID monitor: FIDO authenticators among the hidraw nodes.
//!
//! Which nodes are FIDO comes from [`crate::transport::hidraw::scan`] (the
//! report descriptor in sysfs declares usage page 0xF1D0); the sysfs and
//! /dev roots are parameters, so tests point them at a folder they fill and
//! change. Hotplug comes from a udev monitor on the `hidraw` subsystem;
//! where udev is unavailable (containers, tests) a periodic rescan finds the
//! same changes a little later. Each FIDO node that arrives is identified
//! over CTAPHID ([`super::identify_hid`]), read-only.

use std::collections::BTreeMap;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::identify_hid::probe_hid;
use super::{DeviceEvent, DeviceId, EventSink, Location, StopFlag, error_chain};
use crate::transport::hidraw::{self, NodeInfo};

pub use crate::transport::hidraw::Node;

pub fn device_id(node: &str) -> DeviceId {
    DeviceId(format!("hidraw:{node}"))
}

/// How long each step of an identification probe may take.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Rescan interval with udev: a safety net only, as udev reports changes.
const UDEV_RESCAN: Duration = Duration::from_secs(5);

/// The HID side of detection.
pub struct HidMonitor {
    pub sysfs: PathBuf,
    pub dev: PathBuf,
    /// Rescan interval when udev is unavailable.
    pub interval: Duration,
    /// Identify each FIDO node that arrives (CTAPHID INIT + getInfo).
    pub identify: bool,
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
            identify: true,
            stop: StopFlag::default(),
        }
    }

    /// Report arrivals without probing the devices.
    pub fn without_identification(mut self) -> HidMonitor {
        self.identify = false;
        self
    }

    pub fn stopper(&self) -> StopFlag {
        self.stop.clone()
    }

    /// Examine every hidraw node now.
    pub fn scan(&self) -> BTreeMap<String, Node> {
        hidraw::scan(&self.sysfs, &self.dev)
    }

    /// Run until stopped: report the nodes present, then every change.
    pub fn run(&self, sink: &EventSink) {
        let mut known: BTreeMap<String, Node> = BTreeMap::new();
        let udev = self.udev_monitor();
        if udev.is_none() {
            tracing::info!(
                "udev monitor unavailable; rescanning hidraw every {:?}",
                self.interval
            );
        }
        let mut last_scan: Option<Instant> = None;
        while !self.stop.stopped() {
            let due = last_scan.is_none_or(|t| t.elapsed() >= UDEV_RESCAN);
            let changed = match &udev {
                // Wake now and then to look at the stop flag.
                Some(socket) if !due => {
                    let ready = wait_readable(socket.as_raw_fd(), self.stop_check());
                    // Drain; the rescan works out what changed.
                    ready && socket.iter().count() > 0
                }
                Some(_) => true,
                None => {
                    if last_scan.is_some() {
                        std::thread::sleep(self.interval);
                    }
                    true
                }
            };
            if !changed {
                continue;
            }
            let now = self.scan();
            last_scan = Some(Instant::now());
            if self.diff(&known, &now, sink).is_err() {
                return;
            }
            known = now;
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

    /// A udev monitor on `hidraw`, when it can deliver events: only for the
    /// real sysfs, and only with a udev daemon running (without one, libudev
    /// hands out a monitor that never receives anything, as in containers).
    fn udev_monitor(&self) -> Option<udev::MonitorSocket> {
        if self.sysfs != std::path::Path::new("/sys")
            || !std::path::Path::new("/run/udev/control").exists()
        {
            return None;
        }
        udev::MonitorBuilder::new()
            .and_then(|b| b.match_subsystem("hidraw"))
            .and_then(|b| b.listen())
            .ok()
    }

    /// How often a udev wait wakes to look at the stop flag.
    fn stop_check(&self) -> Duration {
        self.interval.max(Duration::from_millis(250))
    }

    /// Send the events that turn `before` into `after`.
    fn diff(
        &self,
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
            let id = device_id(name);
            match node {
                Node::Fido(info) => {
                    sink.send(DeviceEvent::Arrived {
                        id: id.clone(),
                        location: location(info),
                    })
                    .map_err(|_| ())?;
                    if self.identify {
                        self.identify(id, info, sink)?;
                    }
                }
                Node::Unreadable(message) => sink
                    .send(DeviceEvent::Error {
                        id: Some(id),
                        message: message.clone(),
                    })
                    .map_err(|_| ())?,
                Node::Other => {}
            }
        }
        Ok(())
    }

    fn identify(&self, id: DeviceId, info: &NodeInfo, sink: &EventSink) -> Result<(), ()> {
        let ev = match probe_hid(&info.path, info.vendor_id, PROBE_TIMEOUT) {
            Ok(identity) => DeviceEvent::Identified { id, identity },
            // Unplugged while probed: the next scan reports the removal.
            Err(e) if e.is_removal() => {
                tracing::debug!(error = %e, "device left during identification");
                return Ok(());
            }
            Err(e) => DeviceEvent::Error {
                id: Some(id),
                message: error_chain(&e),
            },
        };
        sink.send(ev).map_err(|_| ())
    }
}

/// Where a FIDO node is, as events and listings show it.
pub fn location(info: &NodeInfo) -> Location {
    Location::Hidraw {
        path: info.path.to_string_lossy().into_owned(),
        vendor_id: info.vendor_id,
        product_id: info.product_id,
        name: info.name.clone(),
        usb_parent: info
            .usb_parent
            .as_ref()
            .map(|p| p.to_string_lossy().into_owned()),
    }
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
