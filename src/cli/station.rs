//! `keyward station ...`: setting up and inspecting a production station.
//!
//! `keyward station init DIR` writes a station's configuration into DIR
//! (usually /etc/keyward): `keyward.toml` naming the station, its ledger
//! and the ticket issuer it trusts, a copy of the issuer's public key under
//! `issuers/`, and `profiles.toml` from a policy profile template. The
//! result is checked exactly as `keyward config check` checks it, in a
//! staging directory, before anything in DIR changes: a bad key file or
//! station id leaves DIR as it was. An existing configuration that already
//! trusts an issuer is replaced only with `--force`; the packaged example,
//! which trusts none, is replaced without it. The ledger is not created:
//! the daemon (user keyward) creates it at its first enrollment.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::{Context, Result};
use clap::{Args, Subcommand, ValueEnum};

use super::config_check;
use super::{Failure, GlobalArgs};
use crate::ticket::{KeyFile, OpKind};

#[derive(Debug, Subcommand)]
pub enum StationCommand {
    /// Write a production station's configuration into DIR: station id,
    /// ledger location, the trusted ticket issuer and a policy profile
    /// (docs/install.md)
    Init(InitArgs),
    /// The station id, the public key (PEM) the registry must enroll, and
    /// the current signed audit head (docs/sync.md)
    Show,
}

/// `keyward station init`
#[derive(Debug, Args)]
#[command(after_help = "The ledger is --db, else /var/lib/keyward/ledger.db. \
    Afterwards: keyward config check; systemctl restart keyward.")]
pub struct InitArgs {
    /// The configuration directory, created if missing (usually /etc/keyward)
    pub dir: PathBuf,
    /// This station's id: tickets must name it in `aud`
    #[arg(long = "station-id", value_name = "ID")]
    pub station_id: String,
    /// A station group this station belongs to (another accepted `aud`);
    /// repeatable
    #[arg(long = "group", value_name = "GROUP")]
    pub groups: Vec<String>,
    /// The ticket issuer's `iss`
    #[arg(long, value_name = "ISS")]
    pub issuer: String,
    /// The issuer's public key: PEM SPKI, a JWK, or a JWK Set (JWKS) file;
    /// copied into DIR/issuers/
    #[arg(long, value_name = "FILE")]
    pub issuer_key: PathBuf,
    /// Operations the issuer may grant (comma-separated)
    #[arg(long, value_name = "OPS", value_delimiter = ',', value_parser = op_kind,
          default_value = "fido2,piv,replace")]
    pub allow: Vec<OpKind>,
    /// The policy profile to start from (tickets name it in `policy`)
    #[arg(long, value_enum, value_name = "TEMPLATE", default_value_t = Template::Kiosk)]
    pub profile_template: Template,
    /// Replace a configuration that already trusts a ticket issuer
    #[arg(long)]
    pub force: bool,
}

/// Policy profile templates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Template {
    /// Walk-in kiosk: 6-8 digit PIN, enterprise attestation where supported
    Kiosk,
    /// Administrators' keys: key reset first, serial attested, replacement
    /// under dual control
    Privileged,
}

impl Template {
    fn name(self) -> &'static str {
        match self {
            Template::Kiosk => "kiosk",
            Template::Privileged => "privileged",
        }
    }

    fn text(self) -> &'static str {
        match self {
            Template::Kiosk => {
                "# Written by `keyward station init --profile-template kiosk` (docs/policy.md).
[profiles.kiosk]
description = \"walk-in kiosk enrollment of staff keys\"
reset_before_enroll = false
enterprise_attestation = \"preferred\"
privileged = false

[profiles.kiosk.pin]
min_length = 6
max_length = 8
digits_only = true
reject_trivial = true

[profiles.kiosk.replacement]
allowed = true
from_states = [\"active\", \"suspended\", \"lost\"]
"
            }
            Template::Privileged => {
                "# Written by `keyward station init --profile-template privileged` (docs/policy.md).
[profiles.privileged]
description = \"administrators' keys: fresh key, serial attested, dual-controlled replacement\"
reset_before_enroll = true
enterprise_attestation = \"required\"
privileged = true

[profiles.privileged.pin]
min_length = 8
max_length = 8
digits_only = true
reject_trivial = true

[profiles.privileged.attestation]
require_enterprise_attestation = true
"
            }
        }
    }
}

fn op_kind(s: &str) -> Result<OpKind, String> {
    serde_json::from_value(serde_json::Value::String(s.trim().into()))
        .map_err(|_| format!("{s:?} is not an operation (fido2, piv, replace, unblock)"))
}

/// The ledger a station gets unless `--db` names another.
pub const DEFAULT_LEDGER: &str = "/var/lib/keyward/ledger.db";

pub fn run(cmd: StationCommand, global: &GlobalArgs) -> Result<()> {
    match cmd {
        StationCommand::Init(a) => init(&a, global),
        StationCommand::Show => super::station_show::show(global),
    }
}

/// A TOML basic string (a JSON string is one: serde_json never writes `\/`).
fn quoted(s: &str) -> String {
    serde_json::Value::String(s.into()).to_string()
}

