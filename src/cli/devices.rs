//! `keyward devices [watch]`: what security keys are here.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use clap::{Args, Subcommand};

use crate::detect::hid::HidMonitor;
use crate::detect::{Detector, DeviceEvent, Location, Present, enumerate};

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
}

#[derive(Debug, Subcommand)]
pub enum DevicesCommand {
    /// Print one line (one JSON object with --json) per device event until
    /// interrupted: arrived, identified, removed, error
    Watch {
        /// A card must stay this long before it counts as arrived
        #[arg(long, value_name = "MS", default_value_t = 150)]
        debounce_ms: u64,
    },
}

pub fn run(args: DevicesArgs, json: bool) -> Result<()> {
    let hid = HidMonitor::new(args.sysfs, args.dev_root, Duration::from_millis(250));
    match args.command {
        None => list(&hid, json),
        Some(DevicesCommand::Watch { debounce_ms }) => {
            watch(hid, Duration::from_millis(debounce_ms), json)
        }
    }
}

fn list(hid: &HidMonitor, json: bool) -> Result<()> {
    // A running daemon owns the devices: ask it (docs/api.md).
    if let Some(done) = super::daemon::list_devices(json) {
        return done;
    }
    let present = enumerate(hid);
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({"version": 1, "devices": present}))?
        );
        return Ok(());
    }
    if present.is_empty() {
        eprintln!("no security keys found (PC/SC readers with a card, or FIDO hidraw devices)");
    }
    for p in &present {
        println!("{}", describe(p));
    }
    Ok(())
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
    if let Location::Hidraw { path, .. } = &p.location {
        parts.push(path.clone());
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
