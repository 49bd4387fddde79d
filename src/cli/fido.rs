//! `keyward fido`: inspect and manage a FIDO2 key (info, PIN, reset,
//! discoverable credentials, authenticatorConfig). PINs come from a no-echo
//! prompt or `--pin-fd`, never from argv. The `--json` document of `info`
//! is described in docs/fido.md.

use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};

use super::Failure;
use super::secret_input::{Fd, SecretInput};
use crate::ctap::commands::client_pin::permission;
use crate::ctap::commands::config::ConfigCommand;
use crate::ctap::commands::cred_mgmt::command_for;
use crate::ctap::commands::get_info::Info;
use crate::ctap::{Ctap2, Error as CtapError, Pin, StatusCode};
use crate::transport::{Transport, hidraw, pcsc};

/// `keyward fido ...`
#[derive(Debug, Args)]
pub struct FidoArgs {
    /// The key: a PC/SC reader name, a serial number, or a hidraw path (as
    /// in every command, docs/cli.md); may be left out when exactly one
    /// FIDO key is present
    #[arg(long, global = true, value_name = "SEL")]
    pub device: Option<String>,
    /// Read PINs from this file descriptor (one per line) instead of a
    /// prompt
    #[arg(long, global = true, value_name = "N")]
    pub pin_fd: Option<i32>,
    #[command(subcommand)]
    pub command: FidoCommand,
}

#[derive(Debug, Subcommand)]
pub enum FidoCommand {
    /// Show what the key reports (getInfo, PIN retries)
    Info,
    /// Set the first PIN, or change it
    #[command(subcommand)]
    Pin(PinCommand),
    /// Erase every FIDO2 credential and the PIN (re-insert the key first)
    Reset,
    /// List or delete discoverable credentials
    #[command(subcommand)]
    Credentials(CredCommand),
    /// authenticatorConfig
    #[command(subcommand)]
    Config(ConfigCmd),
}

#[derive(Debug, Subcommand)]
pub enum PinCommand {
    /// Set a PIN on a key without one
    Set,
    /// Change the PIN (asks for the current one, then the new one)
    Change,
}