fn config_text(a: &InitArgs, ledger: &Path, key_name: &str) -> String {
    let list = |v: Vec<String>| v.join(", ");
    let groups = list(a.groups.iter().map(|g| quoted(g)).collect());
    let ops = list(
        a.allow
            .iter()
            .map(|o| {
                serde_json::to_value(o)
                    .map(|v| v.to_string())
                    .unwrap_or_default()
            })
            .collect(),
    );
    format!(
        "# Written by `keyward station init` (docs/install.md, docs/config.md).
# Check with `keyward config check` after every change.

station = {station}
groups = [{groups}]
ledger = {ledger}

[ticket]
skew_secs = 60

[[ticket.issuers]]
iss = {iss}
allowed_ops = [{ops}]
keys = [{{ path = {key} }}]

[attestation]
bundled = true                # the shipped Yubico roots (docs/roots.md)
# mds = \"/var/lib/keyward/mds/blob.jwt\"   # after `keyward mds import`

[policy]
file = \"profiles.toml\"        # profile {profile:?} (docs/policy.md)

[daemon]
group = \"keyward\"
",
        station = quoted(&a.station_id),
        ledger = quoted(&ledger.to_string_lossy()),
        iss = quoted(&a.issuer),
        key = quoted(&format!("issuers/{key_name}")),
        profile = a.profile_template.name(),
    )
}

fn usage(msg: String) -> anyhow::Error {
    Failure::Usage(msg).into()
}

fn init(a: &InitArgs, global: &GlobalArgs) -> Result<()> {
    let ledger = global
        .db
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_LEDGER));
    if !ledger.is_absolute() {
        return Err(usage(format!(
            "--db {}: a station's ledger needs an absolute path",
            ledger.display()
        )));
    }
    // The issuer key must hold at least one usable key before anything is
    // written.
    let keys = crate::ticket::read_key_file(&KeyFile {
        path: a.issuer_key.clone(),
        kid: None,
        approver: None,
    })
    .map_err(|e| {
        let e = anyhow::Error::from(e);
        usage(format!("--issuer-key {}: {e:#}", a.issuer_key.display()))
    })?;
    let key_name = a
        .issuer_key
        .file_name()
        .and_then(|n| n.to_str())
        .filter(|n| !n.starts_with('.'))
        .ok_or_else(|| {
            usage(format!(
                "--issuer-key {}: not a file name",
                a.issuer_key.display()
            ))
        })?
        .to_string();
    let target = a.dir.join("keyward.toml");
    if target.exists() && !a.force && !config_check::enrolls_nothing(&target) {
        return Err(usage(format!(
            "{} already trusts a ticket issuer (or does not parse); keep it, or pass --force to replace it",
            target.display()
        )));
    }
    std::fs::create_dir_all(&a.dir).with_context(|| format!("creating {}", a.dir.display()))?;
    let staging = a.dir.join(format!(".keyward-init-{}", std::process::id()));
    let result = stage_and_check(a, &staging, &ledger, &key_name)
        .and_then(|summary| install(&staging, &a.dir, &key_name).map(|()| summary));
    let _ = std::fs::remove_dir_all(&staging);
    let summary = result?;
    print!("{}", summary.text);
    println!(
        "wrote {} (issuer {:?}, {} key{}), {}, {}",
        target.display(),
        a.issuer,
        keys.len(),
        if keys.len() == 1 { "" } else { "s" },
        a.dir.join("profiles.toml").display(),
        a.dir.join("issuers").join(&key_name).display()
    );
    println!(
        "next: systemctl restart keyward (the daemon creates the ledger as user keyward), \
         then enroll with tickets naming aud {:?} and policy {:?}",
        a.station_id,
        a.profile_template.name()
    );
    Ok(())
}

/// Write every file into `staging` and check it as `config check` would.
fn stage_and_check(
    a: &InitArgs,
    staging: &Path,
    ledger: &Path,
    key_name: &str,
) -> Result<config_check::Summary> {
    std::fs::create_dir_all(staging.join("issuers"))
        .with_context(|| format!("creating {}", staging.display()))?;
    std::fs::copy(&a.issuer_key, staging.join("issuers").join(key_name))
        .with_context(|| format!("copying {}", a.issuer_key.display()))?;
    std::fs::write(staging.join("profiles.toml"), a.profile_template.text())?;
    let config = staging.join("keyward.toml");
    std::fs::write(&config, config_text(a, ledger, key_name))?;
    let (from, to) = (staging.display().to_string(), a.dir.display().to_string());
    let mut summary = config_check::check(&config, Some(ledger), SystemTime::now())
        .map_err(|e| usage(e.0.replace(&from, &to)))?;
    summary.text = summary.text.replace(&from, &to);
    Ok(summary)
}

/// Move the checked files into `dir`: the key and profiles first, the
/// configuration that names them last.
fn install(staging: &Path, dir: &Path, key_name: &str) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let issuers = dir.join("issuers");
    std::fs::create_dir_all(&issuers)?;
    std::fs::set_permissions(&issuers, std::fs::Permissions::from_mode(0o755))?;
    for rel in [
        format!("issuers/{key_name}"),
        "profiles.toml".into(),
        "keyward.toml".into(),
    ] {
        let from = staging.join(&rel);
        // Public keys and settings, no secret: readable by the daemon's user.
        std::fs::set_permissions(&from, std::fs::Permissions::from_mode(0o644))?;
        std::fs::rename(&from, dir.join(&rel))
            .with_context(|| format!("installing {}", dir.join(&rel).display()))?;
    }
    Ok(())
}
