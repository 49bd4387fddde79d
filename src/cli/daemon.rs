//! `keyward daemon`: flags (and the config file's `[daemon]` section) to a
//! [`DaemonConfig`], then run it.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use clap::Args;

use super::{Failure, GlobalArgs};
use crate::config::Config;
use crate::daemon::config::DaemonSection;
use crate::daemon::{self, DaemonConfig};

/// `keyward daemon`
#[derive(Debug, Args)]
#[command(
    after_help = "Flags win over the config file's [daemon] table (docs/api.md). \
    The API (HTTP/1.1 + JSON on the Unix socket) is described in docs/api.md, its \
    metrics in docs/metrics.md. Without a config file the daemon serves devices, \
    events and metrics, and refuses enrollments. Under systemd use Type=notify: the \
    daemon sends READY=1 once it listens; socket activation is supported."
)]
pub struct DaemonArgs {
    /// The Unix socket to listen on (mode 0660, owned by --group)
    /// [default: /run/keyward/keyward.sock]
    #[arg(long, value_name = "PATH", env = "KEYWARD_SOCKET")]
    pub socket: Option<PathBuf>,
    /// Members of this group (name or gid) may use the API; root always may
    /// [default: root only]
    #[arg(long, value_name = "GROUP")]
    pub group: Option<String>,
    /// On SIGTERM, let running enrollments finish for this long before
    /// cancelling them [default: 30s]
    #[arg(long, value_name = "DURATION", value_parser = duration)]
    pub grace: Option<Duration>,
    /// Flag the exception rate in /metrics above this rate [default: 0.05]
    #[arg(long, value_name = "RATE")]
    pub exception_threshold: Option<f64>,
    /// The window over which /metrics computes the exception rate
    /// [default: 30d]
    #[arg(long, value_name = "DURATION", value_parser = duration)]
    pub exception_window: Option<Duration>,
    /// Close an API connection that has not sent a complete request head
    /// within this time [default: 10s]
    #[arg(long, value_name = "DURATION", value_parser = duration)]
    pub header_timeout: Option<Duration>,
    /// Close an API connection on which nothing moved for this long
    /// [default: 2m]
    #[arg(long, value_name = "DURATION", value_parser = duration)]
    pub idle_timeout: Option<Duration>,
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
    /// DANGER, trials and tests only: accept device "sim" in POST
    /// /v1/enroll, a fresh in-process simulated key per job
    #[arg(long, hide = true)]
    pub danger_simulator: bool,
}

fn duration(s: &str) -> Result<Duration, String> {
    crate::time::parse_duration(s)
}

fn octal(s: &str) -> Result<u32, String> {
    u32::from_str_radix(s, 8)
        .ok()
        .filter(|m| *m <= 0o777)
        .ok_or_else(|| format!("{s:?} is not an octal file mode"))
}

/// The station configuration: `--config` (must exist), else the default
/// file when there is one.
pub fn load_config(global: &GlobalArgs) -> Result<Option<Config>> {
    let path = match &global.config {
        Some(p) => p.clone(),
        None => {
            let p = PathBuf::from(crate::config::DEFAULT_PATH);
            if !p.exists() {
                return Ok(None);
            }
            p
        }
    };
    Ok(Some(Config::load(&path)?))
}

/// The `[daemon]` table of `config`, parsed.
pub fn daemon_section(config: Option<&Config>) -> Result<DaemonSection> {
    match config.and_then(|c| c.daemon.as_ref().map(|t| (c, t))) {
        Some((c, t)) => Ok(DaemonSection::from_table(t, &c.origin).map_err(Failure::Usage)?),
        None => Ok(DaemonSection::default()),
    }
}

pub fn run(args: DaemonArgs, global: &GlobalArgs) -> Result<()> {
    let config = load_config(global)?;
    let section = daemon_section(config.as_ref())?;
    let threshold = args
        .exception_threshold
        .or(section.exception_rate_threshold)
        .map(super::report::check_threshold)
        .transpose()
        .map_err(Failure::Usage)?;
    let db = super::ledger_of(global, config.as_ref());
    let socket = args
        .socket
        .or(section.socket)
        .unwrap_or_else(|| daemon::DEFAULT_SOCKET.into());
    let mut dc = DaemonConfig::new(socket, db.clone());
    dc.group = args.group.or(section.group);
    dc.grace = args.grace.or(section.grace).unwrap_or(dc.grace);
    dc.exception_threshold = threshold.unwrap_or(dc.exception_threshold);
    dc.exception_window = args
        .exception_window
        .or(section.exception_window)
        .unwrap_or(dc.exception_window);
    dc.timeouts.header = args
        .header_timeout
        .or(section.header_timeout)
        .unwrap_or(dc.timeouts.header);
    dc.timeouts.idle = args
        .idle_timeout
        .or(section.idle_timeout)
        .unwrap_or(dc.timeouts.idle);
    if dc.timeouts.header.is_zero() || dc.timeouts.idle.is_zero() {
        return Err(
            Failure::Usage("the header and idle timeouts must be longer than zero".into()).into(),
        );
    }
    dc.debounce = Duration::from_millis(args.debounce_ms);
    dc.sysfs = args.sysfs;
    dc.dev_root = args.dev_root;
    dc.danger_simulator = args.danger_simulator;
    if let Some(m) = args.danger_socket_mode {
        tracing::warn!("socket mode {m:o} set by --danger-socket-mode");
        dc.socket_mode = m;
    }
    if let Some(c) = &config
        && let Some(registry) = &c.sync.registry
    {
        let o = c
            .sync_options(registry)
            .map_err(|e| Failure::Usage(e.to_string()))?;
        dc.sync = Some((o, c.sync.interval.unwrap_or(Duration::from_secs(60))));
    }
    match &config {
        // The packaged example: the daemon serves devices and refuses
        // enrollments until an issuer is configured (docs/install.md).
        Some(c) if c.ticket.issuers.is_empty() => tracing::warn!(
            "{}: no ticket issuer configured: enrollment is disabled until one is \
             (keyward station init, docs/install.md)",
            c.origin
        ),
        Some(c) => dc.station = Some(c.station(&db)?),
        None => tracing::warn!(
            "no configuration file ({}): enrollment is disabled; see docs/config.md",
            crate::config::DEFAULT_PATH
        ),
    }
    daemon::run(dc)
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
        // The CLI's envelope (docs/cli.md) around the API's document, so
        // both routes print the same shape.
        let out =
            serde_json::json!({"version": doc["version"], "ok": true, "devices": doc["devices"]});
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    let devices: Vec<crate::detect::link::Device> = serde_json::from_value(doc["devices"].clone())
        .map_err(|e| {
            Failure::DaemonUnreachable(format!(
                "the keyward daemon at {} sent a device list this keyward cannot read ({e}); \
                 are the daemon and the CLI the same version?",
                client.socket().display()
            ))
        })?;
    if devices.is_empty() {
        eprintln!(
            "no security keys found (the keyward daemon at {} sees none)",
            client.socket().display()
        );
    }
    super::devices::print_text(&devices);
    Ok(())
}

/// A daemon that answered but refused or failed: exit code 6 with the
/// client's message (which says what to do).
pub fn daemon_failure(e: crate::daemon::client::ClientError) -> anyhow::Error {
    Failure::DaemonUnreachable(crate::detect::error_chain(&e)).into()
}
