//! The one `--device` selector of every command that touches a key
//! (`enroll`, `replace`, `return`, `unblock`, `fido`; through the daemon
//! or not). Its syntax means the same everywhere (docs/cli.md):
//!
//! - `sim`: an in-process simulated key (trials; a daemon accepts it only
//!   when started with `--danger-simulator`);
//! - `/dev/hidrawN` or `hidraw:hidrawN`: a FIDO HID node;
//! - `pcsc:NAME` or any other `NAME`: a PC/SC reader;
//! - digits only: the key with that serial number, wherever it is;
//! - nothing: the one key present (waiting for one where the command
//!   waits).
//!
//! The keys present come from [`detect::enumerate`] standalone and from
//! `GET /v1/devices` through the daemon: the same [`Present`] records,
//! so a serial or a wait resolves the same way on both routes.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Result;

use super::Failure;
use crate::detect::{self, Location, Present};
use crate::provision::KeyTarget;

/// A parsed `--device`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    /// The in-process simulator.
    Sim,
    /// A PC/SC reader by name.
    Reader(String),
    /// A hidraw node by path.
    Hidraw(PathBuf),
    /// Whichever key has this serial number.
    Serial(u32),
    /// The one key present.
    Only,
}

impl Selector {
    /// Parse `--device` (absent: [`Selector::Only`]).
    pub fn parse(sel: Option<&str>) -> Result<Selector, Failure> {
        let Some(s) = sel else {
            return Ok(Selector::Only);
        };
        if s.is_empty() {
            return Err(Failure::Usage(
                "--device is empty; give a reader name, a serial, a hidraw path or sim".into(),
            ));
        }
        Ok(if s == "sim" {
            Selector::Sim
        } else if let Some(r) = s.strip_prefix("pcsc:") {
            Selector::Reader(r.to_string())
        } else if let Some(n) = s.strip_prefix("hidraw:") {
            Selector::Hidraw(PathBuf::from("/dev").join(n))
        } else if s.starts_with('/') {
            Selector::Hidraw(PathBuf::from(s))
        } else if s.bytes().all(|b| b.is_ascii_digit()) {
            Selector::Serial(s.parse().map_err(|_| {
                Failure::Usage(format!("--device {s}: not a serial number (too large)"))
            })?)
        } else {
            Selector::Reader(s.to_string())
        })
    }

    /// The device id the daemon API uses for this selector (docs/api.md),
    /// looking up serials and waiting for the one key in `present`.
    pub fn daemon_id(
        &self,
        present: &dyn Fn() -> Result<Vec<Present>>,
        wait: Duration,
        quiet: bool,
    ) -> Result<String> {
        Ok(match self {
            Selector::Sim => "sim".into(),
            Selector::Reader(r) => format!("pcsc:{r}"),
            Selector::Hidraw(p) => format!(
                "hidraw:{}",
                p.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default()
            ),
            Selector::Serial(_) | Selector::Only => self.find(present, wait, quiet)?.id.0,
        })
    }

    /// The key target for a workflow run in this process.
    pub fn target(&self, wait: Duration, quiet: bool) -> Result<KeyTarget> {
        Ok(match self {
            Selector::Sim => sim_target()?,
            Selector::Reader(r) => KeyTarget::Reader(r.clone()),
            Selector::Hidraw(p) => KeyTarget::Hid(p.clone()),
            Selector::Serial(_) | Selector::Only => {
                target_of(self.find(&|| Ok(present_here()), wait, quiet)?)
            }
        })
    }

