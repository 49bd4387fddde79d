//! `keyward devices [watch]`: what security keys are here.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use clap::{Args, Subcommand};

use super::Failure;
use crate::detect::hid::HidMonitor;
use crate::detect::link::{Device, Kind, devices};
use crate::detect::pcsc::DEFAULT_DEBOUNCE;
use crate::detect::{Detector, DeviceEvent, Location, Present};

#[derive(Debug, Args)]
pub struct DevicesArgs {
    #[command(subcommand)]
    pub command: Option<DevicesCommand>,
    /// sysfs root for hidraw discovery
    #[arg(
        long,
        global = true,
        value_name = "DIR",
        default_value = "/sys",
        hide = true
    )]
    pub sysfs: PathBuf,
    /// /dev root for hidraw nodes
    #[arg(
        long,
        global = true,
        value_name = "DIR",
        default_value = "/dev",
        hide = true
    )]
    pub dev_root: PathBuf,
    /// Where a PC/SC reader sits in sysfs, as READER=DIR (test fixtures:
    /// virtual readers have no USB device); other readers are asked of
    /// pcscd
    #[arg(long, global = true, value_name = "READER=DIR", hide = true)]
    pub reader_usb: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum DevicesCommand {
    /// Print one line (one JSON object with --json) per device event until
    /// interrupted: arrived, identified, removed, error
    Watch {
        /// A card must stay this long before it counts as arrived
        #[arg(long, value_name = "MS", default_value_t = DEFAULT_DEBOUNCE.as_millis() as u64)]
        debounce_ms: u64,
    },
}

pub fn run(args: DevicesArgs, json: bool) -> Result<()> {
    let mut fixed = Vec::new();
    for m in &args.reader_usb {
        let Some((reader, dir)) = m.split_once('=') else {
            return Err(Failure::Usage(format!("--reader-usb takes READER=DIR, not {m:?}")).into());
        };
        fixed.push((reader.to_string(), PathBuf::from(dir)));
    }
    let hid = HidMonitor::new(args.sysfs, args.dev_root, Duration::from_millis(500));
    match args.command {
        None => list(&hid, &fixed, json),
        Some(DevicesCommand::Watch { debounce_ms }) => {
            watch(hid, Duration::from_millis(debounce_ms), json)
        }
    }
}

fn list(hid: &HidMonitor, fixed: &[(String, PathBuf)], json: bool) -> Result<()> {
    // A running daemon owns the devices: ask it (docs/api.md).
    if let Some(done) = super::daemon::list_devices(json) {
        return done;
    }
    let devices = devices(hid, fixed);
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(
                &serde_json::json!({"version": 2, "ok": true, "devices": devices})
            )?
        );
        return Ok(());
    }
    if devices.is_empty() {
        eprintln!("no security keys found (PC/SC readers with a card, or FIDO hidraw devices)");
    }
    print_text(&devices);
    Ok(())
}

/// The text listing: one headline per device, its interfaces beneath.
pub(crate) fn print_text(devices: &[Device]) {
    for d in devices {
        println!("{}", headline(d));
        if d.interfaces.len() > 1 {
            for p in &d.interfaces {
                println!("  {}", describe(p));
            }
        } else if let Some(e) = d.interfaces.first().and_then(|p| p.error.as_ref()) {
            println!("  error: {e}");
        }
        for n in &d.notes {
            println!("  note: {n}");
        }
    }
}

/// One line for a device: id, kind, serial, firmware, AAGUID, where.
fn headline(d: &Device) -> String {
    let kind = match d.kind {
        Kind::Both => "FIDO2+PIV",
        Kind::Fido2 => "FIDO2",
        Kind::Piv => "PIV",
        Kind::Unknown => "unidentified",
    };
    let mut parts = vec![d.id.to_string(), kind.to_string()];
    if let Some(s) = d.serial {
        parts.push(format!("serial {s}"));
    }
    if let Some(v) = &d.version {
        parts.push(format!("firmware {v}"));
    }
    if let Some(a) = &d.aaguid {
        parts.push(format!("AAGUID {a}"));
    }
    // A reader's name is already in the id; a node's path is not.
    if d.interfaces.len() == 1 && d.transport == "hidraw" {
        parts.push(d.reader_or_path.clone());
    }
    parts.join("  ")
}

fn describe(p: &Present) -> String {
    let mut parts = vec![p.id.to_string()];
    if let Some(i) = &p.identity {
        if let Some(s) = i.serial {
            parts.push(format!("serial {s}"));
        }
        if let Some(f) = &i.firmware {
            parts.push(format!("firmware {f}"));
        }
        let mut apps = Vec::new();
        if let Some(f) = &i.fido2 {
            apps.push(format!(
                "FIDO2{}",
                f.aaguid
                    .as_deref()
                    .map(|a| format!(" (AAGUID {a})"))
                    .unwrap_or_default()
            ));
        }
        if let Some(v) = &i.piv {
            apps.push(format!(
                "PIV{}",
                v.version
                    .as_deref()
                    .map(|a| format!(" {a}"))
                    .unwrap_or_default()
            ));
        }
        if !apps.is_empty() {
            parts.push(apps.join(", "));
        }
    }
    match &p.location {
        Location::Hidraw { path, .. } => parts.push(path.clone()),
        Location::Pcsc { reader, .. } => parts.push(format!("reader {reader:?}")),
    }
    if let Some(e) = &p.error {
        parts.push(format!("error: {e}"));
    }
    parts.join("  ")
}

fn watch(hid: HidMonitor, debounce: Duration, json: bool) -> Result<()> {
    use std::io::Write;
    let (_detector, events) = Detector::start(hid, debounce);
    let mut out = std::io::stdout().lock();
    for ev in events {
        let text = if json {
            serde_json::to_string(&ev)?
        } else {
            line(&ev)
        };
        // A closed pipe (`keyward devices watch | head`) ends the watch.
        if writeln!(out, "{text}").and_then(|()| out.flush()).is_err() {
            break;
        }
    }
    Ok(())
}

fn line(ev: &DeviceEvent) -> String {
    match ev {
        DeviceEvent::Arrived { id, .. } => format!("arrived     {id}"),
        DeviceEvent::Identified { id, identity } => {
            format!(
                "identified  {id}  serial {}",
                identity.serial.map_or("-".into(), |s| s.to_string())
            )
        }
        DeviceEvent::Removed { id } => format!("removed     {id}"),
        DeviceEvent::Error { id, message } => format!(
            "error       {}  {message}",
            id.as_ref().map_or("-".into(), |i| i.to_string())
        ),
    }
}
