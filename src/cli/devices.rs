//! `keyward devices [watch]`: what security keys are here, and for a FIDO2
//! key whose AAGUID the kept FIDO MDS3 BLOB lists, its vendor and model.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::Result;
use clap::{Args, Subcommand};

use super::Failure;
use crate::attest::TrustStore;
use crate::attest::mds::{self, MdsBlob};
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
    /// Where `keyward mds import` keeps the FIDO MDS3 BLOB whose entries
    /// name each FIDO2 key's vendor and model [default: mds/ beside the
    /// ledger]
    #[arg(long, value_name = "DIR")]
    pub mds_dir: Option<PathBuf>,
    /// The BLOB's root certificate [default: the shipped GlobalSign Root CA - R3]
    #[arg(long, value_name = "CERT")]
    pub mds_root: Option<PathBuf>,
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

pub fn run(args: DevicesArgs, db: &Path, json: bool) -> Result<()> {
    let mut fixed = Vec::new();
    for m in &args.reader_usb {
        let Some((reader, dir)) = m.split_once('=') else {
            return Err(Failure::Usage(format!("--reader-usb takes READER=DIR, not {m:?}")).into());
        };
        fixed.push((reader.to_string(), PathBuf::from(dir)));
    }
    let hid = HidMonitor::new(args.sysfs, args.dev_root, Duration::from_millis(500));
    match args.command {
        None => {
            let dir = args
                .mds_dir
                .clone()
                .unwrap_or_else(|| db.parent().unwrap_or(Path::new(".")).join("mds"));
            let blob = kept_blob(&dir, args.mds_root.as_deref());
            list(&hid, &fixed, blob.as_ref(), json)
        }
        Some(DevicesCommand::Watch { debounce_ms }) => {
            watch(hid, Duration::from_millis(debounce_ms), json)
        }
    }
}

/// The BLOB `keyward mds import` kept in `dir`, verified (signature chain
/// to `root`; a stale one still names models). Vendor and model are shown
/// only from a BLOB whose signature holds; a missing one is no error, a
/// refused one is said on stderr.
fn kept_blob(dir: &Path, root: Option<&Path>) -> Option<MdsBlob> {
    let path = dir.join("blob.jwt");
    let bytes = match crate::attest::anchors::read_limited_to(&path, mds::MAX_BLOB as u64) {
        Ok(b) => b,
        Err(e) if path.exists() => {
            eprintln!("note: vendor and model not shown: {e}");
            return None;
        }
        Err(_) => return None,
    };
    let mut store = TrustStore::bundled_mds_root();
    if let Some(r) = root {
        store = TrustStore::new();
        if let Err(e) = store.load_file(r) {
            eprintln!("note: vendor and model not shown: the MDS root: {e}");
            return None;
        }
    }
    match MdsBlob::verify(&bytes, &store, SystemTime::now(), Default::default()) {
        Ok(b) => Some(b),
        Err(e) => {
            eprintln!(
                "note: vendor and model not shown: {} refused: {e}",
                path.display()
            );
            None
        }
    }
}

/// What the MDS says of a device's model, by its AAGUID; `None` when the
/// device has no AAGUID or the BLOB does not list it (shown as unknown).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Model {
    pub vendor: Option<String>,
    /// The entry's `description`.
    pub description: Option<String>,
    pub certification_level: Option<String>,
    pub latest_status: Option<String>,
    /// A status report that makes keyward refuse the model (REVOKED...).
    pub rejected_by: Option<String>,
}

/// Look `aaguid` (MDS3 form) up in `blob`.
pub fn model(blob: Option<&MdsBlob>, aaguid: Option<&str>) -> Option<Model> {
    let a = mds::parse_aaguid(aaguid?)?;
    let e = blob?.by_aaguid(&a)?;
    let st = e.status();
    Some(Model {
        vendor: e.vendor(),
        description: st.description,
        certification_level: st.certification_level,
        latest_status: st.latest,
        rejected_by: st.rejected_by,
    })
}

fn list(
    hid: &HidMonitor,
    fixed: &[(String, PathBuf)],
    blob: Option<&MdsBlob>,
    json: bool,
) -> Result<()> {
    // A running daemon owns the devices: ask it (docs/api.md).
    if let Some(done) = super::daemon::list_devices(json) {
        return done;
    }
    let devices = devices(hid, fixed);
    if json {
        let mut out = Vec::new();
        for d in &devices {
            let mut v = serde_json::to_value(d)?;
            if let Some(m) = v.as_object_mut() {
                let found = model(blob, d.aaguid.as_deref());
                m.insert("model".into(), serde_json::to_value(found)?);
            }
            out.push(v);
        }
        println!(
            "{}",
            serde_json::to_string_pretty(
                &serde_json::json!({"version": 2, "ok": true, "devices": out})
            )?
        );
        return Ok(());
    }
    if devices.is_empty() {
        eprintln!("no security keys found (PC/SC readers with a card, or FIDO hidraw devices)");
    }
    print_text_with(&devices, blob);
    Ok(())
}

/// The text listing: one headline per device, its interfaces beneath.
pub(crate) fn print_text(devices: &[Device]) {
    print_text_with(devices, None)
}

/// [`print_text`], with each FIDO2 key's vendor and model from `blob`.
fn print_text_with(devices: &[Device], blob: Option<&MdsBlob>) {
    for d in devices {
        println!("{}", headline(d));
        // Without a kept BLOB nothing is known of any model: no line.
        if d.aaguid.is_some() && blob.is_some() {
            println!(
                "  {}",
                model_line(model(blob, d.aaguid.as_deref()).as_ref())
            );
        }
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

/// `model: Vendor B Test Key · vendor Vendor B · FIDO_CERTIFIED_L2`, or
/// `model: unknown (not in the MDS BLOB)`.
fn model_line(m: Option<&Model>) -> String {
    let Some(m) = m else {
        return "model: unknown (not in the MDS BLOB)".into();
    };
    let mut parts = vec![format!(
        "model: {}",
        m.description.as_deref().unwrap_or("unnamed")
    )];
    if let Some(v) = &m.vendor {
        parts.push(format!("vendor {v}"));
    }
    parts.push(
        m.certification_level
            .clone()
            .unwrap_or_else(|| "not FIDO certified".into()),
    );
    if let Some(r) = &m.rejected_by {
        parts.push(format!("MDS status {r}: keyward refuses this model"));
    }
    parts.join(" · ")
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