    /// The one present key this selector names ([`Selector::Serial`] or
    /// [`Selector::Only`]); waits up to `wait` for a key to arrive.
    fn find(
        &self,
        present: &dyn Fn() -> Result<Vec<Present>>,
        wait: Duration,
        quiet: bool,
    ) -> Result<Present> {
        let deadline = Instant::now() + wait;
        let mut told = false;
        loop {
            let keys: Vec<Present> = present()?
                .into_iter()
                .filter(|p| p.error.is_none() && p.identity.is_some())
                .collect();
            let mut matching: Vec<Present> = match self {
                Selector::Serial(n) => keys
                    .into_iter()
                    .filter(|p| p.identity.as_ref().and_then(|i| i.serial) == Some(*n))
                    .collect(),
                _ => keys,
            };
            // The PC/SC interface of a key first: it carries PIV and FIDO2.
            matching.sort_by_key(|p| !matches!(p.location, Location::Pcsc { .. }));
            if let Selector::Serial(n) = self {
                if let Some(p) = matching.into_iter().next() {
                    return Ok(p);
                }
                if Instant::now() >= deadline {
                    return Err(Failure::NoDevice(format!(
                        "no key with serial {n} is present; insert it"
                    ))
                    .into());
                }
            } else {
                match matching.len() {
                    1 => return Ok(matching.remove(0)),
                    0 if Instant::now() >= deadline => {
                        return Err(Failure::NoDevice(format!(
                            "no key was found within {} s; insert one, or name it with --device",
                            wait.as_secs()
                        ))
                        .into());
                    }
                    0 => {}
                    n => {
                        let names: Vec<String> = matching.iter().map(|p| p.id.0.clone()).collect();
                        return Err(Failure::Usage(format!(
                            "{n} keys are present ({}); choose one with --device",
                            names.join("; ")
                        ))
                        .into());
                    }
                }
            }
            if !told && !quiet && !wait.is_zero() {
                eprintln!(">>> Insert the key");
                told = true;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

/// The keys present now, seen from this process.
pub fn present_here() -> Vec<Present> {
    let hid = detect::hid::HidMonitor::new(
        PathBuf::from("/sys"),
        PathBuf::from("/dev"),
        Duration::from_millis(250),
    );
    detect::enumerate(&hid)
}

fn target_of(p: Present) -> KeyTarget {
    match p.location {
        Location::Pcsc { reader, .. } => KeyTarget::Reader(reader),
        Location::Hidraw { path, .. } => KeyTarget::Hid(PathBuf::from(path)),
    }
}

/// A fresh in-process simulated key from the documented default seed.
#[cfg(feature = "sim")]
fn sim_target() -> Result<KeyTarget> {
    use anyhow::Context;
    crate::sim::key::default_target().context("simulator CA")
}

/// This keyward was built without the simulator.
#[cfg(not(feature = "sim"))]
fn sim_target() -> Result<KeyTarget> {
    Err(Failure::Usage(
        "--device sim needs a keyward built with the simulator (cargo feature `sim`)".into(),
    )
    .into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_syntax() {
        let p = |s| Selector::parse(Some(s)).unwrap();
        assert_eq!(p("sim"), Selector::Sim);
        assert_eq!(p("12345678"), Selector::Serial(12_345_678));
        assert_eq!(p("/dev/hidraw3"), Selector::Hidraw("/dev/hidraw3".into()));
        assert_eq!(p("hidraw:hidraw3"), Selector::Hidraw("/dev/hidraw3".into()));
        assert_eq!(
            p("Virtual PCD 00 00"),
            Selector::Reader("Virtual PCD 00 00".into())
        );
        assert_eq!(
            p("pcsc:Virtual PCD 00 00"),
            Selector::Reader("Virtual PCD 00 00".into())
        );
        assert_eq!(Selector::parse(None).unwrap(), Selector::Only);
        assert!(Selector::parse(Some("")).is_err());
        assert!(Selector::parse(Some("99999999999999")).is_err());
        // The same selector names the same device id through the daemon.
        let none = || -> Result<Vec<Present>> { Ok(Vec::new()) };
        for (sel, id) in [
            ("sim", "sim"),
            ("Virtual PCD 00 00", "pcsc:Virtual PCD 00 00"),
            ("/dev/hidraw3", "hidraw:hidraw3"),
            ("hidraw:hidraw3", "hidraw:hidraw3"),
        ] {
            let got = p(sel).daemon_id(&none, Duration::ZERO, true).unwrap();
            assert_eq!(got, id);
        }
        let e = p("42").daemon_id(&none, Duration::ZERO, true).unwrap_err();
        assert!(e.to_string().contains("serial 42"), "{e}");
    }
}
