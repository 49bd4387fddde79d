//! `keyward daemon`: flags (and the config file's `[daemon]` section) to a
//! [`DaemonConfig`], then run it.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use clap::Args;

use super::{Failure, GlobalArgs};
use crate::daemon::{self, DaemonConfig};

/// `keyward daemon`
#[derive(Debug, Args)]
#[command(
    after_help = "The API (HTTP/1.1 + JSON on the Unix socket) is described in \
    docs/api.md, its metrics in docs/metrics.md. Under systemd use Type=notify: \
    the daemon sends READY=1 once it listens; socket activation is supported."
)]
pub struct DaemonArgs {
    /// The Unix socket to listen on (mode 0660, owned by --group)
    #[arg(long, value_name = "PATH", env = "KEYWARD_SOCKET", default_value = daemon::DEFAULT_SOCKET)]
    pub socket: PathBuf,
    /// Members of this group (name or gid) may use the API; root always may
    /// [default: root only]
    #[arg(long, value_name = "GROUP")]
    pub group: Option<String>,
    /// On SIGTERM, let running enrollments finish for this long before
    /// cancelling them
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = duration)]
    pub grace: Duration,
    /// Flag the exception rate in /metrics above this rate
    #[arg(long, value_name = "RATE", default_value_t = crate::metrics::DEFAULT_EXCEPTION_THRESHOLD)]
    pub exception_threshold: f64,
    /// The window over which /metrics computes the exception rate
    #[arg(long, value_name = "DURATION", default_value = "30d", value_parser = duration)]
    pub exception_window: Duration,
    /// A card must stay this long before it counts as arrived
    #[arg(long, value_name = "MS", default_value_t = 150)]
    pub debounce_ms: u64,
    /// sysfs root for hidraw discovery
    #[arg(long, value_name = "DIR", default_value = "/sys", hide = true)]
    pub sysfs: PathBuf,
    /// /dev root for hidraw nodes
    #[arg(long, value_name = "DIR", default_value = "/dev", hide = true)]
    pub dev_root: PathBuf,
    /// DANGER, tests only: the socket file's mode in octal (default 660),
    /// to reach the peer-credential check behind the file permissions
    #[arg(long, value_name = "OCTAL", hide = true, value_parser = octal)]
    pub danger_socket_mode: Option<u32>,
}

fn duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{s:?} is not a duration (30s, 5m): {e}"))
}

fn octal(s: &str) -> Result<u32, String> {
    u32::from_str_radix(s, 8)
        .ok()
        .filter(|m| *m <= 0o777)
        .ok_or_else(|| format!("{s:?} is not an octal file mode"))
}

pub fn run(args: DaemonArgs, global: &GlobalArgs) -> Result<()> {
    let threshold =
        super::report::check_threshold(args.exception_threshold).map_err(Failure::Usage)?;
    let mut config = DaemonConfig::new(args.socket, global.db_path());
    config.group = args.group;
    config.grace = args.grace;
    config.exception_threshold = threshold;
    config.exception_window = args.exception_window;
    config.debounce = Duration::from_millis(args.debounce_ms);
    config.sysfs = args.sysfs;
    config.dev_root = args.dev_root;
    if let Some(m) = args.danger_socket_mode {
        tracing::warn!("socket mode {m:o} set by --danger-socket-mode");
        config.socket_mode = m;
    }
    daemon::run(config)
}

/// `keyward devices` through a running daemon: `None` when no daemon
/// answers (list standalone), else the outcome of listing its devices.
pub fn list_devices(json: bool) -> Option<Result<()>> {
    let client = crate::daemon::client::connect_default()?;
    Some(print_devices(&client, json))
}

fn print_devices(client: &crate::daemon::client::Client, json: bool) -> Result<()> {
    let doc = client.devices().map_err(daemon_failure)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(());
    }
    let devices = doc["devices"].as_array().cloned().unwrap_or_default();
    if devices.is_empty() {
        eprintln!(
            "no security keys found (the keyward daemon at {} sees none)",
            client.socket().display()
        );
    }
    for d in &devices {
        println!("{}", describe(d));
    }
    Ok(())
}

/// One line per device, as `keyward devices` prints it standalone.
fn describe(d: &serde_json::Value) -> String {
    let s = |v: &serde_json::Value| {
        v.as_str()
            .map(str::to_string)
            .or_else(|| v.as_u64().map(|n| n.to_string()))
    };
    let mut parts = vec![s(&d["id"]).unwrap_or_default()];
    let i = &d["identity"];
    if let Some(serial) = s(&i["serial"]) {
        parts.push(format!("serial {serial}"));
    }
    if let Some(f) = s(&i["firmware"]) {
        parts.push(format!("firmware {f}"));
    }
    let mut apps = Vec::new();
    if i["fido2"].is_object() {
        apps.push(match s(&i["fido2"]["aaguid"]) {
            Some(a) => format!("FIDO2 (AAGUID {a})"),
            None => "FIDO2".into(),
        });
    }
    if i["piv"].is_object() {
        apps.push(match s(&i["piv"]["version"]) {
            Some(v) => format!("PIV {v}"),
            None => "PIV".into(),
        });
    }
    if !apps.is_empty() {
        parts.push(apps.join(", "));
    }
    if let Some(p) = s(&d["location"]["path"]) {
        parts.push(p);
    }
    if let Some(e) = s(&d["error"]) {
        parts.push(format!("error: {e}"));
    }
    parts.join("  ")
}

/// A daemon that answered but refused or failed: exit code 6 with the
/// client's message (which says what to do).
pub fn daemon_failure(e: crate::daemon::client::ClientError) -> anyhow::Error {
    Failure::DaemonUnreachable(crate::detect::error_chain(&e)).into()
}
