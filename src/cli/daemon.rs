//! `keyward daemon`: flags (and the config file's `[daemon]` section) to a
//! [`DaemonConfig`], then run it.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use clap::Args;

use super::enroll::EnrollArgs;
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
        let mut o = crate::sync::client::Options::new(registry, &c.station);
        o.ca = c.sync.ca.as_deref().map(|p| c.resolve(p));
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
        println!("{}", serde_json::to_string_pretty(&doc)?);
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

/// `keyward enroll` / `keyward replace` through a running daemon (the
/// daemon owns the devices). `None`: no daemon answers, run standalone.
/// The PIN is read here (prompt, `--pin-fd` or stdin) and sent in the
/// request body only.
pub fn enroll(args: &EnrollArgs, replace: bool, json: bool) -> Option<Result<()>> {
    let client = crate::daemon::client::connect_default()?;
    Some(enroll_with(&client, args, replace, json))
}

fn enroll_with(
    client: &crate::daemon::client::Client,
    args: &EnrollArgs,
    replace: bool,
    json: bool,
) -> Result<()> {
    use anyhow::Context;
    use std::io::Read;
    if args.puk_out_fd.is_some() {
        return Err(Failure::Usage(
            "--puk-out-fd is not available through the keyward daemon (the API never hands out a PUK); set KEYWARD_NO_DAEMON=1 to enroll standalone".into(),
        )
        .into());
    }
    let mut ticket = String::new();
    std::fs::File::open(&args.ticket)
        .and_then(|f| f.take(1024 * 1024).read_to_string(&mut ticket))
        .with_context(|| format!("cannot read the ticket {}", args.ticket.display()))?;
    let device = daemon_device(
        client,
        args.device.as_deref(),
        Duration::from_secs(args.wait),
    )?;
    let pin = super::secret_input::SecretInput::default().read(
        super::secret_input::Fd("--pin-fd", args.pin_fd),
        "new PIN",
        true,
    )?;
    // Serialized straight into a wiped buffer: no intermediate copy of the
    // PIN (a serde_json::Value would keep one).
    #[derive(serde::Serialize)]
    struct Body<'a> {
        ticket: &'a str,
        device: &'a str,
        pin: &'a str,
    }
    // JSON escaping writes at most 6 bytes per input byte (`\u00XX`): with
    // that room the buffer never reallocates and leaves no copy behind.
    let room = 6 * (ticket.len() + device.len() + pin.len()) + 64;
    let mut body = zeroize::Zeroizing::new(Vec::with_capacity(room));
    serde_json::to_writer(
        &mut *body,
        &Body {
            ticket: ticket.trim(),
            device: &device,
            pin: pin.as_str(),
        },
    )?;
    drop(pin);
    if !json {
        eprintln!(
            "enrolling {device} through the keyward daemon at {}",
            client.socket().display()
        );
    }
    let started = std::time::Instant::now();
    let path = if replace { "/v1/replace" } else { "/v1/enroll" };
    let job = client
        .run_job(path, &body, &mut |e| progress_line(e, json, started))
        .map_err(daemon_failure)?;
    drop(body);
    job_outcome(&job, replace, json)
}

/// One progress line on stderr; touch prompts always reach a person.
fn progress_line(e: &crate::daemon::client::Event, json: bool, started: std::time::Instant) {
    let d = &e.data;
    let t = started.elapsed().as_secs_f32();
    let secs = |k: &str| d[k].as_u64().unwrap_or(0) / 1000;
    match d["event"].as_str() {
        Some("touch-needed") => eprintln!(
            ">>> Touch your key now (it is blinking; {} s left)",
            secs("timeout_ms")
        ),
        Some("reinsert-needed") => eprintln!(
            ">>> Unplug the key, plug it back in and touch it within {} s",
            secs("within_ms")
        ),
        _ if json => {}
        Some("step-done") => eprintln!(
            "[{t:>6.1}s] {}: ok ({} ms)",
            d["step"].as_str().unwrap_or("?"),
            d["elapsed_ms"]
        ),
        Some("step-failed") => eprintln!(
            "[{t:>6.1}s] {}: FAILED ({})",
            d["step"].as_str().unwrap_or("?"),
            d["reason"].as_str().unwrap_or("?")
        ),
        _ => {}
    }
}

