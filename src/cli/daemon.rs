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