#[derive(Debug, Subcommand)]
pub enum CredCommand {
    /// List discoverable credentials per relying party
    List,
    /// Delete one credential by its ID (hex)
    Delete {
        #[arg(value_name = "CREDENTIAL_ID_HEX")]
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConfigCmd {
    /// Allow enterprise attestation
    EnableEnterpriseAttestation,
    /// Toggle alwaysUv
    ToggleAlwaysUv,
    /// Raise the minimum PIN length; optionally force a PIN change
    MinPinLength {
        length: u32,
        #[arg(long)]
        force_change: bool,
    },
}

const TIMEOUT: Duration = Duration::from_secs(35);

/// Run `keyward fido`.
pub fn run(args: FidoArgs, json: bool) -> Result<()> {
    let transport = open(args.device.as_deref())?;
    let mut c = Ctap2::new(transport);
    c.set_timeout(TIMEOUT);
    c.set_status_callback(Box::new(|s| {
        if s == crate::transport::KeepaliveStatus::UpNeeded {
            eprintln!("Touch your security key.");
        }
    }));
    let mut pins = PinSource::new(args.pin_fd);
    match args.command {
        FidoCommand::Info => info(&mut c, json),
        FidoCommand::Pin(PinCommand::Set) => {
            let info = c.get_info().map_err(fail)?;
            if info.option("clientPin").is_none() {
                return Err(anyhow::anyhow!(
                    "this key has no PIN support (no clientPin option in its getInfo); keyward manages only keys with a PIN"
                ));
            }
            if info.option("clientPin") == Some(true) {
                return Err(Failure::Usage(
                    "the key already has a PIN; change it with `keyward fido pin change`".into(),
                )
                .into());
            }
            let p = info.pin_protocol().map_err(fail)?;
            let new = pins.read("new PIN", true)?;
            c.set_pin(p, &new).map_err(fail)?;
            eprintln!("PIN set.");
            Ok(())
        }
        FidoCommand::Pin(PinCommand::Change) => {
            // The way out of forcePINChange (§6.5.5.6 clears it).
            let p = c.get_info().map_err(fail)?.pin_protocol().map_err(fail)?;
            let old = pins.read("current PIN", false)?;
            let new = pins.read("new PIN", true)?;
            c.change_pin(p, &old, &new).map_err(fail)?;
            eprintln!("PIN changed.");
            Ok(())
        }
        FidoCommand::Reset => {
            // getInfo first: a U2F-only key gets its one-line refusal.
            c.get_info().map_err(fail)?;
            c.reset().map_err(fail)?;
            eprintln!("The key is reset.");
            Ok(())
        }
        FidoCommand::Credentials(cmd) => credentials(&mut c, &mut pins, cmd, json),
        FidoCommand::Config(cmd) => {
            let info = c.get_info().map_err(fail)?;
            let cmd = match cmd {
                ConfigCmd::EnableEnterpriseAttestation => {
                    ConfigCommand::EnableEnterpriseAttestation
                }
                ConfigCmd::ToggleAlwaysUv => ConfigCommand::ToggleAlwaysUv,
                ConfigCmd::MinPinLength {
                    length,
                    force_change,
                } => ConfigCommand::SetMinPinLength {
                    new_min_pin_length: Some(length),
                    min_pin_length_rp_ids: vec![],
                    force_change_pin: force_change,
                },
            };
            if info.option("authnrCfg") != Some(true) {
                return Err(anyhow::anyhow!(
                    "this key has no authenticatorConfig (a CTAP 2.0 key, or one without the authnrCfg option); nothing was changed"
                ));
            }
            let auth = if info.option("clientPin") == Some(true) {
                check_force_pin_change(&info)?;
                let pin = pins.read("PIN", false)?;
                Some(
                    c.token_for(&info, &pin, permission::AUTHENTICATOR_CFG, None)
                        .map_err(fail)?,
                )
            } else {
                None
            };
            c.config(&cmd, auth.as_ref()).map_err(fail)?;
            eprintln!("Done.");
            Ok(())
        }
    }
}

/// What to tell a person whose key demands a new PIN (forcePINChange).
const CHANGE_PIN_FIRST: &str = "the key demands a new PIN before its PIN can be used (forcePINChange, set e.g. by a bulk run): run `keyward fido pin change` first; no PIN was sent, so no retry was spent";

/// Refuse before asking for the PIN when the key would refuse it anyway.
fn check_force_pin_change(info: &Info) -> Result<()> {
    if info.force_pin_change == Some(true) {
        return Err(anyhow::anyhow!(CHANGE_PIN_FIRST));
    }
    Ok(())
}

/// CTAP errors become exit-code failures where one is documented.
fn fail(e: CtapError) -> anyhow::Error {
    match (&e, e.status()) {
        (_, Some(StatusCode::PinBlocked)) => Failure::PinBlocked(format!("{e}")).into(),
        (CtapError::PinChangeRequired, _) => anyhow::anyhow!(CHANGE_PIN_FIRST),
        (CtapError::U2fOnly, _) => anyhow::anyhow!(
            "{e}: it has no PIN, no discoverable credentials and no FIDO2 reset; use a FIDO2 key"
        ),
        _ => anyhow::Error::new(e),
    }
}

fn info<T: Transport>(c: &mut Ctap2<T>, json: bool) -> Result<()> {
    let i = match c.get_info() {
        Ok(i) => i,
        Err(CtapError::U2fOnly) => return info_u2f(c, json),
        Err(e) => return Err(fail(e)),
    };
    let retries = if i.option("clientPin").is_some() {
        c.pin_retries().ok().map(|r| r.retries)
    } else {
        None
    };
    let doc = info_json(
        &i,
        retries,
        c.transport().kind().name(),
        &c.transport().device_name(),
    );
    if json {
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        println!("device:           {}", doc["device"].as_str().unwrap_or(""));
        println!(
            "transport:        {}",
            doc["transport"].as_str().unwrap_or("")
        );
        println!("aaguid:           {}", doc["aaguid"].as_str().unwrap_or(""));
        println!("versions:         {}", i.versions.join(", "));
        println!("firmware version: {}", doc["firmware_version"]);
        println!("pin retries:      {}", doc["pin_retries"]);
        let protos: Vec<String> = i.pin_uv_auth_protocols.iter().map(u32::to_string).collect();
        println!("pin protocols:    {}", protos.join(", "));
        if i.force_pin_change == Some(true) {
            println!(
                "pin change:       required before the PIN can be used (`keyward fido pin change`)"
            );
        }
        let opts: Vec<String> = i.options.iter().map(|(k, v)| format!("{k}={v}")).collect();
        println!("options:          {}", opts.join(" "));
    }
    Ok(())
}

/// `fido info` of a key that answers only U2F: what it is, and that
/// keyward cannot manage it.
fn info_u2f<T: Transport>(c: &mut Ctap2<T>, json: bool) -> Result<()> {
    let (kind, device) = (c.transport().kind().name(), c.transport().device_name());
    let note = CtapError::U2fOnly.to_string();
    if json {
        let doc = serde_json::json!({
            "version": 1,
            "ok": true,
            "device": device,
            "transport": kind,
            "ctap2": false,
            "versions": ["U2F_V2"],
            "note": note,
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        println!("device:           {device}");
        println!("transport:        {kind}");
        println!("versions:         U2F_V2");
        println!("note:             {note}");
    }
    Ok(())
}

/// The stable `keyward fido info --json` document (docs/fido.md).
pub fn info_json(
    i: &Info,
    pin_retries: Option<u32>,
    transport: &str,
    device: &str,
) -> serde_json::Value {
    let a = hex::encode(i.aaguid);
    let aaguid = format!(
        "{}-{}-{}-{}-{}",
        &a[..8],
        &a[8..12],
        &a[12..16],
        &a[16..20],
        &a[20..]
    );
    serde_json::json!({
        "version": 1,
        "ok": true,
        "device": device,
        "transport": transport,
        "ctap2": true,
        "aaguid": aaguid,
        "versions": i.versions,
        "extensions": i.extensions,
        "options": i.options,
        "pin_retries": pin_retries,
        "pin_uv_auth_protocols": i.pin_uv_auth_protocols,
        "min_pin_length": i.min_pin_length,
        "force_pin_change": i.force_pin_change,
        "firmware_version": i.firmware_version,
        "algorithms": i.algorithms,
        "remaining_discoverable_credentials": i.remaining_discoverable_credentials,
    })
}

fn credentials<T: Transport>(
    c: &mut Ctap2<T>,
    pins: &mut PinSource,
    cmd: CredCommand,
    json: bool,
) -> Result<()> {
    let info = c.get_info().map_err(fail)?;
    // credMgmt (0x0A), or the 2.1-PRE 0x41 of keys with only
    // credentialMgmtPreview (docs/interop.md).
    let command = command_for(&info).ok_or_else(|| {
        anyhow::anyhow!(
            "this key has no credential management (neither credMgmt nor credentialMgmtPreview in its getInfo); keyward cannot list or delete its credentials"
        )
    })?;
    if info.option("clientPin") != Some(true) {
        return Err(anyhow::anyhow!(
            "the key has no PIN, and credential management needs one: set it with `keyward fido pin set`"
        ));
    }
    check_force_pin_change(&info)?;
    let pin = pins.read("PIN", false)?;
    let auth = c
        .token_for(&info, &pin, permission::CREDENTIAL_MGMT, None)
        .map_err(fail)?;
    match cmd {
        CredCommand::List => {
            let mut out = Vec::new();
            for rp in c.enumerate_rps(command, &auth).map_err(fail)? {
                for cred in c
                    .enumerate_credentials(command, &rp.rp_id_hash, &auth)
                    .map_err(fail)?
                {
                    out.push(serde_json::json!({
                        "rp_id": rp.id,
                        "credential_id": hex::encode(&cred.credential_id),
                        "user_id": hex::encode(&cred.user_id),
                        "user_name": cred.user_name,
                        "cred_protect": cred.cred_protect,
                    }));
                }
            }
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(
                        &serde_json::json!({"version": 1, "ok": true, "credentials": out})
                    )?
                );
            } else {
                for o in out {
                    println!(
                        "{}  {}  {}",
                        o["rp_id"].as_str().unwrap_or("?"),
                        o["user_name"].as_str().unwrap_or("?"),
                        o["credential_id"].as_str().unwrap_or("")
                    );
                }
            }
            Ok(())
        }
        CredCommand::Delete { id } => {
            let id =
                hex::decode(&id).map_err(|_| Failure::Usage("credential ID must be hex".into()))?;
            c.delete_credential(command, &id, &auth).map_err(fail)?;
            eprintln!("Deleted.");
            Ok(())
        }
    }
}

/// Open the selected key (`--device`, the one selector: docs/cli.md).
fn open(sel: Option<&str>) -> Result<Box<dyn Transport>> {
    use super::device::Selector;
    use crate::provision::KeyTarget;
    let hid = |p: &std::path::Path| -> Result<Box<dyn Transport>> {
        Ok(Box::new(
            hidraw::open(&p.to_string_lossy(), Duration::from_secs(2))
                .context("opening the hidraw device")?,
        ))
    };
    let reader = |r: &str| -> Result<Box<dyn Transport>> {
        let readers = pcsc::readers().unwrap_or_default();
        if !readers.iter().any(|x| x == r) {
            return Err(Failure::NoDevice(format!(
                "no reader {r:?} (readers: {}); `keyward fido info` without --device lists the keys",
                readers.join(", ")
            ))
            .into());
        }
        Ok(Box::new(pcsc::PcscTransport::open(
            r,
            None,
            Duration::from_secs(5),
        )?))
    };
    let selector = Selector::parse(sel)?;
    match &selector {
        Selector::Sim => {
            return Err(Failure::Usage(
                "--device sim: `keyward fido` talks to keys through pcscd or hidraw; start a \
                 virtual key with `keyward sim --vpcd` and name its reader"
                    .into(),
            )
            .into());
        }
        Selector::Hidraw(p) => return hid(p),
        Selector::Reader(r) => return reader(r),
        Selector::Serial(_) => {
            return match selector.target(Duration::ZERO, true)? {
                KeyTarget::Reader(r) => reader(&r),
                KeyTarget::Hid(p) => hid(&p),
                _ => Err(Failure::NoDevice(format!(
                    "no FIDO key matches {:?}; `keyward fido info` without --device lists what is there",
                    sel.unwrap_or_default()
                ))
                .into()),
            };
        }
        Selector::Only => {}
    }
    let hids = hidraw::list().unwrap_or_default();
    let readers = pcsc::readers().unwrap_or_default();
    let mut found: Vec<Box<dyn Transport>> = Vec::new();
    let mut names = Vec::new();
    for h in &hids {
        if let Ok(t) = hidraw::open(&h.path, Duration::from_secs(2)) {
            names.push(h.path.clone());
            found.push(Box::new(t));
        }
    }
    for r in &readers {
        // Readers whose card has no FIDO applet answer SELECT with an error.
        if let Ok(t) = pcsc::PcscTransport::open(r, None, Duration::from_secs(5)) {
            names.push(r.clone());
            found.push(Box::new(t));
        }
    }
    match found.len() {
        0 => Err(Failure::NoDevice(
            "no FIDO key found; insert one (or place it on the reader) and retry".into(),
        )
        .into()),
        1 => Ok(found.remove(0)),
        _ => Err(Failure::Usage(format!(
            "several FIDO keys are present ({}); pick one with --device",
            names.join(", ")
        ))
        .into()),
    }
}

/// Where PINs come from: `--pin-fd`, else the CLI's one secret input.
struct PinSource {
    fd: Option<i32>,
    input: SecretInput,
}

impl PinSource {
    fn new(fd: Option<i32>) -> PinSource {
        PinSource {
            fd,
            input: SecretInput::default(),
        }
    }

    fn read(&mut self, what: &str, confirm: bool) -> Result<Pin> {
        self.input.pin(Fd("--pin-fd", self.fd), what, confirm)
    }
}