/// Print the job's end; a failed job exits with its reason's code.
fn job_outcome(job: &serde_json::Value, replace: bool, json: bool) -> Result<()> {
    if job["state"] == "completed" {
        let r = &job["result"];
        if json {
            let mut doc =
                serde_json::json!({"version": 1, "ok": true, "job": job["id"], "via": "daemon"});
            if let (Some(m), Some(o)) = (doc.as_object_mut(), r.as_object()) {
                m.extend(o.clone());
            }
            println!("{}", serde_json::to_string_pretty(&doc)?);
        } else {
            println!(
                "{} {}: key {} bound as {}",
                if replace { "Replaced" } else { "Enrolled" },
                r["subject"].as_str().unwrap_or("?"),
                r["serial"].as_str().unwrap_or("(no serial)"),
                r["binding"].as_str().unwrap_or("?")
            );
            for c in r["credentials"].as_array().into_iter().flatten() {
                let place = c["rp_id"].as_str().or(c["slot"].as_str()).unwrap_or("-");
                println!(
                    "  {} {place} {}",
                    c["kind"].as_str().unwrap_or("?"),
                    c["algorithm"].as_str().unwrap_or("?")
                );
            }
        }
        return Ok(());
    }
    let e = &job["error"];
    let reason = e["reason"].as_str().unwrap_or("unknown");
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(
                &serde_json::json!({"version": 1, "ok": false, "job": job["id"], "error": e})
            )?
        );
    }
    let msg = format!(
        "{} [{reason}]",
        e["message"].as_str().unwrap_or("the job failed")
    );
    Err(match reason_exit_class(reason) {
        3 => Failure::NoDevice(msg).into(),
        4 => Failure::PinBlocked(msg).into(),
        5 => Failure::Verification(msg).into(),
        _ => anyhow::anyhow!(msg),
    })
}

/// The exit code class of a reason code, as `keyward enroll` standalone
/// maps `provision::Reason::class` (3 no device, 4 PIN blocked, 5
/// verification, else 1).
fn reason_exit_class(reason: &str) -> u8 {
    match reason {
        "no-device" | "device-removed" => 3,
        "pin-blocked" => 4,
        r if r.starts_with("ticket-")
            || r.starts_with("attestation-")
            || matches!(
                r,
                "clock-rollback"
                    | "policy-aaguid"
                    | "policy-model"
                    | "policy-enterprise-attestation"
                    | "policy-piv"
                    | "policy-attestation"
                    | "serial-mismatch"
                    | "device-mismatch"
                    | "drift"
                    | "replace-ial"
                    | "replace-dual-control"
            ) =>
        {
            5
        }
        _ => 1,
    }
}

/// `--device` as a daemon device id: `sim`, `pcsc:…`/`hidraw:…` as given,
/// a hidraw path, a serial (looked up), or a reader name; without it, the
/// one key present (waiting up to `wait` for one).
fn daemon_device(
    client: &crate::daemon::client::Client,
    sel: Option<&str>,
    wait: Duration,
) -> Result<String> {
    match sel {
        Some(s) if s == "sim" || s.starts_with("pcsc:") || s.starts_with("hidraw:") => {
            Ok(s.to_string())
        }
        Some(p) if p.starts_with('/') => Ok(format!(
            "hidraw:{}",
            std::path::Path::new(p)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        )),
        Some(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
            let devs = client.devices().map_err(daemon_failure)?;
            devs["devices"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|d| {
                    d["identity"]["serial"]
                        .as_u64()
                        .map(|n| n.to_string())
                        .as_deref()
                        == Some(s)
                })
                .and_then(|d| d["id"].as_str().map(str::to_string))
                .ok_or_else(|| {
                    Failure::NoDevice(format!("no key with serial {s} is present; insert it"))
                        .into()
                })
        }
        Some(reader) => Ok(format!("pcsc:{reader}")),
        None => wait_for_one(client, wait),
    }
}

fn wait_for_one(client: &crate::daemon::client::Client, wait: Duration) -> Result<String> {
    let deadline = std::time::Instant::now() + wait;
    loop {
        let devs = client.devices().map_err(daemon_failure)?;
        let ids: Vec<String> = devs["devices"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|d| !d["identity"].is_null())
            .filter_map(|d| d["id"].as_str().map(str::to_string))
            .collect();
        match ids.as_slice() {
            [one] => return Ok(one.clone()),
            [] if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(200));
            }
            [] => {
                return Err(Failure::NoDevice(format!(
                    "no key was inserted within {} s",
                    wait.as_secs()
                ))
                .into());
            }
            many => {
                return Err(Failure::Usage(format!(
                    "{} keys are present ({}); choose one with --device",
                    many.len(),
                    many.join(", ")
                ))
                .into());
            }
        }
    }
}
